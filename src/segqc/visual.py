"""Pure helpers that turn label images and stacks into 2D views for the report.

No plotting here: the report (pytest-html) draws what these functions return.
"""

from __future__ import annotations

import numpy as np

__all__ = ["project_stack"]


def project_stack(volume: np.ndarray, *, channel_axis: bool = False) -> dict[str, np.ndarray]:
    """Views of a 3D stack a person can read: a mid-plane along each axis, a projection.

    Parameters
    ----------
    volume : np.ndarray
        A ``(Z, Y, X)`` stack (label image, prediction, error map or raw image), or a
        ``(Y, X)`` image, which is returned as its only view. With ``channel_axis``, a
        trailing channel axis is carried along in every view.
    channel_axis : bool, optional
        Whether the last axis of ``volume`` holds channels.

    Returns
    -------
    dict of str to np.ndarray
        For a stack, in this order: ``"xy"`` = ``volume[Z // 2]`` (the middle z-slice,
        Y x X), ``"xz"`` = ``volume[:, Y // 2]`` (Z x X), ``"yz"`` = ``volume[:, :, X // 2]``
        (Z x Y), ``"max"`` = the maximum along Z (Y x X). For a label image the maximum
        projection shows every object that appears in some slice (overlapping objects
        show the higher label). The Z extent of ``xz``/``yz`` is in voxels: stretch it by
        the model's anisotropy to show true proportions. For a 2D image: ``{"xy": volume}``.

    Raises
    ------
    ValueError
        ``volume`` is not 2D or 3D (spatially), or has an empty axis.
    """
    spatial = volume.ndim - 1 if channel_axis else volume.ndim
    if spatial not in (2, 3) or 0 in volume.shape:
        raise ValueError(
            f"`volume` must be a non-empty (Y, X) image or (Z, Y, X) stack"
            f"{' with a trailing channel axis' if channel_axis else ''}, "
            f"got shape {volume.shape}"
        )
    if spatial == 2:
        return {"xy": volume}
    z, y, x = volume.shape[:3]
    return {
        "xy": volume[z // 2],
        "xz": volume[:, y // 2],
        "yz": volume[:, :, x // 2],
        "max": volume.max(axis=0),
    }
