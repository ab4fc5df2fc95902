"""The visual assessment of one QC image: input, ground truth, prediction, error map.

Each image is drawn when it is evaluated, on the process (xdist worker) that evaluated
it, from the arrays and matches already in memory (:func:`draw_visual`), and the encoded
panels are saved to a file of the run's visuals folder (:func:`save_visual`) that the
report reads back (:func:`load_visual`); so the controller neither re-reads nor
re-matches every image, and a run keeps no image data in memory. An outcome without such
a file is drawn from its files on disk (:func:`render_visual`). Each is reduced to one
display plane (the middle z plane of a 3D stack) and downscaled so the longest side is
at most :data:`MAX_SIDE` pixels; every panel is an array built with numpy operations on
whole arrays (no matplotlib or scikit-image morphology: their imports would cost every
xdist worker ~0.3 s), then encoded as a data URI for the self-contained report (labels
and error map as PNG, the noisy input as JPEG, which is about 5x smaller).

Error map colours (Okabe & Ito's colour-blind-safe palette plus matplotlib's cividis):
matched objects are filled and outlined in the cividis colour of their IoU, missed
ground-truth objects (false negatives) in vermillion, spurious predictions (false
positives) in sky blue.
"""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from segqc.accuracy import labels_of
from segqc.images import ImageReadError, read_tiff
from segqc.metrics.matching import LabelImageError, MatchedPairs, matched_pairs
from segqc.session import ImageOutcome, QcRun

__all__ = [
    "FN_COLOUR",
    "FP_COLOUR",
    "IOU_LEGEND",
    "MAX_SIDE",
    "ImageVisual",
    "Panel",
    "bright_hues",
    "draw_visual",
    "inner_boundaries",
    "iou_colours",
    "jpeg_data_uri",
    "load_visual",
    "png_data_uri",
    "render_visual",
    "save_visual",
    "visual_document",
    "visual_from",
]

#: Longest side, in pixels, of a displayed panel (larger images are downscaled).
MAX_SIDE = 384
#: The error-map legend's gradient: :func:`iou_colours` at IoU 0, 0.1, ..., 1, written out
#: so that a report whose panels all come from the cache does not import matplotlib.
IOU_LEGEND = (
    "#00224e",
    "#083370",
    "#35456c",
    "#4f576c",
    "#666970",
    "#7d7c78",
    "#948e77",
    "#aea371",
    "#c8b866",
    "#e5cf52",
    "#fee838",
)
_LEGEND_AT = np.linspace(0.0, 1.0, len(IOU_LEGEND))
_LEGEND_RGB = np.array([[int(c[i : i + 2], 16) for i in (1, 3, 5)] for c in IOU_LEGEND], float)
#: Okabe-Ito vermillion: ground-truth objects the model missed.
FN_COLOUR = (0xD5, 0x5E, 0x00)
#: Okabe-Ito sky blue: predicted objects with no ground-truth partner.
FP_COLOUR = (0x56, 0xB4, 0xE9)


@dataclass(frozen=True)
class Panel:
    """One picture of the visual assessment."""

    caption: str
    data_uri: str


@dataclass(frozen=True)
class ImageVisual:
    """The panels of one QC image, or why there are none.

    Attributes
    ----------
    panels : tuple of Panel
        Input, ground truth, prediction and error map (input absent without a source).
    note : str or None
        What was left out (downscaling, 3D plane, missing source) or why nothing could
        be drawn.
    """

    panels: tuple[Panel, ...]
    note: str | None


def png_data_uri(rgb: np.ndarray) -> str:
    """Encode an (H, W, 3) uint8 array as a ``data:image/png;base64,...`` URI."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="PNG", compress_level=6)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def jpeg_data_uri(grey: np.ndarray) -> str:
    """Encode an (H, W) image in [0, 1] as a JPEG data URI (noisy inputs: 5x smaller than PNG)."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.round(grey * 255).astype(np.uint8)).save(buffer, format="JPEG", quality=85)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def iou_colours(ious: np.ndarray) -> np.ndarray:
    """cividis colours (uint8 RGB, one row per value) of IoUs in [0, 1].

    matplotlib's cividis at tenths of IoU (:data:`IOU_LEGEND`), linearly interpolated
    between them: exactly the gradient the legend's CSS draws, within 9/255 of cividis
    itself, and without importing matplotlib on every xdist worker.
    """
    values = np.clip(np.asarray(ious, float), 0.0, 1.0).reshape(-1)
    channels = [np.interp(values, _LEGEND_AT, _LEGEND_RGB[:, c]) for c in range(3)]
    return np.round(np.stack(channels, axis=-1)).astype(np.uint8)


