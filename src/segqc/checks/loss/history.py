"""Read a model's training history: loss and validation loss per epoch.

Where segqc looks, in order (see :func:`find_history`):

1. ``<model>/Quality Control/training_evaluation.csv`` — the CSV ZeroCostDL4Mic's
   StarDist notebooks write: one row per epoch, columns ``loss``, ``val_loss`` and the
   learning rate as ``learning rate``, ``lr`` or ``learning_rate``, in any order; other
   columns (``prob_loss``, ``val_dist_loss``, ...) are kept as extras.
2. ``<model>/logs/train`` and ``<model>/logs/validation`` — the TensorBoard event files
   StarDist training writes (scalar ``epoch_loss``; ``epoch_learning_rate`` or
   ``epoch_lr``).

``--training-log PATH`` replaces both: a CSV file, or a folder holding ``train/`` (and
``validation/``) event folders, or a model folder laid out as above.

Event files are read with tensorboard's protocol buffers and a plain TFRecord reader, so
TensorFlow is never imported. Epochs are numbered from 1, as Keras prints them.
"""

from __future__ import annotations

import csv
import math
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

__all__ = [
    "CSV_RELATIVE_PATH",
    "LR_COLUMNS",
    "HistoryError",
    "HistorySearch",
    "LossHistory",
    "find_history",
    "read_csv_history",
    "read_tensorboard_history",
    "read_training_log",
]

#: Where ZeroCostDL4Mic writes the training history inside a model folder.
CSV_RELATIVE_PATH = Path("Quality Control") / "training_evaluation.csv"
#: Learning-rate column names, in order of preference (Keras 3 logs ``learning_rate``).
LR_COLUMNS: tuple[str, ...] = ("learning rate", "lr", "learning_rate")
_LOSS_TAG = "epoch_loss"
_LR_TAGS = ("epoch_learning_rate", "epoch_lr")


class HistoryError(ValueError):
    """A training history exists but cannot be read; the message names the file."""


@dataclass(frozen=True, eq=False)
class LossHistory:
    """Loss per epoch of one training run.

    Attributes
    ----------
    source : Path
        The file or folder it was read from.
    kind : {"csv", "tensorboard"}
        The format it was read from.
    epochs : ndarray of int
        Epoch numbers, from 1.
    loss, val_loss : ndarray of float
        Training and validation loss per epoch; ``val_loss`` is None when not recorded.
    learning_rate : ndarray of float or None
        Learning rate per epoch, when recorded.
    extras : dict of str to ndarray
        Other numeric columns of the CSV (e.g. ``prob_loss``), by column name.
    """

    source: Path
    kind: Literal["csv", "tensorboard"]
    epochs: np.ndarray
    loss: np.ndarray
    val_loss: np.ndarray | None = None
    learning_rate: np.ndarray | None = None
    extras: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def n_epochs(self) -> int:
        """Number of epochs recorded."""
        return len(self.loss)


@dataclass(frozen=True)
class HistorySearch:
    """The outcome of looking for a history: found, missing (with where), or broken."""

    history: LossHistory | None
    looked: tuple[str, ...]
    error: str | None = None


def _number(text: str, where: str) -> float:
    text = text.strip()
    if text == "":
        return math.nan
    try:
        return float(text)
    except ValueError:
        raise HistoryError(f"{where}: not a number: {text!r}") from None


