"""Image panels put into the written report one image at a time (segqc.report.inline)."""

import json
import os

import pytest

from segqc.report.inline import DeferredImages
from segqc.report.panels import ImageVisual, Panel, save_visual

QC = ("--pyargs", "segqc.qc_tests")


def visual_file(tmp_path, name, n_panels):
    panels = tuple(Panel(f"panel {i}", f"data:image/png;base64,{name}{i}") for i in range(n_panels))
    return save_visual(ImageVisual(panels, None), tmp_path / f"{name}.json")


def test_placeholders_become_the_panels_they_stand_for(tmp_path):
    deferred = DeferredImages()
    a, b = visual_file(tmp_path, "a", 2), visual_file(tmp_path, "b", 1)
    names = [deferred.placeholder(a, 0), deferred.placeholder(a, 1), deferred.placeholder(b, 0)]
    report = tmp_path / "report.html"
    report.write_text(
        "<p>keep é ≥</p>\r\n"
        + "".join(f'<img src="{n}" alt="x">\n' for n in names)
        + "<p>segqc-deferred-0000000000000000-0 is someone else's text</p>\n",
        encoding="utf-8",
    )
    os.chmod(report, 0o640)

    assert deferred.inline_into(report) == 3
    assert report.read_bytes().decode("utf-8") == (  # bytes: the \r\n kept as written
        "<p>keep é ≥</p>\r\n"
        '<img src="data:image/png;base64,a0" alt="x">\n'
        '<img src="data:image/png;base64,a1" alt="x">\n'
        '<img src="data:image/png;base64,b0" alt="x">\n'
        "<p>segqc-deferred-0000000000000000-0 is someone else's text</p>\n"
    )
    assert report.stat().st_mode & 0o777 == 0o640
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_a_panel_whose_file_is_gone_becomes_an_empty_source(tmp_path):
    deferred = DeferredImages()
    kept, gone = visual_file(tmp_path, "kept", 1), visual_file(tmp_path, "gone", 1)
    html = f'<img src="{deferred.placeholder(gone, 0)}"><img src="{deferred.placeholder(kept, 0)}">'
    report = tmp_path / "report.html"
    report.write_text(html, encoding="utf-8")
    gone.unlink()
    deferred.inline_into(report)
    assert (
        report.read_text(encoding="utf-8") == '<img src=""><img src="data:image/png;base64,kept0">'
    )


def test_a_failed_rewrite_leaves_the_report_as_it_was(tmp_path, monkeypatch):
    deferred = DeferredImages()
    name = deferred.placeholder(visual_file(tmp_path, "a", 1), 0)
    report = tmp_path / "report.html"
    report.write_text(f'<img src="{name}">', encoding="utf-8")

    def full_disk(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", full_disk)
    with pytest.raises(OSError):
        deferred.inline_into(report)
    assert report.read_text(encoding="utf-8") == f'<img src="{name}">'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "report.html"]


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
        "--predictions",
        str(qc.predictions),
        "--qc-source",
        str(qc.source),
        "--qc-target",
        str(qc.target),
    )
    assert result.ret == pytest.ExitCode.OK
    counts = json.loads((pytester.path / "page.json").read_text())
    assert counts == {"pictures": 1, "deferred": 12}  # the accuracy figure; 3 images x 4 panels
    html = (pytester.path / "qc-output" / "report.html").read_text(encoding="utf-8")
    assert "segqc-deferred-" not in html
    assert html.count('src="data:image/') == 13


def test_sections_are_rendered_before_the_other_sessionfinish_hooks(pytester, make_qc):
    """Rendered in a ``tryfirst`` ``pytest_sessionfinish``: under pytest-xdist, that work
    overlaps the controller's wait for its workers to exit (a ``trylast`` hook)."""
    pytester.makeconftest(
        """
        import pathlib

        def pytest_sessionfinish(session):
            plugin = session.config.pluginmanager.get_plugin("segqc-report")
            rendered = plugin.fragment is not None and "segqc-deferred-" in plugin.fragment
            pathlib.Path("rendered.txt").write_text(str(rendered))
        """
    )
    qc = make_qc(2, root=pytester.path / "qc")
    result = pytester.runpytest(
        *QC, "--predictions", str(qc.predictions), "--qc-target", str(qc.target)
    )
    assert result.ret == pytest.ExitCode.OK
    assert (pytester.path / "rendered.txt").read_text() == "True"
