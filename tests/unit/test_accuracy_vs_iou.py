"""Accuracy vs IoU threshold: matched pairs, the pooled curve, aggregate_at limits.

Hand-made QC data (``two_squares``): ground truth has two 10x10 squares; the prediction
has square A shifted by 2 columns (intersection 10x8 = 80, union 120, IoU = 2/3) and
square B exact (IoU = 1). So at IoU <= 0.6 both match (tp 2, fp 0, fn 0, f1 1) and at
IoU >= 0.7 only B does (tp 1, fp 1, fn 1, precision = recall = f1 = 1/2, accuracy 1/3,
panoptic quality = 1 / (1 + 1/2 + 1/2) = 1/2).
"""

import json

import numpy as np
import pytest
import tifffile
from hypothesis import given, settings
from hypothesis import strategies as st

from segqc.metrics.matching import match_labels, matched_pairs
from segqc.thresholds import ThresholdsError, load_thresholds

from tests.helpers import OPTIONAL_SKIPPED

QC = ("--pyargs", "segqc.qc_tests")


def two_squares():
    target = np.zeros((40, 40), np.uint16)
    target[5:15, 5:15] = 3  # A
    target[25:35, 20:30] = 8  # B
    predicted = np.zeros_like(target)
    predicted[5:15, 7:17] = 5  # A shifted: IoU 80 / 120
    predicted[25:35, 20:30] = 2  # B exact
    return target, predicted


def test_matched_pairs_by_hand():
    target, predicted = two_squares()
    pairs = matched_pairs(target, predicted, iou_threshold=0.5)
    assert list(pairs.true_labels) == [3, 8]
    assert list(pairs.pred_labels) == [5, 2]
    assert pairs.ious == pytest.approx([2 / 3, 1.0])
    tight = matched_pairs(target, predicted, iou_threshold=0.7)
    assert list(tight.true_labels) == [8] and list(tight.pred_labels) == [2]
    empty = matched_pairs(target, np.zeros_like(target))
    assert empty.true_labels.size == 0 and empty.ious.size == 0


def test_matched_pairs_rejects_bad_threshold():
    target, predicted = two_squares()
    with pytest.raises(ValueError, match=r"got 1\.5"):
        matched_pairs(target, predicted, iou_threshold=1.5)


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**16),
    threshold=st.sampled_from([0.1, 0.3, 0.5, 0.7]),
)
def test_matched_pairs_agree_with_match_labels(seed, threshold):
    rng = np.random.default_rng(seed)
    # Random blocky labels so objects overlap in many ways, including conflicts.
    target = np.kron(rng.integers(0, 6, (6, 6)), np.ones((3, 3), int)).astype(np.uint16)
    predicted = np.kron(rng.integers(0, 6, (6, 6)), np.ones((3, 3), int)).astype(np.uint16)
    predicted = np.roll(predicted, rng.integers(0, 3), axis=1)
    stats = match_labels(target, predicted, iou_threshold=threshold)
    pairs = matched_pairs(target, predicted, iou_threshold=threshold)
    assert len(pairs.ious) == stats.tp
    assert float(np.sum(pairs.ious, dtype=np.float32)) == pytest.approx(stats.sum_matched_score)
    assert len(set(pairs.true_labels)) == stats.tp == len(set(pairs.pred_labels))
    # Each pair's IoU, recomputed here from the masks, is the reported one.
    for t, p, iou in zip(pairs.true_labels, pairs.pred_labels, pairs.ious, strict=True):
        a, b = target == t, predicted == p
        assert iou == pytest.approx((a & b).sum() / (a | b).sum(), rel=1e-6)
        assert iou >= threshold


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("aggregate_at: {1.5: {f1: {min: 0.6}}}", "aggregate_at.1.5"),
        ("aggregate_at: {0.7: {f1_score: {min: 0.6}}}", "unknown metric; did you mean 'f1'"),
        ("aggregate_at: {0.7: {pixel_iou: {min: 0.6}}}", "does not depend on the IoU threshold"),
        ("aggregate_at: {0.7: {f1: {min: 1.5}}}", "aggregate_at.0.7.f1.min"),
        ("aggregate_at: [0.7]", "aggregate_at: Input should be a valid dictionary"),
    ],
)
def test_aggregate_at_schema_errors(thresholds_file, text, message):
    with pytest.raises(ThresholdsError, match=message.replace(".", r"\.")):
        load_thresholds(thresholds_file(text))


