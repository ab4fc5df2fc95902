"""The QC report: segqc's sections inside pytest-html's report.

:func:`enable_html_report` runs in segqc's ``pytest_configure``, which is ``tryfirst`` so
that pytest-html's own ``pytest_configure`` (where it decides whether to write a report
and where) sees ``qc-output/report.html`` as if ``--html`` had been given, in
self-contained mode. A user's own ``--html`` wins. Only the controller registers it
(``not hasattr(config, "workerinput")``), like pytest-html, so pytest-xdist works.

The sections are rendered at the end of the session, first thing in
``pytest_sessionfinish`` (after writing ``summary.json``), and placed by pytest-html's
``pytest_html_results_summary`` hook, which its own ``pytest_sessionfinish`` calls; so
the report is written after failures, errors and Ctrl-C alike, showing what was
evaluated. The image panels go into the page as placeholders and are put into the file
pytest-html wrote, one image at a time, when every ``pytest_sessionfinish`` has run
(:mod:`segqc.report.inline`).

Under pytest-xdist the controller runs no test, so once the workers report it imports
the report's drawing library (matplotlib, ~0.15 s) on a thread, rather than at the end
of the run, when everyone waits for the report.
"""

from __future__ import annotations

import importlib
import os
import shutil
import tempfile
import threading
import traceback
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from segqc.report.inline import DeferredImages
from segqc.reporting import QcSessionPlugin

__all__ = ["REPORT_NAME", "QcReportPlugin", "enable_html_report"]

REPORT_NAME = "report.html"


def _resource(name: str) -> Path:
    return Path(str(resources.files("segqc") / "resources" / "report" / name))


def enable_html_report(config: pytest.Config, session_plugin: QcSessionPlugin) -> None:
    """Point pytest-html at ``<qc-output>/report.html`` and register the QC sections.

    Does nothing on xdist workers or when pytest-html is not active (``-p no:html``).
    """
    if hasattr(config, "workerinput") or not config.pluginmanager.hasplugin("html"):
        return
    if not getattr(config.option, "htmlpath", None):
        config.option.htmlpath = str(session_plugin.output_dir / REPORT_NAME)
        config.option.self_contained_html = True
    # pytest-html appends --css files to its own style sheet (inlined when self-contained).
    config.option.css = [*getattr(config.option, "css", []), str(_resource("report.css"))]
    try:  # each image's panels are drawn when it is evaluated and saved here
        session_plugin.output_dir.mkdir(parents=True, exist_ok=True)
        session_plugin.run.visuals_dir = Path(
            tempfile.mkdtemp(prefix=".segqc-visuals-", dir=session_plugin.output_dir)
        )
    except OSError:
        pass  # the report then draws every image from its files at the end
    # Where pytest-html writes, resolved as pytest-html does (against the current folder).
    report_path = Path.cwd() / Path(os.path.expandvars(config.option.htmlpath)).expanduser()
    config.pluginmanager.register(QcReportPlugin(session_plugin, report_path), "segqc-report")