def render_visual(run: QcRun, outcome: ImageOutcome) -> ImageVisual:
    """Draw the panels of one evaluated image from its files on disk.

    Parameters
    ----------
    run : QcRun
        The run (for the IoU threshold and where predictions are).
    outcome : ImageOutcome
        An image with scores.

    Returns
    -------
    ImageVisual
        With a note instead of panels when the files can no longer be read.
    """
    try:
        target, predicted = labels_of(run, outcome)
        source = read_tiff(outcome.pair.source) if outcome.pair.source else None
        pairs = matched_pairs(target, predicted, iou_threshold=run.iou_threshold)
    except (ImageReadError, LabelImageError) as exc:
        return ImageVisual((), f"cannot draw this image: {exc}")
    return draw_visual(target, predicted, source, pairs, iou_threshold=run.iou_threshold)


def draw_visual(
    target: np.ndarray,
    predicted: np.ndarray,
    source: np.ndarray | None,
    pairs: MatchedPairs,
    *,
    iou_threshold: float,
) -> ImageVisual:
    """Draw the panels of one image from its arrays and matched pairs.

    Parameters
    ----------
    target, predicted : numpy.ndarray
        Ground-truth and predicted labels, same shape (2D or 3D).
    source : numpy.ndarray or None
        The input image as read from its file (None: no source image).
    pairs : MatchedPairs
        The matches at ``iou_threshold`` (:func:`segqc.metrics.matching.matched_pairs`).
    iou_threshold : float
        The matching threshold, shown in the error map's caption.

    Returns
    -------
    ImageVisual
    """
    notes = []
    if target.ndim == 3:
        notes.append(f"middle plane z = {target.shape[0] // 2} of {target.shape[0]}")
    target_2d, predicted_2d = _plane(target, target.ndim), _plane(predicted, target.ndim)
    step = max(1, int(np.ceil(max(target_2d.shape) / MAX_SIDE)))
    if step > 1:
        notes.append(f"shown at 1/{step} of its {target_2d.shape[1]}×{target_2d.shape[0]} px")
    target_small = target_2d[::step, ::step]
    predicted_small = predicted_2d[::step, ::step]
    grey = None
    if source is not None:
        grey = _display_input(_plane(source, target.ndim), target.ndim, target_small.shape)
    else:
        notes.append("no source image (--predictions without --qc-source)")
    error = _error_map(target_small, predicted_small, pairs)
    panels = []
    if grey is not None:
        panels.append(Panel("input (percentiles 1–99.8)", jpeg_data_uri(grey)))
    panels += [
        Panel("ground truth", png_data_uri(_instance_colours(target_small))),
        Panel("prediction", png_data_uri(_instance_colours(predicted_small))),
        Panel(f"error map (IoU ≥ {iou_threshold:g})", png_data_uri(error)),
    ]
    if target.ndim == 3:
        panels += _stack_views(target, predicted)
    return ImageVisual(tuple(panels), "; ".join(notes) or None)


def _stack_views(target: np.ndarray, predicted: np.ndarray) -> list[Panel]:
    """Maximum projections and xz mid-planes of a 3D ground truth and prediction."""
    from segqc.visual import project_stack

    views_true, views_pred = project_stack(target), project_stack(predicted)
    panels = []
    for view, title in (("max", "max projection along z"), ("xz", "xz plane (middle y)")):
        for name, views in (("ground truth", views_true), ("prediction", views_pred)):
            plane = views[view]
            step = max(1, int(np.ceil(max(plane.shape) / MAX_SIDE)))
            colours = _instance_colours(plane[::step, ::step])
            panels.append(Panel(f"{name}, {title}", png_data_uri(colours)))
    return panels


def visual_document(visual: ImageVisual) -> dict[str, Any]:
    """``visual`` as a JSON-serialisable document (the inverse of :func:`visual_from`)."""
    return {"panels": [[p.caption, p.data_uri] for p in visual.panels], "note": visual.note}


def visual_from(document: Mapping[str, Any]) -> ImageVisual:
    """The visual of a :func:`visual_document` (other keys are ignored).

    Raises
    ------
    ValueError, KeyError, TypeError
        The document is not one.
    """
    panels = tuple(Panel(str(caption), str(uri)) for caption, uri in document["panels"])
    note = document["note"]
    return ImageVisual(panels, None if note is None else str(note))


def save_visual(visual: ImageVisual, path: Path) -> Path:
    """Write ``visual`` to ``path`` (JSON) for :func:`load_visual`; returns ``path``."""
    path.write_text(json.dumps(visual_document(visual)), encoding="utf-8")
    return path


def load_visual(path: Path) -> ImageVisual:
    """Read a visual written by :func:`save_visual` (or cached, :mod:`segqc.cache`).

    Raises
    ------
    OSError, ValueError, KeyError, TypeError
        The file is missing or damaged.
    """
    return visual_from(json.loads(path.read_text(encoding="utf-8")))


