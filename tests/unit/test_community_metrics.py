"""Tests for segqc.metrics.community (SEG, AJI, DSB score, SQ, RQ) and their pooling.

Three kinds of check: tiny label images whose scores are worked out by hand in the
comments; SEG and AJI against deliberately naive reference implementations written here
(dense boolean masks, one Python loop per object, nothing shared with segqc's sparse
code) on seeded random 2D and 3D label images; and properties (PQ = SQ x RQ, pooled AJI
= AJI of the images side by side).
"""

from __future__ import annotations

import numpy as np
import pytest

from segqc.metrics.community import DSB_THRESHOLDS
from segqc.metrics.scores import QcScores, measure, pool

from tests.helpers import OPTIONAL_SKIPPED


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


def test_community_metrics_gate_in_every_scope(pytester, make_qc, thresholds_file):
    # make_qc: 10 equal disks per image; img01's prediction drops 4 of them. By hand for
    # img01: every kept disk is exact, so SEG = AJI = DSB = 6/10 (AJI: C = 6 A,
    # U = 6 A + 4 A for the unpaired GT), SQ = 1, RQ = 6 / (6 + 4/2).
    qc = make_qc(3, dropped=(0, 4, 0), root=pytester.path / "qc")
    limits = thresholds_file(
        "per_image:\n  seg: {min: 0.7}\n  sq: {min: 0.99}\n"
        "aggregate:\n  aji: {min: 0.9}\n  dsb_score: {min: 0.8}\n"
        "image_mean:\n  rq: {min: 0.95}\n"
    )
    result = pytester.runpytest(
        "--pyargs", "segqc.qc_tests", "--predictions", str(qc.predictions),
        "--qc-target", str(qc.target), "--thresholds", str(limits),
    )  # fmt: skip
    result.assert_outcomes(passed=2, failed=3, skipped=OPTIONAL_SKIPPED)
    result.stdout.fnmatch_lines(
        [
            "*img01.tif: seg = 0.6 < min 0.7 (off by 0.1; thresholds.yaml per_image.seg.min)*",
            # pooled AJI = (10 + 6 + 10) A / 30 A
            "*pooled: aji = 0.8667 < min 0.9 (off by 0.03333; thresholds.yaml aggregate.aji.min)*",
            # image mean RQ = (1 + 0.75 + 1) / 3
            "*image mean: rq = 0.9167 < min 0.95*",
        ]
    )
    import json

    summary = json.loads((pytester.path / "qc-output" / "summary.json").read_text())
    img01 = summary["images"][1]["metrics"]
    assert (img01["seg"], img01["aji"], img01["dsb_score"]) == pytest.approx((0.6, 0.6, 0.6))
    assert (img01["sq"], img01["rq"]) == pytest.approx((1.0, 0.75))
    assert summary["aggregate"]["pooled"]["dsb_score"] == pytest.approx(26 / 30)
