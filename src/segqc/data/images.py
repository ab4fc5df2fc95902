"""Read QC images and label masks from TIFF files, with errors a user can act on.

Which image of a TIFF is read
-----------------------------
A TIFF can hold several images, which tifffile calls *series*: a thumbnail or preview
next to the image, the label and macro pictures of a slide scanner (SVS, NDPI), several
stage positions (OME-TIFF), or planes appended one by one as separate images. segqc
never judges a thumbnail; it reads the full-resolution data, by this rule:

1. the series with the most values (the product of its shape, so a Z stack of N planes
   counts N planes; a thumbnail or preview is always smaller than its image);
2. of a pyramid (an OME-TIFF with sub-resolutions, a slide scanner's levels), level 0:
   the full resolution;
3. when two or more series share that largest size (several positions of the same size,
   a stack saved as one separate image per plane), segqc cannot tell which one is the QC
   image: the image is refused, naming the file and the shape of each series.

A file with a single series (one image, an ImageJ hyperstack, a multi-page stack whose
N pages of one shape form one series: a Z stack) is read exactly as
``tifffile.imread`` reads it. Unreadable files, broken links and ambiguous files raise
:class:`ImageReadError`, whose message starts with the path.
"""

from __future__ import annotations

import errno
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import tifffile

__all__ = ["ImageReadError", "full_resolution_series", "read_tiff", "tiff_series"]

#: At most this many series shapes are listed in a message.
_SHAPES_SHOWN = 6


class ImageReadError(ValueError):
    """A TIFF cannot be read; the message names the file and the reason."""


def full_resolution_series(tif: tifffile.TiffFile, path: Path) -> int:
    """The index of the series segqc reads from an open TIFF (see the module docstring).

    Parameters
    ----------
    tif : tifffile.TiffFile
        The open file.
    path : Path
        Its path, for messages.

    Returns
    -------
    int
        The series with the most values; its level 0 is the full resolution.

    Raises
    ------
    ImageReadError
        The file holds no image, or two or more series share the largest size.
    """
    series = tif.series
    if not series:
        raise ImageReadError(f"{path}: the TIFF holds no image")
    if len(series) == 1:
        return 0
    sizes = [math.prod(s.shape) for s in series]
    largest = max(sizes)
    biggest = [i for i, size in enumerate(sizes) if size == largest]
    if len(biggest) == 1:
        return biggest[0]
    shapes = ", ".join(str(tuple(s.shape)) for s in series[:_SHAPES_SHOWN])
    if len(series) > _SHAPES_SHOWN:
        shapes += f", ... ({len(series) - _SHAPES_SHOWN} more)"
    raise ImageReadError(
        f"{path}: holds {len(series)} images (TIFF series of shapes {shapes}) and "
        f"{len(biggest)} of them share the largest size, so segqc cannot tell which one "
        "is the QC image; save one image (or one stack) per file"
    )


def tiff_series(path: Path) -> tuple[tuple[int, ...], np.dtype[Any], str]:
    """Shape, dtype and axes of the series :func:`read_tiff` reads, without its pixels.

    Raises
    ------
    ImageReadError
        As :func:`read_tiff`.
    """

    def header(file: Path) -> tuple[tuple[int, ...], np.dtype[Any], str]:
        with tifffile.TiffFile(file) as tif:
            series = tif.series[full_resolution_series(tif, file)].levels[0]
            return tuple(series.shape), np.dtype(series.dtype), str(series.axes).upper()

    return _guarded(path, header)


def read_tiff(path: Path) -> np.ndarray:
    """Read the full-resolution image of a TIFF into memory.

    Parameters
    ----------
    path : Path
        The file to read.

    Returns
    -------
    np.ndarray
        The image as stored (no dtype conversion): the series chosen by
        :func:`full_resolution_series`, level 0.

    Raises
    ------
    ImageReadError
        Empty, truncated, unreadable, a broken link, not a TIFF, several series of the
        largest size, or too large for the memory left; the message starts with the path.
    """

    def read(file: Path) -> np.ndarray:
        with tifffile.TiffFile(file) as tif:
            index = full_resolution_series(tif, file)
            shape, dtype = tuple(tif.series[index].shape), np.dtype(tif.series[index].dtype)
        try:
            return np.asarray(tifffile.imread(file, series=index, level=0))
        except MemoryError:
            size = math.prod(shape) * dtype.itemsize
            amount = f"{size / 2**30:.1f} GiB" if size >= 2**30 else f"{size / 2**20:.0f} MiB"
            raise ImageReadError(
                f"{file}: not enough memory to read this image "
                f"({' x '.join(map(str, shape))} {dtype}, {amount})"
            ) from None

    return _guarded(path, read)


def _guarded(path: Path, action: Any) -> Any:
    """Run ``action(path)``, turning every failure into one :class:`ImageReadError` line."""
    try:
        if path.stat().st_size == 0:
            raise ImageReadError(f"{path}: the file is empty (0 bytes); export it again")
        return action(path)
    except ImageReadError:
        raise
    except MemoryError:
        raise  # not a damaged file: evaluate_image says "not enough memory"
    except PermissionError:
        raise ImageReadError(f"{path}: permission denied; make the file readable") from None
    except FileNotFoundError:
        raise ImageReadError(_missing(path)) from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise ImageReadError(
                f"{path}: symbolic link loop (the link leads back to itself); fix the link"
            ) from None
        raise ImageReadError(_damaged(path, exc)) from None
    except Exception as exc:  # tifffile raises many types for damaged files
        raise ImageReadError(_damaged(path, exc)) from None


def _damaged(path: Path, exc: BaseException) -> str:
    reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return f"{path}: not a readable TIFF ({reason}); the file may be truncated or damaged"


def _missing(path: Path) -> str:
    """Why a listed file is not there: a link to nothing, or it went away."""
    if not path.is_symlink():
        return f"{path}: the file disappeared while segqc was running"
    target = os.readlink(path)
    # A relative link or a chain of links: name the missing end too.
    relative = not os.path.isabs(target)
    chained = Path(os.path.join(path.parent, target)).is_symlink()
    leads = f" (which leads to {os.path.realpath(path)})" if relative or chained else ""
    return (
        f"{path}: broken link to {target}{leads}: no such file; fix the link or put the "
        "file in its place"
    )
