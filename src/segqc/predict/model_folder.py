"""Inspect a StarDist model folder without importing TensorFlow.

A model folder as StarDist and ZeroCostDL4Mic write it::

    my_model/
        config.json          # StarDist Config2D/Config3D (n_dim, n_channel_in, ...)
        thresholds.json      # {"prob": 0.48, "nms": 0.3}, from optimize_thresholds
        weights_best.h5      # preferred; else weights_last.h5; else the newest *.h5

Only JSON is parsed here (never pickle, never code), and only what segqc needs is read,
so a broken folder is reported at configure time with a precise message. The JSON files
and the weights are read through :mod:`segqc.data.config_files`: a folder, a named pipe or a
symbolic-link loop where a file should be, a JSON file over 1 MiB or nested absurdly deep,
are each refused with one line instead of a hang or a traceback.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from segqc.data.config_files import ConfigFileError, load_json, open_regular_file, read_config_text

__all__ = [
    "STARDIST_DEFAULT_THRESHOLDS",
    "ModelFolder",
    "ModelFolderError",
    "inspect_model_folder",
    "sha256_of",
]

#: What StarDist uses when a model folder has no thresholds.json.
STARDIST_DEFAULT_THRESHOLDS = {"prob": 0.5, "nms": 0.4}

_WEIGHTS_PREFERENCE = ("weights_best.h5", "weights_last.h5")


class ModelFolderError(ValueError):
    """The model folder is missing, incomplete or invalid; the message says what to do."""


@dataclass(frozen=True)
class ModelFolder:
    """What segqc knows about a model before loading it.

    Attributes
    ----------
    path : Path
        The model folder.
    n_dim : int
        2 (StarDist2D) or 3 (StarDist3D).
    n_channel_in : int
        Number of input channels the network expects.
    config : dict
        The parsed config.json.
    weights : Path
        The weights file that will be loaded.
    thresholds : dict or None
        ``{"prob": ..., "nms": ...}`` from thresholds.json, or None if the file is absent.
    """

    path: Path
    n_dim: int
    n_channel_in: int
    config: dict[str, Any]
    weights: Path
    thresholds: dict[str, float] | None

    @property
    def name(self) -> str:
        """The model's name: its folder name."""
        return self.path.name


def _read_json(path: Path, what: str) -> Any:
    try:
        return load_json(read_config_text(path, what=what), path)
    except json.JSONDecodeError as exc:
        raise ModelFolderError(
            f"{path}:{exc.lineno}:{exc.colno}: invalid JSON ({exc.msg})"
        ) from None
    except FileNotFoundError:  # listed in the folder, but a symbolic link to nothing
        raise ModelFolderError(
            f"{path}: cannot open the {what} (a symbolic link to a missing file?)"
        ) from None
    except ConfigFileError as exc:
        raise ModelFolderError(str(exc)) from None


def _choose_weights(folder: Path) -> Path:
    # Whatever is there under a preferred name is used, or refused by _check_hdf5 (a
    # folder, a link loop): never silently replaced by another weights file.
    for name in _WEIGHTS_PREFERENCE:
        if os.path.lexists(folder / name):
            return folder / name
    candidates = sorted(folder.glob("*.h5"), key=_modified, reverse=True)
    if not candidates:
        raise ModelFolderError(
            f"{folder}: no weights file (weights_best.h5, weights_last.h5 or *.h5); "
            "copy the whole model folder written by training"
        )
    return candidates[0]


def _modified(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError as exc:
        raise ModelFolderError(
            f"{path}: cannot read the weights file ({exc.strerror}); remove it or copy the "
            "model folder again"
        ) from None


def _read_thresholds(path: Path) -> dict[str, float] | None:
    if not os.path.lexists(path):
        return None
    data = _read_json(path, "model thresholds file")
    if not isinstance(data, dict):
        raise ModelFolderError(f'{path}: expected {{"prob": ..., "nms": ...}}')
    thresholds = {}
    for key in ("prob", "nms"):
        value = data.get(key)
        if not isinstance(value, int | float) or isinstance(value, bool) or not 0 <= value <= 1:
            raise ModelFolderError(
                f"{path}: '{key}' must be a number between 0 and 1, got {value!r}; fix the "
                "file, delete it to use StarDist's defaults, or set prediction."
                f"{key}_thresh in thresholds.yaml"
            )
        thresholds[key] = float(value)
    return thresholds


def inspect_model_folder(path: Path) -> ModelFolder:
    """Validate a StarDist model folder and describe it.

    Parameters
    ----------
    path : Path
        The model folder (the one containing config.json).

    Returns
    -------
    ModelFolder

    Raises
    ------
    ModelFolderError
        Folder or config.json missing, invalid JSON, unsupported n_dim, no weights or
        weights that are not HDF5, or thresholds.json with values outside [0, 1].
    """
    if not path.is_dir():
        raise ModelFolderError(f"{path}: model folder does not exist")
    config_path = path / "config.json"
    if not os.path.lexists(config_path):
        raise ModelFolderError(
            f"{path}: no config.json; --model must point at the folder StarDist training "
            "wrote (config.json, thresholds.json, weights_best.h5)"
        )
    config = _read_json(config_path, "model config")
    if not isinstance(config, dict):
        raise ModelFolderError(f"{config_path}: expected a JSON object")
    n_dim = config.get("n_dim")
    if n_dim not in (2, 3):
        raise ModelFolderError(
            f"{config_path}: 'n_dim' must be 2 or 3 (a StarDist2D/3D config), got {n_dim!r}"
        )
    n_channel_in = config.get("n_channel_in", 1)
    if not isinstance(n_channel_in, int) or n_channel_in < 1:
        raise ModelFolderError(
            f"{config_path}: 'n_channel_in' must be a positive integer, got {n_channel_in!r}"
        )
    weights = _choose_weights(path)
    _check_hdf5(weights)
    return ModelFolder(
        path=path,
        n_dim=n_dim,
        n_channel_in=n_channel_in,
        config=config,
        weights=weights,
        thresholds=_read_thresholds(path / "thresholds.json"),
    )


def _check_hdf5(weights: Path) -> None:
    """Refuse a weights file that is not HDF5 (truncated copy, LFS pointer, ...)."""
    signature = b"\x89HDF\r\n\x1a\n"
    try:
        with open_regular_file(weights, what="weights file") as handle:
            head = handle.read(2048 + len(signature))
    except FileNotFoundError:  # a symbolic link to nothing
        raise ModelFolderError(
            f"{weights}: cannot open the weights file (a symbolic link to a missing file?)"
        ) from None
    except ConfigFileError as exc:
        raise ModelFolderError(str(exc)) from None
    except OSError as exc:
        raise ModelFolderError(
            f"{weights}: cannot read the weights file ({exc.strerror})"
        ) from None
    # The HDF5 superblock sits at offset 0, 512, 1024 or 2048 (user block before it).
    if not any(head[offset : offset + 8] == signature for offset in (0, 512, 1024, 2048)):
        raise ModelFolderError(
            f"{weights}: not an HDF5 weights file (empty, truncated or a Git LFS pointer?); "
            "copy the weights again"
        )


def sha256_of(path: Path) -> str:
    """Hex SHA-256 of a file, read in chunks.

    The weights, the QC images and masks are hashed by several stages (summary, cache,
    baseline); a file is read once per session unless its size or modification time
    changes.
    """
    stat = path.stat()
    return _sha256_of(str(path.resolve()), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=4096)
def _sha256_of(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()