def test_aggregate_at_schema_accepts_any_threshold(thresholds_file):
    loaded = load_thresholds(
        thresholds_file("aggregate_at:\n  0.75: {f1: {min: 0.6}}\n  1: {tp: {min: 1}}\n")
    )
    assert set(loaded.thresholds.aggregate_at) == {0.75, 1.0}


@pytest.fixture
def squares_qc(pytester):
    target_dir, predictions_dir = pytester.path / "target", pytester.path / "predictions"
    target_dir.mkdir()
    predictions_dir.mkdir()
    target, predicted = two_squares()
    for name in ("a.tif", "b.tif"):
        tifffile.imwrite(target_dir / name, target)
        tifffile.imwrite(predictions_dir / name, predicted)
    return ("--predictions", str(predictions_dir), "--qc-target", str(target_dir))


def test_curve_in_summary_and_aggregate_at_gate(pytester, squares_qc, thresholds_file):
    limits = thresholds_file("aggregate_at:\n  0.6: {f1: {min: 0.9}}\n  0.7: {f1: {min: 0.6}}\n")
    result = pytester.runpytest(*QC, *squares_qc, "--thresholds", str(limits), "-p", "no:html")
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
    result = pytester.runpytest(*QC, *squares_qc, "--thresholds", str(limits), "-p", "no:html")
    # 1 aggregate_at test + the robustness, leakage, size-bin and image-group tests
    result.assert_outcomes(passed=2, skipped=2 + OPTIONAL_SKIPPED, deselected=1 + 4)
    summary = json.loads((pytester.path / "qc-output" / "summary.json").read_text())
    assert summary["accuracy_vs_iou"]["limits"] == []
    assert len(summary["accuracy_vs_iou"]["pooled"]) == 9


def _squares_run(tmp_path, *, visuals: bool = False):
    from segqc.data.pairing import QcPair
    from segqc.predict.stardist import PredictionsFolder
    from segqc.pipeline.evaluate import QcRun
    from segqc.thresholds import bundled_thresholds_path

    (tmp_path / "target").mkdir()
    (tmp_path / "predictions").mkdir()
    target, predicted = two_squares()
    pairs, files = [], {}
    for name, shift in (("a.tif", 0), ("b.tif", 3)):
        tifffile.imwrite(tmp_path / "target" / name, target)
        tifffile.imwrite(tmp_path / "predictions" / name, np.roll(predicted, shift, axis=0))
        pairs.append(QcPair(name, None, tmp_path / "target" / name))
        files[name] = tmp_path / "predictions" / name
    run = QcRun(
        pairs=tuple(pairs),
        thresholds=load_thresholds(bundled_thresholds_path(), is_bundled_default=True),
        predictor=PredictionsFolder(tmp_path / "predictions", files),
        output_dir=tmp_path / "out",
    )
    if visuals:
        run.visuals_dir = tmp_path / "visuals"
        run.visuals_dir.mkdir()
    return run


def test_curve_at_evaluation_equals_the_curve_read_back_from_disk(tmp_path):
    from segqc.checks.accuracy import IOU_GRID, _compute, accuracy_vs_iou
    from segqc.metrics.matching import match_labels_at

    run = _squares_run(tmp_path)
    outcomes = run.evaluate_all()
    target, predicted = two_squares()
    # by hand: A (IoU 2/3) matches up to 0.6, B (IoU 1) everywhere
    a = outcomes[0].curve
    assert a is not None and [s.iou_threshold for s in a] == list(IOU_GRID)
    assert [s.tp for s in a] == [2, 2, 2, 2, 2, 2, 1, 1, 1]
    assert a == match_labels_at(target, predicted, iou_thresholds=IOU_GRID)
    curve = accuracy_vs_iou(run)
    # the old way: every image re-read from disk and matched at the end
    for outcome in outcomes:
        outcome.curve = None
    read_back = _compute(run, outcomes)
    assert curve == read_back
    assert curve is not None and curve.images == ("a.tif", "b.tif") and not curve.unreadable


def test_visual_drawn_at_evaluation_equals_the_one_drawn_from_files(tmp_path):
    from segqc.report.panels import load_visual, render_visual

    run = _squares_run(tmp_path, visuals=True)
    for outcome in run.evaluate_all():
        assert outcome.visual_file is not None and outcome.visual_file.parent == run.visuals_dir
        assert load_visual(outcome.visual_file) == render_visual(run, outcome)
