"""Evaluate one QC image: read its ground truth, predict it (or read its prediction), measure.

:func:`evaluate_image` is the whole per-image pipeline. It never raises for anything
that is wrong with one image: whatever goes wrong, at whichever stage, becomes that
image's :attr:`~segqc.pipeline.outcome.ImageOutcome.error`, one line naming the file
and the problem, and the other images are evaluated as usual. While the arrays are in
memory it hands them to ``on_measured`` (the session stores the prediction and draws
the report's panels there), so no image is read twice and none is kept.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from segqc.data.axes import ImageInputError, read_source_image
from segqc.data.images import ImageReadError, read_tiff
from segqc.data.pairing import QcPair
from segqc.metrics.matching import (
    LabelImageError,
    MatchedPairs,
    check_label_image,
    label_overlaps,
    match_overlaps_at,
    matched_pairs_of,
)
from segqc.metrics.object_matches import area_bins, object_matches_of
from segqc.metrics.scores import QcScores, measure
from segqc.pipeline.outcome import ImageOutcome
from segqc.predict import Predictor
from segqc.predict.model_folder import ModelFolder

__all__ = ["EvaluationSettings", "MeasuredImage", "evaluate_image"]


@dataclass(frozen=True)
class EvaluationSettings:
    """How every image of a session is measured.

    Attributes
    ----------
    iou_threshold : float
        ``matching.iou_threshold``: a predicted object matches at this IoU or above.
    curve_thresholds : tuple of float
        Thresholds each image is also matched at, for the accuracy curve.
    size_bin_edges : tuple of float or None
        ``subgroups.object_size.edges`` (None: no size bins).
    model : ModelFolder or None
        The model under test: source images are read fitted to its axes and channels.
    """

    iou_threshold: float
    curve_thresholds: tuple[float, ...]
    size_bin_edges: tuple[float, ...] | None = None
    model: ModelFolder | None = None


@dataclass(frozen=True)
class MeasuredImage:
    """One image's arrays, handed to ``on_measured`` while they are in memory.

    ``source`` is the image the model predicted from (None when the predictions were
    read from a folder); ``predicted_here`` is True when the labels were predicted in
    this session.
    """

    pair: QcPair
    target: np.ndarray
    predicted: np.ndarray
    source: np.ndarray | None
    scores: QcScores
    matches: MatchedPairs
    iou_threshold: float
    predicted_here: bool


class _ImageFailure(Exception):
    """Ends one image's evaluation; the message is the outcome's error line."""


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _failure(where: Path | str, stage: str, exc: BaseException) -> _ImageFailure:
    """One line naming the file, the stage and the problem.

    segqc's own errors already start with the file; anything else (a model raising on
    one image, an array too large for memory) gets the file and its type added.
    """
    if isinstance(exc, ImageReadError | LabelImageError | ImageInputError):
        text = _one_line(exc)
        return _ImageFailure(text if text.startswith(str(where)) else f"{where}: {text}")
    if isinstance(exc, MemoryError):
        verb = "predict" if stage == "prediction" else stage
        return _ImageFailure(f"{where}: not enough memory to {verb} this image")
    return _ImageFailure(f"{where}: {stage} failed ({type(exc).__name__}: {_one_line(exc)})")


def _checked_labels(
    labels: np.ndarray, where: Path | str, role: str, notes: list[str]
) -> np.ndarray:
    """Check a label image; a binary mask becomes one object per connected component."""
    if labels.dtype == np.bool_:
        from skimage.measure import label

        notes.append(
            f"{where}: binary {role} mask; objects taken as its connected components "
            "(touching objects merge — save a label image to avoid this)"
        )
        return np.asarray(label(labels, connectivity=1))
    try:
        return check_label_image(labels, role=role)
    except LabelImageError as exc:
        raise LabelImageError(f"{where}: {exc}") from None


def evaluate_image(
    pair: QcPair,
    *,
    predictor: Predictor,
    settings: EvaluationSettings,
    on_measured: Callable[[MeasuredImage], None] | None = None,
) -> ImageOutcome:
    """Read, predict and measure one QC image.

    Parameters
    ----------
    pair : QcPair
        The image and its ground truth.
    predictor : Predictor
        Where the predicted labels come from.
    settings : EvaluationSettings
        Matching threshold, curve thresholds, size bins and model.
    on_measured : callable, optional
        Called with the image's arrays once it is measured; an exception it raises
        fails the image like any other.

    Returns
    -------
    ImageOutcome
        With scores, or with ``error`` set to one line naming the file and the problem.
        Never raises for a problem of the image (``KeyboardInterrupt`` and other
        :class:`BaseException` that are not errors still propagate).
    """
    started = time.perf_counter()
    notes: list[str] = []
    fields: dict[str, object] = {}
    try:
        _evaluate_into(fields, notes, pair, predictor, settings, on_measured)
    except _ImageFailure as exc:
        fields = {"error": str(exc), "scores": None}
    return ImageOutcome(
        pair,
        notes=tuple(notes),
        seconds=time.perf_counter() - started,
        **fields,  # type: ignore[arg-type]
    )


def _evaluate_into(
    fields: dict[str, object],
    notes: list[str],
    pair: QcPair,
    predictor: Predictor,
    settings: EvaluationSettings,
    on_measured: Callable[[MeasuredImage], None] | None,
) -> None:
    try:
        target = _checked_labels(read_tiff(pair.target), pair.target, "ground truth", notes)
    except Exception as exc:
        raise _failure(pair.target, "read", exc) from None
    image = None
    if predictor.needs_source_image:
        if pair.source is None:
            raise _ImageFailure(f"{pair.name}: no source image to predict from")
        try:
            # Channel axis last, checked against the model (segqc.data.axes).
            image = read_source_image(
                pair.source, spatial_shape=target.shape, model=settings.model
            )
        except Exception as exc:
            raise _failure(pair.source, "read", exc) from None
        spatial = image.shape[: target.ndim]
        if spatial != target.shape or image.ndim not in (target.ndim, target.ndim + 1):
            raise _ImageFailure(
                f"{pair.name}: source image shape {image.shape} and ground truth shape "
                f"{target.shape} differ"
            )
    try:
        result = predictor.predict(pair, image)
    except ImageReadError as exc:  # an unreadable prediction file: its message names it
        raise _ImageFailure(_one_line(exc)) from None
    except Exception as exc:  # a model failing on one image must not stop the others
        raise _failure(pair.source or pair.name, "prediction", exc) from None
    where = result.path or pair.name
    try:
        predicted = _checked_labels(np.asarray(result.labels), where, "prediction", notes)
    except Exception as exc:
        raise _failure(where, "read", exc) from None
    if predicted.shape != target.shape:
        raise _ImageFailure(
            f"{pair.name}: prediction shape {predicted.shape} and ground truth shape "
            f"{target.shape} differ"
        )
    try:
        # One overlap count serves the metrics, the object matches, the accuracy curve
        # and the error map.
        overlaps = label_overlaps(target, predicted)
        threshold = settings.iou_threshold
        scores = measure(target, predicted, iou_threshold=threshold, overlaps=overlaps)
        matches = matched_pairs_of(overlaps, iou_threshold=threshold)
        curve = match_overlaps_at(overlaps, iou_thresholds=settings.curve_thresholds)
        bins = None
        if settings.size_bin_edges is not None:
            bins = area_bins(object_matches_of(overlaps, matches), settings.size_bin_edges)
    except Exception as exc:
        raise _failure(pair.name, "measure", exc) from None
    del overlaps
    if on_measured is not None:
        measured = MeasuredImage(
            pair, target, predicted, image, scores, matches, threshold, predictor.needs_source_image
        )
        try:
            on_measured(measured)
        except Exception as exc:
            raise _failure(pair.name, "store or draw", exc) from None
    fields.update(
        scores=scores,
        prediction_file=result.path,
        n_tiles=result.n_tiles,
        blocks=result.blocks,
        cached=result.cached,
        curve=curve,
        area_bins=bins,
    )
