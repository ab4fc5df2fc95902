"""Tests for segqc.metrics.matching.

The reference is ``stardist.matching`` (``matching`` and ``matching_dataset``), an
independent implementation that builds the dense overlap matrix and solves one global
assignment. segqc computes sparse overlaps and solves only conflicting components, so
agreement on every field is a real check, not a tautology. Integer fields must be equal;
float fields are compared with ``rtol=0, atol=1e-12`` (in practice they are bit-identical).
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, fields

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import ndimage as ndi

from segqc.metrics.matching import (
    LabelImageError,
    MatchingCurve,
    MatchingStats,
    check_label_image,
    match_labels,
    match_labels_at,
    pool_matching,
)

stardist_matching = pytest.importorskip("stardist.matching")

THRESHOLDS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
INT_FIELDS = ("fp", "tp", "fn", "n_true", "n_pred")
FLOAT_FIELDS = (
    "precision",
    "recall",
    "accuracy",
    "f1",
    "mean_true_score",
    "mean_matched_score",
    "panoptic_quality",
)


def _sequential_for_stardist(labels: np.ndarray) -> np.ndarray:
    """Order-preserving relabelling, so stardist can take huge ids (it allocates max+1)."""
    values, inverse = np.unique(labels, return_inverse=True)
    if values.size and values[0] != 0:
        inverse = inverse + 1
    return inverse.reshape(labels.shape).astype(np.int64)


def _reference(y_true: np.ndarray, y_pred: np.ndarray, thresholds: tuple[float, ...]) -> list:
    if y_true.dtype == np.bool_:
        y_true = y_true.astype(np.uint8)
    if y_pred.dtype == np.bool_:
        y_pred = y_pred.astype(np.uint8)
    if max(int(y_true.max(initial=0)), int(y_pred.max(initial=0))) > 100_000:
        y_true, y_pred = _sequential_for_stardist(y_true), _sequential_for_stardist(y_pred)
    # The labels' values, not their dtype, determine the reference: segqc gets the dtype
    # under test, stardist int64 copies, so its numba kernels compile for one dtype
    # (each compilation costs 1-2 s) rather than five.
    y_true, y_pred = y_true.astype(np.int64), y_pred.astype(np.int64)
    return list(stardist_matching.matching(y_true, y_pred, thresh=thresholds, report_matches=True))


def _assert_same(ours: MatchingStats, ref) -> None:
    ref_dict = ref._asdict()
    assert ours.iou_threshold == ref.thresh
    for name in INT_FIELDS:
        assert getattr(ours, name) == ref_dict[name], name
    for name in FLOAT_FIELDS:
        np.testing.assert_allclose(
            getattr(ours, name), ref_dict[name], rtol=0, atol=1e-12, err_msg=name
        )
    # stardist sums the float32 scores of its true positives in true-label order.
    ref_scores = np.array(ref.matched_scores, np.float32)[list(ref.matched_tps)]
    ref_sum = float(np.sum(ref_scores)) if len(ref.matched_pairs) else 0.0
    np.testing.assert_allclose(ours.sum_matched_score, ref_sum, rtol=0, atol=1e-12)


def _assert_parity(y_true: np.ndarray, y_pred: np.ndarray, thresholds=THRESHOLDS) -> None:
    ours = match_labels_at(y_true, y_pred, iou_thresholds=thresholds)
    for o, r in zip(ours, _reference(y_true, y_pred, thresholds), strict=True):
        _assert_same(o, r)


def test_a_matching_curve_gives_back_every_number_of_the_matching():
    """Kept as counts, read back as MatchingStats: stardist's numbers, bit for bit."""
    rng = np.random.default_rng(7)
    for _ in range(30):
        y_true, y_pred = np.zeros((48, 48), np.uint16), np.zeros((48, 48), np.uint16)
        for labels, first in ((y_true, 1), (y_pred, 5)):
            for label in range(first, first + rng.integers(0, 9)):
                y, x = rng.integers(0, 40, 2)
                labels[y : y + rng.integers(2, 9), x : x + rng.integers(2, 9)] = label
        matched = tuple(match_labels_at(y_true, y_pred, iou_thresholds=THRESHOLDS))
        curve = MatchingCurve(matched)
        assert len(curve) == len(THRESHOLDS) and curve == matched
        assert [asdict(s) for s in curve] == [asdict(s) for s in matched]
        assert curve[-1] == matched[-1] and curve[2:4] == matched[2:4]
        for kept, reference in zip(curve, _reference(y_true, y_pred, THRESHOLDS), strict=True):
            _assert_same(kept, reference)
    assert len(MatchingCurve([])) == 0


