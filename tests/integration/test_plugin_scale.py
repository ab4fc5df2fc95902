"""The plugin at scale, as a user runs it: prediction cache, pytest-xdist, streaming.

Model-mode runs use a stand-in model folder (config.json, random weights bytes) and a
conftest that replaces ``StarDistPredictor.predict`` with a counting fake, so no
TensorFlow is needed: the fake labels ``image > 300`` (the disks of ``make_qc``) and
appends the image name to ``predict_calls.txt``. Expected metrics are those of
tests/test_plugin_predictions.py (10 disks per image, ``d`` dropped: tp = 10 - d).
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from types import SimpleNamespace

import pytest

from segqc.checks.robustness.perturbations import RobustnessResult
from segqc.data.pairing import QcPair
from segqc.pipeline.evaluate import EvaluationSettings, evaluate_image
from segqc.pipeline.outcome import ImageOutcome, outcome_from_dict, outcome_to_dict
from segqc.predict.folder import PredictionsFolder
from segqc.session import ImageFinding
from segqc.xdist import finding_from_message, finding_to_message
from tests.helpers import OPTIONAL_SKIPPED, summary_json

QC = ("--pyargs", "segqc.qc_tests")

FAKE_PREDICT = """
import numpy as np
from skimage.measure import label
from segqc.predict import PredictionResult
from segqc.predict.stardist import StarDistPredictor

def fake_predict(self, pair, image):
    self.device_name = "CPU (fake)"
    with open("predict_calls.txt", "a") as handle:
        handle.write(pair.name + "\\n")
    return PredictionResult(labels=label(image > 300).astype(np.int32), n_tiles=(1, 1))

real_predict = StarDistPredictor.predict
undo = [lambda: setattr(StarDistPredictor, "predict", real_predict)]

def pytest_configure(config):
    StarDistPredictor.predict = fake_predict

def pytest_unconfigure(config):  # in-process runs share segqc with the tests after them
    for step in undo:
        step()
