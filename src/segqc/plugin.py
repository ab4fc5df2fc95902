"""The pytest plugin: options, one ``pytest_configure`` that registers the session's
plugin objects, and the fixtures of the QC suite.

Registered through the ``pytest11`` entry point, so installing segqc is enough. Importing
this module imports pytest and segqc's option definitions only: a pytest run that gives
no QC option loads nothing else. With ``--model`` or ``--predictions`` the session is
built (:func:`segqc.session.open_session`) and its plugin objects registered: the gate
(:mod:`segqc.gate`), one per check (:mod:`segqc.checks`), the report
(:mod:`segqc.report`) and, under pytest-xdist, the channel (:mod:`segqc.xdist`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import pytest

from segqc.settings import PATH_OPTIONS, Settings, SettingsError
from segqc.suite import INACTIVE_MARKER, QC_FIXTURES

if TYPE_CHECKING:
    from segqc.checks.accuracy import AccuracyCurve
    from segqc.checks.leakage.search import LeakageReport
    from segqc.checks.loss.inspection import LossInspection
    from segqc.checks.quality import DatasetOutcome
    from segqc.checks.regression.comparison import Comparison
    from segqc.checks.robustness.perturbations import Perturbation, RobustnessResult
    from segqc.checks.statistics.plugin import StatisticsOutcome
    from segqc.checks.subgroups.grouping import GroupOutcome, SizeBinOutcome
    from segqc.checks.verdict import Verdict
    from segqc.data.pairing import QcPair
    from segqc.pipeline.outcome import ImageOutcome
    from segqc.session import QcSession

__all__ = [
    "SESSION",
    "loss_curve",
    "qc_accuracy",
    "qc_compared_pair",
    "qc_dataset",
    "qc_device_agreement",
    "qc_image",
    "qc_image_group",
    "qc_leakage",
    "qc_outcomes",
    "qc_perturbation",
    "qc_regression",
    "qc_robustness",
    "qc_session",
    "qc_size_bin",
    "qc_statistics",
]

#: The session's state (:class:`segqc.session.QcSession`).
SESSION = pytest.StashKey["QcSession"]()
_PLUGIN_NAMES = pytest.StashKey[list[str]]()
_PREVIOUS_SIGTERM = pytest.StashKey[Any]()

NOT_ACTIVE_REASON = "segqc: no --model or --predictions given, QC tests skipped"


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    """Add segqc's hooks (:mod:`segqc.hookspecs`)."""
    from segqc import hookspecs

    pluginmanager.add_hookspecs(hookspecs)


def pytest_addoption(parser: pytest.Parser) -> None:
    """Add the ``segqc`` option group; every option can also be set in the ini file."""
    group = parser.getgroup("segqc", "segqc: quality control of segmentation models")
    for option, ini, help_text in PATH_OPTIONS:
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
        "--compare-device",
        dest="qc_compare_device",
        choices=("cpu", "gpu"),
        default=None,
        help="predict each image a second time on this device and limit how far the two "
        "predictions differ (device_agreement: in thresholds.yaml)",
    )
    group.addoption(
        "--no-cache",
        dest="qc_no_cache",
        action="store_true",
        default=False,
        help="predict every image even if the prediction cache holds it, and store nothing",
    )
    for option, ini, help_text in (
        ("--qc-overwrite", "qc_overwrite", "replace metrics.csv, summary.json, ... in an "
         "output folder segqc did not create"),
        ("--update-baseline", "qc_update_baseline", "write --baseline PATH from this run "
         "(every image must be evaluated) instead of comparing"),
        ("--baseline-allow-different-data", "qc_baseline_allow_different_data", "compare "
         "only the QC images the baseline shares with this run, listing the others"),
        ("--robustness", "qc_robustness", "predict perturbed copies of each QC image (noise, "
         "intensity, blur, flips, rotations) and limit the metric drops (robustness: in "
         "thresholds.yaml)"),
    ):  # fmt: skip
        group.addoption(option, dest=ini, action="store_true", default=None, help=help_text)
        parser.addini(ini, f"segqc: see {option}", type="bool", default=False)
    group.addoption(
        "--qc-groups",
        dest="qc_groups",
        metavar="subfolders|FILE",
        default=None,
        help="image groups with their own limits: 'subfolders' (one group per subfolder "
        "of the QC folders) or a CSV file with columns image,group",
    )
    parser.addini("qc_groups", "segqc: see --qc-groups", default=None)
    group.addoption(
        "--report-images",
        dest="qc_report_images",
        metavar="auto|all|failed|worst:N",
        default=None,
        help="which images get pictures in report.html [default: auto: every image up to "
        "200, above that the failed and warned ones, the 50 worst and a sample of 50]",
    )
    parser.addini("qc_report_images", "segqc: see --report-images", default=None)


