"""Evaluate one QC image: read its ground truth, predict it (or read its prediction), measure.

:func:`evaluate_image` is the whole per-image pipeline. It never raises for anything
that is wrong with one image: whatever goes wrong, at whichever stage, becomes that
image's :attr:`~segqc.pipeline.outcome.ImageOutcome.error`, one line naming the file
and the problem, and the other images are evaluated as usual. While the arrays are in
memory it hands them to ``on_measured`` (the session stores the prediction and draws
the report's panels there), so no image is read twice and none is kept.

Labels in pieces
----------------
A prediction from another tool may not be an instance label image: a semantic mask (every
nucleus labelled 1), or labels numbered again from 1 in each tile. Its metrics would be
meaningless, yet look like a bad model. So each prediction is split into its connected
pieces once (full connectivity: 8 neighbours in 2D, 26 in 3D, so objects touching at a
corner are one piece) and, when :func:`split_labels_note` finds labels in several pieces,
the image gets a note (``ImageOutcome.notes``: summary.json, the terminal's NOTE lines)
that :func:`segqc.testing.assert_image` also raises as a
:class:`~segqc.testing.SegQcWarning` on the image's test. The check is one
connected-component pass (scikit-image's ``label``) over the prediction: 30 to 40 ms for
1024 x 1024 pixels, and 8 bytes a pixel while it runs, after the measuring has freed its
own arrays.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from segqc.data.axes import ImageInputError, check_source_layout, read_source_image
from segqc.data.images import ImageReadError, read_tiff
from segqc.data.pairing import QcPair
from segqc.metrics.matching import (
    LabelImageError,
    MatchedPairs,
    MatchingCurve,
    check_label_image,
    label_overlaps,
    match_overlaps_at,
    matched_pairs_of,
    mismatched_pixels_of,
)
from segqc.metrics.object_matches import area_bins, object_matches_of
from segqc.metrics.scores import QcScores, measure
from segqc.pipeline.outcome import DeviceComparison, ImageOutcome
from segqc.predict import Predictor
from segqc.predict.model_folder import ModelFolder

__all__ = [
    "SPLIT_LABELS_QUESTION",
    "EvaluationSettings",
    "MeasuredImage",
    "compare_predictions",
    "evaluate_image",
    "is_warning_note",
    "split_labels_note",
]

#: Ends every note about labels in several pieces (see :func:`is_warning_note`).
SPLIT_LABELS_QUESTION = "is this an instance label image?"


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
    return text.splitlines()[0] if text else "no message"


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
    if labels.ndim not in (2, 3):
        squeezed = sum(n != 1 for n in labels.shape)
        hint = (
            "save it without its axes of size 1"
            if 2 <= squeezed <= 3 and labels.ndim > 3
            else "save each image as its own YX or ZYX label image"
        )
        raise LabelImageError(
            f"{where}: {role} has {labels.ndim} dimension{'s' if labels.ndim != 1 else ''} "
            f"(shape {labels.shape}); segqc takes 2D (YX) or 3D (ZYX) label images: {hint}"
        )
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


#: Pixels labelled at a time by the separate-pieces check (int64: 128 MiB).
_PIECES_CHUNK = 1 << 24


def split_labels_note(labels: np.ndarray, where: Path | str, role: str) -> str | None:
    """A note when labels of an instance label image are in several separate pieces.

    Pieces are connected with full connectivity (8 neighbours in 2D, 26 in 3D), so
    objects touching at a corner are not counted apart. They are counted in bands of the
    first axis of at most 16M pixels, so a whole-slide image needs no full-size work
    array; in an image larger than one band, an object crossing a band's border counts
    as two pieces, which stays below both bars for objects the size of nuclei. A note is
    given when some label has 3 or more pieces, or when more than half of the labels
    have 2 or more. Below both bars: StarDist's objects, star-convex and one piece each
    (rarely, an object partly painted over by a neighbour is cut in two), and label
    images drawn or cleaned by hand, where a stray pixel leaves a label or two in 2
    pieces. Above them: a semantic mask (one label, dozens of pieces) and labels
    numbered again in each tile (most labels in 2 pieces).

    Parameters
    ----------
    labels : np.ndarray
        A checked 2D or 3D label image (0 is background).
    where : Path or str
        The file (or image name) the note starts with.
    role : str
        ``"ground truth"`` or ``"prediction"``.

    Returns
    -------
    str or None
        E.g. ``"…/a.tif: prediction label 1 has 37 separate pieces: is this an instance
        label image?"``, or None when the labels look like instances.
    """
    from skimage.measure import label as connected_pieces

    found_values, found_counts = [], []
    rows = max(1, _PIECES_CHUNK // max(labels[:1].size, 1))
    for start in range(0, len(labels), rows):
        band = labels[start : start + rows]
        pieces = connected_pieces(band, background=0, connectivity=labels.ndim)
        n_pieces = int(pieces.max()) if pieces.size else 0
        owner = np.zeros(n_pieces + 1, dtype=labels.dtype)
        owner[pieces.reshape(-1)] = band.reshape(-1)  # each piece holds one label
        del pieces
        band_values, band_counts = np.unique(owner[1:], return_counts=True)
        found_values.append(band_values)
        found_counts.append(band_counts)
    every_value = np.concatenate(found_values)
    if every_value.size == 0:
        return None
    values, inverse = np.unique(every_value, return_inverse=True)
    counts = np.bincount(inverse, weights=np.concatenate(found_counts)).astype(np.int64)
    n_split = int(np.count_nonzero(counts > 1))
    worst = int(np.argmax(counts))
    if counts[worst] < 3 and 2 * n_split <= values.size:
        return None
    also = f" ({n_split} of {values.size} labels are in several pieces)" if n_split > 1 else ""
    return (
        f"{where}: {role} label {int(values[worst])} has {int(counts[worst])} separate "
        f"pieces{also}: {SPLIT_LABELS_QUESTION} Each object needs its own label"
    )


def is_warning_note(note: str) -> bool:
    """Whether an image's note is a warning (shown as a SegQcWarning on its test)."""
    return SPLIT_LABELS_QUESTION in note


