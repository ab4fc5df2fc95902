"""Image panels put into the written report one image at a time (segqc.report.inline)."""

import os

import pytest

from segqc.report.inline import DeferredImages
from segqc.report.panels import ImageVisual, Panel, save_visual


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
