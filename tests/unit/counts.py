"""QcScores built from hand-chosen counts, for the statistics and regression tests."""

from __future__ import annotations

from segqc.metrics.community import AjiCounts, DsbCounts, SegCounts
from segqc.metrics.matching import MatchingStats
from segqc.metrics.pixel import ForegroundOverlap
from segqc.metrics.scores import QcScores


def scores_from_counts(tp: int, fp: int, fn: int, iou: float = 0.8) -> QcScores:
    """QcScores of an image with these counts, ratios written out by hand."""
    n_true, n_pred, sms = tp + fn, tp + fp, iou * tp
    return QcScores(
        foreground=ForegroundOverlap(intersection=tp * 10, union=(tp + fp + fn) * 10),
        matching=MatchingStats(
            iou_threshold=0.5, fp=fp, tp=tp, fn=fn,
            precision=tp / n_pred if tp else 0.0, recall=tp / n_true if tp else 0.0,
            accuracy=tp / (tp + fp + fn) if tp else 0.0,
            f1=2 * tp / (2 * tp + fp + fn) if tp else 0.0, n_true=n_true, n_pred=n_pred,
            mean_true_score=sms / n_true if n_true else 0.0,
            mean_matched_score=iou if tp else 0.0,
            panoptic_quality=sms / (tp + fp / 2 + fn / 2) if tp + fp + fn else 0.0,
            sum_matched_score=sms,
        ),
        seg=SegCounts(n_true=n_true, n_pred=n_pred, sum_jaccard=sms),
        aji=AjiCounts(intersection=tp * 10, union=(tp + fp + fn) * 10),
        dsb=DsbCounts(tp=(tp, tp // 2), fp=(fp, fp + tp - tp // 2), fn=(fn, fn + tp - tp // 2)),
    )  # fmt: skip
