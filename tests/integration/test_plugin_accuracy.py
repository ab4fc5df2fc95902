"""Accuracy vs IoU threshold as a user runs it: summary.json's curve and aggregate_at.

Hand-made QC data: ground truth has two 10x10 squares; the prediction has square A
shifted by 2 columns (IoU 2/3) and square B exact (IoU 1), in both a.tif and b.tif. So
pooled over the two images, at IoU <= 0.6 all 4 objects match (tp 4, fp 0, fn 0, f1 1)
and at IoU >= 0.7 only the two B squares do (tp 2, fp 2, fn 2, precision = recall = f1 =
1/2, accuracy 1/3, panoptic quality 1/2).
"""

import json

import pytest
import tifffile

from tests.helpers import OPTIONAL_SKIPPED, two_squares

QC = ("--pyargs", "segqc.qc_tests")


@pytest.fixture
def squares_qc(pytester):
    target_dir, predictions_dir = pytester.path / "target", pytester.path / "predictions"
    target_dir.mkdir()
    predictions_dir.mkdir()
    target, predicted = two_squares()
    for name in ("a.tif", "b.tif"):
        tifffile.imwrite(target_dir / name, target)
        tifffile.imwrite(predictions_dir / name, predicted)
    return (f"--predictions={predictions_dir}", f"--qc-target={target_dir}")


def test_curve_in_summary_and_aggregate_at_gate(pytester, squares_qc, thresholds_file):
    limits = thresholds_file("aggregate_at:\n  0.6: {f1: {min: 0.9}}\n  0.7: {f1: {min: 0.6}}\n")
    result = pytester.runpytest(*QC, *squares_qc, f"--thresholds={limits}", "-p", "no:html")
    result.assert_outcomes(passed=2, failed=1, skipped=2 + OPTIONAL_SKIPPED)
    result.stdout.fnmatch_lines(
        [
            "*pooled at IoU 0.7: f1 = 0.5 < min 0.6 "
            "(off by 0.1; thresholds.yaml aggregate_at.0.7.f1.min)*"
        ]
    )
    summary = json.loads((pytester.path / "qc-output" / "summary.json").read_text())
    curve = summary["accuracy_vs_iou"]
    assert curve["thresholds"] == [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
    by_threshold = {row["iou_threshold"]: row for row in curve["pooled"]}
    for low in (0.1, 0.6):
        assert (by_threshold[low]["tp"], by_threshold[low]["fp"], by_threshold[low]["fn"]) == (
            4,
            0,
            0,
        )
        assert by_threshold[low]["f1"] == 1.0
    for high in (0.7, 0.9):
        row = by_threshold[high]
        assert (row["tp"], row["fp"], row["fn"]) == (2, 2, 2)
        assert row["precision"] == row["recall"] == row["f1"] == pytest.approx(0.5)
        assert row["accuracy"] == pytest.approx(1 / 3)
        assert row["panoptic_quality"] == pytest.approx(0.5)
    outcomes = {v["key"]: v["outcome"] for v in summary["limits"]}
    assert outcomes["aggregate_at.0.6.f1"] == "pass"
    assert outcomes["aggregate_at.0.7.f1.min"] == "fail"
    assert summary["status"] == "failed"


def test_aggregate_at_test_is_deselected_without_limits(pytester, squares_qc, thresholds_file):
    limits = thresholds_file("per_image:\n  f1: {min: 0.5}\n")
    result = pytester.runpytest(*QC, *squares_qc, f"--thresholds={limits}", "-p", "no:html")
    # 1 aggregate_at test + the robustness, leakage, size-bin, image-group and
    # device-agreement tests
    result.assert_outcomes(passed=2, skipped=2 + OPTIONAL_SKIPPED, deselected=1 + 5)
    summary = json.loads((pytester.path / "qc-output" / "summary.json").read_text())
    assert summary["accuracy_vs_iou"]["limits"] == []
    assert len(summary["accuracy_vs_iou"]["pooled"]) == 9