def evaluate_image(
    pair: QcPair,
    *,
    predictor: Predictor,
    settings: EvaluationSettings,
    on_measured: Callable[[MeasuredImage], None] | None = None,
    second_predictor: Predictor | None = None,
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
    second_predictor : Predictor, optional
        Predicts the image a second time, on another device (``--compare-device``); the
        outcome's ``comparison`` holds how far the two predictions agree. Its failure
        is recorded there and does not fail the image.

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
        _evaluate_into(fields, notes, pair, predictor, settings, on_measured, second_predictor)
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
    second_predictor: Predictor | None,
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
            image = read_source_image(pair.source, spatial_shape=target.shape, model=settings.model)
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
        binary_prediction = np.asarray(result.labels).dtype == np.bool_  # one piece a label
        predicted = _checked_labels(np.asarray(result.labels), where, "prediction", notes)
    except Exception as exc:
        raise _failure(where, "read", exc) from None
    if predicted.shape != target.shape:
        raise _ImageFailure(
            f"{pair.name}: prediction shape {predicted.shape} and ground truth shape "
            f"{target.shape} differ"
        )
    if not predictor.needs_source_image and pair.source is not None:
        # --predictions with --qc-source: the source is only drawn in the report. One that
        # does not fit its ground truth is named here, from its header, rather than
        # failing later as a drawing error.
        try:
            check_source_layout(pair.source, spatial_shape=target.shape)
        except Exception as exc:
            raise _failure(pair.source, "read", exc) from None
    try:
        # One overlap count serves the metrics, the object matches, the accuracy curve
        # and the error map.
        overlaps = label_overlaps(target, predicted)
        threshold = settings.iou_threshold
        scores = measure(target, predicted, iou_threshold=threshold, overlaps=overlaps)
        matches = matched_pairs_of(overlaps, iou_threshold=threshold)
        curve = MatchingCurve(match_overlaps_at(overlaps, iou_thresholds=settings.curve_thresholds))
        bins = None
        if settings.size_bin_edges is not None:
            bins = area_bins(object_matches_of(overlaps, matches), settings.size_bin_edges)
    except Exception as exc:
        raise _failure(pair.name, "measure", exc) from None
    del overlaps
    try:
        split = None if binary_prediction else split_labels_note(predicted, where, "prediction")
    except Exception as exc:
        raise _failure(pair.name, "measure", exc) from None
    if split is not None:
        notes.append(split)
    if on_measured is not None:
        measured = MeasuredImage(
            pair, target, predicted, image, scores, matches, threshold, predictor.needs_source_image
        )
        try:
            on_measured(measured)
        except Exception as exc:
            raise _failure(pair.name, "store or draw", exc) from None
    if second_predictor is not None:
        fields["comparison"] = compare_predictions(
            pair, image, predicted, target, second_predictor, settings.iou_threshold
        )
    fields.update(
        scores=scores,
        prediction_file=result.path,
        n_tiles=result.n_tiles,
        blocks=result.blocks,
        cached=result.cached,
        curve=curve,
        area_bins=bins,
    )


def compare_predictions(
    pair: QcPair,
    image: np.ndarray | None,
    predicted: np.ndarray,
    target: np.ndarray,
    second_predictor: Predictor,
    iou_threshold: float,
) -> DeviceComparison:
    """Predict ``image`` again with ``second_predictor`` and compare with ``predicted``.

    Never raises for a problem of the image: a second prediction that fails, or that
    is not a label image of the right shape, is the comparison's ``error``.

    Parameters
    ----------
    pair : QcPair
        The image and its ground truth.
    image : np.ndarray or None
        The source image, as the first predictor got it.
    predicted : np.ndarray
        The first prediction (checked labels).
    target : np.ndarray
        The ground truth (checked labels).
    second_predictor : Predictor
        Predicts on the other device.
    iou_threshold : float
        Objects of the two predictions are paired at this IoU, as in the matching.

    Returns
    -------
    DeviceComparison
    """
    where = pair.source or pair.name
    error = None
    try:
        result = second_predictor.predict(pair, image)
        other = _checked_labels(np.asarray(result.labels), pair.name, "second prediction", [])
        if other.shape != predicted.shape:
            raise LabelImageError(
                f"{pair.name}: second prediction shape {other.shape} and prediction shape "
                f"{predicted.shape} differ"
            )
        mismatched = mismatched_pixels_of(
            label_overlaps(predicted, other), iou_threshold=iou_threshold
        )
        scores = measure(target, other, iou_threshold=iou_threshold)
    # The comparison fails; the image's own metrics stand.
    except LabelImageError as exc:  # segqc's own message, naming the image
        error = _one_line(exc)
    except MemoryError:
        error = f"{where}: not enough memory to predict this image a second time"
    except Exception as exc:
        error = f"{where}: second prediction failed ({type(exc).__name__}: {_one_line(exc)})"
    device = _device_of(second_predictor)
    if error is not None:
        return DeviceComparison(device, error=error)
    return DeviceComparison(
        device, mismatched_pixels=mismatched, pixels=int(predicted.size), scores=scores
    )


def _device_of(predictor: Predictor) -> str:
    """Where a predictor runs, as it describes itself (known once it has predicted)."""
    described = predictor.describe()
    return str(described.get("device") or described.get("kind") or "unknown")
