"""Pixel-wise foreground IoU: ZeroCostDL4Mic's "Prediction v. GT Intersection over Union"."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["ForegroundOverlap", "foreground_overlap"]


@dataclass(frozen=True, slots=True)
class ForegroundOverlap:
    """Foreground pixel counts of one image pair.

    Kept as counts (not only the ratio) so a dataset can be pooled exactly:
    pooled IoU = sum of intersections / sum of unions.
    """

    intersection: int
    union: int

    @property
    def iou(self) -> float:
        """Intersection over union; 1.0 when both masks are empty (perfect agreement)."""
        return self.intersection / self.union if self.union else 1.0


def foreground_overlap(
    y_true: np.ndarray, y_pred: np.ndarray, *, chunk_pixels: int = 1 << 24
) -> ForegroundOverlap:
    """Count foreground pixels shared by two label images.

    Every non-zero pixel is foreground, whatever its label: this is a semantic (not an
    instance) score, computed like ZeroCostDL4Mic's ``getIoUvalue``.

    Parameters
    ----------
    y_true, y_pred : np.ndarray
        Label images of the same shape; 0 is background.
    chunk_pixels : int
        Pixels counted at a time (whole slices of the first axis), so a whole-slide pair
        needs no full-size masks; the counts do not depend on it.

    Returns
    -------
    ForegroundOverlap
        ``intersection = |T ∩ P|`` and ``union = |T ∪ P|`` with ``T = y_true > 0`` and
        ``P = y_pred > 0``; ``.iou`` is their ratio.

    Notes
    -----
    ZeroCostDL4Mic returns NaN (0/0) for two empty masks; segqc returns 1.0 so an image
    without objects that is correctly predicted empty does not fail a gate.
    """
    if y_true.shape != y_pred.shape:
        raise ValueError(
            f"ground truth shape {y_true.shape} and prediction shape {y_pred.shape} differ"
        )
    y_true, y_pred = np.atleast_1d(y_true), np.atleast_1d(y_pred)
    rows = max(1, chunk_pixels // max(y_true[:1].size, 1))
    intersection = union = 0
    for start in range(0, len(y_true), rows):
        true_fg = y_true[start : start + rows] != 0
        pred_fg = y_pred[start : start + rows] != 0
        intersection += int(np.count_nonzero(true_fg & pred_fg))
        union += int(np.count_nonzero(true_fg | pred_fg))
    return ForegroundOverlap(intersection=intersection, union=union)
