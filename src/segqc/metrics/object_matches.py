"""Which ground-truth object matched which predicted object, and with what IoU.

:func:`segqc.metrics.matching.match_labels` returns counts and sums only; the subgroup
checks (recall and mean IoU per object-size bin) need the matched pairs themselves. This
module adds each ground-truth object's area to the pairs of
:func:`segqc.metrics.matching.matched_pairs`, so its true positives are exactly those
counted by ``match_labels`` (and by ``stardist.matching.matching(...,
report_matches=True)``, whose ``matched_tps`` select the same pairs).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from segqc.metrics.matching import LabelOverlaps, MatchedPairs, label_overlaps, matched_pairs_of

__all__ = ["ObjectMatches", "match_objects", "object_matches_of"]


@dataclass(frozen=True, eq=False)
class ObjectMatches:
    """Every ground-truth object with its area, and the true-positive pairs.

    Attributes
    ----------
    iou_threshold : float
        Pairs with IoU >= this are true positives.
    true_labels : numpy.ndarray
        Label values of the ground-truth objects, ascending (int64).
    true_areas : numpy.ndarray
        Pixel (voxel) count of each ground-truth object, aligned with ``true_labels``.
    matched_iou : numpy.ndarray
        float32, aligned with ``true_labels``: the IoU of the object's true-positive
        partner, or 0 when the object is a false negative.
    matched_pred : numpy.ndarray
        int64, aligned with ``true_labels``: the partner's label value, or 0.
    """

    iou_threshold: float
    true_labels: np.ndarray
    true_areas: np.ndarray
    matched_iou: np.ndarray
    matched_pred: np.ndarray

    __hash__ = None  # type: ignore[assignment]

    def __eq__(self, other: object) -> bool:
        """Equal threshold and equal arrays (dataclass equality cannot compare arrays)."""
        if not isinstance(other, ObjectMatches):
            return NotImplemented
        return self.iou_threshold == other.iou_threshold and all(
            np.array_equal(getattr(self, name), getattr(other, name))
            for name in ("true_labels", "true_areas", "matched_iou", "matched_pred")
        )

    @property
    def is_matched(self) -> np.ndarray:
        """Boolean mask over the ground-truth objects: true positives."""
        return self.matched_pred > 0

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able data (for pytest-xdist workers; see :meth:`from_dict`)."""
        return {
            "iou_threshold": self.iou_threshold,
            "true_labels": self.true_labels.tolist(),
            "true_areas": self.true_areas.tolist(),
            "matched_iou": self.matched_iou.tolist(),
            "matched_pred": self.matched_pred.tolist(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ObjectMatches:
        """Rebuild from :meth:`to_dict` output."""
        return cls(
            float(data["iou_threshold"]),
            np.asarray(data["true_labels"], np.int64),
            np.asarray(data["true_areas"], np.int64),
            np.asarray(data["matched_iou"], np.float32),
            np.asarray(data["matched_pred"], np.int64),
        )


def match_objects(
    y_true: np.ndarray, y_pred: np.ndarray, *, iou_threshold: float = 0.5
) -> ObjectMatches:
    """Match objects one-to-one and report each ground-truth object's area and partner.

    Parameters
    ----------
    y_true, y_pred : numpy.ndarray
        Ground-truth and predicted label images of the same shape (0 = background).
    iou_threshold : float, optional
        In (0, 1]. Default 0.5.

    Returns
    -------
    ObjectMatches

    Raises
    ------
    LabelImageError
        Shape mismatch, non-integer dtype or negative labels.
    ValueError
        Threshold outside (0, 1].

    Notes
    -----
    The pairs are those of :func:`segqc.metrics.matching.matched_pairs`, i.e. the true
    positives of :func:`segqc.metrics.matching.match_labels`.
    """
    overlaps = label_overlaps(y_true, y_pred)
    return object_matches_of(overlaps, matched_pairs_of(overlaps, iou_threshold=iou_threshold))


def object_matches_of(overlaps: LabelOverlaps, pairs: MatchedPairs) -> ObjectMatches:
    """:func:`match_objects` from overlaps and pairs already computed for the image.

    Parameters
    ----------
    overlaps : LabelOverlaps
        From :func:`segqc.metrics.matching.label_overlaps`.
    pairs : MatchedPairs
        From :func:`segqc.metrics.matching.matched_pairs_of` on the same overlaps.

    Returns
    -------
    ObjectMatches
    """
    true_values = overlaps.true_values.astype(np.int64)
    # area_true[k] is the pixel count of true object k (1..n_true, in label order)
    true_areas = overlaps.area_true[1:].astype(np.int64)
    matched_iou = np.zeros(len(true_values), np.float32)
    matched_pred = np.zeros(len(true_values), np.int64)
    where = np.searchsorted(true_values, pairs.true_labels.astype(np.int64))
    matched_iou[where] = pairs.ious
    matched_pred[where] = pairs.pred_labels
    return ObjectMatches(pairs.iou_threshold, true_values, true_areas, matched_iou, matched_pred)
