"""Which ground-truth object matched which predicted object, and with what IoU.

:func:`segqc.metrics.matching.match_labels` returns counts and sums only; the subgroup
checks (recall and mean IoU per object-size bin) need the matched pairs themselves. This
module reuses the same sparse overlaps and the same assignment rule, so its true
positives are exactly those counted by ``match_labels`` (and by
``stardist.matching.matching(..., report_matches=True)``, whose ``matched_tps`` select
the same pairs).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from segqc.metrics.matching import LabelImageError, _Overlaps, _overlaps, check_label_image

__all__ = ["ObjectMatches", "match_objects"]


@dataclass(frozen=True)
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

    @property
    def is_matched(self) -> np.ndarray:
        """Boolean mask over the ground-truth objects: true positives."""
        return self.matched_pred > 0


def match_objects(
    y_true: np.ndarray, y_pred: np.ndarray, *, iou_threshold: float = 0.5
) -> ObjectMatches:
    """Match objects one-to-one and report each ground-truth object's partner.

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
    The assignment is the one of :func:`segqc.metrics.matching.match_labels_at`: pairs
    with IoU >= threshold are kept directly where no object is in two of them; in the
    connected components of the overlap graph where they conflict, stardist's cost
    ``-[IoU >= thr] - IoU / (2 min(n_true, n_pred))`` is minimised with
    :func:`scipy.optimize.linear_sum_assignment`.
    """
    if not (isinstance(iou_threshold, int | float) and 0 < iou_threshold <= 1):
        raise ValueError(f"iou_threshold must be a number in (0, 1], got {iou_threshold!r}")
    y_true = check_label_image(y_true, role="ground truth")
    y_pred = check_label_image(y_pred, role="prediction")
    if y_true.shape != y_pred.shape:
        raise LabelImageError(
            f"ground truth has shape {y_true.shape} but prediction has shape "
            f"{y_pred.shape}; they must be the same"
        )
    true_values, true_areas = np.unique(y_true, return_counts=True)
    keep = true_values != 0
    true_values, true_areas = true_values[keep].astype(np.int64), true_areas[keep]
    pred_values = np.unique(y_pred)
    pred_values = pred_values[pred_values != 0].astype(np.int64)

    overlaps = _overlaps(y_true, y_pred)
    matched_iou = np.zeros(len(true_values), np.float32)
    matched_pred = np.zeros(len(true_values), np.int64)
    if min(overlaps.n_true, overlaps.n_pred) > 0:
        t_idx, p_idx, ious = _true_positives(overlaps, float(iou_threshold))
        matched_iou[t_idx - 1] = ious
        matched_pred[t_idx - 1] = pred_values[p_idx - 1]
    return ObjectMatches(float(iou_threshold), true_values, true_areas, matched_iou, matched_pred)


def _true_positives(overlaps: _Overlaps, thr: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(true index, pred index, IoU) of the true positives, 1-based sequential indices."""
    true_index, pred_index, scores = overlaps.true_index, overlaps.pred_index, overlaps.scores
    n_true, n_pred = overlaps.n_true, overlaps.n_pred
    ok = scores >= thr
    true_clash = np.bincount(true_index[ok], minlength=n_true + 1) > 1
    pred_clash = np.bincount(pred_index[ok], minlength=n_pred + 1) > 1
    if not (true_clash.any() or pred_clash.any()):
        return true_index[ok], pred_index[ok], scores[ok]

    n_nodes = n_true + n_pred + 2
    graph = coo_matrix(
        (np.ones(len(scores), np.int8), (true_index, n_true + 1 + pred_index)),
        shape=(n_nodes, n_nodes),
    )
    node_component = connected_components(graph, directed=False)[1]
    pair_component = node_component[true_index]
    clashing = np.union1d(
        node_component[np.flatnonzero(true_clash)],
        node_component[n_true + 1 + np.flatnonzero(pred_clash)],
    )
    in_clash = np.isin(pair_component, clashing)
    forced = ok & ~in_clash
    found_t, found_p, found_s = [true_index[forced]], [pred_index[forced]], [scores[forced]]
    n_matched = min(n_true, n_pred)
    for component in np.unique(pair_component[in_clash]):
        pairs = np.flatnonzero(in_clash & (pair_component == component))
        rows, row_of = np.unique(true_index[pairs], return_inverse=True)
        cols, col_of = np.unique(pred_index[pairs], return_inverse=True)
        block = np.zeros((len(rows), len(cols)), np.float32)
        block[row_of, col_of] = scores[pairs]
        costs = -(block >= thr).astype(float) - block / (2 * n_matched)
        r, c = linear_sum_assignment(costs)
        good = block[r, c] >= thr
        found_t.append(rows[r[good]])
        found_p.append(cols[c[good]])
        found_s.append(block[r, c][good])
    return np.concatenate(found_t), np.concatenate(found_p), np.concatenate(found_s)
