"""Shared helpers for segqc's own tests.

QC data here is built from disks at known places, so expected metrics can be computed by
hand (and are, in the tests that use them).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

# Imported here, before any pytester snapshot of sys.modules: in-process pytester runs
# drop the modules a run imported, and a matplotlib half re-imported mixes classes from
# two module instances ("Invalid arguments to set_clip_path"), while numpy.fft (pulled
# in by scipy.fft and skimage.segmentation) cannot be loaded twice at all. numba (used
# by stardist) imports its type registries on its first compilation and cannot register
# them twice, so it compiles once here.
import matplotlib.backends.backend_agg
import matplotlib.figure  # noqa: F401
import numba
import numpy as np
import numpy.fft
import pytest
import scipy.fft  # noqa: F401
import skimage.segmentation
import skimage.transform  # noqa: F401
import tifffile
from skimage.draw import disk

numba.njit(lambda x: x + 1)(1)

pytest_plugins = ["pytester"]


def pytest_configure(config: pytest.Config) -> None:
    # pytest-benchmark, where installed, warns in every pytester run with -n that it
    # turns itself off under xdist; these tests never benchmark.
    config.addinivalue_line(
        "filterwarnings", "ignore:Benchmarks are automatically disabled:pytest.PytestWarning"
    )


REPO = Path(__file__).resolve().parents[1]
#: QC tests that skip in a run without a training history (the five loss-curve checks)
#: or without a baseline (three regression scopes and two statistical gates).
LOSS_CURVE_TESTS = 5
REGRESSION_TESTS = 5
OPTIONAL_SKIPPED = LOSS_CURVE_TESTS + REGRESSION_TESTS

DEMO2D = REPO / "fixtures" / "models" / "demo2d"
DEMO2D_WEAK = REPO / "fixtures" / "models" / "demo2d_weak"
QC2D = REPO / "fixtures" / "qc2d"


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


@pytest.fixture
def make_qc(tmp_path: Path) -> Callable[..., QcFolders]:
    """Write QC folders: each image has ``n_objects`` disks; predictions drop some.

    ``dropped[i]`` objects (the highest labels) are missing from image i's prediction,
    so for image i: tp = n - dropped, fn = dropped, fp = 0.
    """

    def make(
        n_images: int = 3,
        *,
        n_objects: int = 10,
        dropped: Sequence[int] = (),
        root: Path | None = None,
    ) -> QcFolders:
        base = root or tmp_path
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

    return make


@pytest.fixture
def thresholds_file(tmp_path: Path) -> Callable[[str], Path]:
    """Write a thresholds.yaml with the given text and return its path."""

    def write(text: str, name: str = "limits.yaml") -> Path:
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return path

    return write


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained, tiny StarDist2D model folder (config.json, weights_best.h5).

    Its predictions are meaningless; it exists to run the model path end to end quickly
    (error handling, thresholds.json handling) without the demo fixtures.

    In-process pytester runs that predict must request a session-scoped fixture like this
    one, which imports TensorFlow *before* pytester snapshots ``sys.modules``: pytester
    drops the modules a test imported, and TensorFlow aborts the process when imported
    a second time.
    """
    import contextlib
    import io
    import json
    import os

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from stardist.models import Config2D, StarDist2D

    basedir = tmp_path_factory.mktemp("models")
    config = Config2D(
        n_rays=8, grid=(2, 2), unet_n_depth=1, unet_n_filter_base=4, train_patch_size=(32, 32)
    )
    with contextlib.redirect_stdout(io.StringIO()):
        model = StarDist2D(config, name="tiny", basedir=str(basedir))
    model.keras_model.save_weights(str(basedir / "tiny" / "weights_best.h5"))
    (basedir / "tiny" / "thresholds.json").write_text(json.dumps({"prob": 0.5, "nms": 0.4}))
    # Predict once here so the modules TensorFlow imports lazily are loaded too.
    from segqc.prediction import select_device

    select_device("auto")
    model.predict_instances(np.zeros((32, 32), np.float32), show_tile_progress=False)
    return basedir / "tiny"


@pytest.fixture(scope="session")
def tensorflow_ready(tiny_model_dir: Path) -> None:
    """TensorFlow imported and warmed up, for in-process pytester runs that predict.

    Request it as a test argument (session fixtures are set up before ``pytester``).
    """


@pytest.fixture
def worker_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """xdist workers are new processes: make them import this checkout's segqc."""
    parts = [str(REPO / "src"), *filter(None, [os.environ.get("PYTHONPATH")])]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(parts))
