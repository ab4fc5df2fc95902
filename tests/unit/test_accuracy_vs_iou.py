"""Accuracy vs IoU threshold: matched pairs, the pooled curve, aggregate_at limits.

Hand-made QC data (``two_squares``): ground truth has two 10x10 squares; the prediction
has square A shifted by 2 columns (intersection 10x8 = 80, union 120, IoU = 2/3) and
square B exact (IoU = 1). So at IoU <= 0.6 both match (tp 2, fp 0, fn 0, f1 1) and at
IoU >= 0.7 only B does (tp 1, fp 1, fn 1, precision = recall = f1 = 1/2, accuracy 1/3,
panoptic quality = 1 / (1 + 1/2 + 1/2) = 1/2).

``shifted`` is that prediction moved down 3 rows: A then overlaps 7 x 8 = 56 px (union
144, IoU 0.389) and B 7 x 10 = 70 px (union 130, IoU 0.538), so A matches up to IoU 0.3
and B up to 0.5.
"""

import math

import numpy as np
import pytest
import tifffile
from hypothesis import given, settings
from hypothesis import strategies as st

from segqc.checks.accuracy import IOU_GRID, accuracy_curve, curve_thresholds
from segqc.data.pairing import QcPair
from segqc.metrics.matching import match_labels, match_labels_at, matched_pairs
from segqc.pipeline.evaluate import EvaluationSettings, evaluate_image
from segqc.pipeline.outcome import ImageOutcome
from segqc.predict.folder import PredictionsFolder
from segqc.thresholds import Thresholds, ThresholdsError, load_thresholds
from tests.helpers import two_squares


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


def test_curve_thresholds_add_the_aggregate_at_ones_to_the_grid():
    assert curve_thresholds({}) == IOU_GRID
    assert curve_thresholds({0.75: None, 0.5: None, 1: None}) == (
        0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.75, 0.8, 0.9, 1.0,
    )  # fmt: skip


def evaluated_squares(tmp_path, thresholds=IOU_GRID) -> list[ImageOutcome]:
    """a.tif: ``two_squares``; b.tif: its prediction shifted down 3 rows."""
    target, predicted = two_squares()
    (tmp_path / "target").mkdir()
    (tmp_path / "predictions").mkdir()
    files = {}
    for name, shift in (("a.tif", 0), ("b.tif", 3)):
        tifffile.imwrite(tmp_path / "target" / name, target)
        files[name] = tmp_path / "predictions" / name
        tifffile.imwrite(files[name], np.roll(predicted, shift, axis=0))
    predictor = PredictionsFolder(tmp_path / "predictions", files)
    settings = EvaluationSettings(iou_threshold=0.5, curve_thresholds=tuple(thresholds))
    return [
        evaluate_image(QcPair(name, None, tmp_path / "target" / name), predictor=predictor,
                       settings=settings)
        for name in files
    ]  # fmt: skip


def test_each_image_is_matched_at_every_threshold_when_evaluated(tmp_path):
    a, b = evaluated_squares(tmp_path)
    assert [s.iou_threshold for s in a.curve] == list(IOU_GRID)
    assert [s.tp for s in a.curve] == [2, 2, 2, 2, 2, 2, 1, 1, 1]
    assert [s.tp for s in b.curve] == [2, 2, 2, 1, 1, 0, 0, 0, 0]
    target, predicted = two_squares()
    assert a.curve == tuple(match_labels_at(target, predicted, iou_thresholds=IOU_GRID))


def test_pooled_curve_and_aggregate_at_limits_by_hand(tmp_path):
    aggregate_at = Thresholds.model_validate(
        {"aggregate_at": {0.3: {"tp": {"min": 4}}, 0.7: {"f1": {"min": 0.6}}}}
    ).aggregate_at
    curve = accuracy_curve(evaluated_squares(tmp_path), aggregate_at)
    assert curve is not None and curve.images == ("a.tif", "b.tif")
    assert curve.thresholds == IOU_GRID
    # 4 objects on each side; tp summed over the two images
    tp = [4, 4, 4, 3, 3, 2, 1, 1, 1]
    assert [(s.tp, s.fp, s.fn) for s in curve.pooled] == [(t, 4 - t, 4 - t) for t in tp]
    at_07 = curve.pooled[6]
    assert at_07.f1 == pytest.approx(0.25) and at_07.accuracy == pytest.approx(1 / 7)
    assert [(v.key, v.outcome) for v in curve.verdicts] == [
        ("aggregate_at.0.3.tp", "pass"),
        ("aggregate_at.0.7.f1.min", "fail"),
    ]
    assert curve.verdicts[1].message == (
        "pooled at IoU 0.7: f1 = 0.25 < min 0.6 (off by 0.35; thresholds.yaml "
        "aggregate_at.0.7.f1.min)"
    )
    record = curve.as_dict()
    assert record["n_images"] == 2 and record["thresholds"] == list(IOU_GRID)
    assert [row["tp"] for row in record["pooled"]] == tp
    assert [limit["outcome"] for limit in record["limits"]] == ["pass", "fail"]


def test_images_without_scores_are_left_out_and_none_means_no_curve(tmp_path):
    a, b = evaluated_squares(tmp_path)
    failed = ImageOutcome(QcPair("c.tif", None, tmp_path / "c.tif"), error="c.tif: broken")
    curve = accuracy_curve([a, failed, b], {})
    assert curve is not None and curve.images == ("a.tif", "b.tif") and curve.verdicts == ()
    assert accuracy_curve([failed], {}) is None
    assert accuracy_curve([], {}) is None


def test_an_image_matched_at_other_thresholds_is_refused(tmp_path):
    outcomes = evaluated_squares(tmp_path)
    aggregate_at = Thresholds.model_validate({"aggregate_at": {0.75: {"f1": {"min": 0.5}}}})
    with pytest.raises(ValueError, match=r"a\.tif: matched at \[0\.1, .*not at the curve's"):
        accuracy_curve(outcomes, aggregate_at.aggregate_at)


def test_a_threshold_off_the_grid_is_matched_and_judged(tmp_path):
    aggregate_at = Thresholds.model_validate(
        {"aggregate_at": {0.65: {"recall": {"min": 0.5}}}}
    ).aggregate_at
    outcomes = evaluated_squares(tmp_path, curve_thresholds(aggregate_at))
    curve = accuracy_curve(outcomes, aggregate_at)
    # at 0.65: in a both match (IoU 2/3 and 1), in b neither (0.389 and 0.538)
    at = curve.pooled[curve.thresholds.index(0.65)]
    assert (at.tp, at.fn) == (2, 2) and math.isclose(at.recall, 0.5)
    (verdict,) = curve.verdicts
    assert verdict.key == "aggregate_at.0.65.recall" and verdict.passed