# --- tiny hand-computed cases -------------------------------------------------------


def test_shifted_square_hand_computed():
    y_true = np.zeros((10, 10), np.uint16)
    y_true[0:4, 0:4] = 1  # 16 px
    y_pred = np.zeros_like(y_true)
    y_pred[0:4, 1:5] = 7  # 16 px, shares 4 x 3 = 12 px; union 16 + 16 - 12 = 20
    low, high = match_labels_at(y_true, y_pred, iou_thresholds=(0.5, 0.7))
    # IoU = 12 / 20 = 0.6 -> a match at 0.5 ...
    assert (low.tp, low.fp, low.fn) == (1, 0, 0)
    assert low.sum_matched_score == np.float32(0.6)
    assert low.mean_matched_score == np.float32(0.6)
    assert low.panoptic_quality == np.float32(0.6)  # 0.6 / (1 + 0/2 + 0/2)
    assert low.precision == low.recall == low.f1 == low.accuracy == 1.0
    # ... and none at 0.7: one false positive, one false negative.
    assert (high.tp, high.fp, high.fn) == (0, 1, 1)
    assert high.accuracy == 0.0 and high.sum_matched_score == 0.0


def test_two_objects_one_missed_hand_computed():
    y_true = np.zeros((6, 12), np.int32)
    y_true[0:2, 0:2] = 3  # 4 px
    y_true[3:6, 6:12] = 9  # 18 px
    y_pred = np.zeros_like(y_true)
    y_pred[0:2, 0:2] = 1  # identical to label 3: IoU 1
    y_pred[3:6, 6:9] = 2  # 9 px inside label 9: IoU 9 / 18 = 0.5 exactly
    y_pred[0, 11] = 5  # stray pixel: a false positive
    stats = match_labels(y_true, y_pred, iou_threshold=0.5)
    # tp = 2 (IoU 1.0 and 0.5), fp = 1, fn = 0
    assert (stats.tp, stats.fp, stats.fn, stats.n_true, stats.n_pred) == (2, 1, 0, 2, 3)
    assert stats.precision == 2 / 3 and stats.recall == 1.0
    assert stats.accuracy == 2 / 3  # 2 / (2 + 1 + 0)
    assert stats.f1 == 4 / 5  # 2*2 / (2*2 + 1 + 0)
    assert stats.sum_matched_score == 1.5
    assert stats.mean_matched_score == 0.75  # 1.5 / 2
    assert stats.mean_true_score == 0.75  # 1.5 / 2 true objects
    assert stats.panoptic_quality == 1.5 / 2.5  # 1.5 / (2 + 1/2 + 0/2)


def test_exact_half_split_tie():
    # One true object of 8 px split by the prediction into two halves of 4 px each:
    # both pairs have IoU 4 / (8 + 4 - 4) = 0.5 exactly, but only one can be matched.
    y_true = np.zeros((4, 8), np.uint8)
    y_true[0:2, 0:4] = 1
    y_pred = np.zeros_like(y_true)
    y_pred[0:2, 0:2] = 1
    y_pred[0:2, 2:4] = 2
    stats = match_labels(y_true, y_pred, iou_threshold=0.5)
    assert (stats.tp, stats.fp, stats.fn) == (1, 1, 0)
    assert stats.sum_matched_score == 0.5
    assert stats.panoptic_quality == 0.5 / 1.5  # 0.5 / (1 + 1/2 + 0/2)
    # The same with the roles swapped: one prediction covering two true halves.
    swapped = match_labels(y_pred, y_true, iou_threshold=0.5)
    assert (swapped.tp, swapped.fp, swapped.fn) == (1, 0, 1)
    _assert_parity(y_true, y_pred)
    _assert_parity(y_pred, y_true)


