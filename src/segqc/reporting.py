"""End-of-session reporting: outcome counts, output files and the terminal summary.

:class:`QcSessionPlugin` is registered by :mod:`segqc.plugin` only when a QC run is
configured, so none of these hooks costs anything in a plain ``pytest`` run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from segqc.loss_session import LossCurveRun
from segqc.outputs import OutputError, atomic_write_text, metrics_csv_text, write_json
from segqc.session import QcRun, iter_verdicts

__all__ = ["QcSessionPlugin"]


class QcSessionPlugin:
    """Per-session hooks of a configured QC run.

    Parameters
    ----------
    config : pytest.Config
    run : QcRun
        The run whose outcomes are reported.
    ignored : tuple of Path
        Files in the QC folders that were not TIFFs.
    folders : dict
        QC folders by role, for summary.json.
    output_dir : Path
        Where metrics.csv and summary.json go.
    """

    def __init__(
        self,
        config: pytest.Config,
        *,
        run: QcRun,
        ignored: tuple[Path, ...],
        folders: dict[str, str],
        output_dir: Path,
    ) -> None:
        self.config = config
        self.run = run
        self.ignored = ignored
        self.folders = folders
        self.output_dir = output_dir
        self.test_counts: dict[str, int] = {}
        self.written: list[Path] = []
        self.write_errors: list[str] = []
        self.summary: dict[str, Any] | None = None  # summary.json's content, for the report
        self._outputs_written = False
        #: Loss-curve checks, set by the plugin (``--model``/``--training-log`` history).
        self.loss_curve: LossCurveRun | None = None

    @property
    def is_worker(self) -> bool:
        """True in a pytest-xdist worker; outputs are written by the controller only."""
        return hasattr(self.config, "workerinput")

    def pytest_report_header(self) -> list[str]:
        """Say what is being tested in the session header."""
        run = self.run
        tested = f"model {run.model_folder.path}" if run.model_folder else "predictions"
        lines = [f"segqc: {tested}; {len(run.pairs)} QC pairs; thresholds {run.thresholds.path}"]
        parameters = getattr(run.predictor, "parameters", None)
        if parameters is not None:
            lines.append(
                f"segqc: prob_thresh {parameters.prob_thresh}, nms_thresh "
                f"{parameters.nms_thresh} from {parameters.source}"
            )
        if self.ignored:
            lines.append(
                f"segqc: ignored (not .tif/.tiff): {', '.join(p.name for p in self.ignored)}"
            )
        return lines

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """Count QC test outcomes (setup errors, call outcomes) for summary.json."""
        if "segqc" not in report.keywords:
            return
        if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
            outcome = "error" if report.when == "setup" and report.failed else report.outcome
            self.test_counts[outcome] = self.test_counts.get(outcome, 0) + 1

    @pytest.hookimpl(tryfirst=True)  # under xdist: while the workers shut down
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        """Write metrics.csv and summary.json for what was evaluated, even after failures."""
        self.write_outputs(session, exitstatus)

    def write_outputs(self, session: pytest.Session, exitstatus: int) -> None:
        """Build the summary and write metrics.csv and summary.json, once per session.

        Written when any QC test ran, also when none evaluated an image (``-k loss``):
        the summary then has the loss-curve verdicts and no images. The loss figure is
        drawn first if the loss checks ran and nothing drew it yet (a loss-only run, an
        xdist worker, ``--predictions`` with ``--training-log``). Called from
        ``pytest_sessionfinish``, and by the report when it renders its sections, which
        may come first.
        """
        if self.loss_curve is not None:
            self.loss_curve.draw_figure()
        if self.is_worker or self._outputs_written:
            return
        if not (self.run.outcomes or self.test_counts):
            return  # no QC test ran (--collect-only, a -k matching none)
        self._outputs_written = True
        from segqc.summary import build_summary, run_status

        run = self.run
        dataset = run.dataset()
        summary = build_summary(
            run,
            dataset,
            status=run_status(run, dataset, exitstatus=int(exitstatus)),
            qc_folders=self.folders,
            ignored_files=[str(p) for p in self.ignored],
            test_counts=self.test_counts,
            loss_curve=self.loss_curve.summary() if self.loss_curve else None,
        )
        self.summary = summary
        if self.loss_curve and self.loss_curve.figure_path:
            self.written.append(self.loss_curve.figure_path)
        if self.loss_curve and self.loss_curve.figure_error:
            self.write_errors.append(self.loss_curve.figure_error)
        rows = [(o.pair.name, o.scores.values()) for o in run.outcomes if o.scores is not None]
        for path, write in (
            (
                self.output_dir / "metrics.csv",
                lambda p: atomic_write_text(p, metrics_csv_text(rows)),
            ),
            (self.output_dir / "summary.json", lambda p: write_json(p, summary)),
        ):
            try:
                self.written.append(write(path))
            except OutputError as exc:
                self.write_errors.append(str(exc))
        if self.write_errors and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        """Close with what failed (image, metric, value, limit) and where the outputs are."""
        run = self.run
        if not (run.outcomes or self.test_counts):
            return
        terminalreporter.section("segqc")
        if run.outcomes:
            self._write_image_results(terminalreporter)
        else:
            terminalreporter.write_line(
                f"0 of {len(run.pairs)} QC images evaluated (no image test ran)"
            )
        if self.loss_curve is not None:
            for loss_verdict in self.loss_curve.verdicts.values():
                if loss_verdict.outcome in ("fail", "warn"):
                    fail = loss_verdict.outcome == "fail"
                    terminalreporter.write_line(
                        f"{loss_verdict.outcome.upper()} loss_curve::{loss_verdict.message}",
                        red=fail,
                        yellow=not fail,
                    )
        for message in self.write_errors:
            terminalreporter.write_line(f"ERROR {message}", red=True)
        for path in self.written:
            terminalreporter.write_line(f"wrote {path}")

    def _write_image_results(self, terminalreporter: Any) -> None:
        """The images evaluated, their notes and errors, and every limit not passed."""
        run = self.run
        dataset = run.dataset()
        errors = [o for o in run.outcomes if o.error]
        from segqc.accuracy import accuracy_vs_iou  # cached: computed for summary.json

        curve = accuracy_vs_iou(run)
        verdicts = [*iter_verdicts(run, dataset), *(curve.verdicts if curve else ())]
        broken = [v for v in verdicts if v.outcome != "pass"]
        terminalreporter.write_line(
            f"{len(run.outcomes) - len(errors)} of {len(run.pairs)} QC images evaluated; "
            f"{sum(v.outcome == 'fail' for v in broken)} limits failed, "
            f"{sum(v.outcome == 'warn' for v in broken)} warnings"
        )
        for outcome in run.outcomes:
            for note in outcome.notes:
                terminalreporter.write_line(f"NOTE {note}")
        for outcome in errors:
            terminalreporter.write_line(f"ERROR {outcome.error}", red=True)
        for verdict in broken:
            fail = verdict.outcome == "fail"
            terminalreporter.write_line(
                f"{verdict.outcome.upper()} {verdict.message()}", red=fail, yellow=not fail
            )
