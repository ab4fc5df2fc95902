"""Read QC images and label masks from TIFF files, with errors a user can act on."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tifffile

__all__ = ["ImageReadError", "read_tiff"]


class ImageReadError(ValueError):
    """A TIFF cannot be read; the message names the file and the reason."""


def read_tiff(path: Path) -> np.ndarray:
    """Read one TIFF image into memory.

    Parameters
    ----------
    path : Path
        The file to read.

    Returns
    -------
    np.ndarray
        The image as stored (no dtype conversion).

    Raises
    ------
    ImageReadError
        Empty, truncated, unreadable or not a TIFF; the message starts with the path.
    """
    try:
        if path.stat().st_size == 0:
            raise ImageReadError(f"{path}: the file is empty (0 bytes); export it again")
        return np.asarray(tifffile.imread(path))
    except ImageReadError:
        raise
    except PermissionError:
        raise ImageReadError(f"{path}: permission denied; make the file readable") from None
    except FileNotFoundError:
        raise ImageReadError(f"{path}: the file disappeared while segqc was running") from None
    except Exception as exc:  # tifffile raises many types for damaged files
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ImageReadError(
            f"{path}: not a readable TIFF ({reason}); the file may be truncated or damaged"
        ) from None