class QcReportPlugin:
    """pytest-html hooks adding segqc's header and sections to the report.

    Parameters
    ----------
    session_plugin : QcSessionPlugin
        The run and the summary.json document it built at session finish.
    report_path : Path
        The HTML file pytest-html writes.
    """

    def __init__(self, session_plugin: QcSessionPlugin, report_path: Path) -> None:
        self.session_plugin = session_plugin
        self.report_path = report_path
        self.deferred = DeferredImages()
        self.fragment: str | None = None
        self.warm_up: threading.Thread | None = None
        self._warm_up_pending = False

    def pytest_sessionstart(self, session: pytest.Session) -> None:
        """Under pytest-xdist, warm up once the first worker reports (see below)."""
        self._warm_up_pending = session.config.pluginmanager.has_plugin("dsession")

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """Under pytest-xdist, import the drawing library while the workers test.

        Not earlier: the controller starts its workers one after the other, and a
        thread importing matplotlib meanwhile holds the interpreter lock that work needs
        (the second worker started ~0.15 s later).
        """
        if self._warm_up_pending:
            self._warm_up_pending = False
            self.warm_up = threading.Thread(target=_import_drawing, name="segqc-warm-up")
            self.warm_up.start()

    def _wait_for_warm_up(self) -> None:
        """Let the warm-up import finish first: two threads importing one package can
        meet a partly initialised module."""
        if self.warm_up is not None:
            self.warm_up.join()
            self.warm_up = None

    @pytest.hookimpl(optionalhook=True)
    def pytest_html_report_title(self, report: Any) -> None:
        """Title the page after the model (or predictions folder) under test."""
        run = self.session_plugin.run
        tested = run.model_folder.name if run.model_folder else "predictions"
        report.title = f"segqc QC report: {tested}"

    # pytest registers only attributes named ``pytest_*`` as hooks; ``specname`` lets this
    # second ``pytest_sessionfinish`` of the class live beside the wrapper below.
    @pytest.hookimpl(tryfirst=True, specname="pytest_sessionfinish")
    def pytest_sessionfinish_render(self, session: pytest.Session, exitstatus: int) -> None:
        """Render the QC sections as soon as the session ends.

        ``tryfirst``: before pytest-xdist's ``pytest_sessionfinish`` waits for its
        workers to exit, so that wait and the rendering overlap; pytest-html's own
        ``pytest_sessionfinish`` (``trylast``) then only places the fragment.
        """
        self._wait_for_warm_up()  # before the loss figure, which imports matplotlib too
        self.session_plugin.write_outputs(session, exitstatus)
        self.fragment = self._render_or_explain(int(session.exitstatus))

    @pytest.hookimpl(optionalhook=True)
    def pytest_html_results_summary(
        self, prefix: list[str], summary: list[str], postfix: list[str], session: Any
    ) -> None:
        """Put the QC report above pytest-html's own summary and results table."""
        fragment = self.fragment
        if fragment is None:  # not rendered at sessionfinish: called by someone else
            fragment = self._render_or_explain(int(session.exitstatus))
        prefix.append(fragment)

    def _render_or_explain(self, exitstatus: int) -> str:
        try:
            return self.render(exitstatus)
        except Exception as exc:  # a report bug must not hide the QC outcome
            from segqc.report.render import render_failure

            detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
            return render_failure(detail, self.session_plugin.output_dir)

    @pytest.hookimpl(wrapper=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> Any:
        """Once pytest-html has written the report, put the image panels into it."""
        result = yield  # pytest-html's own pytest_sessionfinish (trylast) writes the file
        if len(self.deferred) and self.report_path.is_file():
            try:
                self.deferred.inline_into(self.report_path)
            except OSError as exc:
                reporter = session.config.pluginmanager.get_plugin("terminalreporter")
                if reporter is not None:
                    reporter.write_line(
                        f"segqc: {self.report_path}: could not put the image panels into "
                        f"the report ({exc.strerror or exc}); the metrics and verdicts in it "
                        "are complete",
                        yellow=True,
                    )
        return result

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        """Remove the visuals folder and unregister (matters for in-process pytester runs)."""
        self._wait_for_warm_up()
        run = self.session_plugin.run
        if run.visuals_dir is not None:
            shutil.rmtree(run.visuals_dir, ignore_errors=True)
            run.visuals_dir = None
        config.pluginmanager.unregister(self)

    def render(self, exitstatus: int) -> str:
        """The QC report sections as HTML (rendered from templates, autoescaped)."""
        from segqc.report.render import render_report

        self._wait_for_warm_up()
        return render_report(self.session_plugin, exitstatus=exitstatus, deferred=self.deferred)


def _import_drawing() -> None:
    """Import what :func:`segqc.report.figures.accuracy_figure` draws with."""
    for module in ("matplotlib.figure", "matplotlib.backends.backend_agg"):
        try:
            importlib.import_module(module)
        except Exception:
            return  # drawing the figure says what is wrong
