"""Tests for segqc.metrics.community (SEG, AJI, DSB score, SQ, RQ) and their pooling.

Three kinds of check: tiny label images whose scores are worked out by hand in the
comments; SEG and AJI against deliberately naive reference implementations written here
(dense boolean masks, one Python loop per object, nothing shared with segqc's sparse
code) on seeded random 2D and 3D label images; and properties (PQ = SQ x RQ, pooled AJI
= AJI of the images side by side).
"""

from __future__ import annotations

import itertools
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from segqc.metrics.community import DSB_THRESHOLDS, AjiCounts, aji_counts
from segqc.metrics.matching import label_overlaps
from segqc.metrics.scores import QcScores, measure, pool


def _case_a() -> tuple[np.ndarray, np.ndarray]:
    """GT A (16 px), B (4 px), C (4 px); predictions p1 in A, p2 = half of B, p3 alone.

    A = rows 0-3 x cols 0-3 (16 px)   p1 = rows 0-3 x cols 0-2 (12 px): I 12, U 16, IoU .75
    B = rows 0-1 x cols 6-7 (4 px)    p2 = rows 0-1 x col 6    (2 px):  I 2,  U 4,  IoU .5
    C = rows 6-7 x cols 0-1 (4 px)    p3 = rows 6-7 x cols 4-5 (4 px):  touches nothing
    """
    gt = np.zeros((8, 10), np.uint16)
    gt[0:4, 0:4] = 1
    gt[0:2, 6:8] = 2
    gt[6:8, 0:2] = 3
    pred = np.zeros((8, 10), np.uint16)
    pred[0:4, 0:3] = 1
    pred[0:2, 6:7] = 2
    pred[6:8, 4:6] = 3
    return gt, pred


def _case_b() -> tuple[np.ndarray, np.ndarray]:
    """One prediction merging two GT objects.

    A = rows 0-1 x cols 0-3 (8 px), B = rows 0-1 x cols 4-5 (4 px),
    p1 = rows 0-1 x cols 0-5 (12 px): with A I 8, U 12, IoU 2/3; with B I 4, U 12, IoU 1/3.
    """
    gt = np.zeros((2, 6), np.uint16)
    gt[:, 0:4] = 1
    gt[:, 4:6] = 2
    pred = np.ones((2, 6), np.uint16)
    return gt, pred


def test_case_a_hand_computed():
    values = measure(*_case_a()).values()
    # SEG: A-p1 12 > 16/2, J = 12/16; B-p2 2 > 4/2 is false (exactly half): J = 0; C: 0.
    assert values["seg"] == pytest.approx((0.75 + 0 + 0) / 3, abs=1e-12)
    # AJI: C = 12 + 2; U = 16 (A,p1) + 4 (B,p2) + 4 (C alone) + 4 (p3 unused) = 28.
    assert values["aji"] == pytest.approx(14 / 28, abs=1e-12)
    # DSB: t=0.5: tp 2 fp 1 fn 1 -> 2/4; t=0.55..0.75 (5): A-p1 only, 1/5; t=0.8..0.95: 0.
    assert values["dsb_score"] == pytest.approx((0.5 + 5 * 0.2 + 4 * 0) / 10, abs=1e-12)
    # Panoptic at 0.5: matched IoUs .75 and .5; SQ = 1.25/2; RQ = 2 / (2 + 1/2 + 1/2).
    assert values["sq"] == pytest.approx(0.625, abs=1e-7)
    assert values["rq"] == pytest.approx(2 / 3, abs=1e-12)
    assert values["panoptic_quality"] == pytest.approx(1.25 / 3, abs=1e-7)


