"""Regression checks and statistical gates as a user runs them (``--predictions`` mode).

QC data (conftest ``make_qc``): every image has 10 equal disks; a prediction that drops
``d`` of them has tp = 10 - d, fn = d, fp = 0, recall = (10 - d)/10, f1 = 2tp/(2tp + d).
The ground truth and source images are identical across ``make_qc`` calls, so two calls
differing only in ``dropped`` are two "models" on the same QC set.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import tifffile

from tests.helpers import (
    LOSS_CURVE_TESTS,
    OPTIONAL_SKIPPED,
    assert_no_traceback,
    literal,
    summary_json,
)

QC = ("--pyargs", "segqc.qc_tests")
REGRESSION_LIMITS = """\
regression:
  aggregate: {f1: {max_drop: 0.02}, recall: {max_drop: 0.02}}
  image_mean: {f1: {max_drop: 0.02}}
  per_image: {f1: {max_drop: 0.10}}
"""


def run_qc(pytester, predictions, qc, *args, limits=None):
    options = [*QC, f"--predictions={predictions}", f"--qc-target={qc.target}",
               f"--qc-source={qc.source}"]  # fmt: skip
    if limits is not None:
        options += [f"--thresholds={limits}"]
    return pytester.runpytest(*options, *args)


@pytest.fixture
def two_models(pytester, make_qc):
    """A good model (drops nothing) and a weak one (drops 4 in img01, 2 in img03)."""
    good = make_qc(4, root=pytester.path / "good")
    weak = make_qc(4, dropped=(0, 4, 0, 2), root=pytester.path / "weak")
    return good, weak


def test_update_then_compare_passes_with_no_change(pytester, two_models, thresholds_file):
    good, _ = two_models
    limits = thresholds_file(REGRESSION_LIMITS)
    baseline = pytester.path / "baseline.json"
    result = run_qc(pytester, good.predictions, good, f"--baseline={baseline}",
                    "--update-baseline", "-rs", limits=limits)  # fmt: skip
    result.assert_outcomes(passed=4, skipped=2 + OPTIONAL_SKIPPED)
    result.stdout.fnmatch_lines([f"wrote baseline {baseline}"])
    result.stdout.fnmatch_lines(["*--update-baseline writes *baseline.json at the end*"])
    document = json.loads(baseline.read_text())
    assert [i["name"] for i in document["images"]] == [f"img{i:02d}.tif" for i in range(4)]
    target = good.target / "img02.tif"
    assert document["images"][2]["target_sha256"] == hashlib.sha256(target.read_bytes()).hexdigest()
    assert document["aggregate"]["pooled"]["tp"] == 40
    assert document["matching"] == {"iou_threshold": 0.5}

    result = run_qc(pytester, good.predictions, good, f"--baseline={baseline}", "-v",
                    limits=limits)  # fmt: skip
    assert result.ret == pytest.ExitCode.OK
    result.assert_outcomes(passed=7, skipped=4 + LOSS_CURVE_TESTS)
    result.stdout.fnmatch_lines(
        ["*test_regression_per_image PASSED*", "*segqc regression*",
         f"compared 4 QC images with file {baseline}: no change", "*pooled: f1: no change (1)*"]
    )  # fmt: skip
    table = summary_json(pytester)["regression"]
    assert table["change"] == "no change"
    assert table["aggregate"]["f1"] == {
        "old": 1.0, "new": 1.0, "delta": 0.0, "delta_ci_low": 0.0, "delta_ci_high": 0.0,
        "change": "no change",
    }  # fmt: skip


def test_weak_model_against_good_baseline_fails_naming_metrics_and_images(
    pytester, two_models, thresholds_file
):
    good, weak = two_models
    limits = thresholds_file(REGRESSION_LIMITS)
    baseline = pytester.path / "baseline.json"
    run_qc(pytester, good.predictions, good, f"--baseline={baseline}", "--update-baseline",
           limits=limits)  # fmt: skip
    result = run_qc(pytester, weak.predictions, good, f"--baseline={baseline}", limits=limits)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(passed=4, failed=3, skipped=4 + LOSS_CURVE_TESTS)
    # pooled: tp 34, fn 6 -> recall 0.85, f1 68/74; img01 f1 12/16, img03 f1 16/18
    result.stdout.fnmatch_lines(
        [
            "*_ test_regression_aggregate _*",
            "pooled: recall dropped by 0.15 (1 → 0.85), more than max_drop 0.02*"
            "(thresholds.yaml regression.aggregate.recall.max_drop)",
            "pooled: f1 dropped by 0.08108 (1 → 0.9189), more than max_drop 0.02*",
            "*_ test_regression_per_image _*",
            "img01.tif: f1 dropped by 0.25 (1 → 0.75), more than max_drop 0.1 "
            "(thresholds.yaml regression.per_image.f1.max_drop)",
            "img03.tif: f1 dropped by 0.1111 (1 → 0.8889), more than max_drop 0.1*",
        ]
    )
    assert "img00.tif: f1 dropped" not in result.stdout.str()
    assert_no_traceback(result)
    table = summary_json(pytester)["regression"]
    assert table["change"] == "worse"
    img01 = next(row for row in table["per_image"] if row["name"] == "img01.tif")
    assert img01["metrics"]["f1"]["delta"] == pytest.approx(12 / 16 - 1)
    assert img01["metrics"]["fn"] == {"old": 0, "new": 4, "delta": 4}
    failed = {(v["subject"], v["metric"]) for v in table["verdicts"] if v["outcome"] == "fail"}
    assert failed == {("pooled", "recall"), ("pooled", "f1"), ("image mean", "f1"),
                      ("img01.tif", "f1"), ("img03.tif", "f1")}  # fmt: skip


def test_good_model_against_weak_baseline_passes_as_an_improvement(
    pytester, two_models, thresholds_file
):
    good, weak = two_models
    limits = thresholds_file(REGRESSION_LIMITS)
    baseline = pytester.path / "weak.json"
    run_qc(pytester, weak.predictions, good, f"--baseline={baseline}", "--update-baseline",
           limits=limits)  # fmt: skip
    result = run_qc(pytester, good.predictions, good, f"--baseline={baseline}", limits=limits)
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(
        ["compared 4 QC images with file *weak.json: improved",
         "IMPROVED pooled: f1 improved by 0.08108 (0.9189 → 1)",
         "per image, f1: 2 improved, 2 no change, 0 worse"]
    )  # fmt: skip
    assert summary_json(pytester)["regression"]["change"] == "improved"


@pytest.mark.parametrize(
    ("dropped", "passes", "message"),
    [
        # only img01 drops: replicates without it show no drop, so the CI includes 0
        ((0, 4, 0, 0), True, "pooled: f1 dropped by * but not significantly (95% CI of the drop [0, *] includes 0); passes because regression.require_significant is true"),
        # every image drops: every replicate drops, the CI excludes 0
        ((2, 2, 2, 2), False, "pooled: f1 dropped by 0.1111 (1 → 0.8889), more than max_drop 0.02, and significantly (95% CI of the drop [0.1111, 0.1111] excludes 0) (thresholds.yaml regression.aggregate.f1.max_drop)"),
    ],
    ids=["noise", "significant"],
)  # fmt: skip
def test_require_significant(pytester, make_qc, thresholds_file, dropped, passes, message):
    good = make_qc(4, root=pytester.path / "good")
    worse = make_qc(4, dropped=dropped, root=pytester.path / "worse")
    limits = thresholds_file(
        "regression:\n  require_significant: true\n  aggregate: {f1: {max_drop: 0.02}}\n"
    )
    baseline = pytester.path / "baseline.json"
    run_qc(pytester, good.predictions, good, f"--baseline={baseline}", "--update-baseline",
           limits=limits)  # fmt: skip
    result = run_qc(pytester, worse.predictions, good, f"--baseline={baseline}", limits=limits)
    assert (result.ret == pytest.ExitCode.OK) is passes
    result.stdout.fnmatch_lines([f"*{literal(message)}*"])


def test_different_qc_data_is_a_usage_error_unless_allowed(pytester, make_qc, thresholds_file):
    good = make_qc(4, root=pytester.path / "good")
    limits = thresholds_file(REGRESSION_LIMITS)
    baseline = pytester.path / "baseline.json"
    run_qc(pytester, good.predictions, good, f"--baseline={baseline}", "--update-baseline",
           limits=limits)  # fmt: skip
    for folder in (good.source, good.target, good.predictions):
        (folder / "img03.tif").rename(folder / "img09.tif")
    tifffile.imwrite(good.target / "img00.tif", np.zeros((64, 128), np.uint16))
    result = run_qc(pytester, good.predictions, good, f"--baseline={baseline}", limits=limits)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            f"ERROR: segqc: {baseline}: the baseline was made on different QC images:",
            "  - only in the baseline: img03.tif",
            "  - not in the baseline: img09.tif",
            "  - content changed since the baseline: img00.tif",
            "  compare the common images only with --baseline-allow-different-data*",
        ]
    )
    assert_no_traceback(result)

    result = run_qc(pytester, good.predictions, good, f"--baseline={baseline}",
                    "--baseline-allow-different-data", limits=limits)  # fmt: skip
    result.stdout.fnmatch_lines(
        ["compared 2 QC images with file *: no change",
         "WARN not compared (only in the baseline): img03.tif",
         "WARN not compared (not in the baseline): img09.tif",
         "WARN not compared (content changed since the baseline): img00.tif"]
    )  # fmt: skip
    table = summary_json(pytester)["regression"]
    assert table["compared_images"] == ["img01.tif", "img02.tif"]


@pytest.mark.parametrize(
    ("setup", "args", "message"),
    [
        ("hello, not json", ["--update-baseline"], "*baseline.json:1:1: not a segqc baseline (invalid JSON: *) — refusing to overwrite it with --update-baseline; delete it or choose another --baseline path"),
        ('{"schema": "other"}', ["--update-baseline"], '*not a segqc baseline (no "schema": "segqc-baseline")*refusing to overwrite*'),
        ('{"schema": "segqc-baseline", "schema_version": 1}', [], "*baseline.json: invalid segqc baseline: segqc_version: Field required (and * more problems); write a new one with --update-baseline"),
        (None, [], "*baseline.json: baseline file not found; write one with --update-baseline"),
    ],
    ids=["overwrite-garbage", "overwrite-foreign", "invalid", "missing"],
)  # fmt: skip
def test_bad_baseline_files_are_usage_errors(pytester, make_qc, setup, args, message):
    good = make_qc(2, root=pytester.path / "good")
    baseline = pytester.path / "baseline.json"
    if setup is not None:
        baseline.write_text(setup)
    result = run_qc(pytester, good.predictions, good, f"--baseline={baseline}", *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: segqc: {message}"])
    assert_no_traceback(result)
    if setup is not None:
        assert baseline.read_text() == setup


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--update-baseline"], "--update-baseline needs --baseline PATH: the file to write"),
        (["--baseline", "b.json", "--baseline-model", "old"], "give --baseline FILE or --baseline-model DIR, not both*"),
    ],
    ids=["update-without-path", "both"],
)  # fmt: skip
def test_inconsistent_options_are_usage_errors(pytester, make_qc, args, message):
    good = make_qc(1, root=pytester.path / "good")
    result = run_qc(pytester, good.predictions, good, *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: segqc: {message}"])


def test_baseline_not_written_when_an_image_fails(pytester, make_qc):
    good = make_qc(3, root=pytester.path / "good")
    tifffile.imwrite(good.predictions / "img01.tif", np.zeros((8, 8), np.uint16))
    baseline = pytester.path / "baseline.json"
    result = run_qc(pytester, good.predictions, good, f"--baseline={baseline}",
                    "--update-baseline")  # fmt: skip
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    # in the segqc section, with the session's other problems, and only there
    result.stdout.fnmatch_lines(
        [
            "*= segqc =*",
            "ERROR baseline not written: 1 QC images could not be evaluated (img01.tif)*",
        ]
    )
    assert sum(line.startswith("ERROR baseline not written") for line in result.outlines) == 1
    assert not baseline.exists()


def test_statistical_gates_name_the_limit_and_the_worst_images(pytester, make_qc, thresholds_file):
    qc = make_qc(4, dropped=(0, 10, 0, 0), root=pytester.path / "qc")
    limits = thresholds_file(
        "aggregate:\n  f1: {min: 0.8, min_ci_low: 0.99}\n"
        "statistics:\n  bootstrap: {n: 500, confidence: 0.9, seed: 3}\n"
        "  worst_images: {fraction: 0.25, f1: {min: 0.5}, recall: {min: 0.0}}\n"
    )
    result = run_qc(pytester, qc.predictions, qc, limits=limits)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            "*_ test_aggregate_confidence _*",
            literal(
                "pooled: f1 CI low = * < min_ci_low 0.99 (off by *; pooled 0.8571, 90% CI [*, *] "
                "over 4 images, 500 resamples, seed 3; thresholds.yaml aggregate.f1.min_ci_low)"
            ),
            "*_ test_worst_images _*",
            "worst 25% of images: f1 mean = 0 < min 0.5 (off by 0.5; 1 of 4: img01.tif; "
            "thresholds.yaml statistics.worst_images.f1.min)",
        ]
    )
    statistics = summary_json(pytester)["statistics"]
    f1 = statistics["aggregate"]["f1"]
    # pooled f1 = 60 / 70; a replicate without img01 has f1 = 1, so the interval reaches 1
    assert f1["value"] == pytest.approx(60 / 70)
    assert f1["ci_low"] < 60 / 70 < f1["ci_high"] == 1.0
    assert statistics["bootstrap"]["n"] == 500
    gates = {(g["key"], g["outcome"]) for g in statistics["gates"]}
    assert gates == {("aggregate.f1.min_ci_low", "fail"),
                     ("statistics.worst_images.f1.min", "fail"),
                     ("statistics.worst_images.recall.min", "pass")}  # fmt: skip

    run_qc(pytester, qc.predictions, qc, limits=limits)
    assert summary_json(pytester)["statistics"] == statistics  # seeded: identical run to run


def test_baseline_model_runs_in_the_same_session(pytester, make_qc, tiny_model_dir):
    """An untrained model as the released one: the perfect predictions improve on it."""
    good = make_qc(2, root=pytester.path / "good")
    result = run_qc(pytester, good.predictions, good, f"--baseline-model={tiny_model_dir}",
                    "-p", "no:randomly")  # fmt: skip
    result.stdout.fnmatch_lines(
        [f"compared 2 QC images with model {tiny_model_dir} (run in this session): *"]
    )
    assert result.ret == pytest.ExitCode.OK
    predicted = pytester.path / "qc-output" / "baseline-model" / "predictions"
    assert sorted(p.name for p in predicted.iterdir()) == ["img00.tif", "img01.tif"]
    table = summary_json(pytester)["regression"]
    assert table["aggregate"]["tp"]["new"] == 20
    assert table["aggregate"]["f1"]["delta"] >= 0


TEST_DOUBLE_CONFTEST = """
from pathlib import Path