@pytest.hookimpl(tryfirst=True)  # before pytest-html's, which must see the report path
def pytest_configure(config: pytest.Config) -> None:
    """Check every setting and build the session before anything is collected."""
    config.addinivalue_line(
        "markers", "segqc: a QC test of segqc (per image, aggregate, loss curve, ...)"
    )
    config.addinivalue_line("markers", f"{INACTIVE_MARKER}: a segqc check that was not asked for")
    try:
        settings = Settings.from_config(config)
    except SettingsError as exc:
        raise pytest.UsageError(f"segqc: {exc}") from None
    if not settings.active:
        return
    from segqc.invocation import misread_rootdir

    misread = misread_rootdir(config)
    if misread:
        raise pytest.UsageError(f"segqc: {misread}")
    from segqc import xdist
    from segqc.session import SessionError, open_session

    try:
        session = open_session(config, settings, role=xdist.role_of(config))
    except SessionError as exc:
        raise pytest.UsageError(f"segqc: {exc}") from None
    config.stash[SESSION] = session
    names = config.stash[_PLUGIN_NAMES] = []
    for name, plugin in _plugins_of(config, session):
        config.pluginmanager.register(plugin, name)
        names.append(name)
    # The metrics are meant for the JUnit XML: pytest still writes record_property
    # values with its default junit_family (xunit2), it only warns on every test.
    config.addinivalue_line(
        "filterwarnings", "ignore:record_property is incompatible with junit_family"
    )
    if session.writes_outputs:
        _interrupt_on_sigterm(config)


def _interrupt_on_sigterm(config: pytest.Config) -> None:
    """Handle SIGTERM (CI time-outs, ``timeout``, ``kill``) as pytest handles Ctrl-C.

    The run then ends as an interrupted run: what was evaluated is written (summary.json
    with ``status: interrupted``, metrics.csv, the report) and the temporary folders are
    removed. Only where nobody else handles SIGTERM, and only in the main thread.
    """
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"segqc: received signal {signum} (SIGTERM)")

    config.stash[_PREVIOUS_SIGTERM] = signal.signal(signal.SIGTERM, interrupt)


def _plugins_of(config: pytest.Config, session: QcSession) -> list[tuple[str, object]]:
    """The session's plugin objects, by name.

    pytest calls plugins registered later first; the gate is last, so its terminal
    section comes before the regression check's.
    """
    from segqc import xdist
    from segqc.checks.agreement.plugin import AgreementPlugin
    from segqc.checks.leakage.plugin import LeakagePlugin
    from segqc.checks.loss.plugin import LossPlugin
    from segqc.checks.regression.plugin import RegressionPlugin
    from segqc.checks.robustness.plugin import RobustnessPlugin
    from segqc.checks.statistics.plugin import StatisticsPlugin
    from segqc.checks.subgroups.plugin import SubgroupsPlugin
    from segqc.gate import QcGate
    from segqc.report.plugin import enable_report

    inactive = getattr(pytest.mark, INACTIVE_MARKER)
    found: list[tuple[str, object | None]] = [
        ("segqc-regression", RegressionPlugin(session)),
        ("segqc-statistics", StatisticsPlugin()),
        ("segqc-loss", LossPlugin(session)),
        ("segqc-robustness", RobustnessPlugin(session, inactive)),
        ("segqc-agreement", AgreementPlugin(session, inactive)),
        ("segqc-leakage", LeakagePlugin(session, inactive)),
        ("segqc-subgroups", SubgroupsPlugin(session, inactive)),
        ("segqc-report", enable_report(config, session)),
        ("segqc-xdist", xdist.plugin_for(config, session)),
        ("segqc-gate", QcGate(session)),
    ]
    return [(name, plugin) for name, plugin in found if plugin is not None]


