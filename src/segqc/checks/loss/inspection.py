"""Quality Control #1 of a session: find the training history once, check it, draw it.

:class:`LossInspection` reads the history on first use (the model folder's, or
``--training-log``), runs every check of :mod:`segqc.checks.loss.convergence` once, and
draws ``loss_curve.png`` when the session writes its outputs. The QC tests in
``qc_tests/test_loss_curve.py`` assert on its verdicts, and summary.json records it
(:meth:`LossInspection.summary`), from which the report shows it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from segqc.checks.loss.convergence import LossCurveSettings, check_history
from segqc.checks.loss.history import HistorySearch, LossHistory, find_history, read_training_log
from segqc.checks.verdict import Verdict
from segqc.data.writing import OutputError

__all__ = ["FIGURE_NAME", "LossInspection"]

FIGURE_NAME = "loss_curve.png"


class LossInspection:
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
        self._verdicts: dict[str, Verdict] = {}

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
        return self._search

    @property
    def history(self) -> LossHistory | None:
        """The training history, or None when there is none (or it is unreadable)."""
        return self.search.history

    @property
    def verdicts(self) -> dict[str, Verdict]:
        """Verdicts by check name (empty without a history)."""
        self.search  # noqa: B018 (reads the history and runs the checks once)
        return self._verdicts

    def draw_figure(self) -> None:
        """Draw ``loss_curve.png`` into the output folder, if there is a history.

        A figure that cannot be written or drawn leaves ``figure_error`` (summary.json
        says it); the checks' verdicts do not depend on it.
        """
        history = self.history
        if history is None or self.figure_path is not None:
            return
        from segqc.checks.loss.figure import plot_loss_curves

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
        """The ``loss_curve`` record of summary.json (with the figure, if drawn)."""
        search, history = self.search, self.search.history
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
