"""The plugin with a real model: the bundled demo StarDist2D and its under-trained twin.

``stardist.matching`` is the reference for every number segqc writes: the tests recompute
the metrics from the predictions segqc saved, independently of segqc's metric engine.
"""

import csv
import json

import numpy as np
import pytest
import tifffile
from stardist.matching import matching

from tests.helpers import DEMO2D, DEMO2D_WEAK, QC2D

QC = ("--pyargs", "segqc.qc_tests")
DEMO_ARGS = (f"--qc-source={QC2D / 'source'}", f"--qc-target={QC2D / 'target'}")
CSV_TO_STARDIST = {
    "false positive": "fp", "true positive": "tp", "false negative": "fn",
    "precision": "precision", "recall": "recall", "accuracy": "accuracy", "f1 score": "f1",
    "n_true": "n_true", "n_pred": "n_pred", "mean_true_score": "mean_true_score",
    "mean_matched_score": "mean_matched_score", "panoptic_quality": "panoptic_quality",
}  # fmt: skip


def reference_metrics(prediction_file, target_file):
    truth = tifffile.imread(target_file)
    predicted = tifffile.imread(prediction_file)
    stats = matching(truth, predicted, thresh=0.5)
    union = np.count_nonzero((truth > 0) | (predicted > 0))
    pixel_iou = np.count_nonzero((truth > 0) & (predicted > 0)) / union
    return stats, pixel_iou


@pytest.fixture
def demo_run(tensorflow_ready, pytester):
    """Run the QC suite on the demo model once; return the pytester result."""
    return pytester.runpytest(*QC, f"--model={DEMO2D}", *DEMO_ARGS, "--device", "cpu")


def test_demo_model_passes_and_metrics_csv_equals_stardist_matching(demo_run, pytester):
    assert demo_run.ret == pytest.ExitCode.OK
    out = pytester.path / "qc-output"
    with open(out / "metrics.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    sources = sorted(p.name for p in (QC2D / "source").iterdir())
    assert [row["image"] for row in rows] == sources
    for row in rows:
        stem = row["image"].rsplit(".", 1)[0]
        stats, pixel_iou = reference_metrics(
            out / "predictions" / f"{stem}.tif", QC2D / "target" / row["image"]
        )
        assert float(row["Prediction v. GT Intersection over Union"]) == pytest.approx(
            pixel_iou, abs=1e-12
        )
        for column, field in CSV_TO_STARDIST.items():
            assert float(row[column]) == pytest.approx(getattr(stats, field), abs=1e-6), column

    summary = json.loads((out / "summary.json").read_text())
    predictor = summary["predictor"]
    model_thresholds = json.loads((DEMO2D / "thresholds.json").read_text())
    assert predictor["prob_thresh"] == model_thresholds["prob"]
    assert predictor["nms_thresh"] == model_thresholds["nms"]
    assert predictor["thresholds_source"] == "model thresholds.json"
    assert predictor["device"] == "CPU"
    assert predictor["weights"].endswith("weights_best.h5")
    assert len(predictor["weights_sha256"]) == 64
    assert summary["status"] == "passed"


def test_weak_model_fails_naming_each_failing_image_metric_value_and_limit(
    tensorflow_ready, pytester, thresholds_file
):
    limits = thresholds_file("per_image:\n  f1: {min: 0.7}\n")
    result = pytester.runpytest(*QC, f"--model={DEMO2D_WEAK}", *DEMO_ARGS, f"--thresholds={limits}")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    out = pytester.path / "qc-output"
    # Which images fail is decided here from the saved predictions with stardist alone.
    expected = {}
    for target in sorted((QC2D / "target").iterdir()):
        stats, _ = reference_metrics(out / "predictions" / target.name, target)
        if stats.f1 < 0.7:
            expected[target.name] = stats.f1
    assert expected, "the weak model should fail at least one image"
    summary = json.loads((out / "summary.json").read_text())
    failed = {v["subject"]: v for v in summary["limits"] if v["outcome"] == "fail"}
    assert set(failed) == set(expected)
    output = result.stdout.str()
    for name, f1 in expected.items():
        assert failed[name]["value"] == pytest.approx(f1, abs=1e-6)
        assert f"FAIL {name}: f1 = {f1:.4g} < min 0.7" in output


def test_thresholds_yaml_overrides_prob_thresh_and_records_it(
    tensorflow_ready, pytester, thresholds_file
):
    limits = thresholds_file("prediction:\n  prob_thresh: 0.9\n")
    result = pytester.runpytest(*QC, f"--model={DEMO2D}", *DEMO_ARGS, f"--thresholds={limits}")
    assert result.ret == pytest.ExitCode.OK
    predictor = json.loads((pytester.path / "qc-output" / "summary.json").read_text())["predictor"]
    assert predictor["prob_thresh"] == 0.9
    assert predictor["nms_thresh"] == json.loads((DEMO2D / "thresholds.json").read_text())["nms"]
    assert predictor["thresholds_source"] == (
        "prob from thresholds.yaml, nms from model thresholds.json"
    )


def test_device_gpu_without_a_gpu_is_a_usage_error(tensorflow_ready, pytester):
    import tensorflow as tf

    if tf.config.list_physical_devices("GPU"):
        pytest.skip("a GPU is visible here")
    result = pytester.runpytest(*QC, f"--model={DEMO2D}", *DEMO_ARGS, "--device", "gpu")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--device gpu: TensorFlow sees no GPU*"])
