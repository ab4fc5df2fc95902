"""The QC report: segqc's sections inside pytest-html's report.

:func:`enable_report` runs in segqc's ``pytest_configure``; it points pytest-html at
``<qc-output>/report.html`` as if ``--html`` had been given, in self-contained mode (a
user's own ``--html`` wins). Only the process that writes the outputs registers it, like
pytest-html itself, so pytest-xdist works.

The sections are rendered from the summary.json document when pytest-html asks for its
summary (``pytest_html_results_summary``, called from pytest-html's own
``pytest_sessionfinish``), so the report is written after failures, errors and Ctrl-C
alike, showing what was evaluated. The sections are rendered into a temporary file and
pytest-html's page gets a placeholder line for them; image panels are placeholders
too. Both are put into the written file a line and an image at a time
(:mod:`segqc.report.inline`); the panels of more than
:data:`~segqc.report.store.INLINE_UP_TO` images are written as pictures into
``report-images/`` beside it instead. A run that evaluates no image writes no report: the one
a finished run left stays as it was.
"""

from __future__ import annotations

import math
import os
import shutil
import traceback
from collections.abc import Generator
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from segqc.checks.quality import undefined_metrics
from segqc.report.inline import DeferredContent
from segqc.report.selection import worst_images
from segqc.report.store import INLINE_UP_TO
from segqc.suite import IMAGE_ATTRIBUTE

if TYPE_CHECKING:
    from segqc.session import QcSession

__all__ = ["PICTURES_FOLDER", "REPORT_NAME", "ReportPlugin", "enable_report"]

REPORT_NAME = "report.html"
#: Beside the report: the pictures of a report with more than INLINE_UP_TO images.
PICTURES_FOLDER = "report-images"


def _resource(name: str) -> Path:
    return Path(str(resources.files("segqc") / "resources" / "report" / name))


def enable_report(config: pytest.Config, session: QcSession) -> ReportPlugin | None:
    """Point pytest-html at ``<qc-output>/report.html`` and return the QC sections' plugin.

    None when pytest-html is not active (``-p no:html``) or this process writes no
    outputs (an xdist worker).
    """
    if session.output is None or not config.pluginmanager.hasplugin("html"):
        return None
    ours = not getattr(config.option, "htmlpath", None)
    if ours:
        config.option.htmlpath = str(session.output.path / REPORT_NAME)
        config.option.self_contained_html = True
    # pytest-html appends --css files to its own style sheet (inlined when self-contained).
    config.option.css = [*getattr(config.option, "css", []), str(_resource("report.css"))]
    session.enable_panels()
    # Where pytest-html writes, resolved as pytest-html does (against the current folder).
    report_path = Path.cwd() / Path(os.path.expandvars(config.option.htmlpath)).expanduser()
    return ReportPlugin(session, report_path, ours=ours)


