"""The pytest plugin: options, fixtures and hooks. It wires the stages and hands off.

Registered through the ``pytest11`` entry point, so installing segqc is enough. Nothing
here imports TensorFlow; the model loads only when the first QC image is predicted.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from segqc.accuracy import AccuracyCurve, accuracy_vs_iou, deselect_unused_aggregate_at
from segqc.cache import CachingPredictor, PictureCache
from segqc.distributed import LazyOutcomes, XdistBridge, is_xdist_worker
from segqc.loss_session import LossCurveRun
from segqc.model_folder import ModelFolder, ModelFolderError, inspect_model_folder
from segqc.outputs import OutputError, claim_output_dir
from segqc.pairing import PairingError, QcPair, QcPairing, discover_pairs, find_prediction_files
from segqc.prediction import (
    DeviceError,
    PredictionsFolder,
    Predictor,
    StarDistPredictor,
    resolve_parameters,
    select_device,
)
from segqc.quick_exit import freeze_heap_at_exit
from segqc.report import enable_html_report
from segqc.reporting import QcSessionPlugin
from segqc.session import DatasetOutcome, ImageOutcome, QcRun
from segqc.thresholds import (
    LoadedThresholds,
    ThresholdsError,
    bundled_thresholds_path,
    load_thresholds,
)

__all__ = [
    "LOSS_CURVE",
    "loss_curve",
    "qc_accuracy",
    "qc_dataset",
    "qc_image",
    "qc_outcomes",
    "qc_run",
]

# Regression checks and statistics; robustness, leakage and subgroup checks (and the
# pytest_segqc_make_predictor hook): their options, fixtures and hooks.
pytest_plugins = ["segqc.regression_plugin", "segqc.generalisation"]

NOT_ACTIVE_REASON = "segqc: no --model or --predictions given, QC tests skipped"
QC_FIXTURES = frozenset(
    {"qc_run", "qc_outcomes", "qc_image", "qc_dataset", "qc_accuracy", "loss_curve"}
)

_PLUGIN = pytest.StashKey[QcSessionPlugin]()
#: The session's loss-curve checks (history, verdicts, figure), for the report.
LOSS_CURVE = pytest.StashKey[LossCurveRun]()

# (option, ini key, help); every option can also be set in [tool.pytest.ini_options].
_PATH_OPTIONS = (
    ("--model", "qc_model", "StarDist model folder to test (config.json, weights_best.h5)"),
    ("--qc-source", "qc_source", "folder of QC source images (.tif/.tiff)"),
    ("--qc-target", "qc_target", "folder of ground-truth label masks with the same file names"),
    ("--thresholds", "qc_thresholds", "limits file [default: thresholds.yaml in the rootdir]"),
    (
        "--predictions",
        "qc_predictions",
        "folder of label images another tool already predicted, used instead of --model "
        "(TensorFlow is never imported)",
    ),
    ("--qc-output", "qc_output", "folder for metrics.csv, summary.json, predictions/ "
     "[default: qc-output]"),
    ("--training-log", "qc_training_log", "training history to check instead of the model "
     "folder's: a CSV (loss, val_loss) or a TensorBoard logs folder"),
    ("--qc-cache", "qc_cache", "prediction cache folder [default: <qc-output>/cache]"),
)  # fmt: skip


def pytest_addoption(parser: pytest.Parser) -> None:
    """Add the ``segqc`` option group and the matching ini keys."""
    group = parser.getgroup("segqc", "segqc: quality control of segmentation models")
    for option, ini, help_text in _PATH_OPTIONS:
        group.addoption(option, dest=ini, metavar="PATH", default=None, help=help_text)
        parser.addini(ini, f"segqc: {help_text}", default=None)
    group.addoption(
        "--device",
        dest="qc_device",
        choices=("auto", "cpu", "gpu"),
        default=None,
        help="where to predict: auto (a GPU if TensorFlow sees one), cpu or gpu [default: auto]",
    )
    parser.addini("qc_device", "segqc: auto, cpu or gpu", default=None)
    group.addoption(
        "--no-cache",
        dest="qc_no_cache",
        action="store_true",
        default=False,
        help="predict every image even if the prediction cache holds it, and store nothing",
    )
    group.addoption(
        "--qc-overwrite",
        dest="qc_overwrite",
        action="store_true",
        default=None,
        help="replace metrics.csv, summary.json, ... in an output folder segqc did not create",
    )
    parser.addini("qc_overwrite", "segqc: see --qc-overwrite", type="bool", default=False)


def _path_setting(config: pytest.Config, name: str) -> Path | None:
    """A path from the command line (relative to the invocation dir) or the ini file."""
    value = config.getoption(name)
    if value:
        return (config.invocation_params.dir / value).resolve()
    ini_value = config.getini(name)
    if ini_value:
        base = config.inipath.parent if config.inipath else config.rootpath
        return (base / str(ini_value)).resolve()
    return None


def _flag_setting(config: pytest.Config, name: str) -> bool:
    value = config.getoption(name)
    return bool(value if value is not None else config.getini(name))


def _device_setting(config: pytest.Config) -> str:
    value = config.getoption("qc_device") or config.getini("qc_device") or "auto"
    if value not in ("auto", "cpu", "gpu"):
        raise pytest.UsageError(f"qc_device = {value!r}: must be auto, cpu or gpu")
    return str(value)


def _load_thresholds(config: pytest.Config) -> LoadedThresholds:
    explicit = _path_setting(config, "qc_thresholds")
    if explicit is not None:
        return load_thresholds(explicit)
    in_rootdir = config.rootpath / "thresholds.yaml"
    if in_rootdir.is_file():
        return load_thresholds(in_rootdir)
    return load_thresholds(bundled_thresholds_path(), is_bundled_default=True)


def _make_predictor(
    config: pytest.Config,
    loaded: LoadedThresholds,
    model_dir: Path | None,
    prediction_files: dict[str, Path] | None,
    predictions_dir: Path | None,
) -> tuple[Predictor, ModelFolder | None]:
    if prediction_files is not None and predictions_dir is not None:
        return PredictionsFolder(predictions_dir, prediction_files), None
    assert model_dir is not None
    custom = config.hook.pytest_segqc_make_predictor(config=config, model_dir=model_dir)
    if custom is not None:  # a plugin's own predictor (see segqc.hookspecs)
        return custom, None
    folder = inspect_model_folder(model_dir)
    if importlib.util.find_spec("tensorflow") is None:
        raise DeviceError(
            "TensorFlow is not installed, so --model cannot predict; "
            "pip install 'segqc[cpu]' (or 'segqc[gpu]'), or use --predictions"
        )
    device = _device_setting(config)
    if device == "gpu":
        select_device("gpu")  # fail now, at configure time, rather than after collection
    parameters = resolve_parameters(folder, loaded.thresholds.prediction)
    predictor = StarDistPredictor(folder, parameters, device=device)  # type: ignore[arg-type]
    return _with_cache(config, predictor), folder


def _with_cache(config: pytest.Config, predictor: StarDistPredictor) -> Predictor:
    """Wrap ``predictor`` in the prediction cache unless ``--no-cache`` (see segqc.cache)."""
    if config.getoption("qc_no_cache"):
        return predictor
    from segqc.cache import PredictionCache, stardist_cache_settings

    folder = _path_setting(config, "qc_cache") or _output_dir(config) / "cache"
    PredictionCache.check_writable(folder)
    settings = stardist_cache_settings(predictor)
    return CachingPredictor(
        predictor, PredictionCache(folder), settings=settings, n_dim=predictor.folder.n_dim
    )


def _output_dir(config: pytest.Config) -> Path:
    return (
        _path_setting(config, "qc_output") or (config.invocation_params.dir / "qc-output").resolve()
    )


def _build_run(config: pytest.Config) -> QcSessionPlugin | None:
    model_dir = _path_setting(config, "qc_model")
    predictions_dir = _path_setting(config, "qc_predictions")
    if model_dir is None and predictions_dir is None:
        return None
    if model_dir is not None and predictions_dir is not None:
        raise pytest.UsageError("segqc: give either --model or --predictions, not both")
    source_dir = _path_setting(config, "qc_source")
    target_dir = _path_setting(config, "qc_target")
    if target_dir is None or (source_dir is None and model_dir is not None):
        raise pytest.UsageError(
            "segqc: --qc-source and --qc-target are required with --model "
            "(--qc-target with --predictions), or set qc_source/qc_target in the ini file"
        )
    try:
        loaded = _load_thresholds(config)
    except ThresholdsError as exc:
        raise pytest.UsageError(str(exc)) from None
    output_dir = _output_dir(config)
    prediction_files: dict[str, Path] | None = None
    # Imported here: a plugin module of ``pytest_plugins`` imported before pytest
    # registers it is not assert-rewritten, and pytest 9.0 warns about it on every run.
    from segqc.generalisation import groups_setting

    subfolders = groups_setting(config) == "subfolders"
    try:
        if source_dir is not None:
            pairing = discover_pairs(source_dir, target_dir, subfolders=subfolders)
            if predictions_dir is not None:
                prediction_files = find_prediction_files(
                    pairing.pairs, predictions_dir, subfolders=subfolders
                )
        else:  # --predictions without source images: pair predictions with targets
            assert predictions_dir is not None
            found = discover_pairs(
                predictions_dir, target_dir, source_role="predictions", subfolders=subfolders
            )
            prediction_files = {p.name: p.source for p in found.pairs if p.source}
            pairing = QcPairing(
                pairs=tuple(QcPair(p.name, None, p.target, p.group) for p in found.pairs),
                ignored=found.ignored,
            )
        # Claim the output folder first: the prediction cache lives inside it by default.
        claim_output_dir(output_dir, overwrite=_flag_setting(config, "qc_overwrite"))
        predictor, model_folder = _make_predictor(
            config, loaded, model_dir, prediction_files, predictions_dir
        )
    except PairingError as exc:
        lines = "\n".join(f"  - {problem}" for problem in exc.problems)
        raise pytest.UsageError(f"segqc: cannot pair the QC images:\n{lines}") from None
    except (ModelFolderError, DeviceError, OutputError) as exc:
        raise pytest.UsageError(f"segqc: {exc}") from None
    run = QcRun(
        pairs=pairing.pairs,
        thresholds=loaded,
        predictor=predictor,
        output_dir=output_dir,
        model_folder=model_folder,
    )
    if isinstance(predictor, CachingPredictor):  # the report's pictures are cached beside
        run.picture_cache = PictureCache(predictor.cache.folder / "pictures")
    folders = {"source": source_dir, "target": target_dir, "predictions": predictions_dir}
    return QcSessionPlugin(
        config,
        run=run,
        ignored=pairing.ignored,
        folders={k: str(v) for k, v in folders.items() if v is not None},
        output_dir=output_dir,
    )


def _build_loss_curve(config: pytest.Config, session_plugin: QcSessionPlugin) -> LossCurveRun:
    training_log = _path_setting(config, "qc_training_log")
    if training_log is not None and not training_log.exists():
        raise pytest.UsageError(
            f"segqc: --training-log {training_log}: no such file or folder; give a CSV "
            "(loss, val_loss) or a TensorBoard logs folder"
        )
    run = session_plugin.run
    return LossCurveRun(
        run.thresholds.thresholds.loss_curve,
        output_dir=session_plugin.output_dir,
        model_dir=run.model_folder.path if run.model_folder else None,
        training_log=training_log,
    )


@pytest.hookimpl(tryfirst=True)  # before pytest-html's, which must see the report path
def pytest_configure(config: pytest.Config) -> None:
    """Validate options, thresholds, model and QC folders before anything is collected."""
    config.addinivalue_line(
        "markers", "segqc: a QC test of segqc (per image, aggregate, loss curve, ...)"
    )
    session_plugin = _build_run(config)
    if session_plugin is not None:
        session_plugin.loss_curve = config.stash[LOSS_CURVE] = _build_loss_curve(
            config, session_plugin
        )
        config.stash[_PLUGIN] = session_plugin
        config.pluginmanager.register(session_plugin, "segqc-session")
        bridge = XdistBridge(config, session_plugin.run, session_plugin.output_dir)
        config.pluginmanager.register(bridge, "segqc-xdist")
        enable_html_report(config, session_plugin)
        freeze_heap_at_exit()
        # The metrics are meant for the JUnit XML: pytest still writes record_property
        # values with its default junit_family (xunit2), it only warns on every test.
        config.addinivalue_line(
            "filterwarnings", "ignore:record_property is incompatible with junit_family"
        )


def pytest_unconfigure(config: pytest.Config) -> None:
    """Unregister the per-session plugin (matters for in-process pytester runs)."""
    session_plugin = config.stash.get(_PLUGIN, None)
    if session_plugin is not None:
        del config.stash[_PLUGIN]
        del config.stash[LOSS_CURVE]
        config.pluginmanager.unregister(session_plugin)
        config.pluginmanager.unregister(name="segqc-xdist")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """One test per QC image, with the image's file name as the test id."""
    if "qc_image" not in metafunc.fixturenames:
        return
    session_plugin = metafunc.config.stash.get(_PLUGIN, None)
    if session_plugin is None:
        skipped = pytest.param(
            None, marks=pytest.mark.skip(reason=NOT_ACTIVE_REASON), id="no-model"
        )
        metafunc.parametrize("qc_image", [skipped], indirect=True)
        return
    pairs = session_plugin.run.pairs
    metafunc.parametrize("qc_image", pairs, ids=[p.name for p in pairs], indirect=True)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark QC tests (``-m segqc`` selects them; their outcomes go to summary.json)."""
    for item in items:
        if isinstance(item, pytest.Function) and QC_FIXTURES & set(item.fixturenames):
            item.add_marker(pytest.mark.segqc)
    session_plugin = config.stash.get(_PLUGIN, None)
    deselect_unused_aggregate_at(config, items, session_plugin.run if session_plugin else None)
    if is_xdist_worker(config):
        _whole_set_tests_last(items)


def _whole_set_tests_last(items: list[pytest.Item]) -> None:
    """Move the tests that need every image's outcome after the per-image tests.

    Under pytest-xdist, an aggregate test scheduled early makes its worker evaluate
    every image (:class:`~segqc.distributed.SharedEvaluator`) while the other workers
    evaluate the same images for their per-image tests: with 2 workers, much of the
    work was done twice. Run last, it finds the images in the spool. Every worker
    sorts the same collection the same way, as xdist requires.
    """

    def needs_whole_set(item: pytest.Item) -> bool:
        names = set(getattr(item, "fixturenames", ()))
        return "qc_outcomes" in names and "qc_image" not in names

    items.sort(key=needs_whole_set)  # stable: the order is otherwise kept


@pytest.fixture(scope="session")
def qc_run(request: pytest.FixtureRequest) -> QcRun:
    """The session's :class:`~segqc.session.QcRun` (skips the test when segqc is inactive)."""
    session_plugin = request.config.stash.get(_PLUGIN, None)
    if session_plugin is None:
        pytest.skip(NOT_ACTIVE_REASON)
    return session_plugin.run