"""


@pytest.fixture
def fake_model(pytester: pytest.Pytester) -> Path:
    folder = pytester.path / "model"
    folder.mkdir()
    (folder / "config.json").write_text('{"n_dim": 2, "n_channel_in": 1}')
    (folder / "weights_best.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + os.urandom(256))
    (folder / "thresholds.json").write_text('{"prob": 0.5, "nms": 0.4}')
    pytester.makeconftest(FAKE_PREDICT)
    return folder


def calls(pytester: pytest.Pytester) -> list[str]:
    path = pytester.path / "predict_calls.txt"
    return path.read_text().split() if path.exists() else []


def test_second_run_uses_the_cache_and_no_cache_bypasses_it(pytester, make_qc, fake_model):
    qc = make_qc(3, root=pytester.path / "qc")
    model = (f"--model={fake_model}", f"--qc-source={qc.source}")
    args = (*QC, *model, f"--qc-target={qc.target}")

    pytester.runpytest(*args).assert_outcomes(passed=5, skipped=OPTIONAL_SKIPPED)
    assert sorted(calls(pytester)) == ["img00.tif", "img01.tif", "img02.tif"]
    first = summary_json(pytester)
    assert [i["cached"] for i in first["images"]] == [False] * 3
    assert first["predictor"]["cache"] == str(pytester.path / "qc-output" / "cache")

    pytester.runpytest(*args).assert_outcomes(passed=5, skipped=OPTIONAL_SKIPPED)
    assert len(calls(pytester)) == 3  # nothing predicted again
    second = summary_json(pytester)
    assert [i["cached"] for i in second["images"]] == [True] * 3
    assert [i["metrics"] for i in second["images"]] == [i["metrics"] for i in first["images"]]
    assert second["images"][0]["metrics"]["tp"] == 10
    assert second["images"][0]["n_tiles"] == [1, 1]
    assert (pytester.path / "qc-output" / "predictions" / "img02.tif").is_file()

    pytester.runpytest(*args, "--no-cache").assert_outcomes(passed=5, skipped=OPTIONAL_SKIPPED)
    assert len(calls(pytester)) == 6
    assert [i["cached"] for i in summary_json(pytester)["images"]] == [False] * 3


def test_changed_prediction_threshold_predicts_again(pytester, make_qc, fake_model):
    qc = make_qc(2, root=pytester.path / "qc")
    args = (*QC, f"--model={fake_model}", f"--qc-source={qc.source}",
            f"--qc-target={qc.target}")  # fmt: skip
    pytester.runpytest(*args)
    limits = pytester.path / "limits.yaml"
    limits.write_text("prediction:\n  prob_thresh: 0.6\n")
    pytester.runpytest(*args, f"--thresholds={limits}").assert_outcomes(
        passed=2, skipped=2 + OPTIONAL_SKIPPED
    )
    assert len(calls(pytester)) == 4
    assert [i["cached"] for i in summary_json(pytester)["images"]] == [False, False]


def test_cache_folder_from_option_and_ini(pytester, make_qc, fake_model):
    qc = make_qc(1, root=pytester.path / "qc")
    args = (*QC, f"--model={fake_model}", f"--qc-source={qc.source}",
            f"--qc-target={qc.target}")  # fmt: skip
    pytester.runpytest(*args, "--qc-cache", "mine")
    assert len(list((pytester.path / "mine").rglob("*.tif"))) == 1
    assert not (pytester.path / "qc-output" / "cache").exists()
    pytester.makeini("[pytest]\nqc_cache = from_ini\n")
    pytester.runpytest(*args)
    assert len(list((pytester.path / "from_ini").rglob("*.tif"))) == 1


def test_unwritable_cache_folder_is_a_usage_error(pytester, make_qc, fake_model):
    qc = make_qc(1, root=pytester.path / "qc")
    (pytester.path / "blocker").write_text("a file, not a folder")
    result = pytester.runpytest(
        *QC, f"--model={fake_model}", f"--qc-source={qc.source}",
        f"--qc-target={qc.target}", f"--qc-cache={pytester.path / 'blocker'}",
    )  # fmt: skip
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: segqc: */blocker: cache folder is not writable*"])
    assert "Traceback" not in result.stdout.str() + result.stderr.str()


def test_xdist_reports_every_image_exactly_once(pytester, make_qc, worker_path):
    dropped = (0, 4, 0, 2, 0, 0, 1, 0)
    qc = make_qc(len(dropped), dropped=dropped, root=pytester.path / "qc")
    limits = pytester.path / "limits.yaml"
    limits.write_text("per_image:\n  f1: {min: 0.7}\naggregate:\n  f1: {min: 0.8}\n")
    result = pytester.runpytest(
        *QC, "-n", "2", f"--predictions={qc.predictions}", f"--qc-target={qc.target}",
        f"--thresholds={limits}",
    )  # fmt: skip
    result.assert_outcomes(passed=len(dropped) + 1, skipped=1 + OPTIONAL_SKIPPED)
    result.stdout.fnmatch_lines([f"2 workers [[]{10 + OPTIONAL_SKIPPED} items[]]"])
    names = [f"img{i:02d}.tif" for i in range(len(dropped))]
    with open(pytester.path / "qc-output" / "metrics.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["image"] for row in rows] == names
    assert [int(row["false negative"]) for row in rows] == list(dropped)
    document = summary_json(pytester)
    assert document["complete"] is True and document["status"] == "passed"
    assert [i["name"] for i in document["images"]] == names
    assert document["qc"]["n_evaluated"] == len(dropped)
    pooled = document["aggregate"]["pooled"]
    assert (pooled["tp"], pooled["fn"]) == (80 - sum(dropped), sum(dropped))
    assert sum(v["scope"] == "per_image" for v in document["limits"]) == len(dropped)
    assert document["tests"] == {"passed": len(dropped) + 1, "skipped": 1 + OPTIONAL_SKIPPED}
    leftovers = [p.name for p in (pytester.path / "qc-output").iterdir()]
    assert not [name for name in leftovers if name.startswith(".segqc-tmp")]
    assert {"metrics.csv", "summary.json"} <= set(leftovers)


def test_xdist_aggregate_at_judges_every_image_even_when_run_alone(pytester, make_qc, worker_path):
    # Pooled recall at IoU 0.7 is 26/30 = 0.867 over all three images (img01 misses 4 of
    # 10 disks) and 1.0, 0.8 or 0.6 over any part of them: only the whole set passes.
    qc = make_qc(3, dropped=(0, 4, 0), root=pytester.path / "qc")
    limits = pytester.path / "limits.yaml"
    limits.write_text("aggregate_at:\n  0.7: {recall: {min: 0.85, max: 0.9}}\n")
    result = pytester.runpytest(
        *QC, "-n", "1", "-k", "aggregate_at", f"--predictions={qc.predictions}",
        f"--qc-target={qc.target}", f"--thresholds={limits}",
    )  # fmt: skip
    result.assert_outcomes(passed=1)


def test_xdist_runs_whole_set_tests_after_the_per_image_tests(pytester, make_qc, worker_path):
    qc = make_qc(3, root=pytester.path / "qc")
    limits = pytester.path / "limits.yaml"
    limits.write_text("aggregate_at:\n  0.7: {recall: {min: 0.5}}\n")
    result = pytester.runpytest(
        *QC,
        "-n",
        "1",
        "-v",
        f"--predictions={qc.predictions}",
        f"--qc-target={qc.target}",
        f"--thresholds={limits}",
    )
    ran = [line.split("::")[-1].strip() for line in result.outlines if "[gw0]" in line]
    per_image = [i for i, name in enumerate(ran) if name.startswith("test_image[")]
    whole_set = [
        i
        for i, name in enumerate(ran)
        if name in ("test_aggregate_at", "test_aggregate", "test_image_mean")
    ]
    # test_accuracy_vs_iou.py is collected first, yet runs after every image's test
    assert len(per_image) == 3 and len(whole_set) == 3
    assert max(per_image) < min(whole_set)


def _pairs(qc) -> tuple[QcPair, ...]:
    return tuple(QcPair(p.name, None, p) for p in sorted(qc.target.iterdir()) if p.suffix == ".tif")


def _evaluated(qc, pairs):
    folder = PredictionsFolder(qc.predictions, {p.name: qc.predictions / p.name for p in pairs})
    settings = EvaluationSettings(
        iou_threshold=0.5, curve_thresholds=(0.5, 0.7), size_bin_edges=(100.0,)
    )
    return [evaluate_image(p, predictor=folder, settings=settings) for p in pairs]


def test_outcome_round_trips_through_a_dict(make_qc):
    qc = make_qc(2, dropped=(0, 4))
    pairs = _pairs(qc)
    for outcome in _evaluated(qc, pairs):
        data = json.loads(json.dumps(outcome_to_dict(outcome)))
        assert outcome_from_dict(data, pairs={p.name: p for p in pairs}) == outcome
    broken = ImageOutcome(pairs[0], error="target/img00.tif: not a TIFF", n_tiles=(2, 1))
    assert outcome_from_dict(outcome_to_dict(broken)) == broken


def test_findings_cross_execnets_own_serialiser_unchanged(make_qc):
    """What a worker sends is built-in types only: execnet (the channel xdist uses, also
    to other hosts) serialises it, and the controller rebuilds the same finding."""
    import execnet

    qc = make_qc(2, dropped=(0, 4))
    pairs = _pairs(qc)
    [first, second] = _evaluated(qc, pairs)
    findings = [
        ImageFinding("image", first, prediction=b"II*\x00tiff", panels={"panels": [["a", "data:"]],
                     "note": None}, reason="failed", for_test=True),
        ImageFinding("baseline", second),
        RobustnessResult("flip-x", "flip", "img00.tif", {"f1": 1.0}, {"f1": 0.9}, {"f1": 0.1},
                         {"f1": 0.05}),
    ]  # fmt: skip

    receiver = SimpleNamespace(pairs=pairs)
    for finding in findings:
        message = execnet.loads(execnet.dumps(finding_to_message(finding)))
        assert finding_from_message(message, receiver) == finding  # type: ignore[arg-type]


def test_demo_model_second_run_is_served_by_the_cache(tensorflow_ready, pytester):
    from tests.helpers import DEMO2D, QC2D

    args = (*QC, f"--model={DEMO2D}", f"--qc-source={QC2D / 'source'}",
            f"--qc-target={QC2D / 'target'}", "--device", "cpu")  # fmt: skip
    pytester.runpytest(*args)
    first = summary_json(pytester)
    assert first["images"] and not any(i["cached"] for i in first["images"])
    pytester.runpytest(*args)
    second = summary_json(pytester)
    assert all(i["cached"] for i in second["images"])
    assert [i["metrics"] for i in second["images"]] == [i["metrics"] for i in first["images"]]
    assert [i["n_tiles"] for i in second["images"]] == [i["n_tiles"] for i in first["images"]]


#: Everything that runs on the workers under xdist: image evaluation, the released model
#: (--baseline-model), robustness, object-size bins, image groups, aggregate_at.
EVERYTHING_LIMITS = """\
per_image: {f1: {min: 0.6}}
aggregate: {f1: {min: 0.8}}
aggregate_at: {0.7: {recall: {min: 0.5}}}
robustness:
  intensity_scale: {factors: [3], max_drop: {f1: 0.05}}
  flip: {axes: [x]}