class ReportPlugin:
    """pytest-html hooks adding segqc's header and sections to the report.

    Parameters
    ----------
    session : QcSession
        The session; its ``summary`` is the document the report shows.
    report_path : Path
        The HTML file pytest-html writes.
    ours : bool
        Whether segqc asked pytest-html for the report (rather than the user's ``--html``).
    """

    def __init__(self, session: QcSession, report_path: Path, *, ours: bool) -> None:
        self.session = session
        self.report_path = report_path
        self.ours = ours
        self.deferred = DeferredContent()
        self.pictures_written: list[Path] = []

    @pytest.hookimpl(optionalhook=True)
    def pytest_html_report_title(self, report: Any) -> None:
        """Title the page after the model (or predictions folder) under test."""
        model = self.session.settings.model
        report.title = f"segqc QC report: {model.name if model else 'predictions'}"

    @pytest.hookimpl(wrapper=True)
    def pytest_runtestloop(self, session: pytest.Session) -> Generator[None, object, object]:
        """A run that evaluated no image writes no report (see the module docstring).

        pytest-html writes in its ``pytest_sessionfinish``; segqc asked for that report,
        so it withdraws the request before then.
        """
        try:
            return (yield)
        finally:
            if self.ours and not self.session.outcomes:
                config = session.config
                for plugin in config.pluginmanager.get_plugins():
                    if type(plugin).__module__.startswith("pytest_html.") and hasattr(
                        plugin, "_report_path"
                    ):
                        config.pluginmanager.unregister(plugin)

    def pytest_segqc_session_finish(self, session: QcSession) -> None:
        """Draw the worst images' panels, known only now, from their files."""
        plan, store = session.panel_plan, session.panels
        if plan is None or store is None or plan.n_worst == 0:
            return
        from segqc.report.panels import draw_from_files, visual_document

        evaluated = [o for o in session.outcomes if o.scores is not None]
        ranked = worst_images(
            ((o.pair.name, _defined(o.scores.values())) for o in evaluated if o.scores),
            session.limits.limits("per_image"),
            plan.n_worst,
        )
        by_name = {o.pair.name: o for o in evaluated}
        for name, reason in ranked:
            outcome = by_name[name]
            if name in store or outcome.prediction_file is None:
                continue
            visual = draw_from_files(
                outcome.pair.target,
                outcome.prediction_file,
                outcome.pair.source,
                iou_threshold=session.iou_threshold,
            )
            try:
                store.put(name, visual_document(visual), reason)
            except (OSError, ValueError):
                continue  # the report then shows the image without pictures

    @pytest.hookimpl(optionalhook=True)
    def pytest_html_results_table_row(self, report: pytest.TestReport, cells: list[str]) -> None:
        """Above INLINE_UP_TO images, leave passing image tests out of pytest-html's table.

        segqc's metrics table lists every image, with its status; a second row per image
        in pytest-html's results table made a 10,000-image report take half a minute to
        open. Failed and errored image tests, and every other test, keep their row, with
        the failure message; pytest-html's counts still count every test.
        """
        if (
            report.passed
            and getattr(report, IMAGE_ATTRIBUTE, None) is not None
            and len(self.session.pairs) > INLINE_UP_TO
        ):
            del cells[:]

    @pytest.hookimpl(optionalhook=True)
    def pytest_html_results_summary(
        self, prefix: list[str], summary: list[str], postfix: list[str], session: Any
    ) -> None:
        """Put the QC report above pytest-html's own summary and results table."""
        prefix.append(self._render_or_explain())

    def _render_or_explain(self) -> str:
        from segqc.report.render import render_failure, render_report_chunks

        session = self.session
        try:
            if session.summary is None:
                raise RuntimeError("no summary: no QC image was evaluated")
            folder = self.report_path.parent / PICTURES_FOLDER
            remove_pictures(folder)  # an earlier run's pictures describe other images
            store = session.panels
            pictures = folder if store is not None and len(store) > INLINE_UP_TO else None
            chunks = render_report_chunks(
                session.summary,
                thresholds_text=session.loaded.text,
                panels=store,
                deferred=self.deferred if pictures is None else None,
                pictures=pictures,
                report_dir=self.report_path.parent,
                all_images=[pair.name for pair in session.pairs],
                output_dir=session.settings.output,
            )
            # Rendered into a file now, put into pytest-html's written page later: the
            # sections never pass through pytest-html's in-memory page.
            return self.deferred.section(chunks, self.report_path.parent)
        except Exception as exc:  # a report bug must not hide the QC outcome
            detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
            return render_failure(detail, session.settings.output)

    @pytest.hookimpl(wrapper=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> Generator[None, object, object]:
        """Once pytest-html has written the report, put segqc's sections and the image
        panels into it."""
        try:
            result = yield  # pytest-html's own pytest_sessionfinish (trylast) writes the file
            if self.deferred.pending and self.report_path.is_file():
                try:
                    self.deferred.inline_into(self.report_path)
                except OSError as exc:
                    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
                    if reporter is not None:
                        reporter.write_line(
                            f"segqc: {self.report_path}: could not put the QC sections into "
                            f"the report ({exc.strerror or exc}); summary.json and "
                            "metrics.csv are complete",
                            yellow=True,
                        )
            return result
        finally:
            self.deferred.discard()  # a section pytest-html never wrote into a file


def _defined(values: dict[str, float]) -> dict[str, float]:
    """An image's values with its 0/0 ratios (a negative control's) as NaN: not worst."""
    undefined = undefined_metrics(values)
    return {k: (math.nan if k in undefined else v) for k, v in values.items()}


def remove_pictures(folder: Path) -> None:
    """Remove an earlier run's ``report-images/`` folder."""
    if folder.is_dir() and not folder.is_symlink():
        shutil.rmtree(folder, ignore_errors=True)
