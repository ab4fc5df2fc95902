"""Plugin wiring for regression checks and statistics: options, fixtures and hooks.

Loaded by :mod:`segqc.plugin` (``pytest_plugins``). Options join the ``segqc`` group:

* ``--baseline PATH`` — compare with a baseline file written earlier;
* ``--update-baseline`` — write ``--baseline PATH`` from this run instead of comparing;
* ``--baseline-model DIR`` — run the released model on the same QC set in this session;
* ``--baseline-allow-different-data`` — compare only the images both runs share.

Everything is checked at configure time (exit code 4 with one line per problem); the
comparison itself happens in the ``qc_regression`` fixture, once per session.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from segqc.baseline import (
    Baseline,
    BaselineError,
    baseline_document,
    compare_data,
    content_hashes,
    read_baseline,
    write_baseline,
)
from segqc.distributed import (
    from_worker,
    outcome_from_dict,
    portable_outcome,
    send_to_controller,
)
from segqc.metrics.scores import QcScores
from segqc.model_folder import ModelFolderError, inspect_model_folder, sha256_of
from segqc.outputs import OutputError
from segqc.regression import Comparison, compare
from segqc.session import DatasetOutcome, QcRun
from segqc.stat_gates import GateVerdict, judge_ci_limits, judge_worst_images, statistics_section
from segqc.stats import Interval, bootstrap_intervals

__all__ = ["RegressionSession", "StatisticsOutcome", "qc_regression", "qc_statistics"]

NO_BASELINE_REASON = "segqc: no --baseline or --baseline-model given, regression checks skipped"
BASELINE_MODEL_DIR = "baseline-model"

_SESSION = pytest.StashKey["RegressionSession"]()
_BASELINE_OUTCOMES_KEY = "segqc_baseline_outcomes"


def pytest_addoption(parser: pytest.Parser) -> None:
    """Add the regression options to the ``segqc`` group, each with an ini key."""
    group = parser.getgroup("segqc", "segqc: quality control of segmentation models")
    for option, ini, help_text in (
        ("--baseline", "qc_baseline", "baseline file to compare with (or to write, with "
         "--update-baseline)"),
        ("--baseline-model", "qc_baseline_model", "released StarDist model folder to compare "
         "with, run on the same QC images in this session"),
    ):  # fmt: skip
        group.addoption(option, dest=ini, metavar="PATH", default=None, help=help_text)
        parser.addini(ini, f"segqc: {help_text}", default=None)
    for option, ini, help_text in (
        ("--update-baseline", "qc_update_baseline", "write --baseline PATH from this run "
         "(every image must be evaluated) instead of comparing"),
        ("--baseline-allow-different-data", "qc_baseline_allow_different_data", "compare only "
         "the QC images the baseline shares with this run, listing the others"),
    ):  # fmt: skip
        group.addoption(option, dest=ini, action="store_true", default=None, help=help_text)
        parser.addini(ini, f"segqc: see {option}", type="bool", default=False)


@dataclass
class StatisticsOutcome:
    """Bootstrap intervals of the QC set and the statistical gates' verdicts."""

    n_images: int
    intervals: dict[str, dict[str, Interval]]
    ci_verdicts: list[GateVerdict]
    worst_verdicts: list[GateVerdict]


