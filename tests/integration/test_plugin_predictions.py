"""The plugin as a user runs it, in ``--predictions`` mode (no TensorFlow needed).

QC data: each image has 10 equal disks; a prediction that drops ``d`` of them has, by
hand: tp = 10 - d, fn = d, fp = 0, precision = 1, recall = accuracy = (10 - d)/10,
f1 = 2 tp / (2 tp + fn), pixel IoU = (10 - d)/10 (equal areas), mean_true_score = recall,
mean_matched_score = 1, panoptic quality = tp / (tp + fn/2) = f1.
"""

import csv
import json
import os
import xml.etree.ElementTree as ET

import numpy as np
import pytest
import tifffile

from tests.helpers import OPTIONAL_SKIPPED, assert_no_traceback, checkout_pythonpath

QC = ("--pyargs", "segqc.qc_tests")
# the loss-curve tests skip in --predictions mode without --training-log


def run_qc(pytester, qc, *args, thresholds=None):
    options = [*QC, f"--predictions={qc.predictions}", f"--qc-target={qc.target}"]
    if thresholds is not None:
        options += [f"--thresholds={thresholds}"]
    return pytester.runpytest(*options, *args)


def test_passing_run_writes_zerocost_csv_and_summary(pytester, make_qc, thresholds_file):
    qc = make_qc(3, dropped=(0, 4, 0), root=pytester.path / "qc")
    limits = thresholds_file("per_image:\n  f1: {min: 0.7}\naggregate:\n  f1: {min: 0.8}\n")
    result = run_qc(pytester, qc, "-v", thresholds=limits)
    result.assert_outcomes(passed=4, skipped=1 + OPTIONAL_SKIPPED)
    result.stdout.fnmatch_lines(
        [
            "*test_image?img00.tif? PASSED*",
            "*test_image?img01.tif? PASSED*",
            "*test_aggregate PASSED*",
        ]
    )
    with open(pytester.path / "qc-output" / "metrics.csv", newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0][:14] == [
        "image", "Prediction v. GT Intersection over Union", "false positive", "true positive",
        "false negative", "precision", "recall", "accuracy", "f1 score", "n_true", "n_pred",
        "mean_true_score", "mean_matched_score", "panoptic_quality",
    ]  # fmt: skip
    assert rows[0][14:] == ["seg", "aji", "dsb_score", "sq", "rq"]  # extras come after
    assert [row[0] for row in rows[1:]] == ["img00.tif", "img01.tif", "img02.tif"]
    img01 = dict(zip(rows[0], rows[2], strict=True))
    assert (img01["true positive"], img01["false negative"], img01["false positive"]) == (
        "6",
        "4",
        "0",
    )
    assert float(img01["Prediction v. GT Intersection over Union"]) == pytest.approx(0.6)
    assert float(img01["f1 score"]) == pytest.approx(12 / 16)
    assert float(img01["panoptic_quality"]) == pytest.approx(6 / 8)
    assert float(img01["mean_true_score"]) == pytest.approx(0.6)

    summary = json.loads((pytester.path / "qc-output" / "summary.json").read_text())
    assert summary["status"] == "passed" and summary["complete"] is True
    pooled = summary["aggregate"]["pooled"]
    assert (pooled["tp"], pooled["fn"], pooled["fp"]) == (26, 4, 0)
    assert pooled["f1"] == pytest.approx(52 / 56)
    assert summary["aggregate"]["image_mean"]["f1"] == pytest.approx((1 + 0.75 + 1) / 3)
    assert {v["outcome"] for v in summary["limits"]} == {"pass"}
    assert len(summary["limits"]) == 3 + 1


def test_failing_image_is_named_with_metric_value_and_limit(pytester, make_qc, thresholds_file):
    qc = make_qc(3, dropped=(0, 4, 0), root=pytester.path / "qc")
    limits = thresholds_file("per_image:\n  f1: {min: 0.8}\n")
    result = run_qc(pytester, qc, thresholds=limits)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(passed=2, failed=1, skipped=2 + OPTIONAL_SKIPPED)
    result.stdout.fnmatch_lines(
        [
            "*_ test_image?img01.tif? _*",
            "img01.tif: f1 = 0.75 < min 0.8 (off by 0.05; thresholds.yaml per_image.f1.min)",
            "*segqc*",
            "*FAIL img01.tif: f1 = 0.75 < min 0.8 (off by 0.05; thresholds.yaml per_image.f1.min)*",
        ]
    )
    assert_no_traceback(result)
    summary = json.loads((pytester.path / "qc-output" / "summary.json").read_text())
    assert summary["status"] == "failed"
    (failed,) = [v for v in summary["limits"] if v["outcome"] == "fail"]
    assert (failed["subject"], failed["metric"], failed["min"]) == ("img01.tif", "f1", 0.8)
    assert failed["value"] == pytest.approx(0.75)


