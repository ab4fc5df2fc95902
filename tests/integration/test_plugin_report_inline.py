"""Image panels reach the written report without passing through pytest-html's page."""

import json

import pytest

QC = ("--pyargs", "segqc.qc_tests")


def test_pytest_html_renders_the_page_without_the_panels(pytester, make_qc):
    """The panels never pass through pytest-html's in-memory page, only the file."""
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
    assert counts == {"pictures": 1, "deferred": 12}  # the accuracy figure; 3 images x 4 panels
    html = (pytester.path / "qc-output" / "report.html").read_text(encoding="utf-8")
    assert "segqc-deferred-" not in html
    assert html.count('src="data:image/') == 13