@dataclass(eq=False)  # registered as a pytest plugin: must stay hashable
class RegressionSession:
    """What this session compares with, and the end-of-session work (baseline, summary).

    Exactly one of ``baseline`` (a file read at configure time), ``baseline_run`` (a
    second model) or ``update_path`` (write a baseline) is set.
    """

    run: QcRun
    baseline: Baseline | None = None
    baseline_path: Path | None = None
    baseline_run: QcRun | None = None
    update_path: Path | None = None
    excluded: dict[str, list[str]] = field(default_factory=dict)
    comparison: Comparison | None = None
    messages: list[tuple[str, str]] = field(default_factory=list)  # (level, text)

    @property
    def describe(self) -> str:
        """What the baseline is, for messages and summary.json."""
        if self.baseline_run is not None and self.baseline_run.model_folder is not None:
            return f"model {self.baseline_run.model_folder.path} (run in this session)"
        return f"file {self.baseline_path}"

    def old_scores(self) -> dict[str, QcScores]:
        """The baseline's scores by image (only those evaluated so far, for a model)."""
        if self.baseline is not None:
            return self.baseline.scores()
        if self.baseline_run is None:
            return {}
        return {o.pair.name: o.scores for o in self.baseline_run.outcomes if o.scores}

    def compare(self) -> Comparison:
        """Compare the run's evaluated images with the baseline (cached once complete)."""
        if self.comparison is not None:
            return self.comparison
        new = {o.pair.name: o.scores for o in self.run.outcomes if o.scores}
        old = self.old_scores()
        excluded = {k: list(v) for k, v in self.excluded.items()}
        failed_new = [o.pair.name for o in self.run.outcomes if o.scores is None]
        failed_old = (
            [o.pair.name for o in self.baseline_run.outcomes if o.scores is None]
            if self.baseline_run is not None
            else []
        )
        if failed_new or failed_old:
            excluded["could not be evaluated"] = sorted({*failed_new, *failed_old})
        changed = set(excluded.get("content changed since the baseline", []))
        limits = self.run.thresholds.thresholds
        comparison = compare(
            {k: v for k, v in old.items() if k not in changed},
            new,
            settings=limits.regression,
            bootstrap=limits.statistics.bootstrap,
            baseline=self.describe,
            not_compared=excluded,
        )
        if self.run.complete and (self.baseline_run is None or self.baseline_run.complete):
            self.comparison = comparison
        return comparison

    def summary(self) -> dict[str, Any] | None:
        """summary.json's ``regression`` key (None when nothing can be compared)."""
        if self.update_path is not None:
            return {"baseline": f"file {self.update_path}", "updated": self._updated()}
        if not self.run.outcomes or not self.old_scores():
            return None
        return self.compare().table()

    def _updated(self) -> bool:
        return any(level == "wrote" for level, _ in self.messages)

    def write_baseline(self) -> None:
        """Write ``update_path`` from the run, if every image was evaluated."""
        assert self.update_path is not None
        run = self.run
        missing = [o.pair.name for o in run.outcomes if o.scores is None]
        missing += [p.name for p in run.pending()]
        if missing:
            self.messages.append(
                ("error", f"baseline not written: {len(missing)} QC images could not be "
                 f"evaluated ({', '.join(missing)}); {self.update_path} left as it was"),
            )  # fmt: skip
            return
        model = run.predictor.describe()
        if run.model_folder is not None:
            model["weights_sha256"] = sha256_of(run.model_folder.weights)
        loaded = run.thresholds
        document = baseline_document(
            scores={o.pair.name: o.scores for o in run.outcomes if o.scores},
            hashes=content_hashes(run.pairs),
            model=model,
            iou_threshold=run.iou_threshold,
            thresholds={
                "path": str(loaded.path),
                "content": loaded.thresholds.model_dump(exclude_none=True),
            },
        )
        try:
            write_baseline(self.update_path, document)
        except OutputError as exc:
            self.messages.append(("error", str(exc)))
            return
        self.messages.append(("wrote", f"wrote baseline {self.update_path}"))

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        """Write the baseline (controller only) before the summary is written.

        An xdist worker instead hands the baseline model's outcomes it evaluated to the
        controller (:meth:`pytest_testnodedown`).
        """
        if hasattr(session.config, "workerinput"):
            if self.baseline_run is not None:
                outcomes = [portable_outcome(o) for o in self.baseline_run.outcomes]
                send_to_controller(session.config, _BASELINE_OUTCOMES_KEY, outcomes)
            return
        if self.update_path is None:
            return
        if not self.run.outcomes:
            return
        self.write_baseline()
        if any(level == "error" for level, _ in self.messages) and (
            session.exitstatus == pytest.ExitCode.OK
        ):
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        """xdist controller: keep the baseline model's outcomes a worker evaluated."""
        if self.baseline_run is None:
            return
        pairs = {p.name: p for p in self.baseline_run.pairs}
        for data in from_worker(node, _BASELINE_OUTCOMES_KEY, ()):
            self.baseline_run.record(outcome_from_dict(data, pairs=pairs))

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        """Say what was compared, the side-by-side pooled table, and the baseline written."""
        from segqc.regression_report import terminal_lines

        if not self.run.outcomes:
            return
        lines = list(self.messages)
        if self.update_path is None and self.old_scores():
            lines += terminal_lines(self.compare())
        if not lines:
            return
        terminalreporter.section("segqc regression")
        for level, text in lines:
            terminalreporter.write_line(
                text if level in ("wrote", "info") else f"{level.upper()} {text}",
                red=level in ("error", "fail"),
                yellow=level == "warn",
                green=level == "improved",
            )