def _plane(array: np.ndarray, spatial_ndim: int) -> np.ndarray:
    """The middle z plane of a 3D (Z, Y, X[, C]) array; 2D arrays unchanged."""
    if spatial_ndim == 3:
        return array[array.shape[0] // 2]
    return array


def _display_input(image: np.ndarray, spatial_ndim: int, shape: tuple[int, ...]) -> np.ndarray:
    """Percentile-normalised (1, 99.8) grey image in [0, 1], resized to ``shape``."""
    from skimage.transform import resize

    image = np.asarray(image, dtype=np.float32)
    if image.ndim == 3:  # a channel axis remains after taking the plane: average channels
        image = image.mean(axis=-1)
    finite = image[np.isfinite(image)]
    low, high = np.percentile(finite, (1, 99.8)) if finite.size else (0.0, 1.0)
    scaled = np.clip((np.nan_to_num(image) - low) / max(high - low, 1e-12), 0.0, 1.0)
    if scaled.shape != shape:
        scaled = resize(scaled, shape, order=1, anti_aliasing=True, preserve_range=True)
    return scaled.astype(np.float32)


def _instance_colours(labels: np.ndarray) -> np.ndarray:
    """Each label its own bright colour (golden-ratio hues), background black."""
    values, inverse = np.unique(labels, return_inverse=True)
    hues = (values.astype(np.float64) * 0.618033988749895) % 1.0
    palette = np.round(bright_hues(hues, saturation=0.65) * 255).astype(np.uint8)
    palette[values == 0] = 0
    return palette[inverse.reshape(labels.shape)]


def bright_hues(hues: np.ndarray, *, saturation: float) -> np.ndarray:
    """RGB in [0, 1] of full-value HSV colours (matplotlib's ``hsv_to_rgb`` with v = 1).

    Parameters
    ----------
    hues : numpy.ndarray
        Hues in [0, 1).
    saturation : float
        The saturation of every colour, in [0, 1].

    Returns
    -------
    numpy.ndarray
        Shape ``hues.shape + (3,)``.
    """
    # The hue circle in six 60° sectors: a channel is 1 within 60° of its primary (red
    # at 0, green at 1/3, blue at 2/3), falls linearly to 1 - s over the next 60°, and
    # stays there on the far side of the circle.
    sector = np.asarray(hues, float)[..., None] * 6.0 + np.array([0.0, 4.0, 2.0])
    ramp = np.clip(np.abs(sector % 6.0 - 3.0) - 1.0, 0.0, 1.0)
    return 1.0 - saturation * (1.0 - ramp)


def _lookup(labels: np.ndarray, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each pixel: whether its label is in ``keys``, and the index of it there."""
    if keys.size == 0:
        return np.zeros(labels.shape, bool), np.zeros(labels.shape, np.int64)
    order = np.argsort(keys)
    position = np.clip(np.searchsorted(keys[order], labels), 0, keys.size - 1)
    found = (keys[order][position] == labels) & (labels != 0)
    return found, order[position]


def _error_map(target: np.ndarray, predicted: np.ndarray, pairs: MatchedPairs) -> np.ndarray:
    """Matched objects by IoU (cividis), false negatives and false positives.

    The background is flat dark grey rather than the input image: the input is the
    panel beside it, and a flat background keeps the PNG small (a noisy one does not
    compress).
    """
    out = np.full((*target.shape, 3), 0.12, np.float32)
    colours = iou_colours(pairs.ious).astype(np.float32) / 255

    true_matched, true_at = _lookup(target, pairs.true_labels)
    pred_matched, pred_at = _lookup(predicted, pairs.pred_labels)
    missed = (target != 0) & ~true_matched
    spurious = (predicted != 0) & ~pred_matched
    fn_rgb = np.array(FN_COLOUR, np.float32) / 255
    fp_rgb = np.array(FP_COLOUR, np.float32) / 255

    out[true_matched] = 0.45 * out[true_matched] + 0.55 * colours[true_at[true_matched]]
    out[missed] = 0.3 * out[missed] + 0.7 * fn_rgb
    out[spurious] = 0.3 * out[spurious] + 0.7 * fp_rgb
    # Outlines: the predicted partner of each match, then the errors, fully opaque.
    edge = inner_boundaries(np.where(pred_matched, predicted, 0))
    out[edge] = colours[pred_at[edge]]
    out[inner_boundaries(np.where(missed, target, 0))] = fn_rgb
    out[inner_boundaries(np.where(spurious, predicted, 0))] = fp_rgb
    return np.round(np.clip(out, 0, 1) * 255).astype(np.uint8)


def inner_boundaries(labels: np.ndarray) -> np.ndarray:
    """Object pixels with a face neighbour of another label (or background).

    The same mask as ``skimage.segmentation.find_boundaries(labels, mode="inner")``
    (connectivity 1; outside the image counts as the pixel itself), in plain numpy:
    scikit-image's morphology would cost every xdist worker ~0.2 s of imports.

    Parameters
    ----------
    labels : numpy.ndarray
        A label image (any dimension; 0 is background).

    Returns
    -------
    numpy.ndarray
        Boolean, same shape.
    """
    edge = np.zeros(labels.shape, bool)
    for axis in range(labels.ndim):
        before = [slice(None)] * labels.ndim
        after = [slice(None)] * labels.ndim
        before[axis], after[axis] = slice(None, -1), slice(1, None)
        differs = labels[tuple(before)] != labels[tuple(after)]
        edge[tuple(before)] |= differs
        edge[tuple(after)] |= differs
    return edge & (labels != 0)
