"""The gate: segqc's core plugin object, registered for every QC session.

It generates one test per QC image, counts the QC tests' outcomes, and, in the process
that writes the outputs, ends the session: the checks finish
(``pytest_segqc_session_finish``), summary.json is built once from the session and the
checks' sections (``pytest_segqc_summary_section``), metrics.csv and summary.json are
written, and the terminal summary is read from that same document. A run that
evaluates no image (``--collect-only``, a ``-k`` that selects none) writes nothing, so a
finished run's outputs stay as they were.

It also keeps the gate honest: a per-image test that passed while its image's outcome
never reached the outputs fails the session (exit code 1).
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import pytest

from segqc.checks.quality import iter_verdicts
from segqc.checks.verdict import Verdict
from segqc.data.writing import OutputError, atomic_write_lines, write_json
from segqc.outputs.summary import build_summary, qc_content_hash, run_status
from segqc.outputs.tables import metrics_csv_lines
from segqc.outputs.terminal import summary_lines
from segqc.predict.model_folder import sha256_of
from segqc.session import QcSession
from segqc.suite import IMAGE_ATTRIBUTE, INACTIVE_MARKER, QC_FIXTURES

__all__ = ["QcGate"]


class QcGate:
    """Per-session hooks of a configured QC run (see the module docstring).

    Parameters
    ----------
    session : QcSession
        The session's state.
    """

    def __init__(self, session: QcSession) -> None:
        self.session = session
        self.test_counts: dict[str, int] = {}
        self.passed_images: set[str] = set()
        self.written: list[Path] = []
        self.problems: list[str] = []
        self.finished = False

    # --- collection ----------------------------------------------------------------------

    def pytest_report_header(self) -> list[str]:
        """Say what is being tested in the session header."""
        session = self.session
        settings = session.settings
        tested = f"model {settings.model}" if settings.model else "predictions"
        lines = [
            f"segqc: {tested}; {len(session.pairs)} QC pairs; thresholds {session.loaded.path}"
        ]
        parameters = getattr(session.predictor, "parameters", None)
        if parameters is not None:
            lines.append(
                f"segqc: prob_thresh {parameters.prob_thresh}, nms_thresh "
                f"{parameters.nms_thresh} from {parameters.source}"
            )
        if session.ignored:
            lines.append(
                f"segqc: ignored (not .tif/.tiff): {', '.join(p.name for p in session.ignored)}"
            )
        return lines

    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        """One test per QC image, with the image's file name as the test id."""
        if "qc_image" in metafunc.fixturenames:
            pairs = self.session.pairs
            metafunc.parametrize("qc_image", pairs, ids=[p.name for p in pairs], indirect=True)

    def pytest_collection_modifyitems(
        self, config: pytest.Config, items: list[pytest.Item]
    ) -> None:
        """Mark QC tests (``-m segqc`` selects them) and deselect the tests of checks that
        were not asked for (``test_aggregate_at`` without ``aggregate_at`` limits)."""
        kept: list[pytest.Item] = []
        dropped: list[pytest.Item] = []
        no_aggregate_at = not self.session.limits.aggregate_at
        for item in items:
            if QC_FIXTURES & set(getattr(item, "fixturenames", ())):
                item.add_marker(pytest.mark.segqc)
            unused = no_aggregate_at and getattr(item, "originalname", "") == "test_aggregate_at"
            (dropped if unused or item.get_closest_marker(INACTIVE_MARKER) else kept).append(item)
        if dropped:
            config.hook.pytest_deselected(items=dropped)
            items[:] = kept

    # --- test outcomes -------------------------------------------------------------------

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item
    ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        """Name the image on the reports of a per-image test (it travels with the report
        under pytest-xdist)."""
        report = yield
        callspec = getattr(item, "callspec", None)
        pair = callspec.params.get("qc_image") if callspec is not None else None
        if pair is not None:
            setattr(report, IMAGE_ATTRIBUTE, pair.name)
        return report

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """Count QC test outcomes (setup errors, call outcomes) for summary.json."""
        if "segqc" not in report.keywords:
            return
        if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
            outcome = "error" if report.when == "setup" and report.failed else report.outcome
            self.test_counts[outcome] = self.test_counts.get(outcome, 0) + 1
        image = getattr(report, IMAGE_ATTRIBUTE, None)
        if image is not None and report.when == "call" and report.passed:
            self.passed_images.add(image)

    # --- the end of the session ----------------------------------------------------------

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        """Finish the checks, build summary.json once and write the outputs."""
        qc = self.session
        if not qc.writes_outputs or self.finished:
            return
        self.finished = True
        lost = sorted(
            name
            for name in self.passed_images
            if (outcome := qc.known(name)) is None or outcome.scores is None
        )
        if lost:
            self.problems.append(
                f"{len(lost)} image test(s) passed but their results never reached "
                f"{qc.settings.output} ({', '.join(lost[:5])}{', ...' if len(lost) > 5 else ''}); "
                "the gate cannot vouch for them — a bug of segqc or of a plugin"
            )
        if qc.outcomes:
            config = session.config
            for problems in config.hook.pytest_segqc_session_finish(session=qc):
                self.problems += problems or []
            qc.summary = self._summary(config, int(exitstatus))
            self._write_outputs(qc.summary)
        if self.problems and session.exitstatus in (pytest.ExitCode.OK, 5):
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def _summary(self, config: pytest.Config, exitstatus: int) -> dict[str, Any]:
        qc = self.session
        outcomes = qc.outcomes
        dataset = qc.dataset()
        accuracy = qc.accuracy()

        def limits() -> Iterator[Verdict]:
            # judged again on each read of summary.json's limits (see outputs.summary.Records)
            yield from iter_verdicts(outcomes, dataset, qc.limits)
            yield from accuracy.verdicts if accuracy else ()

        sections: dict[str, Any] = {}
        for found in config.hook.pytest_segqc_summary_section(session=qc):
            sections.update(found or {})
        status = run_status(
            interrupted=exitstatus == pytest.ExitCode.INTERRUPTED,
            complete=qc.complete,
            any_evaluated=bool(outcomes),
            broken=any(v.outcome == "fail" for v in limits()),
            errors=any(o.error for o in outcomes),
            exitstatus=exitstatus,
        )
        return build_summary(
            status=status,
            complete=qc.complete,
            predictor=self._predictor_record(),
            qc=self._qc_record(),
            loaded=qc.loaded,
            iou_threshold=qc.iou_threshold,
            outcomes=outcomes,
            dataset=dataset,
            limits=limits,
            accuracy=accuracy,
            tests=self.test_counts,
            sections=sections,
        )

    def _predictor_record(self) -> dict[str, Any]:
        qc = self.session
        record = qc.predictor.describe()
        if qc.model_folder is not None:
            record["weights_sha256"] = sha256_of(qc.model_folder.weights)
            record["name"] = qc.model_folder.name
        if "device" in record:
            record["device"] = qc.device
        return record

    def _qc_record(self) -> dict[str, Any]:
        qc = self.session
        settings = qc.settings
        folders = {"source": settings.source, "target": settings.target,
                   "predictions": settings.predictions}  # fmt: skip
        return {
            **{role: str(path) for role, path in folders.items() if path is not None},
            "n_pairs": len(qc.pairs),
            "n_evaluated": len(qc.outcomes),
            "content_sha256": qc_content_hash(qc.pairs),
            "ignored_files": [str(p) for p in qc.ignored],
        }

    def _write_outputs(self, summary: dict[str, Any]) -> None:
        qc = self.session
        assert qc.output is not None
        self.problems += qc.store_problems
        self.problems += qc.output.prune_predictions()
        # read a row at a time as metrics.csv is written
        rows = ((o.pair.name, o.scores.values()) for o in qc.outcomes if o.scores is not None)
        folder = qc.output.path
        loss = summary.get("loss_curve") or {}
        if loss.get("figure"):
            self.written.append(Path(loss["figure"]))
        if loss.get("figure_error"):
            self.problems.append(str(loss["figure_error"]))
        for write in (
            lambda: atomic_write_lines(folder / "metrics.csv", metrics_csv_lines(rows)),
            lambda: write_json(folder / "summary.json", summary),
        ):
            try:
                self.written.append(write())
            except OutputError as exc:
                self.problems.append(str(exc))

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        """Close with what failed (image, metric, value, limit) and where the outputs are."""
        qc = self.session
        if not qc.writes_outputs or not (qc.outcomes or self.test_counts or self.problems):
            return
        terminalreporter.section("segqc")
        if qc.summary is None:
            terminalreporter.write_line(
                f"0 of {len(qc.pairs)} QC images evaluated (no image test ran); "
                f"{qc.settings.output} left as it was"
                if not self.passed_images
                else f"0 of {len(qc.pairs)} QC images reached the outputs; "
                f"{qc.settings.output} left as it was"
            )
            for problem in self.problems:
                terminalreporter.write_line(f"ERROR {problem}", red=True)
            return
        for level, text in summary_lines(qc.summary, problems=self.problems, written=self.written):
            prefix = "" if level == "info" else f"{level.upper()} "
            terminalreporter.write_line(
                prefix + text, red=level in ("error", "fail"), yellow=level == "warn"
            )
