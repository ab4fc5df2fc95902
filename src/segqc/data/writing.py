"""Write files safely: to a temporary file first, then renamed into place.

A crash or a full disk therefore never leaves a half-written metrics.csv, cache entry or
prediction behind, and a second run replaces each earlier file in one step.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np

__all__ = [
    "OutputError",
    "atomic_write_bytes",
    "atomic_write_lines",
    "atomic_write_text",
    "encode_label_image",
    "write_json",
    "write_label_image",
]


class OutputError(OSError):
    """An output could not be written; the message names the file and the reason."""


@contextlib.contextmanager
def _atomic_file(path: Path, *, durable: bool = True) -> Iterator[IO[bytes]]:
    """A binary file that becomes ``path`` when the block ends without an error."""
    tmp_name = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(
            dir=path.parent, prefix=f".{path.name}.", suffix=".tmp", delete=False
        ) as handle:
            tmp_name = handle.name
            yield handle
            handle.flush()
            if durable:
                os.fsync(handle.fileno())
        # NamedTemporaryFile creates 0600; give the file the permissions open() would.
        os.chmod(tmp_name, 0o666 & ~_current_umask())
        os.replace(tmp_name, path)
    except OSError as exc:
        raise OutputError(f"{path}: cannot write ({exc.strerror or exc})") from None
    finally:
        if tmp_name is not None and os.path.exists(tmp_name):
            os.unlink(tmp_name)  # only when it was not renamed into place


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
    with _atomic_file(path, durable=durable) as handle:
        handle.write(data)
    return path


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: Path, text: str, *, durable: bool = True) -> Path:
    """Write UTF-8 text atomically (see :func:`atomic_write_bytes`)."""
    return atomic_write_bytes(path, text.encode("utf-8"), durable=durable)


def atomic_write_lines(path: Path, lines: Iterable[str]) -> Path:
    """Write UTF-8 text a piece at a time, atomically (see :func:`atomic_write_bytes`).

    ``lines`` is read once, as it is written: metrics.csv of 10,000 images is never
    held as one string.

    Raises
    ------
    OutputError
        Writing failed; ``path`` is left as it was.
    """
    with _atomic_file(path) as handle:
        for line in lines:
            handle.write(line.encode("utf-8"))
    return path


def write_json(path: Path, data: Mapping[str, Any]) -> Path:
    """Write ``data`` as JSON indented by 2, atomically; NaN and infinity are written as null.

    The text is what ``json.dumps(data, indent=2)`` gives (numpy scalars as numbers,
    paths as strings). It is written a list item at a time (each image's record, each
    verdict), so the summary of a QC set of 10,000 images is never held as one string.

    Raises
    ------
    OutputError
        Writing failed; ``path`` is left as it was.
    """
    with _atomic_file(path) as handle:
        for chunk in _json_chunks(data, "", depth=2):
            handle.write(chunk.encode("utf-8"))
        handle.write(b"\n")
    return path


def _json_chunks(value: Any, indent: str, *, depth: int) -> Iterator[str]:
    """``value`` as JSON indented by 2 after ``indent``, in pieces: one per item of the
    containers ``depth`` levels down, each item encoded by :func:`json.dumps`.

    Any sequence is written as a JSON list, read once, in order: summary.json's
    ``images`` are built as they are read (:class:`segqc.outputs.summary.Records`).
    """
    inner = indent + "  "
    if depth > 0 and isinstance(value, Mapping):
        separator = "{"
        for key, item in value.items():
            yield f"{separator}\n{inner}{json.dumps(str(key))}: "
            yield from _json_chunks(item, inner, depth=depth - 1)
            separator = ","
        yield "{}" if separator == "{" else f"\n{indent}}}"
    elif depth > 0 and _is_list(value):
        separator = "["
        for item in value:
            yield f"{separator}\n{inner}"
            yield from _json_chunks(item, inner, depth=depth - 1)
            separator = ","
        yield "[]" if separator == "[" else f"\n{indent}]"
    else:
        yield json.dumps(_json_safe(value), indent=2).replace("\n", "\n" + indent)


def _is_list(value: Any) -> bool:
    return isinstance(value, Sequence) and not isinstance(value, str | bytes | bytearray)


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if _is_list(value):
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