def test_low_threshold_prefers_more_matches_over_higher_iou():
    # At thr 0.2 true object A clashes with two predictions; the assignment keeps the
    # number of matches and breaks the tie by the higher IoU.
    y_true = np.zeros((4, 8), np.uint16)
    y_true[0:2, 0:2] = 1  # A: 4 px
    y_true[0:2, 4:6] = 2  # B: 4 px, overlaps nothing
    y_pred = np.zeros_like(y_true)
    y_pred[0:2, 0:4] = 1  # P
    y_pred[0:2, 1:2] = 2  # Q: 2 px inside A; P keeps columns 0, 2, 3 = 6 px
    # IoU(A, P) = 2 / (4 + 6 - 2) = 0.25, IoU(A, Q) = 2 / (4 + 2 - 2) = 0.5
    stats = match_labels(y_true, y_pred, iou_threshold=0.2)
    assert (stats.tp, stats.fp, stats.fn) == (1, 1, 1)
    assert stats.sum_matched_score == 0.5  # A-Q is chosen, the higher score
    _assert_parity(y_true, y_pred, thresholds=(0.2, 0.25, 0.3, 0.5))


def test_empty_and_one_sided_empty():
    empty = np.zeros((5, 5), np.uint16)
    one = empty.copy()
    one[1:3, 1:3] = 4
    both_empty = match_labels(empty, empty)
    assert (both_empty.tp, both_empty.fp, both_empty.fn) == (0, 0, 0)
    assert both_empty.precision == both_empty.panoptic_quality == 0.0
    missed = match_labels(one, empty)
    assert (missed.tp, missed.fp, missed.fn, missed.n_true) == (0, 0, 1, 1)
    spurious = match_labels(empty, one)
    assert (spurious.tp, spurious.fp, spurious.fn, spurious.n_pred) == (0, 1, 0, 1)
    for a, b in ((empty, empty), (one, empty), (empty, one)):
        _assert_parity(a, b)


def test_zero_size_images_give_zero_objects():
    # stardist raises on these; zero objects is the honest answer.
    stats = match_labels(np.zeros((0, 4), np.uint8), np.zeros((0, 4), np.uint8))
    assert (stats.n_true, stats.n_pred, stats.tp) == (0, 0, 0)


def test_bool_mask_is_one_object():
    mask = np.zeros((6, 6), bool)
    mask[1:4, 1:4] = True
    labels = mask.astype(np.uint8) * 200
    stats = match_labels(mask, labels)
    assert (stats.tp, stats.n_true, stats.n_pred, stats.sum_matched_score) == (1, 1, 1, 1.0)


# --- parity with stardist on real and perturbed masks --------------------------------


@pytest.fixture(scope="module")
def nuclei() -> np.ndarray:
    from stardist.data import test_image_nuclei_2d

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return test_image_nuclei_2d(return_mask=True)[1]


def _perturbed(y: np.ndarray, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    pred = ndi.grey_erosion(np.roll(y, rng.integers(-3, 4, size=2), axis=(0, 1)), size=2)
    labels = np.unique(pred)[1:]
    dropped = rng.choice(labels, size=len(labels) // 10, replace=False)
    pred[np.isin(pred, dropped)] = 0
    # merge a few neighbours into one object and split a few objects in halves
    for a in rng.choice(labels, size=5, replace=False):
        pred[pred == a + 1] = a
    for a in rng.choice(labels, size=5, replace=False):
        rows, cols = np.nonzero(pred == a)
        if len(rows):
            pred[rows[cols > np.median(cols)], cols[cols > np.median(cols)]] = y.max() + a
    # non-sequential, shuffled ids
    ids = np.unique(pred)[1:]
    new_ids = rng.permutation(ids) * 7 + 1000
    lut = np.zeros(int(pred.max()) + 1, np.int64)
    lut[ids] = new_ids
    return lut[pred]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_parity_nuclei_vs_perturbed(nuclei, seed):
    pred = _perturbed(nuclei, seed)
    _assert_parity(nuclei, pred)
    _assert_parity(pred, nuclei)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int32, np.int64, np.uint64])
def test_parity_dtypes(nuclei, dtype):
    pred = _perturbed(nuclei, 3)
    pred = _sequential_for_stardist(pred) % 250 + (pred > 0)  # fits uint8, ids collide
    _assert_parity(nuclei.astype(dtype), pred.astype(dtype))