def _usage(message: str) -> pytest.UsageError:
    return pytest.UsageError(f"segqc: {message}")


@pytest.hookimpl(trylast=True)
def pytest_configure(config: pytest.Config) -> None:
    """Check the regression options against the configured run (after segqc's own)."""
    from segqc.plugin import _PLUGIN, _flag_setting, _path_setting

    session_plugin = config.stash.get(_PLUGIN, None)
    if session_plugin is None:
        return
    run = session_plugin.run
    baseline_path = _path_setting(config, "qc_baseline")
    model_dir = _path_setting(config, "qc_baseline_model")
    update = _flag_setting(config, "qc_update_baseline")
    if update and baseline_path is None:
        raise _usage("--update-baseline needs --baseline PATH: the file to write")
    if model_dir is not None and baseline_path is not None:
        raise _usage(
            "give --baseline FILE or --baseline-model DIR, not both "
            "(write a file from a model with --model DIR --baseline FILE --update-baseline)"
        )
    regression = RegressionSession(run=run)
    if update:
        assert baseline_path is not None
        _check_replaceable(baseline_path)
        regression.update_path = baseline_path
    elif baseline_path is not None:
        regression.baseline_path = baseline_path
        regression.baseline, regression.excluded = _read_checked(
            baseline_path, run, allow=_flag_setting(config, "qc_baseline_allow_different_data")
        )
    elif model_dir is not None:
        regression.baseline_run = _baseline_run(config, run, model_dir)
    run_scores = _scored_pairs(run)
    run.summary_sections["statistics"] = lambda: statistics_section(
        run_scores(), run.thresholds.thresholds
    )
    run.summary_sections["regression"] = regression.summary
    config.stash[_SESSION] = regression
    config.pluginmanager.register(regression, "segqc-regression")


def pytest_unconfigure(config: pytest.Config) -> None:
    """Unregister the per-session object (matters for in-process pytester runs)."""
    regression = config.stash.get(_SESSION, None)
    if regression is not None:
        del config.stash[_SESSION]
        config.pluginmanager.unregister(regression)


def _scored_pairs(run: QcRun) -> Any:
    return lambda: [(o.pair.name, o.scores) for o in run.outcomes if o.scores is not None]


def _check_replaceable(path: Path) -> None:
    """--update-baseline replaces only a file that is itself a segqc baseline."""
    if path.is_dir():
        raise _usage(f"{path}: is a folder; --baseline needs a file path")
    if path.exists():
        try:
            read_baseline(path)
        except BaselineError as exc:
            raise _usage(
                f"{exc} — refusing to overwrite it with --update-baseline; delete it or "
                "choose another --baseline path"
            ) from None


