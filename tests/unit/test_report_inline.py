"""segqc's sections and image panels put into the written report (segqc.report.inline)."""

import os

import pytest

from segqc.report.inline import DeferredContent
from segqc.report.panels import ImageVisual, Panel, save_visual


def visual_file(tmp_path, name, n_panels):
    panels = tuple(Panel(f"panel {i}", f"data:image/png;base64,{name}{i}") for i in range(n_panels))
    return save_visual(ImageVisual(panels, None), tmp_path / f"{name}.json")


def test_placeholders_become_the_panels_they_stand_for(tmp_path):
    deferred = DeferredContent()
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
    deferred = DeferredContent()
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
    deferred = DeferredContent()
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


def test_a_section_goes_in_place_of_its_line_with_its_panels(tmp_path):
    deferred = DeferredContent()
    a = visual_file(tmp_path, "a", 2)
    out = tmp_path / "out"
    out.mkdir()
    chunks = ["<section>\n<img src=", f'"{deferred.placeholder(a, 1)}">', "\n</section>\n"]
    line = deferred.section(iter(chunks), out)
    assert len(line) < 60 and "<section>" not in line  # pytest-html's page holds only this
    report = out / "report.html"
    report.write_text(f"<body>\n  <h1>t</h1>{line}  <p>pytest-html</p>\n</body>\n")

    assert deferred.inline_into(report) == 1
    assert report.read_text() == (
        "<body>\n  <h1>t</h1>\n<section>\n"
        '<img src="data:image/png;base64,a1">\n</section>\n  <p>pytest-html</p>\n</body>\n'
    )
    assert sorted(p.name for p in out.iterdir()) == ["report.html"]  # no section file left


def test_a_section_that_fails_to_render_leaves_no_file(tmp_path):
    deferred = DeferredContent()

    def broken():
        yield "<section>"
        raise KeyError("accuracy_vs_iou")

    with pytest.raises(KeyError):
        deferred.section(broken(), tmp_path)
    assert list(tmp_path.iterdir()) == [] and not deferred.pending


def test_a_section_never_written_into_a_report_is_discarded(tmp_path):
    deferred = DeferredContent()
    deferred.section(["<p>a</p>"], tmp_path)
    assert deferred.pending and len(list(tmp_path.iterdir())) == 1
    deferred.discard()
    assert list(tmp_path.iterdir()) == [] and not deferred.pending