def test_case_b_merge_hand_computed():
    values = measure(*_case_b()).values()
    # SEG rewards the merge: A 8 > 4, J 2/3; B 4 > 2, J 1/3; (2/3 + 1/3) / 2.
    assert values["seg"] == pytest.approx(0.5, abs=1e-12)
    # AJI counts p1 in both unions: C = 8 + 4, U = 12 + 12.
    assert values["aji"] == pytest.approx(12 / 24, abs=1e-12)
    # DSB: t <= 0.65: tp 1 fp 0 fn 1 -> 1/2 (4 thresholds); t >= 0.7: tp 0 -> 0.
    assert values["dsb_score"] == pytest.approx(4 * 0.5 / 10, abs=1e-12)
    # Panoptic: one match (A, 2/3); RQ = 1 / (1 + 0 + 1/2).
    assert values["sq"] == pytest.approx(2 / 3, abs=1e-7)
    assert values["rq"] == pytest.approx(2 / 3, abs=1e-12)


def test_aji_gt_without_overlap_is_not_paired_with_a_distant_prediction():
    # GT: one 4 px object; prediction: one 2 px object elsewhere. Kumar's argmax over
    # all-zero IoUs would pair them (U = 4 + 2 once, prediction "used"); segqc (as
    # HoVer-Net) adds G alone and the prediction as unused: same U = 6, C = 0.
    # With a second GT object overlapping the prediction the difference shows:
    # G1 (4 px) touches nothing, G2 (2 px) == p1 (2 px). Paired: C 2, U 2; + G1 4.
    gt = np.zeros((4, 4), np.uint8)
    gt[0:2, 0:2] = 1
    gt[3, 0:2] = 2
    pred = np.zeros((4, 4), np.uint8)
    pred[3, 0:2] = 5
    assert measure(gt, pred).values()["aji"] == pytest.approx(2 / 6, abs=1e-12)


@pytest.mark.parametrize(
    ("gt_objects", "pred_objects", "expected"),
    [
        # both empty: perfect agreement for SEG, AJI, DSB; SQ, RQ as stardist (0).
        (0, 0, {"seg": 1.0, "aji": 1.0, "dsb_score": 1.0, "sq": 0.0, "rq": 0.0}),
        # only a prediction: nothing right.
        (0, 1, {"seg": 0.0, "aji": 0.0, "dsb_score": 0.0, "sq": 0.0, "rq": 0.0}),
        # only GT: nothing found.
        (1, 0, {"seg": 0.0, "aji": 0.0, "dsb_score": 0.0, "sq": 0.0, "rq": 0.0}),
    ],
)
def test_empty_images(gt_objects, pred_objects, expected):
    gt = np.zeros((4, 4), np.uint8)
    pred = np.zeros((4, 4), np.uint8)
    gt[:2, :2] = gt_objects
    pred[2:, 2:] = pred_objects
    values = measure(gt, pred).values()
    assert {key: values[key] for key in expected} == expected


def test_pooled_hand_computed():
    pooled = pool([measure(*_case_a()), measure(*_case_b())]).values()
    # SEG over all 5 reference objects: (0.75 + 2/3 + 1/3) / 5.
    assert pooled["seg"] == pytest.approx(1.75 / 5, abs=1e-12)
    # AJI: (14 + 12) / (28 + 24).
    assert pooled["aji"] == pytest.approx(26 / 52, abs=1e-12)
    # DSB from summed counts: t=0.5 tp 3 fp 1 fn 2 -> 3/6; t=0.55..0.65 tp 2 fp 2 fn 3
    # -> 2/7; t=0.7, 0.75 tp 1 fp 3 fn 4 -> 1/8; t >= 0.8 -> 0.
    assert pooled["dsb_score"] == pytest.approx((0.5 + 3 * 2 / 7 + 2 / 8) / 10, abs=1e-12)
    # RQ from pooled tp 3, fp 1, fn 2 (at 0.5): 3 / (3 + 0.5 + 1).
    assert pooled["rq"] == pytest.approx(3 / 4.5, abs=1e-12)


def test_dsb_thresholds():
    assert DSB_THRESHOLDS == (0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95)


# --- naive references -------------------------------------------------------------


def naive_seg(gt: np.ndarray, pred: np.ndarray) -> float:
    """CTC SEG straight from the definition, one reference object at a time."""
    ids = [r for r in np.unique(gt) if r != 0]
    if not ids:
        return 1.0 if not pred.any() else 0.0
    total = 0.0
    for r in ids:
        ref = gt == r
        for s in np.unique(pred):
            if s == 0:
                continue
            seg = pred == s
            inter = np.logical_and(ref, seg).sum()
            if inter > 0.5 * ref.sum():
                total += inter / np.logical_or(ref, seg).sum()
    return total / len(ids)