@pytest.fixture(scope="session")
def qc_outcomes(request: pytest.FixtureRequest, qc_run: QcRun) -> Mapping[str, ImageOutcome]:
    """Predict and measure every QC image, once per session, showing progress.

    On a pytest-xdist worker, a mapping that evaluates each image when first looked up.
    """
    if is_xdist_worker(request.config):
        bridge = request.config.pluginmanager.get_plugin("segqc-xdist")
        assert bridge is not None and bridge.evaluator is not None
        return LazyOutcomes(bridge.evaluator)
    from segqc.progress import image_progress

    what = (
        f"predicting with {qc_run.model_folder.name}"
        if qc_run.model_folder
        else "reading predictions"
    )
    loss_run = request.config.stash.get(LOSS_CURVE, None)
    background = [loss_run.draw_figure] if loss_run is not None else []
    with image_progress(request.config, total=len(qc_run.pending()), what=what) as on_image:
        qc_run.evaluate_all(on_image=on_image, background=background)
    return {o.pair.name: o for o in qc_run.outcomes}


@pytest.fixture
def qc_image(
    request: pytest.FixtureRequest,
    qc_outcomes: Mapping[str, ImageOutcome],
    record_property: Any,
) -> ImageOutcome:
    """The outcome of one QC image; its metrics also go to the JUnit XML as properties."""
    pair: QcPair = request.param
    outcome = qc_outcomes[pair.name]
    if outcome.scores is not None:
        for key, value in outcome.scores.values().items():
            record_property(key, value)
    return outcome


@pytest.fixture(scope="session")
def qc_dataset(qc_run: QcRun, qc_outcomes: Mapping[str, ImageOutcome]) -> DatasetOutcome:
    """Pooled and image-mean scores over every evaluated image, judged."""
    if isinstance(qc_outcomes, LazyOutcomes):
        qc_outcomes.evaluate_all()
    return qc_run.dataset()


@pytest.fixture(scope="session")
def qc_accuracy(qc_run: QcRun, qc_dataset: DatasetOutcome) -> AccuracyCurve | None:
    """The pooled QC set at IoU 0.1 … 0.9 (and every ``aggregate_at`` threshold), judged.

    Requests ``qc_dataset`` so that every image is evaluated first (also on xdist workers,
    which otherwise hold only the images their own tests needed).
    """
    return accuracy_vs_iou(qc_run)


@pytest.fixture(scope="session")
def loss_curve(request: pytest.FixtureRequest) -> LossCurveRun:
    """The session's training-history checks (skips the test when segqc is inactive)."""
    loss_run = request.config.stash.get(LOSS_CURVE, None)
    if loss_run is None:
        pytest.skip(NOT_ACTIVE_REASON)
    return loss_run