def read_csv_history(path: Path) -> LossHistory:
    """Read a training history CSV (ZeroCostDL4Mic's, or Keras' ``CSVLogger``).

    Parameters
    ----------
    path : Path
        CSV with a header row and one row per epoch, in epoch order. ``loss`` is
        required; ``val_loss`` and a learning-rate column (:data:`LR_COLUMNS`) are
        optional; column names are matched without case and surrounding blanks. An
        ``epoch`` column is ignored (rows are epochs 1, 2, ...). Empty cells are NaN.

    Returns
    -------
    LossHistory

    Raises
    ------
    HistoryError
        Unreadable file, no ``loss`` column, no rows, or a cell that is not a number.
    """
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            rows = list(csv.reader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise HistoryError(f"{path}: cannot read the training history ({exc})") from None
    if not rows or not any(cell.strip() for cell in rows[0]):
        raise HistoryError(f"{path}: empty file; expected a header row with 'loss', 'val_loss'")
    header = [cell.strip().lower() for cell in rows[0]]
    if "loss" not in header:
        raise HistoryError(
            f"{path}: no 'loss' column (columns: {', '.join(header)}); "
            "expected ZeroCostDL4Mic's columns loss, val_loss, learning rate"
        )
    body = [row for row in rows[1:] if any(cell.strip() for cell in row)]
    if not body:
        raise HistoryError(f"{path}: no epochs recorded (only a header row)")
    columns: dict[str, np.ndarray] = {}
    for index, name in enumerate(header):
        if name == "epoch" or name in columns:
            continue
        values = []
        for line, row in enumerate(body, start=2):
            if index >= len(row):
                raise HistoryError(f"{path}:{line}: {len(row)} cells, the header has {len(header)}")
            values.append(_number(row[index], f"{path}:{line}: column {name!r}"))
        columns[name] = np.asarray(values, dtype=float)
    lr_name = next((name for name in LR_COLUMNS if name in columns), None)
    known = {"loss", "val_loss", lr_name}
    return LossHistory(
        source=path,
        kind="csv",
        epochs=np.arange(1, len(body) + 1),
        loss=columns["loss"],
        val_loss=columns.get("val_loss"),
        learning_rate=columns[lr_name] if lr_name else None,
        extras={name: values for name, values in columns.items() if name not in known},
    )


def _records(path: Path) -> list[bytes]:
    """The records of a TFRecord file; a truncated last record (still being written) ends it."""
    records = []
    with path.open("rb") as handle:
        while True:
            header = handle.read(12)  # uint64 length + uint32 masked CRC of the length
            if len(header) < 12:
                break
            (length,) = struct.unpack("<Q", header[:8])
            data = handle.read(length)
            if len(data) < length or len(handle.read(4)) < 4:
                break
            records.append(data)
    return records


def _scalars(folder: Path, tags: tuple[str, ...]) -> dict[str, dict[int, float]]:
    """Scalar values by tag and step from every event file of ``folder`` (later files win)."""
    try:
        from tensorboard.compat.proto import event_pb2
        from tensorboard.util import tensor_util
    except ImportError:
        raise HistoryError(
            f"{folder}: reading TensorBoard logs needs the 'tensorboard' package "
            "(pip install tensorboard), or give a CSV with --training-log"
        ) from None
    found: dict[str, dict[int, float]] = {tag: {} for tag in tags}
    for path in sorted(folder.glob("events.out.tfevents.*")):
        try:
            for record in _records(path):
                event = event_pb2.Event.FromString(record)
                for value in event.summary.value:
                    if value.tag not in found:
                        continue
                    if value.HasField("tensor"):
                        number = float(tensor_util.make_ndarray(value.tensor).reshape(-1)[0])
                    else:
                        number = float(value.simple_value)
                    found[value.tag][int(event.step)] = number
        except OSError as exc:
            raise HistoryError(f"{path}: cannot read the event file ({exc})") from None
        except Exception as exc:  # protobuf's DecodeError and malformed tensors
            raise HistoryError(f"{path}: not a TensorBoard event file ({exc})") from None
    return found


def read_tensorboard_history(logs: Path) -> LossHistory:
    """Read ``epoch_loss`` from TensorBoard event files as Keras/StarDist write them.

    Parameters
    ----------
    logs : Path
        Folder with ``train/`` (required) and ``validation/`` (optional) sub-folders of
        ``events.out.tfevents.*`` files. Step ``s`` is epoch ``s + 1``. When both are
        present, only epochs recorded in both are kept.

    Returns
    -------
    LossHistory

    Raises
    ------
    HistoryError
        No ``epoch_loss`` scalar in ``train/``, or an unreadable event file.
    """
    train = _scalars(logs / "train", (_LOSS_TAG, *_LR_TAGS))
    if not train[_LOSS_TAG]:
        raise HistoryError(f"{logs / 'train'}: no '{_LOSS_TAG}' scalar in the event files")
    steps = sorted(train[_LOSS_TAG])
    val_loss = None
    if (logs / "validation").is_dir():
        validation = _scalars(logs / "validation", (_LOSS_TAG,))[_LOSS_TAG]
        if validation:
            steps = [step for step in steps if step in validation]
            val_loss = np.array([validation[step] for step in steps])
    lr_values = next((train[tag] for tag in _LR_TAGS if train[tag]), {})
    learning_rate = None
    if lr_values and all(step in lr_values for step in steps):
        learning_rate = np.array([lr_values[step] for step in steps])
    return LossHistory(
        source=logs,
        kind="tensorboard",
        epochs=np.array([step + 1 for step in steps]),
        loss=np.array([train[_LOSS_TAG][step] for step in steps]),
        val_loss=val_loss,
        learning_rate=learning_rate,
    )


def _has_events(folder: Path) -> bool:
    return folder.is_dir() and any(folder.glob("events.out.tfevents.*"))


def find_history(model_dir: Path) -> HistorySearch:
    """Look for a training history in a model folder (CSV first, then TensorBoard logs).

    Returns
    -------
    HistorySearch
        The history, or None with the places looked at, or the reading error.
    """
    csv_path = model_dir / CSV_RELATIVE_PATH
    logs = model_dir / "logs"
    looked = (str(csv_path), f"TensorBoard event files in {logs / 'train'}")
    try:
        if csv_path.is_file():
            return HistorySearch(read_csv_history(csv_path), looked)
        if _has_events(logs / "train"):
            return HistorySearch(read_tensorboard_history(logs), looked)
    except HistoryError as exc:
        return HistorySearch(None, looked, str(exc))
    return HistorySearch(None, looked)


def read_training_log(path: Path) -> HistorySearch:
    """Read the history given with ``--training-log``: a CSV, a TensorBoard or model folder."""
    looked = (str(path),)
    try:
        if path.is_file():
            return HistorySearch(read_csv_history(path), looked)
        if (path / CSV_RELATIVE_PATH).is_file():
            return HistorySearch(read_csv_history(path / CSV_RELATIVE_PATH), looked)
        for logs in (path, path / "logs"):
            if _has_events(logs / "train"):
                return HistorySearch(read_tensorboard_history(logs), looked)
    except HistoryError as exc:
        return HistorySearch(None, looked, str(exc))
    return HistorySearch(
        None,
        looked,
        f"{path}: no training history here; expected a CSV file, a folder with train/ "
        "TensorBoard event files, or a model folder with 'Quality Control/"
        "training_evaluation.csv' or logs/train",
    )
