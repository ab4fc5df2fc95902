"""The visual assessment of one QC image: input, ground truth, prediction, error map.

Panels are drawn where the image is evaluated, from the arrays already in memory
(:func:`draw_visual`), or later from the files on disk (:func:`draw_from_files`, for the
worst images of a large QC set, known only at the end). Each image is reduced to one
display plane (the middle z plane of a 3D stack) and to a view whose longest side is at
most :data:`MAX_SIDE` pixels *before* anything else is computed, so a whole-slide image
costs no more to draw than a small one. Pictures are encoded as data URIs (labels and
error map as PNG, the noisy input as JPEG, which is about 5x smaller).

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

from segqc.data.images import ImageReadError, read_tiff
from segqc.metrics.matching import LabelImageError, MatchedPairs, check_label_image, matched_pairs

__all__ = [
    "FN_COLOUR",
    "FP_COLOUR",
    "MAX_SIDE",
    "ImageVisual",
    "Panel",
    "draw_from_files",
    "draw_visual",
    "iou_colours",
    "iou_legend",
    "jpeg_data_uri",
    "load_visual",
    "png_data_uri",
    "save_visual",
    "visual_document",
    "visual_from",
]

#: Longest side, in pixels, of a displayed panel (larger images are downscaled).
MAX_SIDE = 384
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
    """matplotlib's cividis colours (uint8 RGB, one row per value) of IoUs in [0, 1]."""
    from matplotlib import colormaps

    values = np.clip(np.asarray(ious, float), 0.0, 1.0).reshape(-1)
    rgba = colormaps["cividis"](values, bytes=True)
    return np.asarray(rgba[:, :3], dtype=np.uint8)


def iou_legend(n: int = 11) -> tuple[str, ...]:
    """The error map's IoU gradient at ``n`` evenly spaced IoUs, as CSS colours."""
    return tuple("#{:02x}{:02x}{:02x}".format(*rgb) for rgb in iou_colours(np.linspace(0, 1, n)))


def draw_from_files(
    target_file: Path,
    prediction_file: Path,
    source_file: Path | None,
    *,
    iou_threshold: float,
) -> ImageVisual:
    """Draw the panels of one evaluated image from its files on disk.

    Returns
    -------
    ImageVisual
        With a note instead of panels when the files can no longer be read.
    """
    try:
        target = check_label_image(read_tiff(target_file), role="ground truth")
        predicted = check_label_image(read_tiff(prediction_file), role="prediction")
        source = read_tiff(source_file) if source_file is not None else None
        pairs = matched_pairs(target, predicted, iou_threshold=iou_threshold)
    except (ImageReadError, LabelImageError) as exc:
        return ImageVisual((), f"cannot draw this image: {exc}")
    return draw_visual(target, predicted, source, pairs, iou_threshold=iou_threshold)


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
        plane = _plane(source, target.ndim)
        grey = _display_input(plane[::step, ::step], target_small.shape)
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
    views = {
        "ground truth": {"max": target.max(axis=0), "xz": target[:, target.shape[1] // 2]},
        "prediction": {"max": predicted.max(axis=0), "xz": predicted[:, predicted.shape[1] // 2]},
    }
    panels = []
    for view, title in (("max", "max projection along z"), ("xz", "xz plane (middle y)")):
        for name in ("ground truth", "prediction"):
            plane = views[name][view]
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
    """Read a visual written by :func:`save_visual` (or cached, :mod:`segqc.predict.cache`).

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


def _display_input(image: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
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
    from matplotlib.colors import hsv_to_rgb

    values, inverse = np.unique(labels, return_inverse=True)
    hues = (values.astype(np.float64) * 0.618033988749895) % 1.0
    hsv = np.stack([hues, np.full_like(hues, 0.65), np.ones_like(hues)], axis=-1)
    palette = np.round(hsv_to_rgb(hsv) * 255).astype(np.uint8)
    palette[values == 0] = 0
    return palette[inverse.reshape(labels.shape)]


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
    from skimage.segmentation import find_boundaries

    edge = find_boundaries(np.where(pred_matched, predicted, 0), mode="inner")
    out[edge] = colours[pred_at[edge]]
    out[find_boundaries(np.where(missed, target, 0), mode="inner")] = fn_rgb
    out[find_boundaries(np.where(spurious, predicted, 0), mode="inner")] = fp_rgb
    return np.round(np.clip(out, 0, 1) * 255).astype(np.uint8)
