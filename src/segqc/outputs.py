"""Write segqc's files safely: to a temporary file first, then renamed into place.

A crash or a full disk therefore never leaves a half-written metrics.csv behind, and
a second run replaces the previous outputs in one step each.
"""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from segqc.metrics.catalogue import METRICS

__all__ = [
    "OUTPUT_NAMES",
    "OutputError",
    "atomic_write_bytes",
    "atomic_write_text",
    "claim_output_dir",
    "metrics_csv_text",
    "write_label_image",
]

CSV_HEADER: tuple[str, ...] = ("image", *(spec.csv_column for spec in METRICS))


class OutputError(OSError):
    """An output could not be written; the message names the file and the reason."""


#: The files and folders segqc writes in its output folder (and nothing else).
OUTPUT_NAMES: tuple[str, ...] = (
    "metrics.csv",
    "summary.json",
    "report.html",
    "loss_curve.png",
    "predictions",
    "baseline-model",
    "cache",
)

#: Marks a folder as segqc's, so a later run may replace the files in OUTPUT_NAMES.
OWNER_MARKER = ".segqc-output"


def claim_output_dir(folder: Path, *, overwrite: bool = False) -> None:
    """Make ``folder`` segqc's output folder, refusing to replace files segqc did not write.

    A folder is segqc's once it holds the marker file :data:`OWNER_MARKER`; a later run
    then replaces the files of :data:`OUTPUT_NAMES` in it and touches nothing else.

    Parameters
    ----------
    folder : Path
        The output folder; created if missing.
    overwrite : bool
        Take over a folder that already holds files named like segqc's outputs
        (``--qc-overwrite``).

    Raises
    ------
    OutputError
        The folder cannot be created or written to, or it holds files named like
        segqc's outputs that segqc did not write (and ``overwrite`` is false).
    """
    try:
        folder.mkdir(parents=True, exist_ok=True)
        marker = folder / OWNER_MARKER
        if not marker.exists():
            foreign = sorted(name for name in OUTPUT_NAMES if (folder / name).exists())
            if foreign and not overwrite:
                raise OutputError(
                    f"{folder}: already contains {', '.join(foreign)} not written by segqc; "
                    "choose another --qc-output, or pass --qc-overwrite to replace them"
                )
            atomic_write_text(
                marker, "segqc writes its outputs here and replaces them on each run.\n"
            )
    except OutputError:
        raise
    except OSError as exc:
        raise OutputError(
            f"{folder}: output folder is not writable ({exc.strerror or exc}); "
            "choose another with --qc-output"
        ) from None


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


def write_label_image(path: Path, labels: np.ndarray) -> Path:
    """Save a label image as a compressed TIFF (uint16 if the labels fit, else uint32)."""
    import tifffile

    dtype = np.uint16 if labels.size == 0 or labels.max() <= np.iinfo(np.uint16).max else np.uint32
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, labels.astype(dtype, copy=False), compression="zlib")
    return atomic_write_bytes(path, buffer.getvalue())


def metrics_csv_text(rows: Iterable[tuple[str, Mapping[str, float]]]) -> str:
    """ZeroCostDL4Mic's QC metrics table as CSV text.

    Parameters
    ----------
    rows : iterable of (image name, values by metric key)

    Returns
    -------
    str
        Header ``image, Prediction v. GT Intersection over Union, false positive, ...``
        then one row per image; counts as integers, ratios with full precision.
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_HEADER)
    for name, values in rows:
        writer.writerow(
            [name]
            + [
                int(values[spec.key]) if spec.kind == "count" else repr(float(values[spec.key]))
                for spec in METRICS
            ]
        )
    return buffer.getvalue()