def test_warn_level_warns_and_passes(pytester, make_qc, thresholds_file):
    qc = make_qc(2, dropped=(5, 0), root=pytester.path / "qc")
    limits = thresholds_file("per_image:\n  recall: {min: 0.9, level: warn}\n")
    result = run_qc(pytester, qc, thresholds=limits)
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(
        ["*warnings summary*", "*img00.tif: recall = 0.5 < min 0.9*", "*1 warning*"]
    )
    summary = json.loads((pytester.path / "qc-output" / "summary.json").read_text())
    assert summary["status"] == "passed"
    assert [v["outcome"] for v in summary["limits"]] == ["warn", "pass"]


def test_metrics_go_into_junit_xml(pytester, make_qc, thresholds_file):
    qc = make_qc(2, dropped=(0, 2), root=pytester.path / "qc")
    limits = thresholds_file("per_image:\n  f1: {min: 0.5}\n")
    result = run_qc(pytester, qc, f"--junitxml={pytester.path / 'junit.xml'}", thresholds=limits)
    assert "record_property is incompatible" not in result.stdout.str()
    root = ET.parse(pytester.path / "junit.xml").getroot()
    case = next(c for c in root.iter("testcase") if c.get("name") == "test_image[img01.tif]")
    properties = {p.get("name"): p.get("value") for p in case.iter("property")}
    assert properties["tp"] == "8" and properties["fn"] == "2"
    assert float(properties["f1"]) == pytest.approx(16 / 18)


def test_bad_pairing_is_one_usage_error_listing_every_name(pytester, make_qc):
    qc = make_qc(3, root=pytester.path / "qc")
    (qc.target / "img01.tif").unlink()
    (qc.predictions / "img01.tif").rename(qc.predictions / "stray.tif")
    tifffile.imwrite(qc.target / "orphan.tif", np.zeros((4, 4), np.uint8))
    result = pytester.runpytest(
        *QC, f"--predictions={qc.predictions}", f"--qc-target={qc.target}",
        f"--qc-source={qc.source}",
    )  # fmt: skip
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "ERROR: segqc: cannot pair the QC images:",
            "*no ground truth in * for: img01.tif*",
            "*no source image in * for: orphan.tif*",
        ]
    )
    assert_no_traceback(result)


def test_missing_folder_is_a_usage_error(pytester, make_qc):
    qc = make_qc(1, root=pytester.path / "qc")
    result = pytester.runpytest(
        *QC, f"--predictions={qc.predictions}", f"--qc-target={pytester.path / 'nope'}"
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*target folder */nope does not exist*"])


def test_invalid_thresholds_is_a_usage_error(pytester, make_qc, thresholds_file):
    qc = make_qc(1, root=pytester.path / "qc")
    limits = thresholds_file("per_image:\n  f1_score: {min: 0.7}\n")
    result = run_qc(pytester, qc, thresholds=limits)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*limits.yaml: per_image.f1_score: unknown metric; did you mean 'f1'?"]
    )
    assert_no_traceback(result)


