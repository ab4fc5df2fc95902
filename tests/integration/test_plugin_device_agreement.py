"""--compare-device: each image predicted a second time, the two predictions compared.

The second predictor comes through ``pytest_segqc_make_predictor`` (``role="compare"``)
as a test double that reads its labels from a folder, so the disagreement is known
exactly: the "weak" labels miss whole disks of some images. The expected mismatches
are counted here from the label files themselves. One test runs the real StarDist path
(the demo model against itself on the CPU).
"""

import numpy as np
import pytest
import tifffile

from segqc.metrics.catalogue import METRICS
from tests.helpers import DEMO2D, QC2D, assert_no_traceback, literal, summary_json

QC = ("--pyargs", "segqc.qc_tests")
RATIOS = [spec.key for spec in METRICS if spec.kind == "ratio"]
PIXELS = 64 * 128  # tests.helpers.write_qc's images

SECOND_PREDICTOR_CONFTEST = """
from pathlib import Path

import numpy as np
import tifffile

from segqc.predict import PredictionResult

LABELS = {{"model": Path(r"{model}"), "compare": Path(r"{compare}")}}


class FolderDouble:
    needs_source_image = True

    def __init__(self, role):
        self.role = role

    def predict(self, pair, image):
        assert image is not None  # it gets the source image, like a model
        labels = tifffile.imread(LABELS[self.role] / pair.name)
        if self.role == "compare":  # the same objects, numbered the other way round
            labels = np.where(labels > 0, labels.max() + 1 - labels, 0).astype(labels.dtype)
        return PredictionResult(labels=labels)

    def describe(self):
        return {{"kind": "test double", "device": "CPU" if self.role == "model" else "other"}}


def pytest_segqc_make_predictor(config, model_dir, role):
    return FolderDouble(role) if model_dir.name == "candidate" else None
"""


def run_compared(pytester, qc, *args):
    candidate = pytester.path / "candidate"
    candidate.mkdir(exist_ok=True)
    return pytester.runpytest(
        *QC, f"--model={candidate}", f"--qc-source={qc.source}", f"--qc-target={qc.target}",
        "--compare-device=cpu", *args,
    )  # fmt: skip


def test_images_whose_second_prediction_differs_fail_alone(pytester, make_qc, thresholds_file):
    good = make_qc(4, root=pytester.path / "good")
    weak = make_qc(4, dropped=(0, 4, 0, 2), root=pytester.path / "weak")
    pytester.makeconftest(
        SECOND_PREDICTOR_CONFTEST.format(model=good.predictions, compare=weak.predictions)
    )
    result = run_compared(pytester, good, "-v")
    assert_no_traceback(result)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    for name, outcome in [("img00", "PASSED"), ("img01", "FAILED"), ("img02", "PASSED"),
                          ("img03", "FAILED")]:  # fmt: skip
        result.stdout.fnmatch_lines([literal(f"*::test_device_agreement[{name}.tif] {outcome}*")])
        result.stdout.fnmatch_lines([literal(f"*::test_image[{name}.tif] PASSED*")])
    result.stdout.fnmatch_lines(
        ["img01.tif: mismatched_pixels_per_million = * > max 100 (off by *; thresholds.yaml "
         "device_agreement.mismatched_pixels_per_million.max); * of 8192 pixels differ on other",
         "img01.tif: metric_difference = * > max 0.01 (*device_agreement.metric_difference.max)"
         "; largest on *: 1, then 0.6 on other"]
    )  # fmt: skip

    # the segqc section counts and lists the broken limits (2 per failing image)
    result.stdout.fnmatch_lines(
        ["4 of 4 QC images evaluated; 4 limits failed, 0 warnings",
         "FAIL device_agreement::img01.tif: mismatched_pixels_per_million = *",
         "FAIL device_agreement::img01.tif: metric_difference = *"]
    )  # fmt: skip
    section = summary_json(pytester)["device_agreement"]
    assert section["compare_device"] == "cpu"
    assert section["device"] == "CPU"
    assert section["limits"] == {
        "mismatched_pixels_per_million": {"max": 100.0, "level": "fail"},
        "metric_difference": {"max": 0.01, "level": "fail"},
    }
    assert [image["name"] for image in section["images"]] == [f"img{i:02d}.tif" for i in range(4)]
    for image in section["images"]:
        truth = tifffile.imread(good.predictions / image["name"])
        second = tifffile.imread(weak.predictions / image["name"])
        # the weak labels are the good ones without some disks: those disks' pixels
        missing = int(np.count_nonzero((truth > 0) & (second == 0)))
        assert image["device"] == "other"
        assert image["mismatched_pixels"] == missing
        assert image["pixels"] == PIXELS
        assert image["mismatched_pixels_per_million"] == pytest.approx(1e6 * missing / PIXELS)
        largest = max(image["metric_differences"][key] for key in RATIOS)
        assert image["largest_metric_difference"] == largest
    dropped = {"img00.tif": 0, "img01.tif": 4, "img02.tif": 0, "img03.tif": 2}
    for image in section["images"]:
        # recall: 10 of 10 disks found by the first prediction, 10 - dropped by the second
        assert image["metric_differences"]["recall"] == pytest.approx(dropped[image["name"]] / 10)
        assert image["metric_differences"]["tp"] == dropped[image["name"]]
    failed = {v["subject"] for v in section["verdicts"] if v["outcome"] == "fail"}
    assert failed == {"img01.tif", "img03.tif"}
    report = (pytester.path / "qc-output" / "report.html").read_text()
    assert 'data-field="device_agreement"' in report

    # the user's limits, not the defaults, decide
    limits = thresholds_file(
        "device_agreement:\n"
        "  mismatched_pixels_per_million: {max: 1000000}\n"
        "  metric_difference: {max: 1.0}\n"
    )
    result = run_compared(pytester, good, f"--thresholds={limits}")
    assert result.ret == pytest.ExitCode.OK
    assert summary_json(pytester)["device_agreement"]["limits"]["metric_difference"]["max"] == 1.0