subgroups:
  object_size: {edges: [50, 100], limits: {recall: {min: 0.9}}}
  image_groups: {limits: {f1: {min: 0.9}}}
regression:
  aggregate: {f1: {max_drop: 0.02}}
"""

#: What may differ between two runs of the same QC: when, where, how long, and whether
#: the prediction came from the cache.
RUN_SPECIFIC = {"created", "seconds", "cached", "prediction_file", "report", "output", "tests"}


def comparable(document: object, *also: str) -> object:
    """summary.json without what is specific to one run (RUN_SPECIFIC and ``also``)."""
    if isinstance(document, dict):
        return {
            k: comparable(v, *also)
            for k, v in document.items()
            if k not in RUN_SPECIFIC and k not in also
        }
    if isinstance(document, list):
        return [comparable(v, *also) for v in document]
    return document


def test_xdist_summary_equals_a_run_without_xdist(pytester, make_qc, fake_model, worker_path):
    """With -n the workers load the models, predict, measure and run the robustness tests;
    what they send the controller makes the same summary.json as a run without xdist: the
    device they predicted on, the released model's comparison, robustness, bins, groups."""
    n_images = 6
    qc = make_qc(n_images, root=pytester.path / "qc")
    released = pytester.path / "released"  # other weights: its predictions are cached apart
    released.mkdir()
    for path in fake_model.iterdir():
        (released / path.name).write_bytes(path.read_bytes())
    (released / "weights_best.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + os.urandom(256))
    groups = pytester.path / "groups.csv"
    groups.write_text("image,group\n" + "".join(
        f"img{i:02d}.tif,{'condA' if i < 3 else 'condB'}\n" for i in range(n_images)
    ))  # fmt: skip
    (pytester.path / "limits.yaml").write_text(EVERYTHING_LIMITS)
    args = (*QC, f"--model={fake_model}", f"--baseline-model={released}",
            f"--qc-source={qc.source}", f"--qc-target={qc.target}", f"--qc-groups={groups}",
            "--thresholds=limits.yaml", "--robustness")  # fmt: skip

    with_xdist = pytester.runpytest(*args, "-n", "2", "--qc-output", "out-n2")
    assert sorted(set(calls(pytester))) == [f"img{i:02d}.tif" for i in range(n_images)]
    first = summary_json(pytester, "out-n2")
    assert first["complete"] is True
    assert first["predictor"]["device"] == "CPU (fake)"  # only the workers load the model
    html = (pytester.path / "out-n2" / "report.html").read_text(encoding="utf-8")
    assert "CPU (fake)" in html
    # every part was there to compare
    assert len(first["robustness"]["results"]) == 2 * n_images
    assert {g["group"] for g in first["subgroups"]["image_groups"]} == {"condA", "condB"}
    assert first["regression"]["aggregate"]["f1"]["old"] is not None

    # Without xdist, on the same folder: the predictions the workers cached serve this run
    # (so it predicts nothing and names no device); measuring, judging, robustness, the
    # comparison and the subgroups run on the controller and must come out the same.
    without = pytester.runpytest(*args, "-n", "0", "--qc-output", "out-n2")
    assert without.ret == with_xdist.ret
    second = summary_json(pytester, "out-n2")
    assert [i["cached"] for i in second["images"]] == [True] * n_images
    assert second["predictor"]["device"] is None
    assert comparable(second, "device") == comparable(first, "device")