import tifffile

from segqc.predict import PredictionResult

# Which folder each role's test double reads its labels from, and the model folder it
# stands in for: any other (role, folder) is left to segqc, which refuses these empty
# folders as StarDist models.
DOUBLES = {{
    "model": ("candidate", Path(r"{model}")),
    "baseline": ("released", Path(r"{baseline}")),
}}


class FolderDouble:
    needs_source_image = True

    def __init__(self, role, labels):
        self.role, self.labels = role, labels

    def predict(self, pair, image):
        assert image is not None  # it gets the source image, like a model
        return PredictionResult(labels=tifffile.imread(self.labels / pair.name))

    def describe(self):
        return {{"kind": f"test double ({{self.role}})", "labels": str(self.labels)}}


def pytest_segqc_make_predictor(config, model_dir, role):
    name, labels = DOUBLES[role]
    return FolderDouble(role, labels) if model_dir.name == name else None
"""


def test_baseline_model_goes_through_the_make_predictor_hook(pytester, two_models):
    """A plugin's predictor stands in for --baseline-model (role="baseline") as for --model
    (role="model"): the good model's labels under test, the weak one's as the baseline."""
    good, weak = two_models
    pytester.makeconftest(
        TEST_DOUBLE_CONFTEST.format(model=good.predictions, baseline=weak.predictions)
    )
    candidate, released = pytester.mkdir("candidate"), pytester.mkdir("released")
    result = pytester.runpytest(
        *QC, f"--model={candidate}", f"--baseline-model={released}",
        f"--qc-source={good.source}", f"--qc-target={good.target}", "-v",
    )  # fmt: skip
    assert_no_traceback(result)
    assert result.ret == pytest.ExitCode.OK
    # the statistical gates skip: no limits for them here
    result.assert_outcomes(passed=9, skipped=2 + LOSS_CURVE_TESTS)
    result.stdout.fnmatch_lines(
        ["*::test_regression_aggregate PASSED*", "*::test_regression_per_image PASSED*"]
    )
    result.stdout.fnmatch_lines(
        [f"compared 4 QC images with model {released} (run in this session): improved"]
    )
    document = summary_json(pytester)
    assert document["predictor"]["kind"] == "test double (model)"
    # the weak labels: 4 of img01's 10 disks and 2 of img03's are missing
    table = document["regression"]
    assert (table["aggregate"]["tp"]["old"], table["aggregate"]["tp"]["new"]) == (34, 40)
    assert table["aggregate"]["recall"]["old"] == pytest.approx(34 / 40)
    img01 = next(row for row in table["per_image"] if row["name"] == "img01.tif")
    assert img01["metrics"]["fn"] == {"old": 4, "new": 0, "delta": -4}
    predicted = pytester.path / "qc-output" / "baseline-model" / "predictions"
    assert sorted(p.name for p in predicted.iterdir()) == [f"img{i:02d}.tif" for i in range(4)]
    assert tifffile.imread(predicted / "img01.tif").max() == 6
