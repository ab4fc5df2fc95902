"""The 13 QC metrics of one image, pooled over a dataset, or averaged over images.

This module only combines :mod:`segqc.metrics.pixel` (foreground IoU) and
:mod:`segqc.metrics.matching` (object matching) into the table ZeroCostDL4Mic users know.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from segqc.metrics.catalogue import METRIC_KEYS
from segqc.metrics.matching import MatchingStats, match_labels, pool_matching
from segqc.metrics.pixel import ForegroundOverlap, foreground_overlap

__all__ = ["QcScores", "image_mean", "measure", "pool"]


@dataclass(frozen=True)
class QcScores:
    """Foreground overlap and object matching of one image (or a pooled dataset)."""

    foreground: ForegroundOverlap
    matching: MatchingStats

    def values(self) -> dict[str, float]:
        """The 13 metrics by key, in the order of :data:`~segqc.metrics.catalogue.METRICS`."""
        row: dict[str, float] = {"pixel_iou": self.foreground.iou}
        for key in METRIC_KEYS[1:]:
            row[key] = getattr(self.matching, key)
        return row


def measure(y_true: np.ndarray, y_pred: np.ndarray, *, iou_threshold: float = 0.5) -> QcScores:
    """Compute every QC metric of one image pair.

    Parameters
    ----------
    y_true, y_pred : np.ndarray
        Ground-truth and predicted label images (0 = background), same shape.
    iou_threshold : float
        A predicted object matches a ground-truth object when their IoU >= this.

    Returns
    -------
    QcScores
    """
    return QcScores(
        foreground=foreground_overlap(y_true, y_pred),
        matching=match_labels(y_true, y_pred, iou_threshold=iou_threshold),
    )


def pool(scores: Sequence[QcScores]) -> QcScores:
    """Pool images into one dataset score.

    Counts (tp, fp, fn, n_true, n_pred, foreground pixels, matched IoU sums) are summed
    and the ratios recomputed from the sums, like
    ``stardist.matching.matching_dataset(..., by_image=False)``: large images with many
    objects weigh more than small ones.
    """
    if not scores:
        raise ValueError("cannot pool an empty list of images")
    return QcScores(
        foreground=ForegroundOverlap(
            intersection=sum(s.foreground.intersection for s in scores),
            union=sum(s.foreground.union for s in scores),
        ),
        matching=pool_matching([s.matching for s in scores]),
    )


def image_mean(scores: Sequence[QcScores]) -> dict[str, float]:
    """Mean of every metric over images: each image weighs the same.

    The ratios equal ``stardist.matching.matching_dataset(..., by_image=True)``; counts
    are averaged too (stardist sums them), so a count limit reads "per image on average".
    """
    if not scores:
        raise ValueError("cannot average an empty list of images")
    rows = [s.values() for s in scores]
    return {key: float(np.mean([row[key] for row in rows])) for key in METRIC_KEYS}
