"""The QC metrics of one image, pooled over a dataset, or averaged over images.

This module only combines :mod:`segqc.metrics.pixel` (foreground IoU),
:mod:`segqc.metrics.matching` (object matching) and :mod:`segqc.metrics.community`
(SEG, AJI, DSB score, SQ, RQ) into one table: ZeroCostDL4Mic's 13 columns, then the
community metrics. The overlap table of an image is counted once and shared by all.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from segqc.metrics import community
from segqc.metrics.catalogue import METRIC_KEYS, ZEROCOST_KEYS
from segqc.metrics.community import DSB_THRESHOLDS, AjiCounts, DsbCounts, SegCounts
from segqc.metrics.matching import (
    LabelOverlaps,
    MatchingStats,
    label_overlaps,
    match_overlaps_at,
    pool_matching,
)
from segqc.metrics.pixel import ForegroundOverlap, foreground_overlap

__all__ = ["QcScores", "image_mean", "measure", "metric_columns", "pool"]


@dataclass(frozen=True, slots=True)
class QcScores:
    """Everything measured on one image (or a pooled dataset), kept as counts.

    Attributes
    ----------
    foreground : ForegroundOverlap
        Pixel IoU counts.
    matching : MatchingStats
        Matching at ``matching.iou_threshold``.
    seg, aji, dsb : SegCounts, AjiCounts, DsbCounts
        The counts of the community metrics (see :mod:`segqc.metrics.community`).
    """

    foreground: ForegroundOverlap
    matching: MatchingStats
    seg: SegCounts
    aji: AjiCounts
    dsb: DsbCounts

    def values(self) -> dict[str, float]:
        """Every metric by key, in the order of :data:`~segqc.metrics.catalogue.METRICS`."""
        row: dict[str, float] = {"pixel_iou": self.foreground.iou}
        for key in ZEROCOST_KEYS[1:]:
            row[key] = getattr(self.matching, key)
        row["seg"] = self.seg.seg
        row["aji"] = self.aji.aji
        row["dsb_score"] = self.dsb.score
        row["sq"] = community.segmentation_quality(self.matching)
        row["rq"] = community.recognition_quality(self.matching)
        return row

    def to_dict(self) -> dict[str, Any]:
        """The counts as JSON-ready data (see :meth:`from_dict`)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> QcScores:
        """Rebuild scores written by :meth:`to_dict` (e.g. sent by an xdist worker)."""
        return cls(
            foreground=ForegroundOverlap(**data["foreground"]),
            matching=MatchingStats(**data["matching"]),
            seg=SegCounts(**data["seg"]),
            aji=AjiCounts(**data["aji"]),
            dsb=DsbCounts(**{key: tuple(value) for key, value in data["dsb"].items()}),
        )


def measure(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    *,
    iou_threshold: float = 0.5,
    overlaps: LabelOverlaps | None = None,
) -> QcScores:
    """Compute every QC metric of one image pair.

    Parameters
    ----------
    y_true, y_pred : np.ndarray
        Ground-truth and predicted label images (0 = background), same shape, 2D or 3D.
    iou_threshold : float
        A predicted object matches a ground-truth object when their IoU >= this.
    overlaps : LabelOverlaps, optional
        ``label_overlaps(y_true, y_pred)`` when the caller already counted them (the
        session reuses them for the object matches and the accuracy curve).

    Returns
    -------
    QcScores
    """
    if overlaps is None:
        overlaps = label_overlaps(y_true, y_pred)
    stats = match_overlaps_at(overlaps, iou_thresholds=(iou_threshold, *DSB_THRESHOLDS))
    return QcScores(
        foreground=foreground_overlap(y_true, y_pred),
        matching=stats[0],
        seg=community.seg_counts(overlaps),
        aji=community.aji_counts(overlaps),
        dsb=community.dsb_counts(stats[1:]),
    )


def pool(scores: Sequence[QcScores]) -> QcScores:
    """Pool images into one dataset score.

    Counts (tp, fp, fn, n_true, n_pred, foreground pixels, matched IoU sums) are summed
    and the ratios recomputed from the sums, like
    ``stardist.matching.matching_dataset(..., by_image=False)``: large images with many
    objects weigh more than small ones. The community metrics pool the same way:

    * ``seg``: mean Jaccard over every reference object of every image (as the Cell
      Tracking Challenge computes SEG over a whole sequence);
    * ``aji``: sum of intersections / sum of unions, i.e. the AJI of all images placed
      side by side;
    * ``dsb_score``: tp, fp, fn summed at each threshold, then the mean of the ratios
      (Kaggle's own per-image average is the ``image_mean`` scope);
    * ``sq``, ``rq``: from the pooled matching.
    """
    if not scores:
        raise ValueError("cannot pool an empty list of images")
    return QcScores(
        foreground=ForegroundOverlap(
            intersection=sum(s.foreground.intersection for s in scores),
            union=sum(s.foreground.union for s in scores),
        ),
        matching=pool_matching([s.matching for s in scores]),
        seg=community.pool_seg([s.seg for s in scores]),
        aji=community.pool_aji([s.aji for s in scores]),
        dsb=community.pool_dsb([s.dsb for s in scores]),
    )


def image_mean(scores: Sequence[QcScores]) -> dict[str, float]:
    """Mean of every metric over images: each image weighs the same.

    The ratios equal ``stardist.matching.matching_dataset(..., by_image=True)`` to
    float32 precision (within 5e-8: stardist accumulates some of them in float32), not
    bit for bit; counts are averaged too (stardist sums them), so a count limit reads
    "per image on average". Like stardist, a 0/0 ratio counts as its value here (0 for
    the matching ratios); the ``image_mean`` limits are judged on
    :func:`segqc.checks.quality.defined_image_mean`, which leaves a negative control's
    0/0 ratios out.
    """
    if not scores:
        raise ValueError("cannot average an empty list of images")
    return {
        key: float(np.mean(row))
        for key, row in zip(METRIC_KEYS, metric_columns(scores), strict=True)
    }


def metric_columns(scores: Sequence[QcScores]) -> np.ndarray:
    """Every metric of every image in one array, read an image at a time.

    Parameters
    ----------
    scores : sequence of QcScores
        One per image.

    Returns
    -------
    np.ndarray
        float64, shape ``(len(METRIC_KEYS), len(scores))``: row ``k`` holds metric
        ``METRIC_KEYS[k]`` of every image, in order. Only one image's
        :meth:`QcScores.values` exists at a time: those of 10,000 images at once are
        19 MiB of dicts, and memory freed in such small pieces is not given back.
    """
    columns = np.empty((len(METRIC_KEYS), len(scores)), dtype=np.float64)
    for index, image in enumerate(scores):
        values = image.values()
        columns[:, index] = [values[key] for key in METRIC_KEYS]
    return columns