def test_shape_mismatch_fails_only_that_image(pytester, make_qc):
    qc = make_qc(3, root=pytester.path / "qc")
    tifffile.imwrite(qc.predictions / "img02.tif", np.zeros((32, 32), np.uint16))
    result = run_qc(pytester, qc, "-rf")
    result.assert_outcomes(passed=4, failed=1, skipped=OPTIONAL_SKIPPED)
    result.stdout.fnmatch_lines(
        ["*img02.tif: prediction shape (32, 32) and ground truth shape (64, 128) differ*"]
    )
    assert_no_traceback(result)
    rows = (pytester.path / "qc-output" / "metrics.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == ["img00.tif", "img01.tif"]


@pytest.mark.parametrize(
    ("mask", "message"),
    [
        (np.ones((64, 128), np.float32), "float32*expected an integer label image"),
        (-np.ones((64, 128), np.int16), "negative"),
    ],
    ids=["float", "negative"],
)
def test_invalid_ground_truth_fails_that_image(pytester, make_qc, mask, message):
    qc = make_qc(2, root=pytester.path / "qc")
    tifffile.imwrite(qc.target / "img00.tif", mask)
    result = run_qc(pytester, qc, "-rf")
    result.assert_outcomes(passed=3, failed=1, skipped=OPTIONAL_SKIPPED)
    result.stdout.fnmatch_lines([f"*target/img00.tif: ground truth*{message}*"])
    assert_no_traceback(result)


def test_a_forgotten_model_is_a_usage_error_not_a_pass(pytester):
    """A CI job that runs the QC suite but forgets --model must not go green."""
    result = pytester.runpytest(*QC)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "ERROR: segqc: * QC tests collected (e.g. *) but neither --model nor --predictions "
            "was given; give --model DIR*"
        ]
    )
    assert_no_traceback(result)
    assert not (pytester.path / "qc-output").exists()


def test_a_checkout_whose_testpaths_is_the_qc_suite_refuses_to_run_without_model(pytester):
    pytester.makepyfile(test_qc="def test_image(qc_image):\n    pass\n")
    pytester.makeini("[pytest]\ntestpaths = test_qc.py\n")
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*neither --model nor --predictions was given*"])


def test_projects_that_do_not_use_segqc_are_unaffected(pytester):
    pytester.makepyfile(test_plain="def test_one():\n    assert 1 + 1 == 2\n")
    result = pytester.runpytest()
    result.assert_outcomes(passed=1)
    assert not (pytester.path / "qc-output").exists()


def test_options_can_be_set_in_the_ini_file(pytester, make_qc):
    make_qc(2, root=pytester.path / "qc")
    pytester.makeini(
        "[pytest]\nqc_predictions = qc/predictions\nqc_target = qc/target\nqc_output = out\n"
    )
    result = pytester.runpytest(*QC)
    result.assert_outcomes(passed=4, skipped=OPTIONAL_SKIPPED)
    assert (pytester.path / "out" / "metrics.csv").is_file()


def test_model_and_predictions_together_is_a_usage_error(pytester, make_qc):
    qc = make_qc(1, root=pytester.path / "qc")
    result = pytester.runpytest(
        *QC, f"--model={qc.root}", f"--predictions={qc.predictions}",
        f"--qc-target={qc.target}",
    )  # fmt: skip
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*either --model or --predictions, not both*"])


def test_help_lists_the_segqc_options(pytester):
    result = pytester.runpytest("--help")
    result.stdout.fnmatch_lines(
        ["segqc: quality control of segmentation models:", "*--model=PATH*", "*--predictions=PATH*",
         "*--device=*", "*qc_source*"]
    )  # fmt: skip


def test_predictions_mode_works_where_tensorflow_cannot_be_imported(pytester, make_qc, monkeypatch):
    """--predictions needs no TensorFlow: a shadow package that refuses to be imported
    (as on a machine without it) does not disturb the run."""
    blocker = pytester.mkdir("no_tensorflow")
    for name in ("tensorflow", "keras"):
        (blocker / name).mkdir()
        (blocker / name / "__init__.py").write_text(
            f"raise ImportError('{name} must not be imported in --predictions mode')\n"
        )
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(blocker), checkout_pythonpath()]))
    qc = make_qc(2, root=pytester.path / "qc")
    result = pytester.runpytest_subprocess(
        *QC, f"--predictions={qc.predictions}", f"--qc-target={qc.target}"
    )
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    result.assert_outcomes(passed=4, skipped=OPTIONAL_SKIPPED)
    assert "must not be imported" not in result.stdout.str() + result.stderr.str()


def test_a_qc_run_prints_no_assertion_rewrite_warning(pytester, make_qc, worker_path):
    """pytest rewrites the assertions of an entry-point plugin's package; a module of
    segqc imported before pytest registers the plugin would make every run warn."""
    qc = make_qc(1, root=pytester.path / "qc")
    result = pytester.runpytest_subprocess(
        *QC, f"--predictions={qc.predictions}", f"--qc-target={qc.target}"
    )
    assert result.ret == pytest.ExitCode.OK
    assert "PytestAssertRewriteWarning" not in result.stdout.str() + result.stderr.str()