def test_xdist_workers_send_each_images_comparison(pytester, make_qc, worker_path):
    """A worker predicts twice; what it sends makes the same section as one process."""
    good = make_qc(4, root=pytester.path / "good")
    weak = make_qc(4, dropped=(1, 0, 3, 0), root=pytester.path / "weak")
    pytester.makeconftest(
        SECOND_PREDICTOR_CONFTEST.format(model=good.predictions, compare=weak.predictions)
    )
    sections = []
    for workers in ("1", "0"):  # one worker: every outcome reaches the controller by xdist
        result = run_compared(pytester, good, "-n", workers)
        assert result.ret == pytest.ExitCode.TESTS_FAILED
        sections.append(summary_json(pytester)["device_agreement"])
    assert sections[0] == sections[1]
    assert [i["metric_differences"]["tp"] for i in sections[0]["images"]] == [1, 0, 3, 0]


def test_predictions_that_differ_only_in_their_numbering_agree(pytester, make_qc):
    good = make_qc(2, dropped=(3, 0), root=pytester.path / "good")
    pytester.makeconftest(
        SECOND_PREDICTOR_CONFTEST.format(model=good.predictions, compare=good.predictions)
    )
    result = run_compared(pytester, good, "-v")
    assert result.ret == pytest.ExitCode.OK
    for name in ("img00.tif", "img01.tif"):
        result.stdout.fnmatch_lines([literal(f"*::test_device_agreement[{name}] PASSED*")])
    for image in summary_json(pytester)["device_agreement"]["images"]:
        assert image["mismatched_pixels"] == 0
        assert image["largest_metric_difference"] == 0


def test_runs_without_compare_device_have_no_agreement_tests(pytester, make_qc):
    qc = make_qc(2)
    result = pytester.runpytest(*QC, f"--predictions={qc.predictions}",
                                f"--qc-target={qc.target}", "-v")  # fmt: skip
    assert result.ret == pytest.ExitCode.OK
    assert "test_device_agreement" not in result.stdout.str()
    assert summary_json(pytester)["device_agreement"] is None


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--compare-device=cpu"],
         "*--compare-device cpu predicts each image a second time; it needs --model*"),
        (["--compare-device=gpu", "--device=cpu"],
         "*--device cpu hides the GPUs from TensorFlow, so --compare-device gpu cannot use one*"),
    ],
)  # fmt: skip
def test_a_comparison_that_cannot_work_is_a_usage_error(pytester, make_qc, options, message):
    qc = make_qc(1)
    if "--device=cpu" in options:  # the model is there; the devices contradict each other
        where = [f"--model={DEMO2D}", f"--qc-source={qc.source}"]
    else:
        where = [f"--predictions={qc.predictions}"]
    result = pytester.runpytest(*QC, *where, f"--qc-target={qc.target}", *options)
    assert_no_traceback(result)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])


def test_the_demo_model_agrees_with_itself_on_the_cpu(tensorflow_ready, pytester):
    """The real path: StarDist predicts each image again, placed on the CPU."""
    names = sorted(p.name for p in (QC2D / "source").iterdir())[:2]
    for role in ("source", "target"):
        folder = pytester.mkdir(role)
        for name in names:
            (folder / name).write_bytes((QC2D / role / name).read_bytes())
    result = pytester.runpytest(
        *QC, f"--model={DEMO2D}", f"--qc-source={pytester.path / 'source'}",
        f"--qc-target={pytester.path / 'target'}", "--device=cpu", "--compare-device=cpu",
        "--no-cache", "-v",
    )  # fmt: skip
    assert_no_traceback(result)
    for name in names:
        result.stdout.fnmatch_lines([literal(f"*::test_device_agreement[{name}] PASSED*")])
    section = summary_json(pytester)["device_agreement"]
    assert [image["name"] for image in section["images"]] == names
    for image in section["images"]:
        assert image["device"] == "CPU"
        assert image["mismatched_pixels"] == 0  # the same model on the same device
        assert image["largest_metric_difference"] == 0
