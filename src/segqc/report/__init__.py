"""The HTML QC report, written through pytest-html (see :mod:`segqc.report.plugin`)."""

from segqc.report.plugin import enable_html_report

__all__ = ["enable_html_report"]
