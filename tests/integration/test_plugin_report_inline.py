"""segqc's sections and image panels reach the written report without passing through
pytest-html's in-memory page."""

import json

import pytest

QC = ("--pyargs", "segqc.qc_tests")


def test_pytest_html_renders_the_page_without_the_sections_or_panels(pytester, make_qc):
    """The sections and panels never pass through pytest-html's in-memory page, only
    the file: pytest-html sees one placeholder line."""
    pytester.makeconftest(
        """
        import json, pathlib, pytest

        @pytest.hookimpl(trylast=True)
        def pytest_html_results_summary(prefix, summary, postfix, session):
            page = "".join(prefix)
            counts = {
                "pictures": page.count("data:image/"),
                "deferred": page.count("segqc-deferred-"),
            }
            pathlib.Path("page.json").write_text(json.dumps(counts))
        """
    )
    qc = make_qc(3, root=pytester.path / "qc")
    result = pytester.runpytest(
        *QC,
        f"--predictions={qc.predictions}",
        f"--qc-source={qc.source}",
        f"--qc-target={qc.target}",
    )
    assert result.ret == pytest.ExitCode.OK
    counts = json.loads((pytester.path / "page.json").read_text())
    assert counts == {"pictures": 0, "deferred": 1}
    html = (pytester.path / "qc-output" / "report.html").read_text(encoding="utf-8")
    assert "segqc-deferred-" not in html
    assert html.count('src="data:image/') == 13  # the accuracy figure; 3 images x 4 panels
    assert html.count('id="segqc-metrics-table"') == 1
    assert not [p.name for p in (pytester.path / "qc-output").iterdir() if p.suffix == ".section"]
