"""The HTML QC report, written through pytest-html.

It is built from data only: the summary.json document (:mod:`segqc.report.content`,
:mod:`segqc.report.sections`, :mod:`segqc.report.render`) and the images' panels
(:mod:`segqc.report.panels`, :mod:`segqc.report.selection`, :mod:`segqc.report.store`).
:mod:`segqc.report.plugin` wires it into pytest-html.
"""