def test_parity_huge_label_ids(nuclei):
    pred = _perturbed(nuclei, 4).astype(np.uint64)
    pred[pred > 0] += np.uint64(2**40)
    ours = match_labels_at(nuclei, pred, iou_thresholds=THRESHOLDS)
    ref = stardist_matching.matching(
        nuclei.astype(np.int64), _sequential_for_stardist(pred), thresh=THRESHOLDS,
        report_matches=True,
    )  # fmt: skip
    for o, r in zip(ours, ref, strict=True):
        _assert_same(o, r)


def test_parity_3d_volume():
    rng = np.random.default_rng(5)
    vol = np.zeros((12, 40, 40), np.uint16)
    for label in range(1, 40):
        z, y, x = rng.integers(0, [10, 34, 34])
        d, h, w = rng.integers(2, [4, 8, 8])
        vol[z : z + d, y : y + h, x : x + w] = label
    pred = ndi.grey_erosion(np.roll(vol, 1, axis=2), size=(1, 2, 2))
    pred[pred == 3] = 5
    _assert_parity(vol, pred)


# --- property test --------------------------------------------------------------------

DTYPES = (np.uint8, np.uint16, np.int32, np.int64, np.uint64)
SHAPES = ((8, 8), (12, 10), (16, 16), (3, 6, 6))


