"""Fixtures of the integration tier: pytester runs, models, subprocesses."""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import os
import pkgutil
from pathlib import Path

# Imported here, before any pytester snapshot of sys.modules: in-process pytester runs
# drop the modules a run imported, and a matplotlib half re-imported mixes classes from
# two module instances, while numpy.fft (pulled in by scipy.fft and scikit-image)
# cannot be loaded twice at all. numba (used by stardist) registers its types on its
# first compilation and cannot register them twice, so it compiles once here.
import matplotlib.backends.backend_agg
import matplotlib.figure  # noqa: F401
import numba
import numpy as np
import numpy.fft
import pytest
import scipy.fft
import skimage.segmentation
import skimage.transform

from tests.helpers import checkout_pythonpath

numba.njit(lambda x: x + 1)(1)


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
    from segqc.predict.stardist import select_device

    select_device("auto")
    model.predict_instances(np.zeros((32, 32), np.float32), show_tile_progress=False)
    return basedir / "tiny"


@pytest.fixture(scope="session")
def tensorflow_ready(tiny_model_dir: Path) -> None:
    """TensorFlow imported and warmed up, for in-process pytester runs that predict.

    Request it as a test argument (session fixtures are set up before ``pytester``).
    """


@pytest.fixture(autouse=True)
def runs_without_hypothesis_plugin(monkeypatch: pytest.MonkeyPatch) -> None:
    """QC runs under test, and their xdist workers, skip hypothesis's pytest plugin.

    It has nothing to do with a QC run, yet it imports hypothesis at every run's end;
    without bytecode caching (PYTHONDONTWRITEBYTECODE) that means assertion-rewriting
    about 80 modules again in every subprocess and worker, some two seconds each.
    """
    addopts = os.environ.get("PYTEST_ADDOPTS", "")
    monkeypatch.setenv("PYTEST_ADDOPTS", f"{addopts} -p no:hypothesispytest".strip())


@pytest.fixture
def worker_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """xdist workers and subprocesses are new processes: make them import this checkout."""
    monkeypatch.setenv("PYTHONPATH", checkout_pythonpath())


# What a QC run imports, imported once here rather than again in every in-process pytester
# run (pytester drops the modules a run imported): segqc's own modules, the libraries it
# loads lazily, and hypothesis, whose pytest plugin imports it at each run's end.
import hypothesis  # noqa: E402, F401
import jinja2  # noqa: E402, F401
import PIL.Image  # noqa: E402, F401
import scipy.ndimage  # noqa: E402
import scipy.sparse.csgraph  # noqa: E402, F401
import skimage.measure  # noqa: E402, F401

import segqc  # noqa: E402

for _module in pkgutil.walk_packages(segqc.__path__, "segqc."):
    # not the QC suite: pytest imports its test modules itself, to rewrite their asserts
    if not _module.name.startswith("segqc.qc_tests"):
        importlib.import_module(_module.name)