def pytest_unconfigure(config: pytest.Config) -> None:
    """Release the output folder and unregister the session's plugins."""
    session = config.stash.get(SESSION, None)
    if session is None:
        return
    if _PREVIOUS_SIGTERM in config.stash:
        import signal

        signal.signal(signal.SIGTERM, config.stash[_PREVIOUS_SIGTERM])
        del config.stash[_PREVIOUS_SIGTERM]
    for name in config.stash.get(_PLUGIN_NAMES, []):
        if config.pluginmanager.get_plugin(name) is not None:
            config.pluginmanager.unregister(name=name)
    del config.stash[SESSION]
    session.close()


def pytest_collection_finish(session: pytest.Session) -> None:
    """Refuse to run the QC suite without a model: a forgotten ``--model`` never passes."""
    if SESSION in session.config.stash:
        return
    qc_tests = [
        item for item in session.items if QC_FIXTURES & set(getattr(item, "fixturenames", ()))
    ]
    if qc_tests:
        raise pytest.UsageError(
            f"segqc: {len(qc_tests)} QC tests collected (e.g. {qc_tests[0].nodeid}) but "
            "neither --model nor --predictions was given; give --model DIR (or "
            "--predictions DIR), or run your own tests only (e.g. pytest tests)"
        )


# --- fixtures ----------------------------------------------------------------------------


def _session(request: pytest.FixtureRequest) -> QcSession:
    session = request.config.stash.get(SESSION, None)
    if session is None:
        pytest.skip(NOT_ACTIVE_REASON)
    return session


def _evaluate_everything(config: pytest.Config, session: QcSession) -> None:
    """Evaluate every image not evaluated yet, showing progress in a single process."""
    pending = session.pending()
    if not pending:
        return
    if session.role != "single":
        session.evaluate_all()
        return
    from segqc.outputs.progress import image_progress

    settings = session.settings
    what = f"predicting with {settings.model.name}" if settings.model else "reading predictions"
    with image_progress(config, total=len(pending), what=what) as on_image:
        session.evaluate_all(on_image=on_image)


@pytest.fixture(scope="session")
def qc_session(request: pytest.FixtureRequest) -> QcSession:
    """The session's :class:`~segqc.session.QcSession` (skips when segqc is inactive)."""
    return _session(request)


@pytest.fixture(scope="session")
def qc_outcomes(
    request: pytest.FixtureRequest, qc_session: QcSession
) -> Mapping[str, ImageOutcome]:
    """Every QC image's outcome by name, each image predicted and measured once."""
    _evaluate_everything(request.config, qc_session)
    return {outcome.pair.name: outcome for outcome in qc_session.outcomes}


@pytest.fixture
def qc_image(
    request: pytest.FixtureRequest, qc_session: QcSession, record_property: Any
) -> ImageOutcome:
    """The outcome of one QC image; its metrics also go to the JUnit XML as properties.

    In a single process every image is evaluated on first use, with a progress bar; an
    xdist worker evaluates the images of its own tests.
    """
    pair: QcPair = request.param
    if qc_session.role == "single":
        _evaluate_everything(request.config, qc_session)
    outcome = qc_session.outcome(pair, for_test=True)
    if outcome.scores is not None:
        for key, value in outcome.scores.values().items():
            record_property(key, value)
    return outcome


@pytest.fixture(scope="session")
def qc_dataset(qc_session: QcSession, qc_outcomes: Mapping[str, ImageOutcome]) -> DatasetOutcome:
    """Pooled and image-mean scores over every evaluated image, judged."""
    return qc_session.dataset()


@pytest.fixture(scope="session")
def qc_accuracy(
    qc_session: QcSession, qc_outcomes: Mapping[str, ImageOutcome]
) -> AccuracyCurve | None:
    """The pooled QC set at IoU 0.1 … 0.9 (and every ``aggregate_at`` threshold), judged."""
    return qc_session.accuracy()


@pytest.fixture(scope="session")
def loss_curve(request: pytest.FixtureRequest, qc_session: QcSession) -> LossInspection:
    """The session's training-history checks."""
    plugin = request.config.pluginmanager.get_plugin("segqc-loss")
    return plugin.inspection  # type: ignore[union-attr]