@st.composite
def label_images(draw: st.DrawFn, shape: tuple[int, ...]) -> np.ndarray:
    dtype = draw(st.sampled_from(DTYPES))
    high = min(int(np.iinfo(dtype).max), 2**40)
    ids = draw(st.lists(st.integers(1, high), min_size=1, max_size=8))
    img = np.zeros(shape, dtype)
    for label in ids:
        lo = [draw(st.integers(0, n - 1)) for n in shape]
        size = [draw(st.integers(1, max(1, n // 2))) for n in shape]
        img[tuple(slice(a, a + s) for a, s in zip(lo, size, strict=True))] = label
    return img


# Both images are drawn with one shape rather than filtered to it, so no draw is wasted.
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_property_every_field_matches_stardist(data):
    shape = data.draw(st.sampled_from(SHAPES))
    y_true = data.draw(label_images(shape))
    y_pred = data.draw(label_images(shape))
    _assert_parity(y_true, y_pred, thresholds=(0.1, 0.3, 0.5, 0.5 + 1e-9, 0.7, 0.9))


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    thresholds=st.lists(st.floats(0.05, 1.0), min_size=1, max_size=4),
)
def test_property_split_halves_ties(seed, thresholds):
    # objects split into exact halves produce exact IoU ties at 0.5 and below
    rng = np.random.default_rng(seed)
    y_true = np.zeros((16, 16), np.int32)
    for label, (r, c) in enumerate(rng.integers(0, 4, size=(6, 2)) * 4, start=1):
        y_true[r : r + 4, c : c + 4] = label
    y_pred = y_true.copy()
    for label in rng.choice(np.arange(1, 7), size=3, replace=False):
        rows, cols = np.nonzero(y_pred == label)
        if len(rows) == 0:  # painted over by a later square
            continue
        half = cols >= np.median(cols) if rng.random() < 0.5 else rows >= np.median(rows)
        y_pred[rows[half], cols[half]] = 10 + label
    if rng.random() < 0.5:
        y_true, y_pred = y_pred, y_true
    _assert_parity(y_true, y_pred, thresholds=tuple(thresholds))


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_parity_many_exact_ties_sum_order(seed):
    # A grid of objects of varied size where some predictions cover two exact true halves
    # and some true objects are split into two exact predicted halves. Which half wins
    # changes where 0.5 sits in the true-label-ordered float32 sum; with the solver's
    # choice reversed, about half of these seeds give a sum that differs in the last bit.
    rng = np.random.default_rng(seed)
    y_true = np.zeros((96, 96), np.int32)
    y_pred = np.zeros_like(y_true)
    for label, (r, c) in enumerate(np.ndindex(8, 8), start=1):
        r, c = 12 * r, 12 * c
        h, w = 2 * rng.integers(2, 6, size=2)
        y_true[r : r + h, c : c + w] = label
        kind = rng.integers(0, 4)
        if kind == 0:  # one prediction over two true halves
            y_true[r : r + h, c + w // 2 : c + w] = 1000 + label
            y_pred[r : r + h, c : c + w] = label
        elif kind == 1:  # one true object split into two predicted halves
            y_pred[r : r + h, c : c + w // 2] = label
            y_pred[r : r + h, c + w // 2 : c + w] = 1000 + label
        else:  # a jittered, sometimes narrower copy
            dr, dc = rng.integers(-1, 2, size=2)
            narrower = rng.integers(0, 3)
            y_pred[max(r + dr, 0) : r + h + dr, max(c + dc, 0) : c + w + dc - narrower] = label
    _assert_parity(y_true, y_pred, thresholds=(0.2, 0.3, 0.45, 0.5, 0.6))


# --- pooling ----------------------------------------------------------------------------


def test_pool_matches_matching_dataset(nuclei):
    trues = [nuclei, nuclei[:256], np.zeros((20, 20), np.uint16), nuclei]
    preds = [
        _perturbed(nuclei, 6),
        _perturbed(nuclei, 7)[:256],
        np.zeros((20, 20), np.int64),
        np.zeros_like(nuclei),
    ]
    per_image = [
        match_labels_at(t, p, iou_thresholds=THRESHOLDS) for t, p in zip(trues, preds, strict=True)
    ]
    ref = stardist_matching.matching_dataset(
        trues, preds, thresh=THRESHOLDS, by_image=False, show_progress=False
    )
    for k, r in enumerate(ref):
        pooled = pool_matching([stats[k] for stats in per_image])
        assert pooled.iou_threshold == r.thresh
        for name in INT_FIELDS:
            assert getattr(pooled, name) == getattr(r, name), name
        for name in FLOAT_FIELDS:
            np.testing.assert_allclose(
                getattr(pooled, name), getattr(r, name), rtol=0, atol=1e-12, err_msg=name
            )


def test_pool_single_image_is_identity(nuclei):
    stats = match_labels(nuclei, _perturbed(nuclei, 8))
    pooled = pool_matching([stats])
    assert {f.name: getattr(pooled, f.name) for f in fields(pooled)} == asdict(stats)


# --- errors -------------------------------------------------------------------------------


def test_float_mask_is_refused_even_if_integral():
    y = np.zeros((4, 4), np.float32)
    with pytest.raises(LabelImageError, match=r"ground truth has float dtype float32.*TIFF"):
        match_labels(y, np.zeros((4, 4), np.uint8))
    with pytest.raises(LabelImageError, match="prediction has float dtype float64"):
        match_labels(np.zeros((4, 4), np.uint8), y.astype(np.float64))


@pytest.mark.parametrize("bad", [np.zeros((2, 2), complex), np.zeros((2, 2), object)])
def test_other_non_integer_dtypes_are_refused(bad):
    with pytest.raises(LabelImageError, match="expected an integer label image"):
        check_label_image(bad, role="prediction")


def test_non_array_is_refused():
    with pytest.raises(LabelImageError, match=r"ground truth must be a numpy array.*got list"):
        match_labels([[0, 1]], np.zeros((1, 2), np.uint8))


def test_negative_labels_are_refused():
    y = np.zeros((4, 4), np.int32)
    y[0, 0] = -3
    with pytest.raises(
        LabelImageError, match=r"prediction contains negative labels \(minimum -3\)"
    ):
        match_labels(np.zeros((4, 4), np.int32), y)


def test_shape_mismatch_names_both_shapes():
    with pytest.raises(LabelImageError, match=r"\(4, 4\).*\(4, 5\)"):
        match_labels(np.zeros((4, 4), np.uint8), np.zeros((4, 5), np.uint8))


@pytest.mark.parametrize("thr", [0.0, -0.1, 1.5, float("nan")])
def test_threshold_outside_unit_interval(thr):
    with pytest.raises(ValueError, match="IoU thresholds must be numbers in"):
        match_labels(np.zeros((2, 2), np.uint8), np.zeros((2, 2), np.uint8), iou_threshold=thr)


def test_pool_errors():
    y = np.zeros((2, 2), np.uint8)
    a, b = match_labels_at(y, y, iou_thresholds=(0.5, 0.7))
    with pytest.raises(ValueError, match="one IoU threshold"):
        pool_matching([a, b])
    with pytest.raises(ValueError, match="at least one"):
        pool_matching([])