def _read_checked(path: Path, run: QcRun, *, allow: bool) -> tuple[Baseline, dict[str, list[str]]]:
    """Read the baseline; refuse other QC data unless ``allow`` (then list what differs)."""
    try:
        baseline = read_baseline(path)
    except BaselineError as exc:
        raise _usage(str(exc)) from None
    if baseline.matching.iou_threshold != run.iou_threshold:
        raise _usage(
            f"{path}: measured at matching.iou_threshold {baseline.matching.iou_threshold}, "
            f"but {run.thresholds.path.name} sets {run.iou_threshold}; compare at the same "
            "threshold or write a new baseline"
        )
    mismatch = compare_data(baseline, content_hashes(run.pairs))
    if mismatch.differs and not allow:
        lines = "\n".join(f"  - {line}" for line in mismatch.lines())
        raise _usage(
            f"{path}: the baseline was made on different QC images:\n{lines}\n"
            "  compare the common images only with --baseline-allow-different-data, "
            "or write a new baseline with --update-baseline"
        )
    found = {
        "only in the baseline": mismatch.only_in_baseline,
        "not in the baseline": mismatch.only_in_run,
        "content changed since the baseline": mismatch.changed,
    }
    return baseline, {reason: names for reason, names in found.items() if names}


def _baseline_run(config: pytest.Config, run: QcRun, model_dir: Path) -> QcRun:
    from segqc.plugin import _device_setting, _with_cache
    from segqc.prediction import StarDistPredictor, resolve_parameters

    if any(pair.source is None for pair in run.pairs):
        raise _usage("--baseline-model needs the QC source images: give --qc-source")
    try:
        folder = inspect_model_folder(model_dir)
    except ModelFolderError as exc:
        raise _usage(f"--baseline-model: {exc}") from None
    if importlib.util.find_spec("tensorflow") is None:
        raise _usage("TensorFlow is not installed, so --baseline-model cannot predict")
    parameters = resolve_parameters(folder, run.thresholds.thresholds.prediction)
    predictor = StarDistPredictor(folder, parameters, device=_device_setting(config))  # type: ignore[arg-type]
    return QcRun(
        pairs=run.pairs,
        thresholds=run.thresholds,
        predictor=_with_cache(config, predictor),
        output_dir=run.output_dir / BASELINE_MODEL_DIR,
        model_folder=folder,
    )


@pytest.fixture(scope="session")
def qc_regression(
    request: pytest.FixtureRequest, qc_run: QcRun, qc_dataset: DatasetOutcome
) -> Comparison:
    """The comparison with the baseline (skips when there is none to compare with)."""
    regression = request.config.stash.get(_SESSION, None)
    if regression is None or (regression.baseline is None and regression.baseline_run is None):
        if regression is not None and regression.update_path is not None:
            pytest.skip(
                f"segqc: --update-baseline writes {regression.update_path} at the end of the "
                "session; nothing to compare with"
            )
        pytest.skip(NO_BASELINE_REASON)
    if regression.baseline_run is not None:
        from segqc.progress import image_progress

        baseline_run = regression.baseline_run
        assert baseline_run.model_folder is not None
        what = f"predicting with {baseline_run.model_folder.name} (baseline model)"
        with image_progress(
            request.config, total=len(baseline_run.pending()), what=what
        ) as on_image:
            baseline_run.evaluate_all(on_image=on_image)
    comparison = regression.compare()
    if not comparison.compared:
        pytest.fail(
            f"no QC image could be compared with the baseline ({regression.describe}); "
            f"not compared: {comparison.not_compared}",
            pytrace=False,
        )
    return comparison


@pytest.fixture(scope="session")
def qc_statistics(qc_run: QcRun, qc_dataset: DatasetOutcome) -> StatisticsOutcome:
    """Bootstrap intervals over the evaluated images and the statistical gates.

    Requests ``qc_dataset`` so that every image is evaluated first (also on xdist workers).
    """
    scores = [(o.pair.name, o.scores) for o in qc_run.outcomes if o.scores is not None]
    if not scores:
        pytest.fail("no QC image could be evaluated; see the errors above", pytrace=False)
    limits = qc_run.thresholds.thresholds
    boot = limits.statistics.bootstrap
    intervals = bootstrap_intervals(
        [s for _, s in scores], n=boot.n, confidence=boot.confidence, seed=boot.seed
    )
    return StatisticsOutcome(
        n_images=len(scores),
        intervals=intervals,
        ci_verdicts=judge_ci_limits(intervals["aggregate"], limits, n_images=len(scores)),
        worst_verdicts=judge_worst_images(scores, limits.statistics),
    )
