"""Write files safely: to a temporary file first, then renamed into place.

A crash or a full disk therefore never leaves a half-written metrics.csv, cache entry or
prediction behind, and a second run replaces each earlier file in one step.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "OutputError",
    "atomic_write_bytes",
    "atomic_write_text",
    "encode_label_image",
    "write_json",
    "write_label_image",
]


class OutputError(OSError):
    """An output could not be written; the message names the file and the reason."""


def atomic_write_bytes(path: Path, data: bytes, *, durable: bool = True) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same folder.

    With ``durable`` (the default) the data is flushed to disk before the rename, so a
    power cut leaves the old file or the new one; scratch files that live only for the
    session (the xdist spool) skip that.

    Raises
    ------
    OutputError
        Writing failed (no space, permission...); ``path`` is left as it was.
    """
    tmp_name = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(
            dir=path.parent, prefix=f".{path.name}.", suffix=".tmp", delete=False
        ) as handle:
            tmp_name = handle.name
            handle.write(data)
            handle.flush()
            if durable:
                os.fsync(handle.fileno())
        # NamedTemporaryFile creates 0600; give the file the permissions open() would.
        os.chmod(tmp_name, 0o666 & ~_current_umask())
        os.replace(tmp_name, path)
    except OSError as exc:
        if tmp_name is not None:
            Path(tmp_name).unlink(missing_ok=True)
        raise OutputError(f"{path}: cannot write ({exc.strerror or exc})") from None
    return path


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: Path, text: str, *, durable: bool = True) -> Path:
    """Write UTF-8 text atomically (see :func:`atomic_write_bytes`)."""
    return atomic_write_bytes(path, text.encode("utf-8"), durable=durable)


def write_json(path: Path, data: Mapping[str, Any]) -> Path:
    """Write ``data`` as indented JSON atomically; NaN is written as null."""
    return atomic_write_text(path, json.dumps(_json_safe(data), indent=2) + "\n")


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not np.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.generic):
        return _json_safe(value.item())
    if isinstance(value, Path):
        return str(value)
    return value


def encode_label_image(labels: np.ndarray) -> bytes:
    """A label image as the bytes of a zlib-compressed TIFF (uint16 if the labels fit,
    else uint32)."""
    import tifffile

    dtype = np.uint16 if labels.size == 0 or labels.max() <= np.iinfo(np.uint16).max else np.uint32
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, labels.astype(dtype, copy=False), compression="zlib")
    return buffer.getvalue()


def write_label_image(path: Path, labels: np.ndarray) -> Path:
    """Save a label image as a compressed TIFF (see :func:`encode_label_image`)."""
    return atomic_write_bytes(path, encode_label_image(labels))
