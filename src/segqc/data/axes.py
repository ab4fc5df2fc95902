"""Bring QC source images into the layout the model expects: spatial axes, then channels.

Users hand in images as their tools wrote them: ``YX``, ``ZYX``, ``YXC`` (RGB, RGBA),
channel-first ``CYX``, ImageJ hyperstacks ``ZCYX``. segqc reorders them in two steps:

1. :func:`to_channel_last` — axes from the TIFF metadata (the axes tifffile reads for the
   full-resolution series, see :mod:`segqc.data.images`) when they agree with the ground
   truth's shape, else the layout is read off the shapes: the spatial shape must equal
   the ground truth's, so whatever axis is left over is the channel axis (last, first,
   or second in ``ZCYX``).
2. :func:`fit_to_model` — the image's dimensionality (2D/3D) and channel count are
   checked against the model's ``n_dim`` / ``n_channel_in``; a 4-channel image given
   to a 3-channel model is taken as RGBA and its alpha channel dropped, as
   ZeroCostDL4Mic does.

:func:`check_source_layout` applies the same rules to the file's header alone, without
reading its pixels: with ``--predictions`` the source image is only drawn in the report,
and a source that does not fit its ground truth is reported as such rather than as a
drawing failure.

Every problem is an :class:`ImageInputError` with one line a user can act on; the
image's test fails and the other images still run. No TensorFlow here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np

from segqc.data.images import ImageReadError, read_tiff, tiff_series

__all__ = [
    "ImageInputError",
    "ModelShape",
    "check_source_layout",
    "fit_to_model",
    "read_source_image",
    "tiff_axes",
    "to_channel_last",
]

_KNOWN_AXES = set("TZCSYX")


class ModelShape(Protocol):
    """What reading a source image needs to know about the model (a
    :class:`~segqc.predict.model_folder.ModelFolder` is one)."""

    @property
    def n_dim(self) -> int:
        """Spatial dimensions: 2 or 3."""
        ...

    @property
    def n_channel_in(self) -> int:
        """Input channels the network expects."""
        ...


class ImageInputError(ValueError):
    """A source image cannot be fed to the model (wrong dimensions, channels, NaN...)."""


def tiff_axes(path: Path) -> str | None:
    """The axes tifffile reads from a TIFF's metadata, or None if unknown or unreadable.

    ImageJ hyperstacks give e.g. ``ZCYX``; RGB(A) TIFFs ``YXS`` (``S``: samples);
    files without axis metadata give letters like ``Q`` or ``I`` (unknown), which count as
    no metadata. The axes are those of the series :func:`~segqc.data.images.read_tiff`
    reads (the full-resolution one), not of a thumbnail stored first.
    """
    try:
        axes = tiff_series(path)[2]
    except ImageReadError:  # reading the pixels reports the problem properly
        return None
    return axes if set(axes) <= _KNOWN_AXES else None


def check_source_layout(path: Path, *, spatial_shape: tuple[int, ...]) -> None:
    """Check, from its header alone, that a source image fits its ground truth.

    The rules of :func:`to_channel_last`, applied to the shape and axes of the series
    :func:`~segqc.data.images.read_tiff` would read; no pixel is read.

    Raises
    ------
    ImageReadError
        The file cannot be read.
    ImageInputError
        Its spatial shape is not ``spatial_shape`` (with at most one channel axis), or it
        has several time points; the message starts with ``path``.
    """
    shape, dtype, axes = tiff_series(path)
    stand_in = np.broadcast_to(np.zeros((), dtype), shape)  # the shape, without the pixels
    try:
        _, found = to_channel_last(
            stand_in,
            axes=axes if set(axes) <= _KNOWN_AXES else None,
            spatial_shape=spatial_shape,
        )
    except ImageInputError as exc:
        raise ImageInputError(f"{path}: {exc}") from None
    if found is None:
        raise ImageInputError(
            f"{path}: source image shape {shape} and ground truth shape {spatial_shape} "
            "differ; the source must have the ground truth's "
            f"{'ZYX'[-len(spatial_shape) :]} size, with at most one channel axis"
        )


def to_channel_last(
    image: np.ndarray,
    *,
    axes: str | None,
    spatial_shape: tuple[int, ...] | None = None,
    n_channels: int | None = None,
) -> tuple[np.ndarray, str | None]:
    """Reorder an image to ``[Z]YX[C]``.

    Parameters
    ----------
    image : np.ndarray
        The source image as read.
    axes : str or None
        Its axes from the file's metadata (letters of ``TZCSYX``; ``S`` is a channel
        axis), or None.
    spatial_shape : tuple of int, optional
        The ground truth's shape. Metadata that contradicts it is ignored (tifffile, for
        instance, writes a plain ImageJ stack as channels); without metadata the channel
        axis is found by comparing shapes. None trusts ``axes`` as given.
    n_channels : int, optional
        The model's ``n_channel_in``. Without metadata, a leading (or ``ZCYX``) axis is
        taken as channels only if it has this many (4 for a 3-channel model: RGBA), so a
        stack given with a 2D mask is reported as a shape mismatch, not as channels.

    Returns
    -------
    image : np.ndarray
        A view with axes ``YX``, ``YXC``, ``ZYX`` or ``ZYXC``.
    axes : str or None
        Those axes, or None when the layout could not be determined (the image is then
        returned unchanged and the caller's shape check reports the mismatch).

    Raises
    ------
    ImageInputError
        A time axis with more than one time point, or both ``C`` and ``S`` axes.
    """
    if axes is not None and len(axes) == image.ndim and set(axes.upper()) <= _KNOWN_AXES:
        ordered = _reorder(image, axes.upper(), spatial_ndim=len(spatial_shape or ()))
        spatial = tuple(n for n, a in zip(ordered[0].shape, ordered[1], strict=True) if a != "C")
        if spatial_shape is None or spatial == tuple(spatial_shape):
            return ordered
    if spatial_shape is None:
        return image, None
    return _from_shapes(image, tuple(spatial_shape), n_channels)


def _reorder(image: np.ndarray, axes: str, *, spatial_ndim: int) -> tuple[np.ndarray, str]:
    if "C" in axes and "S" in axes:
        raise ImageInputError(
            f"image has both a channel (C) and a sample (S) axis (axes {axes}, shape "
            f"{image.shape}); save one channel axis only"
        )
    axes = axes.replace("S", "C")
    for drop in ("T", "Z"):
        if drop not in axes:
            continue
        size = image.shape[axes.index(drop)]
        if drop == "T" and size > 1:
            raise ImageInputError(
                f"image has a time axis with {size} time points (axes {axes}, shape "
                f"{image.shape}); save one time point per QC file"
            )
        if size == 1 and (drop == "T" or spatial_ndim == 2):
            image = np.take(image, 0, axis=axes.index(drop))
            axes = axes.replace(drop, "")
    order = [axes.index(a) for a in "ZYXC" if a in axes]
    return np.transpose(image, order), "".join(axes[i] for i in order)


def _from_shapes(
    image: np.ndarray, spatial: tuple[int, ...], n_channels: int | None
) -> tuple[np.ndarray, str | None]:
    if len(spatial) not in (2, 3):
        return image, None
    letters = "ZYX"[-len(spatial) :]
    shape = image.shape
    plausible = {n_channels, 4 if n_channels == 3 else n_channels}
    if shape == spatial:
        return image, letters
    if image.ndim == len(spatial) + 1:
        if shape[:-1] == spatial:  # YXC, ZYXC
            return image, letters + "C"
        if shape[1:] == spatial and (n_channels is None or shape[0] in plausible):  # CYX
            return np.moveaxis(image, 0, -1), letters + "C"
        zcyx = len(spatial) == 3 and shape[0] == spatial[0] and shape[2:] == spatial[1:]
        if zcyx and (n_channels is None or shape[1] in plausible):
            return np.moveaxis(image, 1, -1), "ZYXC"  # ZCYX, ImageJ's hyperstack order
    return image, None


def fit_to_model(
    image: np.ndarray, axes: str | None, *, n_dim: int, n_channel_in: int
) -> np.ndarray:
    """Check a ``[Z]YX[C]`` image against the model and shape it for StarDist.

    Parameters
    ----------
    image : np.ndarray
        The image, channel axis (if any) last.
    axes : str or None
        Its axes (from :func:`to_channel_last`); None reads the layout off the model:
        ``n_dim`` dimensions are spatial, one more is a trailing channel axis.
    n_dim, n_channel_in : int
        From the model's config.json.

    Returns
    -------
    np.ndarray
        ``(Y, X)`` / ``(Z, Y, X)`` for single-channel models, ``(..., C)`` otherwise;
        RGBA's alpha channel dropped for 3-channel models.

    Raises
    ------
    ImageInputError
        2D image for a 3D model (or the reverse), or a channel count the model cannot
        take.
    """
    kind = f"StarDist{n_dim}D model"
    if axes is None and image.ndim == 2 and n_dim == 3:
        axes = "YX"  # a plain 2D image: say so, rather than "cannot take"
    if axes is None:
        if image.ndim not in (n_dim, n_dim + 1):
            raise ImageInputError(
                f"image has shape {image.shape}, which a {kind} cannot take: it expects "
                f"{'ZYX'[-n_dim:]} with an optional trailing channel axis"
            )
        axes = "ZYX"[-n_dim:] + ("C" if image.ndim == n_dim + 1 else "")
    image_dim = len(axes.replace("C", ""))
    channels = image.shape[-1] if axes.endswith("C") else 1
    if image_dim != n_dim:
        raise ImageInputError(
            f"image is {image_dim}D (axes {axes}, shape {image.shape}) but the model is a "
            f"{kind} (n_dim {n_dim} in config.json); give it {n_dim}D images"
        )
    if channels == 4 and n_channel_in == 3:
        image, channels = image[..., :3], 3  # RGBA: alpha carries no signal
    if channels != n_channel_in:
        raise ImageInputError(
            f"image has {channels} channel{'s' if channels != 1 else ''} (axes {axes}, shape "
            f"{image.shape}) but the model expects {n_channel_in} (n_channel_in in "
            "config.json)"
        )
    if axes.endswith("C") and n_channel_in == 1:
        image = image[..., 0]
    return image


def read_source_image(
    path: Path, *, spatial_shape: tuple[int, ...], model: ModelShape | None = None
) -> np.ndarray:
    """Read a QC source image, channel axis last, fitted to ``model`` if given.

    Parameters
    ----------
    path : Path
        The source TIFF.
    spatial_shape : tuple of int
        The ground truth's shape.
    model : ModelShape, optional
        The model under test; None skips :func:`fit_to_model`.

    Returns
    -------
    np.ndarray

    Raises
    ------
    ImageReadError
        The file cannot be read.
    ImageInputError
        The image does not fit the model; the message starts with ``path``.
    """
    image = read_tiff(path)
    try:
        image, axes = to_channel_last(
            image,
            axes=tiff_axes(path),
            spatial_shape=spatial_shape,
            n_channels=model.n_channel_in if model is not None else None,
        )
        if model is not None and axes is not None:  # else the caller reports the shapes
            image = fit_to_model(image, axes, n_dim=model.n_dim, n_channel_in=model.n_channel_in)
    except ImageInputError as exc:
        raise ImageInputError(f"{path}: {exc}") from None
    return image
