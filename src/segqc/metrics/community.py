"""The scores other communities gate on: CTC SEG, AJI, the DSB 2018 score, SQ and RQ.

Each score is kept as the counts it is made of (frozen dataclasses), so that a QC set
can be pooled exactly (:func:`pool_seg`, :func:`pool_aji`, :func:`pool_dsb`), and
computed from the sparse overlap table of :func:`segqc.metrics.matching.label_overlaps`:
only pairs of objects that touch are ever looked at, in 2D and 3D alike.

Empty images: when neither the ground truth nor the prediction has an object, SEG, AJI
and the DSB score are 1.0 (perfect agreement, as ``pixel_iou``). The panoptic factors
follow stardist's convention instead (0 when their denominator is 0), so that
``panoptic_quality == sq * rq`` always holds. These are the recorded values; a 0/0
score of a negative control (no ground-truth object) is not judged
(:func:`segqc.checks.quality.undefined_metrics`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from segqc.metrics.matching import LabelOverlaps, MatchingStats

__all__ = [
    "DSB_THRESHOLDS",
    "AjiCounts",
    "DsbCounts",
    "SegCounts",
    "aji_counts",
    "dsb_counts",
    "pool_aji",
    "pool_dsb",
    "pool_seg",
    "recognition_quality",
    "seg_counts",
    "segmentation_quality",
]

#: IoU thresholds of the Data Science Bowl 2018 score: 0.5, 0.55, ..., 0.95.
DSB_THRESHOLDS: tuple[float, ...] = tuple(round(0.5 + 0.05 * i, 2) for i in range(10))


@dataclass(frozen=True, slots=True)
class SegCounts:
    """Cell Tracking Challenge SEG as a sum over reference objects.

    Attributes
    ----------
    n_true : int
        Reference (ground-truth) objects.
    n_pred : int
        Predicted objects (only used for the empty-image convention).
    sum_jaccard : float
        Sum over reference objects of the Jaccard index with their match (0 if none).
    """

    n_true: int
    n_pred: int
    sum_jaccard: float

    @property
    def seg(self) -> float:
        """``sum_jaccard / n_true``; 1.0 if both images are empty, 0.0 if only the GT is."""
        if self.n_true == 0:
            return 1.0 if self.n_pred == 0 else 0.0
        return self.sum_jaccard / self.n_true


@dataclass(frozen=True, slots=True)
class AjiCounts:
    """Aggregated Jaccard index as its two pixel sums."""

    intersection: int
    union: int

    @property
    def aji(self) -> float:
        """``intersection / union``; 1.0 when both images are empty."""
        return self.intersection / self.union if self.union else 1.0


@dataclass(frozen=True, slots=True)
class DsbCounts:
    """tp, fp, fn at each IoU threshold of :data:`DSB_THRESHOLDS`."""

    tp: tuple[int, ...]
    fp: tuple[int, ...]
    fn: tuple[int, ...]

    @property
    def score(self) -> float:
        """Mean over thresholds of ``tp / (tp + fp + fn)`` (1.0 where that is 0/0)."""
        per_threshold = [
            tp / (tp + fp + fn) if tp + fp + fn else 1.0
            for tp, fp, fn in zip(self.tp, self.fp, self.fn, strict=True)
        ]
        return float(np.mean(per_threshold))


def seg_counts(overlaps: LabelOverlaps) -> SegCounts:
    """Cell Tracking Challenge SEG measure, as counts.

    Parameters
    ----------
    overlaps : LabelOverlaps
        From :func:`segqc.metrics.matching.label_overlaps` (ground truth = reference).

    Returns
    -------
    SegCounts
        ``.seg`` is the score.

    Notes
    -----
    A reference object :math:`R` matches the predicted object :math:`S` when
    :math:`|R \\cap S| > 0.5 \\, |R|` (at most one :math:`S` can). Then

    .. math:: \\mathrm{SEG} = \\frac{1}{n_{true}} \\sum_R J(R, S_R), \\qquad
              J(R, S) = \\frac{|R \\cap S|}{|R \\cup S|}

    with :math:`J = 0` for an unmatched :math:`R`. False positives do not lower SEG;
    gate them with ``precision`` or ``fp``. The comparison is done on integer pixel
    counts, so ``|R ∩ S|`` exactly half of ``|R|`` is not a match.

    References
    ----------
    .. [1] Maška et al., "A benchmark for comparison of cell tracking algorithms",
       Bioinformatics 30(11), 2014 (SEG); Ulman et al., "An objective comparison of
       cell-tracking algorithms", Nature Methods 14, 2017.
    """
    inter = overlaps.intersections
    area_true = overlaps.area_true[overlaps.true_index]
    area_pred = overlaps.area_pred[overlaps.pred_index]
    matched = 2 * inter > area_true
    union = area_true[matched] + area_pred[matched] - inter[matched]
    jaccard = inter[matched].astype(np.float64) / union.astype(np.float64)
    return SegCounts(overlaps.n_true, overlaps.n_pred, float(np.sum(jaccard)))


def aji_counts(overlaps: LabelOverlaps) -> AjiCounts:
    """Aggregated Jaccard index (Kumar et al. 2017), as its pixel sums.

    Parameters
    ----------
    overlaps : LabelOverlaps
        From :func:`segqc.metrics.matching.label_overlaps`.

    Returns
    -------
    AjiCounts
        ``.aji`` is the score. It does not depend on the label ids of either image.

    Notes
    -----
    Algorithm 1 of [1]_: each ground-truth object :math:`G_i` is paired with the
    predicted object :math:`S_j` of largest IoU; :math:`C \\mathrel{+}= |G_i \\cap S_j|`,
    :math:`U \\mathrel{+}= |G_i \\cup S_j|` and :math:`S_j` is marked used. Every
    predicted object never used is added to the union: :math:`U \\mathrel{+}= |S_k|`.
    :math:`\\mathrm{AJI} = C / U`. A predicted object may be the best partner of several
    ground-truth objects; it is then counted in each of their unions (as in the paper).

    Choices the paper leaves open, taken as in the widely used implementation of
    HoVer-Net (``get_fast_aji`` [2]_):

    * a ground-truth object that overlaps no prediction adds only :math:`|G_i|` to
      :math:`U` (it is not paired with an arbitrary, non-touching :math:`S_j`);
    * of two predictions with exactly the same IoU, the one with the larger union (so
      the larger intersection) is the partner. ``get_fast_aji`` divides by the union
      plus 1e-6, which makes the larger union win an exact tie.

    IoUs are compared exactly (integer cross-multiplication of the pixel counts where
    float64 cannot tell them apart), never by label. Predictions with the same
    intersection *and* union are interchangeable for :math:`C` and :math:`U` but not for
    which one stays unused; ``get_fast_aji`` takes the smallest label there, so its
    AJI then depends on the label ids. segqc takes them so that the fewest predicted
    pixels stay unused (a maximum-weight matching of those ground-truth objects to the
    tied predictions not already used), the same for every labelling. Where no object
    has two such partners, the AJI is ``get_fast_aji``'s (up to its float64 rounding).

    References
    ----------
    .. [1] Kumar et al., "A Dataset and a Technique for Generalized Nuclear
       Segmentation for Computational Pathology", IEEE TMI 36(7), 2017.
    .. [2] Graham et al., "HoVer-Net", Medical Image Analysis 58, 2019;
       ``get_fast_aji`` in its ``metrics/stats_utils.py``.
    """
    true_index, pred_index = overlaps.true_index, overlaps.pred_index
    inter = overlaps.intersections.astype(np.int64)
    area_true = overlaps.area_true.astype(np.int64)
    area_pred = overlaps.area_pred.astype(np.int64)
    union = area_true[true_index] + area_pred[pred_index] - inter
    best, tied = _best_partners(true_index, inter, union)
    used = np.zeros(overlaps.n_pred + 1, bool)
    used[pred_index[best]] = True
    paired_true = np.zeros(overlaps.n_true + 1, bool)
    paired_true[true_index[best]] = True
    # Tied pairs of one object share their intersection and union: count the first.
    firsts = [pairs[0] for pairs in tied]
    paired_true[true_index[firsts]] = True
    used[_tied_partners_used(tied, pred_index, area_pred, used)] = True
    intersection = int(np.sum(inter[best])) + int(np.sum(inter[firsts]))
    total = (
        int(np.sum(union[best]))
        + int(np.sum(union[firsts]))
        + int(np.sum(area_true[1:][~paired_true[1:]]))
        + int(np.sum(area_pred[1:][~used[1:]]))
    )
    return AjiCounts(intersection, total)


def _best_partners(
    true_index: np.ndarray, inter: np.ndarray, union: np.ndarray
) -> tuple[np.ndarray, list[list[int]]]:
    """The best pair of each ground-truth object: largest IoU, then largest union.

    Returns the indices of the pairs that are the unique best of their object, and, for
    objects whose best pairs tie on both intersection and union, the list of those pairs.
    Pairs are sorted by ground-truth object (:class:`LabelOverlaps`).
    """
    if len(true_index) == 0:
        return np.zeros(0, np.int64), []
    iou = inter.astype(np.float64) / union.astype(np.float64)
    starts = np.flatnonzero(np.r_[True, true_index[1:] != true_index[:-1]])
    counts = np.diff(np.r_[starts, len(true_index)])
    # Division is correctly rounded, so rounding keeps the order of exact ratios: the
    # exact maximum is among the pairs whose float IoU equals the float maximum, and
    # every other pair is exactly smaller.
    top = iou == np.repeat(np.maximum.reduceat(iou, starts), counts)
    n_top = np.add.reduceat(top.astype(np.int64), starts)
    contenders = np.flatnonzero(top)
    single = np.repeat(n_top == 1, n_top)
    best = [contenders[single]]
    tied: list[list[int]] = []
    several = contenders[~single]  # still sorted by object: split where the object changes
    split = np.flatnonzero(true_index[several][1:] != true_index[several][:-1]) + 1
    for group in np.split(several, split) if len(several) else []:
        pairs = [int(k) for k in group]
        # a/b > c/d exactly  <=>  a*d > c*b, in Python integers (no overflow).
        winner = pairs[0]
        for k in pairs[1:]:
            lhs, rhs = int(inter[k]) * int(union[winner]), int(inter[winner]) * int(union[k])
            if lhs > rhs or (lhs == rhs and union[k] > union[winner]):
                winner = k
        ties = [k for k in pairs if inter[k] == inter[winner] and union[k] == union[winner]]
        if len(ties) == 1:
            best.append(np.array([winner], np.int64))
        else:
            tied.append(ties)
    return np.sort(np.concatenate(best)), tied


def _tied_partners_used(
    tied: list[list[int]], pred_index: np.ndarray, area_pred: np.ndarray, used: np.ndarray
) -> np.ndarray:
    """The predicted objects marked used by objects whose best partners tie exactly.

    Each such object marks one of its tied partners used; the choice that leaves the
    fewest predicted pixels unused is a maximum-weight matching of those objects to the
    tied partners not used already (all partners of one object have the same area, its
    weight). Solved sparse: each object may also take a dummy column of its own (no new
    partner), so that a full matching of minimal cost ``max_area + 1 - area`` exists.
    """
    if not tied:
        return np.zeros(0, np.int64)
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import min_weight_full_bipartite_matching

    free = np.setdiff1d(pred_index[np.concatenate(tied)], np.flatnonzero(used))
    if len(free) == 0:
        return np.zeros(0, np.int64)
    pairs = np.concatenate(tied)
    rows = np.repeat(np.arange(len(tied)), [len(p) for p in tied])
    partners = pred_index[pairs]
    cols = np.minimum(np.searchsorted(free, partners), len(free) - 1)
    keep = free[cols] == partners  # a partner already used cannot add anything
    weights = area_pred[partners[keep]].astype(np.float64)
    n = len(tied)
    ceiling = float(weights.max(initial=0.0)) + 1.0
    graph = csr_matrix(
        (
            np.r_[ceiling - weights, np.full(n, ceiling)],
            (np.r_[rows[keep], np.arange(n)], np.r_[cols[keep], len(free) + np.arange(n)]),
        ),
        shape=(n, len(free) + n),
    )
    _, matched = min_weight_full_bipartite_matching(graph)
    return free[matched[matched < len(free)]]


def dsb_counts(stats: Sequence[MatchingStats]) -> DsbCounts:
    """Data Science Bowl 2018 score, as tp/fp/fn at each of its thresholds.

    Parameters
    ----------
    stats : sequence of MatchingStats
        :func:`segqc.metrics.matching.match_labels_at` (or ``match_overlaps_at``) at
        :data:`DSB_THRESHOLDS`, in that order.

    Returns
    -------
    DsbCounts
        ``.score`` is the score.

    Notes
    -----
    .. math:: \\mathrm{DSB} = \\frac{1}{10} \\sum_{t \\in \\{0.5, 0.55, \\dots, 0.95\\}}
              \\frac{TP(t)}{TP(t) + FP(t) + FN(t)}

    with the one-to-one matching of ``stardist.matching`` at each t: a pair counts when
    its IoU >= t, as cellpose's ``metrics.average_precision`` counts it (for t > 0.5
    each object has at most one such partner, so no assignment is needed). The
    competition's description says IoU > t; the two differ only for a pair whose IoU is
    exactly a threshold. Kaggle averaged the score per image over the test set:
    segqc's ``image_mean`` scope.

    References
    ----------
    .. [1] Caicedo et al., "Nucleus segmentation across imaging experiments: the 2018
       Data Science Bowl", Nature Methods 16, 2019.
    """
    got = tuple(s.iou_threshold for s in stats)
    if got != DSB_THRESHOLDS:
        raise ValueError(f"dsb_counts needs statistics at {DSB_THRESHOLDS}, got {got}")
    return DsbCounts(
        tp=tuple(s.tp for s in stats), fp=tuple(s.fp for s in stats), fn=tuple(s.fn for s in stats)
    )


def segmentation_quality(stats: MatchingStats) -> float:
    """SQ, the segmentation-quality factor of panoptic quality.

    :math:`\\mathrm{SQ} = \\sum_{(p, g) \\in TP} \\mathrm{IoU}(p, g) / |TP|` (0 when
    :math:`|TP| = 0`), at the matching's IoU threshold. Equal to stardist's
    ``mean_matched_score``.

    References
    ----------
    .. [1] Kirillov et al., "Panoptic Segmentation", CVPR 2019, Eq. 2.
    """
    return stats.mean_matched_score


def recognition_quality(stats: MatchingStats) -> float:
    """RQ, the recognition-quality factor of panoptic quality.

    :math:`\\mathrm{RQ} = |TP| / (|TP| + |FP|/2 + |FN|/2)` (0 when the denominator is
    0), so that :math:`\\mathrm{PQ} = \\mathrm{SQ} \\times \\mathrm{RQ}`; RQ equals the
    F1 score.

    References
    ----------
    .. [1] Kirillov et al., "Panoptic Segmentation", CVPR 2019, Eq. 2.
    """
    tp, fp, fn = stats.tp, stats.fp, stats.fn
    return tp / (tp + fp / 2 + fn / 2) if tp + fp + fn > 0 else 0.0


def pool_seg(counts: Sequence[SegCounts]) -> SegCounts:
    """SEG over a dataset: mean Jaccard over every reference object of every image."""
    return SegCounts(
        n_true=sum(c.n_true for c in counts),
        n_pred=sum(c.n_pred for c in counts),
        sum_jaccard=float(sum(c.sum_jaccard for c in counts)),
    )


def pool_aji(counts: Sequence[AjiCounts]) -> AjiCounts:
    """AJI over a dataset: sum of intersections / sum of unions (one big image)."""
    return AjiCounts(sum(c.intersection for c in counts), sum(c.union for c in counts))


def pool_dsb(counts: Sequence[DsbCounts]) -> DsbCounts:
    """DSB score over a dataset from tp, fp, fn summed at each threshold."""
    return DsbCounts(
        tp=tuple(int(x) for x in np.sum([c.tp for c in counts], axis=0)),
        fp=tuple(int(x) for x in np.sum([c.fp for c in counts], axis=0)),
        fn=tuple(int(x) for x in np.sum([c.fn for c in counts], axis=0)),
    )