def naive_aji(gt: np.ndarray, pred: np.ndarray) -> float:
    """Kumar et al. 2017, Algorithm 1, with a dense IoU loop over every prediction."""
    pred_ids = [s for s in np.unique(pred) if s != 0]
    used: set[int] = set()
    inter_sum = union_sum = 0
    for g in np.unique(gt):
        if g == 0:
            continue
        obj = gt == g
        best, best_iou = None, 0.0
        for s in pred_ids:  # ascending ids: strict > keeps the smallest id on ties
            seg = pred == s
            iou = np.logical_and(obj, seg).sum() / np.logical_or(obj, seg).sum()
            if iou > best_iou:
                best, best_iou = s, iou
        if best is None:
            union_sum += obj.sum()
            continue
        seg = pred == best
        inter_sum += np.logical_and(obj, seg).sum()
        union_sum += np.logical_or(obj, seg).sum()
        used.add(int(best))
    for s in pred_ids:
        if int(s) not in used:
            union_sum += (pred == s).sum()
    return inter_sum / union_sum if union_sum else 1.0


def random_labels(rng: np.random.Generator, shape: tuple[int, ...], n: int) -> np.ndarray:
    """Up to ``n`` random boxes (later ones paint over earlier ones), random label ids."""
    labels = np.zeros(shape, np.int32)
    ids = rng.choice(np.arange(1, 1000), size=n, replace=False)
    for label in ids:
        start = [rng.integers(0, s - 1) for s in shape]
        size = [rng.integers(1, max(2, s // 3)) for s in shape]
        labels[tuple(slice(a, a + b) for a, b in zip(start, size, strict=True))] = label
    return labels


def perturbed(rng: np.random.Generator, gt: np.ndarray) -> np.ndarray:
    """A plausible prediction: GT shifted by up to one pixel, some objects merged or
    dropped, a few spurious boxes, fresh label ids."""
    pred = np.roll(gt, tuple(rng.integers(-1, 2, size=gt.ndim)), axis=tuple(range(gt.ndim)))
    ids = np.unique(pred)[1:]
    remap = np.zeros(int(gt.max()) + 1, np.int32)
    remap[ids] = rng.permutation(len(ids)) + 1
    for label in ids:
        roll = rng.random()
        if roll < 0.15:
            remap[label] = 0
        elif roll < 0.3:
            remap[label] = remap[rng.choice(ids)] or 1
    pred = remap[pred]
    extra = random_labels(rng, gt.shape, 3)
    pred[extra > 0] = extra[extra > 0] + 2000
    return pred


@pytest.mark.parametrize("seed", range(25))
@pytest.mark.parametrize("shape", [(24, 32), (6, 12, 14)], ids=["2d", "3d"])
def test_seg_and_aji_match_naive_reference(seed, shape):
    rng = np.random.default_rng(seed)
    gt = random_labels(rng, shape, int(rng.integers(0, 9)))
    pred = perturbed(rng, gt)
    values = measure(gt, pred).values()
    assert values["seg"] == pytest.approx(naive_seg(gt, pred), rel=0, abs=1e-12)
    assert values["aji"] == pytest.approx(naive_aji(gt, pred), rel=0, abs=1e-12)


@pytest.mark.parametrize("seed", range(25))
def test_pq_is_sq_times_rq(seed):
    rng = np.random.default_rng(100 + seed)
    gt = random_labels(rng, (24, 32), int(rng.integers(0, 9)))
    pred = perturbed(rng, gt)
    for scores in (measure(gt, pred), measure(gt, pred, iou_threshold=0.3)):
        values = scores.values()
        assert values["panoptic_quality"] == pytest.approx(
            values["sq"] * values["rq"], rel=1e-6, abs=1e-12
        )
        # RQ is the F1 score (Kirillov et al. 2019, Eq. 2).
        assert values["rq"] == pytest.approx(values["f1"], abs=1e-12)


def test_pooled_aji_and_seg_equal_the_images_side_by_side():
    rng = np.random.default_rng(7)
    pairs = []
    for _ in range(4):
        gt = random_labels(rng, (20, 24), 6)
        pairs.append((gt, perturbed(rng, gt)))
    pooled = pool([measure(gt, pred) for gt, pred in pairs]).values()
    # Offsetting labels per image keeps objects of different images apart.
    gt_all = np.concatenate([gt + (gt > 0) * 10_000 * i for i, (gt, _) in enumerate(pairs)], 1)
    pred_all = np.concatenate(
        [pred + (pred > 0) * 10_000 * i for i, (_, pred) in enumerate(pairs)], 1
    )
    assert pooled["aji"] == pytest.approx(naive_aji(gt_all, pred_all), abs=1e-12)
    assert pooled["seg"] == pytest.approx(naive_seg(gt_all, pred_all), abs=1e-12)


def test_scores_keep_every_metric_in_catalogue_order():
    from segqc.metrics.catalogue import METRIC_KEYS

    values = measure(*_case_a()).values()
    assert tuple(values) == METRIC_KEYS
    assert METRIC_KEYS[13:] == ("seg", "aji", "dsb_score", "sq", "rq")
    assert isinstance(measure(*_case_a()), QcScores)


def test_3d_scores_equal_stardist_matching():
    stardist_matching = pytest.importorskip("stardist.matching")
    rng = np.random.default_rng(3)
    gt = random_labels(rng, (10, 20, 22), 12)
    pred = perturbed(rng, gt)
    values = measure(gt, pred).values()
    # int64 copies for stardist: its numba kernels then reuse the compilation of
    # test_matching.py's reference calls
    gt, pred = gt.astype(np.int64), pred.astype(np.int64)
    ref = stardist_matching.matching(gt, pred, thresh=0.5)
    for key, ref_key in [
        ("tp", "tp"), ("fp", "fp"), ("fn", "fn"), ("precision", "precision"),
        ("recall", "recall"), ("accuracy", "accuracy"), ("f1", "f1"),
        ("n_true", "n_true"), ("n_pred", "n_pred"), ("mean_true_score", "mean_true_score"),
        ("mean_matched_score", "mean_matched_score"),
        ("panoptic_quality", "panoptic_quality"),
    ]:  # fmt: skip
        assert values[key] == getattr(ref, ref_key), key
    ref_dsb = [stardist_matching.matching(gt, pred, thresh=t).accuracy for t in DSB_THRESHOLDS]
    assert values["dsb_score"] == pytest.approx(np.mean(ref_dsb), abs=1e-12)


# --- AJI does not depend on label ids (issue 16, point 17) --------------------------


def hover_net_fast_aji(gt: np.ndarray, pred: np.ndarray) -> float:
    """HoVer-Net's ``get_fast_aji`` (metrics/stats_utils.py), re-typed from its algorithm:
    dense float64 IoU with 1e-6 added to every union, ``argmax`` over predictions (the
    smallest id wins what the 1e-6 leaves tied), ids in increasing order."""
    true_ids = [int(t) for t in np.unique(gt) if t != 0]
    pred_ids = [int(p) for p in np.unique(pred) if p != 0]
    inter = np.zeros((len(true_ids), len(pred_ids)))
    union = np.zeros((len(true_ids), len(pred_ids)))
    for i, t in enumerate(true_ids):
        for j, p in enumerate(pred_ids):
            both = np.logical_and(gt == t, pred == p).sum()
            if both:
                inter[i, j] = both
                union[i, j] = np.logical_or(gt == t, pred == p).sum()
    iou = inter / (union + 1.0e-6)
    paired_pred = np.argmax(iou, axis=1) if pred_ids else np.zeros(len(true_ids), int)
    paired_true = np.flatnonzero(iou.max(axis=1) > 0) if pred_ids else np.zeros(0, int)
    paired_pred = paired_pred[paired_true]
    total_inter = inter[paired_true, paired_pred].sum()
    total_union = union[paired_true, paired_pred].sum()
    for i, t in enumerate(true_ids):
        if i not in paired_true:
            total_union += (gt == t).sum()
    for j, p in enumerate(pred_ids):
        if j not in paired_pred:
            total_union += (pred == p).sum()
    return float(total_inter / total_union)


def reference_aji(gt: np.ndarray, pred: np.ndarray) -> tuple[Fraction, bool]:
    """segqc's documented AJI by brute force, in exact fractions: each GT object takes the
    prediction of largest IoU, then of largest union; where several predictions tie on
    both, every choice is tried and the one leaving the fewest predicted pixels unused
    is kept. Also returns whether such a full tie occurred."""
    pred_ids = [int(p) for p in np.unique(pred) if p != 0]
    inter_sum = union_sum = 0
    options: list[list[int]] = []
    for g in np.unique(gt):
        if g == 0:
            continue
        obj = gt == g
        found = []
        for s in pred_ids:
            inter = int(np.logical_and(obj, pred == s).sum())
            if inter:
                union = int(np.logical_or(obj, pred == s).sum())
                found.append((Fraction(inter, union), union, inter, s))
        if not found:
            union_sum += int(obj.sum())
            continue
        top = max(found)[:3]
        inter_sum += top[2]
        union_sum += top[1]
        options.append([f[3] for f in found if f[:3] == top])
    area = {s: int((pred == s).sum()) for s in pred_ids}
    unused = min(
        sum(a for s, a in area.items() if s not in set(choice))
        for choice in itertools.product(*options)
    )
    total = union_sum + unused
    full_tie = any(len(choice) > 1 for choice in options)
    return (Fraction(inter_sum, total) if total else Fraction(1)), full_tie


def _equal_iou_case() -> tuple[np.ndarray, np.ndarray]:
    """GT object G of 20 px (rows 0-3, cols 0-4). p1: 5 px, all inside G (row 0), so
    IoU 5/20. p2: 10 px, 6 inside G (rows 2-3, cols 0-2) and 4 below it (row 4), so
    IoU 6/(20 + 10 - 6) = 6/24. Both IoUs are exactly 1/4."""
    gt = np.zeros((6, 6), np.uint8)
    gt[0:4, 0:5] = 1
    pred = np.zeros((6, 6), np.uint8)
    pred[0, 0:5] = 1
    pred[2:4, 0:3] = 2
    pred[4, 0:4] = 2
    return gt, pred


@pytest.mark.parametrize("ids", [(1, 2), (2, 1)], ids=["p1-first", "p2-first"])
def test_aji_exact_iou_tie_goes_to_the_larger_union(ids):
    gt, pred = _equal_iou_case()
    pred = np.select([pred == 1, pred == 2], ids, 0).astype(np.uint8)
    # The larger union wins the tie: G pairs with p2 (C = 6, U = 24) and p1 stays
    # unused (U += 5): AJI = 6/29 = 0.2069. Pairing with p1 would give
    # 5 / (20 + 10) = 1/6 = 0.1667, which is what the smaller label gave before.
    scores = measure(gt, pred)
    assert (scores.aji.intersection, scores.aji.union) == (6, 29)
    assert scores.values()["aji"] == pytest.approx(6 / 29, abs=1e-15)
    assert hover_net_fast_aji(gt, pred) == pytest.approx(6 / 29, abs=1e-15)


def test_aji_compares_ious_exactly_where_float64_cannot():
    from segqc.metrics.matching import LabelOverlaps

    # One GT object of A voxels and two predictions, counts chosen so that
    # i2 * u1 - i1 * u2 = 1: p2's IoU is larger by exactly 1 / (u1 u2) ~ 6e-18, which
    # float64 rounds away (both divide to the same double). p1 has the larger union and
    # the smaller label, so neither rule may decide here: p2 must win.
    area, i1, u1, i2, u2 = 300_000_000, 56_856_857, 400_000_001, 56_856_715, 399_999_002
    p1, p2 = u1 - area + i1, u2 - area + i2
    assert i2 * u1 - i1 * u2 == 1 and i1 / u1 == i2 / u2
    overlaps = LabelOverlaps(
        n_true=1,
        n_pred=2,
        true_index=np.array([1, 1]),
        pred_index=np.array([1, 2]),
        scores=np.array([i1 / u1, i2 / u2], np.float32),
        intersections=np.array([i1, i2], np.uint64),
        area_true=np.array([0, area], np.uint64),
        area_pred=np.array([0, p1, p2], np.uint64),
        true_values=np.array([1]),
        pred_values=np.array([1, 2]),
    )
    assert aji_counts(overlaps) == AjiCounts(i2, u2 + p1)


@pytest.mark.parametrize("ids", [(1, 2), (2, 1)], ids=["a-first", "b-first"])
def test_aji_full_ties_leave_the_fewest_predicted_pixels_unused(ids):
    # GT: G1 = top row, G2 = bottom row; predictions a = left column, b = right column.
    # Each GT object meets a and b with intersection 1 and union 3: a tie on both
    # counts. G1 -> a, G2 -> b (or the reverse) uses both: C = 2, U = 3 + 3 = 6, AJI 1/3.
    # get_fast_aji pairs both with the smaller id (C = 2, U = 6 + 2 = 8, AJI 1/4).
    gt = np.array([[1, 1], [2, 2]], np.uint8)
    pred = np.array([ids, ids], np.uint8)
    assert measure(gt, pred).aji == AjiCounts(2, 6)
    assert hover_net_fast_aji(gt, pred) == pytest.approx(0.25)


@st.composite
def _small_labels(draw: st.DrawFn, shape: tuple[int, int]) -> np.ndarray:
    """Labels 0..4 at random: tiny objects, so equal IoUs and full ties are frequent."""
    size = shape[0] * shape[1]
    raw = draw(st.binary(min_size=size, max_size=size))  # one draw: cheap, shrinks to 0
    return (np.frombuffer(raw, np.uint8) % 5).astype(np.int32).reshape(shape)


def _relabelled(labels: np.ndarray, new_ids: list[int]) -> np.ndarray:
    ids = [int(i) for i in np.unique(labels) if i != 0]
    lookup = np.zeros(int(labels.max()) + 1, np.int32)
    lookup[ids] = new_ids[: len(ids)]
    return lookup[labels]


SHAPES_2D = st.sampled_from([(3, 4), (4, 4), (5, 6)])


@settings(max_examples=150, deadline=None, derandomize=True)
@given(data=st.data(), shape=SHAPES_2D)
def test_aji_does_not_depend_on_label_ids(data, shape):
    gt = data.draw(_small_labels(shape))
    pred = data.draw(_small_labels(shape))
    new_pred_ids = list(data.draw(st.permutations(range(1, 5))))
    new_gt_ids = data.draw(st.lists(st.integers(1, 60), min_size=4, max_size=4, unique=True))
    counts = aji_counts(label_overlaps(gt, pred))
    relabelled_pred = _relabelled(pred, new_pred_ids)
    assert aji_counts(label_overlaps(gt, relabelled_pred)) == counts
    relabelled_gt = _relabelled(gt, new_gt_ids)
    assert aji_counts(label_overlaps(relabelled_gt, relabelled_pred)) == counts


@settings(max_examples=150, deadline=None, derandomize=True)
@given(data=st.data(), shape=SHAPES_2D)
def test_aji_equals_the_brute_force_reference_and_hover_net(data, shape):
    gt = data.draw(_small_labels(shape))
    pred = data.draw(_small_labels(shape))
    counts = aji_counts(label_overlaps(gt, pred))
    expected, full_tie = reference_aji(gt, pred)
    assert (Fraction(counts.intersection, counts.union) if counts.union else 1) == expected
    if not full_tie and gt.any() and pred.any():
        # Without full ties the tie rule is HoVer-Net's own.
        assert hover_net_fast_aji(gt, pred) == pytest.approx(float(expected), abs=1e-12)
