"""The loss-curve part of a QC session: find the history once, check it, draw it.

The plugin keeps one :class:`LossCurveRun` per session in ``config.stash`` (key
:data:`segqc.plugin.LOSS_CURVE`), also reachable as ``QcSessionPlugin.loss_curve``; the
QC tests in ``qc_tests/test_loss_curve.py`` assert on it, summary.json records it
(:meth:`LossCurveRun.summary`) and the HTML report can show ``history``, ``verdicts`` and
the figure (``figure_path``, ``qc-output/loss_curve.png``).

The checks need no figure, so reading the history only marks it to be drawn
(:meth:`LossCurveRun.draw_figure`): with ``--model`` the plugin has it drawn on the
thread that measures the QC images while TensorFlow predicts (see
:meth:`segqc.session.QcRun.evaluate_all`), which takes its ~0.5 s (matplotlib's import
included) off the run's wall time; otherwise it is drawn at the end of the session.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from segqc.loss_curve import LossCurveSettings, LossVerdict, check_history
from segqc.loss_history import HistorySearch, LossHistory, find_history, read_training_log
from segqc.outputs import OutputError

__all__ = ["FIGURE_NAME", "LossCurveRun", "assert_loss_check"]

FIGURE_NAME = "loss_curve.png"


class LossCurveRun:
    """Training-history checks of one session, computed at most once.

    Parameters
    ----------
    settings : LossCurveSettings
        The ``loss_curve:`` section of thresholds.yaml.
    output_dir : Path
        Where ``loss_curve.png`` goes.
    model_dir : Path, optional
        The model folder to search (None in ``--predictions`` mode).
    training_log : Path, optional
        ``--training-log``: read this instead of searching the model folder.

    Notes
    -----
    Under pytest-xdist every process that reads the history draws the figure (an atomic
    rename, so the copies never mix): a worker running only loss tests still leaves one.
    """

    def __init__(
        self,
        settings: LossCurveSettings,
        *,
        output_dir: Path,
        model_dir: Path | None = None,
        training_log: Path | None = None,
    ) -> None:
        self.settings = settings
        self.output_dir = output_dir
        self.model_dir = model_dir
        self.training_log = training_log
        self.figure_path: Path | None = None
        self.figure_error: str | None = None
        self._search: HistorySearch | None = None
        self._verdicts: dict[str, LossVerdict] = {}
        self._undrawn: LossHistory | None = None  # read, figure not drawn yet
        self._drawing = threading.Lock()

    @property
    def search(self) -> HistorySearch:
        """Where the history was looked for and what was found (read on first use)."""
        if self._search is None:
            if self.training_log is not None:
                self._search = read_training_log(self.training_log)
            elif self.model_dir is not None:
                self._search = find_history(self.model_dir)
            else:
                self._search = HistorySearch(None, ())
            if self._search.history is not None:
                self._verdicts = check_history(self._search.history, self.settings)
                self._undrawn = self._search.history
        return self._search

    @property
    def history(self) -> LossHistory | None:
        """The training history, or None when there is none (or it is unreadable)."""
        return self.search.history

    @property
    def verdicts(self) -> dict[str, LossVerdict]:
        """Verdicts by check name (empty without a history)."""
        self.search  # noqa: B018 (reads the history and runs the checks once)
        return self._verdicts

    def draw_figure(self) -> None:
        """Draw ``loss_curve.png`` if the history was read and not drawn yet.

        Safe to call from any thread and more than once: the first call draws. A figure
        that cannot be written or drawn leaves ``figure_error`` (summary.json says it);
        the checks' verdicts do not depend on it.
        """
        with self._drawing:
            history, self._undrawn = self._undrawn, None
            if history is None:
                return
            from segqc.loss_plot import plot_loss_curves

            try:
                self.figure_path = plot_loss_curves(history, self.output_dir / FIGURE_NAME)
            except OutputError as exc:
                self.figure_error = str(exc)
            except Exception as exc:  # a figure must not hide the QC outcome
                self.figure_error = (
                    f"{self.output_dir / FIGURE_NAME}: the loss figure could not be drawn "
                    f"({type(exc).__name__}: {exc})"
                )

    def missing_reason(self) -> str:
        """Why there is no verdict: where segqc looked, or that there is no model folder."""
        search = self.search
        if search.error:
            return search.error
        if not search.looked:
            return (
                "loss curve: --predictions mode has no model folder to read a training "
                "history from; give --training-log PATH (a CSV or TensorBoard logs folder)"
            )
        return (
            f"loss curve: no training history found (looked for {' and '.join(search.looked)}); "
            "a pretrained model has none, which is not a failure — give --training-log "
            "PATH, or set loss_curve.required: true in thresholds.yaml to require one"
        )

    def summary(self) -> dict[str, Any]:
        """The ``loss_curve`` record of summary.json (the figure drawn first if need be)."""
        search, history = self.search, self.search.history
        self.draw_figure()
        status = "found" if history else ("error" if search.error else "missing")
        record: dict[str, Any] = {
            "status": status,
            "required": self.settings.required,
            "looked": list(search.looked),
            "error": search.error,
        }
        if history is not None:
            record.update(
                source=str(history.source),
                format=history.kind,
                n_epochs=history.n_epochs,
                has_val_loss=history.val_loss is not None,
                extra_columns=sorted(history.extras),
                smoothing_window=self.settings.smoothing_window,
                final_loss=float(history.loss[-1]),
                final_val_loss=(
                    float(history.val_loss[-1]) if history.val_loss is not None else None
                ),
                figure=str(self.figure_path) if self.figure_path else None,
                figure_error=self.figure_error,
                checks=[verdict.as_dict() for verdict in self.verdicts.values()],
            )
        return record


def assert_loss_check(
    run: LossCurveRun, check: str, record_property: Callable[[str, object], None]
) -> None:
    """Pass, fail, warn or skip the current test with the verdict of ``check``.

    Without a history the test skips with where segqc looked (fails instead when
    ``loss_curve.required`` is true); an unreadable history fails with the file at fault.
    """
    __tracebackhide__ = True
    from segqc.checks import SegQcWarning

    search = run.search
    if search.history is None:
        record_property("outcome", "error" if search.error else "missing")
        if search.error or run.settings.required:
            suffix = "" if search.error else " (thresholds.yaml loss_curve.required: true)"
            pytest.fail(run.missing_reason() + suffix, pytrace=False)
        pytest.skip(run.missing_reason())
    verdict = run.verdicts[check]
    record_property("history", str(search.history.source))
    record_property("outcome", verdict.outcome)
    for key, value in verdict.values.items():
        record_property(key, value)
    if verdict.outcome == "fail":
        pytest.fail(verdict.message, pytrace=False)
    if verdict.outcome == "skip":
        pytest.skip(verdict.message)
    if verdict.outcome == "warn":
        warnings.warn(SegQcWarning(verdict.message), stacklevel=2)
