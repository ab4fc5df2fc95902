"""Builders of QC data for segqc's own tests.

QC data here is built from disks at known places, so expected metrics can be computed by
hand (and are, in the tests that use them).
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import tifffile
from scipy.ndimage import gaussian_filter
from skimage.draw import disk

REPO = Path(__file__).resolve().parents[1]
#: QC tests that skip in a run without a training history (the five loss-curve checks)
#: or without a baseline (three regression scopes and two statistical gates).
LOSS_CURVE_TESTS = 5
REGRESSION_TESTS = 5
OPTIONAL_SKIPPED = LOSS_CURVE_TESTS + REGRESSION_TESTS

DEMO2D = REPO / "fixtures" / "models" / "demo2d"
DEMO2D_WEAK = REPO / "fixtures" / "models" / "demo2d_weak"
DEMO3D = REPO / "fixtures" / "models" / "demo3d"
QC2D = REPO / "fixtures" / "qc2d"
QC3D = REPO / "fixtures" / "qc3d"

#: The first bytes of an HDF5 file: enough for segqc to take a file for model weights.
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"

#: 428 bytes of nested aliases that expand to 9**9 (387 million) strings, used where a
#: limit section is expected: before segqc counted nodes, reading it took over a minute
#: and 3 GB of memory (building the "expected a mapping, got [...]" message).
ALIAS_BOMB = (
    'a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]\n'
    + "".join(
        f"{name}: &{name} [{', '.join(['*' + previous] * 9)}]\n"
        for previous, name in zip("abcdefgh", "bcdefghi", strict=True)
    )
    + "per_image: *i\n"
)


def disks(shape: tuple[int, int], n: int, *, radius: int = 6, spacing: int = 20) -> np.ndarray:
    """``n`` disjoint disks on a grid, labelled 1..n in reading order."""
    labels = np.zeros(shape, dtype=np.uint16)
    per_row = (shape[1] - spacing // 2) // spacing
    for i in range(n):
        row, col = divmod(i, per_row)
        centre = (spacing // 2 + row * spacing, spacing // 2 + col * spacing)
        labels[disk(centre, radius, shape=shape)] = i + 1
    return labels


def image_from(labels: np.ndarray, *, seed: int = 0) -> np.ndarray:
    """A noisy uint16 image with bright nuclei where ``labels`` has objects."""
    rng = np.random.default_rng(seed)
    image = 100 + 400 * (labels > 0) + rng.normal(0, 20, labels.shape)
    return np.clip(image, 0, 65535).astype(np.uint16)


@dataclass(frozen=True)
class QcFolders:
    """Folders of one generated QC set."""

    root: Path
    source: Path
    target: Path
    predictions: Path


def write_qc(
    base: Path,
    n_images: int = 3,
    *,
    n_objects: int = 10,
    dropped: Sequence[int] = (),
) -> QcFolders:
    """Write QC folders: each image has ``n_objects`` disks; predictions drop some.

    ``dropped[i]`` objects (the highest labels) are missing from image i's prediction,
    so for image i: tp = n - dropped, fn = dropped, fp = 0.
    """
    folders = QcFolders(base, base / "source", base / "target", base / "predictions")
    for folder in (folders.source, folders.target, folders.predictions):
        folder.mkdir(parents=True, exist_ok=True)
    for i in range(n_images):
        labels = disks((64, 128), n_objects)
        prediction = labels.copy()
        drop = dropped[i] if i < len(dropped) else 0
        if drop:
            prediction[prediction > n_objects - drop] = 0
        name = f"img{i:02d}.tif"
        tifffile.imwrite(folders.source / name, image_from(labels, seed=i))
        tifffile.imwrite(folders.target / name, labels)
        tifffile.imwrite(folders.predictions / name, prediction)
    return folders


def checkout_pythonpath() -> str:
    """PYTHONPATH for subprocesses and xdist workers: this checkout's segqc first."""
    return os.pathsep.join(filter(None, [str(REPO / "src"), os.environ.get("PYTHONPATH")]))


@contextlib.contextmanager
def fifo_at(path: Path) -> Iterator[Path]:
    """A named pipe (FIFO) at ``path``, for tests that segqc refuses it without reading.

    Opening a FIFO to read blocks until a writer comes: should the code under test do that,
    a writer is attached (and closed at once) every couple of seconds, so the read ends
    with an empty file and the test fails instead of hanging the test run.
    """
    os.mkfifo(path)
    done = threading.Event()

    def unblock() -> None:
        while not done.wait(2):
            try:  # without blocking: succeeds only while a reader is waiting
                fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
            except OSError:
                continue
            os.close(fd)

    thread = threading.Thread(target=unblock, daemon=True)
    thread.start()
    try:
        yield path
    finally:
        done.set()
        thread.join()


def squares(*, small=True, large_height=12):
    """Labels 1-4 small squares, 5-8 large squares (optionally shortened)."""
    labels = np.zeros((40, 140), np.uint16)
    for i in range(4):
        if small:
            labels[2:6, 2 + 30 * i : 6 + 30 * i] = i + 1
        labels[20 : 20 + large_height, 10 + 30 * i : 22 + 30 * i] = i + 5
    return labels


def nuclei(seed, shape=(192, 192), n=40):
    """Random bright disks (different seeds: different fields of view)."""
    rng = np.random.default_rng(seed)
    image = np.zeros(shape)
    for _ in range(n):
        centre = rng.uniform(0, shape[0]), rng.uniform(0, shape[1])
        image[disk(centre, rng.uniform(4, 9), shape=shape)] = rng.uniform(0.5, 1)
    image = gaussian_filter(image, 1.5) * 400 + 100 + rng.normal(0, 15, shape)
    return np.clip(image, 0, 65535).astype(np.uint16)


#: Subgroup limits for squares(): size bins, one bin's own limit, image groups.
SUBGROUP_LIMITS = """
subgroups:
  object_size:
    edges: [50, 100]
    limits:
      recall: {min: 0.9}
    by_bin:
      large: {mean_matched_score: {min: 0.95}}
  image_groups:
    limits:
      f1: {min: 0.9}
"""


def two_squares() -> tuple[np.ndarray, np.ndarray]:
    """Two ground-truth squares and their prediction: A shifted (IoU 80/120), B exact."""
    target = np.zeros((40, 40), np.uint16)
    target[5:15, 5:15] = 3  # A
    target[25:35, 20:30] = 8  # B
    predicted = np.zeros_like(target)
    predicted[5:15, 7:17] = 5  # A shifted: IoU 80 / 120
    predicted[25:35, 20:30] = 2  # B exact
    return target, predicted


def training_folder(folder: Path) -> Path:
    """A training-images folder of four fields of view (``nuclei`` with seeds 0-3)."""
    folder.mkdir()
    for seed in range(4):
        tifffile.imwrite(folder / f"train_{seed}.tif", nuclei(seed))
    return folder


def literal(text: str) -> str:
    """An fnmatch pattern matching ``text`` literally, except for ``*``."""
    return "".join({"[": "[[]", "]": "[]]"}.get(char, char) for char in text)


def summary_json(pytester: Any, output: str = "qc-output") -> dict[str, Any]:
    """The summary.json a pytester run wrote into ``output``."""
    document: dict[str, Any] = json.loads((pytester.path / output / "summary.json").read_text())
    return document


def assert_no_traceback(result: Any) -> None:
    """A run a user caused to fail shows no Python traceback and no INTERNALERROR."""
    text = result.stdout.str() + result.stderr.str()
    assert "Traceback" not in text
    assert "INTERNALERROR" not in text