@pytest.fixture(scope="session")
def qc_regression(
    request: pytest.FixtureRequest,
    qc_session: QcSession,
    qc_outcomes: Mapping[str, ImageOutcome],
) -> Comparison:
    """The comparison with the baseline (skips when there is none to compare with)."""
    setup = qc_session.baseline
    if setup is None or not setup.compares:
        if setup is not None and setup.update_path is not None:
            pytest.skip(
                f"segqc: --update-baseline writes {setup.update_path} at the end of the "
                "session; nothing to compare with"
            )
        pytest.skip("segqc: no --baseline or --baseline-model given, regression checks skipped")
    if setup.predictor is not None:
        for pair in qc_session.pairs:
            qc_session.baseline_outcome(pair)
    plugin = request.config.pluginmanager.get_plugin("segqc-regression")
    comparison: Comparison = plugin.compare()  # type: ignore[union-attr]
    if not comparison.compared:
        pytest.fail(
            f"no QC image could be compared with the baseline ({setup.describe}); "
            f"not compared: {comparison.not_compared}",
            pytrace=False,
        )
    return comparison


@pytest.fixture(scope="session")
def qc_statistics(
    request: pytest.FixtureRequest,
    qc_session: QcSession,
    qc_outcomes: Mapping[str, ImageOutcome],
) -> StatisticsOutcome:
    """Bootstrap intervals over the evaluated images and the statistical gates."""
    plugin = request.config.pluginmanager.get_plugin("segqc-statistics")
    found = plugin.statistics(qc_session)  # type: ignore[union-attr]
    if found is None:
        pytest.fail("no QC image could be evaluated; see the errors above", pytrace=False)
    return found


@pytest.fixture
def qc_perturbation(request: pytest.FixtureRequest) -> tuple[Perturbation, QcPair]:
    """The (perturbation, QC pair) of one robustness test."""
    return request.param


@pytest.fixture
def qc_robustness(
    qc_session: QcSession, qc_perturbation: tuple[Perturbation, QcPair]
) -> RobustnessResult:
    """Predict one perturbed QC image and compare its metrics with the original's."""
    return qc_session.robustness_result(*qc_perturbation)


@pytest.fixture
def qc_compared_pair(request: pytest.FixtureRequest) -> QcPair:
    """The QC pair of one device-agreement test."""
    return request.param


@pytest.fixture
def qc_device_agreement(qc_session: QcSession, qc_compared_pair: QcPair) -> list[Verdict]:
    """One image's device-agreement verdicts (``--compare-device``)."""
    from segqc.checks.agreement.plugin import image_agreement

    return image_agreement(qc_session, qc_compared_pair)


@pytest.fixture(scope="session")
def _qc_leakage_active() -> None:
    """Placeholder parametrised away when no ``--training-data`` is given."""


@pytest.fixture(scope="session")
def qc_leakage(qc_session: QcSession, _qc_leakage_active: None) -> LeakageReport:
    """Compare every QC source image with every training image (once per session)."""
    if not any(p.source is not None for p in qc_session.pairs):
        pytest.skip("segqc: the leakage check needs the QC source images (--qc-source)")
    report = qc_session.leakage()
    if report is None:
        pytest.skip("segqc: no --training-data given")
    return report


@pytest.fixture
def qc_size_bin(
    request: pytest.FixtureRequest, qc_outcomes: Mapping[str, ImageOutcome]
) -> SizeBinOutcome:
    """Recall and mean matched IoU of one object-size bin, over the whole QC set."""
    plugin = request.config.pluginmanager.get_plugin("segqc-subgroups")
    return next(b for b in plugin.size_bins() if b.name == request.param)  # type: ignore[union-attr]


@pytest.fixture
def qc_image_group(
    request: pytest.FixtureRequest, qc_outcomes: Mapping[str, ImageOutcome]
) -> GroupOutcome:
    """Every QC metric pooled over one image group."""
    plugin = request.config.pluginmanager.get_plugin("segqc-subgroups")
    return next(g for g in plugin.groups() if g.name == request.param)  # type: ignore[union-attr]
