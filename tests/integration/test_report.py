"""The HTML QC report, read back with html.parser as a reviewer's script would.

QC data from ``make_qc``: 10 equal disks per image; img01's prediction drops 4, so by
hand its f1 is 2*6 / (2*6 + 4) = 0.75 (below the 0.8 limit used here) and the other
images' f1 is 1.
"""

import base64
import io
import json
from html.parser import HTMLParser

import numpy as np
import pytest
import tifffile
from PIL import Image

import segqc.session
from segqc.data.images import read_tiff
from segqc.metrics.catalogue import METRICS
from segqc.report.panels import (
    FN_COLOUR,
    FP_COLOUR,
    MAX_SIDE,
    draw_from_files,
    iou_colours,
    iou_legend,
)

QC = ("--pyargs", "segqc.qc_tests")
STRICT = "per_image:\n  f1: {min: 0.8}\n  pixel_iou: {min: 0.5}\n"


class Element:
    def __init__(self, tag, attrs, parent):
        self.tag, self.attrs, self.parent = tag, dict(attrs), parent
        self.children, self.text = [], ""

    def find_all(self, tag=None, **attrs):
        found = []
        for child in self.children:
            if (tag is None or child.tag == tag) and all(
                child.attrs.get(k.rstrip("_").replace("_", "-")) == v for k, v in attrs.items()
            ):
                found.append(child)
            found += child.find_all(tag, **attrs)
        return found

    def all_text(self):
        return self.text + "".join(child.all_text() for child in self.children)


class Tree(HTMLParser):
    """A minimal DOM: enough to find elements by tag and attributes."""

    VOID = frozenset({"img", "br", "meta", "link", "input", "hr", "source"})

    def __init__(self, html):
        super().__init__()
        self.root = self.current = Element("root", {}, None)
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        element = Element(tag, attrs, self.current)
        self.current.children.append(element)
        if tag not in self.VOID:
            self.current = element

    def handle_endtag(self, tag):
        node = self.current
        while node is not None and node.tag != tag:
            node = node.parent
        if node is not None and node.parent is not None:
            self.current = node.parent

    def handle_data(self, data):
        self.current.text += data


def run_report(pytester, make_qc, thresholds_file, *args, limits=STRICT, **kwargs):
    qc = make_qc(3, dropped=(0, 4, 0), root=pytester.path / "qc")
    options = [f"--predictions={qc.predictions}", f"--qc-source={qc.source}"]
    options += [f"--qc-target={qc.target}", f"--thresholds={thresholds_file(limits)}"]
    return qc, pytester.runpytest(*QC, *options, *args, **kwargs)


def png_size(data_uri):
    header, data = data_uri.split(",", 1)
    assert header in ("data:image/png;base64", "data:image/jpeg;base64")
    return Image.open(io.BytesIO(base64.b64decode(data))).size


def test_report_has_header_one_row_and_one_visual_per_image(pytester, make_qc, thresholds_file):
    qc, result = run_report(pytester, make_qc, thresholds_file)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    out = pytester.path / "qc-output"
    written = sorted(p.name for p in out.iterdir() if not p.name.startswith("."))
    assert written == ["metrics.csv", "report.html", "summary.json"]  # one file, no assets/
    html = (out / "report.html").read_text(encoding="utf-8")
    tree = Tree(html).root
    # Self-contained: no stylesheet or script or image fetched from elsewhere.
    assert not tree.find_all("link")
    assert all(s.attrs.get("src") is None for s in tree.find_all("script"))
    sources = [
        img.attrs["src"] for img in tree.find_all("img") if img.attrs["src"]
    ]  # "": a template
    assert sources and all(
        src.startswith(
            ("data:image/png;base64,", "data:image/jpeg;base64,", "data:image/svg+xml;base64,")
        )
        for src in sources
    )

    [banner] = tree.find_all(data_field="status")
    assert banner.attrs["data-status"] == "failed"
    assert "2 passed, 1 failed" in " ".join(banner.all_text().split())
    fields = {
        row.attrs["data-field"]: " ".join(row.find_all("td")[0].all_text().split())
        for row in tree.find_all("tr")
        if "data-field" in row.attrs
    }
    assert str(qc.predictions) in fields["predictions"]
    assert "IoU ≥ 0.5" in fields["iou_threshold"]
    assert str(qc.source) in fields["qc_source"] and str(qc.target) in fields["qc_target"]
    assert "3 of 3" in fields["qc_pairs"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["qc"]["content_sha256"] in fields["qc_content_sha256"]
    assert "numpy " + np.__version__ in fields["versions"]
    assert fields["created"] == summary["created"]
    [thresholds] = tree.find_all("details", data_field="thresholds_yaml")
    assert STRICT.strip() in thresholds.all_text()
    assert (
        tree.find_all(data_field="loss_curve")[0]
        .all_text()
        .strip()
        .startswith("No training history")
    )

    [table] = tree.find_all("table", id="segqc-metrics-table")
    image_rows = [r for r in table.find_all("tr") if "data-image" in r.attrs]
    assert [r.attrs["data-image"] for r in image_rows] == ["img00.tif", "img01.tif", "img02.tif"]
    assert [
        r.attrs["data-aggregate"] for r in table.find_all("tr") if "data-aggregate" in r.attrs
    ] == [
        "pooled",
        "image mean",
    ]
    for row in image_rows:
        # the seed's 13 columns, then the community metrics
        assert len(row.find_all("td")) == len(METRICS)

    visuals = tree.find_all("div", class_="segqc-visual")
    assert [v.attrs["data-image"] for v in visuals] == ["img00.tif", "img01.tif", "img02.tif"]
    for visual in visuals:
        images = visual.find_all("img")
        assert len(images) == 4  # input, ground truth, prediction, error map
        assert {png_size(img.attrs["src"]) for img in images} == {(128, 64)}

    [accuracy] = tree.find_all("table", id="segqc-accuracy-table")
    assert [
        r.attrs["data-threshold"] for r in accuracy.find_all("tr") if "data-threshold" in r.attrs
    ] == [f"0.{i}" for i in range(1, 10)]


def test_failing_image_is_expanded_and_its_cells_highlighted(pytester, make_qc, thresholds_file):
    run_report(pytester, make_qc, thresholds_file)
    tree = Tree((pytester.path / "qc-output" / "report.html").read_text(encoding="utf-8")).root
    opened = {
        d.attrs["data-image"]: "open" in d.attrs
        for d in tree.find_all("details")
        if "data-image" in d.attrs
    }
    assert opened == {"img00.tif": False, "img01.tif": True, "img02.tif": False}

    [table] = tree.find_all("table", id="segqc-metrics-table")
    [img01] = [r for r in table.find_all("tr") if r.attrs.get("data-image") == "img01.tif"]
    assert img01.attrs["data-status"] == "fail"
    cells = {td.attrs["data-metric"]: td for td in img01.find_all("td")}
    f1 = cells["f1"]
    assert f1.attrs["data-outcome"] == "fail"
    assert f1.text.strip() == "0.750"
    assert "min 0.8" in f1.all_text()  # the limit beside the value
    assert "per_image.f1.min" in f1.attrs["title"]
    # pixel IoU 0.6 meets its 0.5 limit: marked as limited, not highlighted as broken.
    assert cells["pixel_iou"].attrs["data-outcome"] == "pass"
    assert "data-outcome" not in cells["tp"].attrs
    broken = [
        td.attrs["data-metric"]
        for td in table.find_all("td")
        if td.attrs.get("data-outcome") == "fail"
    ]
    assert broken == ["f1"]


def test_users_html_option_wins(pytester, make_qc, thresholds_file):
    run_report(pytester, make_qc, thresholds_file, "--html", "mine.html")
    assert (pytester.path / "mine.html").is_file()
    assert not (pytester.path / "qc-output" / "report.html").exists()
    assert 'id="segqc-report"' in (pytester.path / "mine.html").read_text(encoding="utf-8")


def test_interrupted_run_still_writes_the_report(pytester, make_qc, thresholds_file, monkeypatch):
    original = segqc.session.evaluate_image

    def interrupt_at_second_image(pair, **kwargs):
        if pair.name == "img01.tif":
            raise KeyboardInterrupt
        return original(pair, **kwargs)

    monkeypatch.setattr(segqc.session, "evaluate_image", interrupt_at_second_image)
    _, result = run_report(pytester, make_qc, thresholds_file, no_reraise_ctrlc=True)
    assert result.ret == pytest.ExitCode.INTERRUPTED
    tree = Tree((pytester.path / "qc-output" / "report.html").read_text(encoding="utf-8")).root
    assert tree.find_all(data_field="status")[0].attrs["data-status"] == "interrupted"
    note = " ".join(tree.find_all(data_field="interrupted")[0].all_text().split())
    assert "not evaluated: img01.tif, img02.tif" in note
    assert [v.attrs["data-image"] for v in tree.find_all("div", class_="segqc-visual")] == [
        "img00.tif"
    ]


def draw(tmp_path, target, predicted, source=None):
    """The panels of one image drawn from its files, as the report draws the worst images."""
    for name in ("target", "predictions", "source"):
        (tmp_path / name).mkdir()
    tifffile.imwrite(tmp_path / "target" / "x.tif", target)
    tifffile.imwrite(tmp_path / "predictions" / "x.tif", predicted)
    source_path = None
    if source is not None:
        source_path = tmp_path / "source" / "x.tif"
        tifffile.imwrite(source_path, source)
    return draw_from_files(
        tmp_path / "target" / "x.tif",
        tmp_path / "predictions" / "x.tif",
        source_path,
        iou_threshold=0.5,
    )


def decode(data_uri):
    raw = base64.b64decode(data_uri.split(",", 1)[1])
    return np.asarray(Image.open(io.BytesIO(raw)).convert("RGB")).astype(int)


def test_error_map_colours_matches_misses_and_false_positives(tmp_path):
    target = np.zeros((40, 40), np.uint16)
    target[5:15, 5:15] = 1  # matched with IoU 80/120 = 2/3
    target[25:35, 5:15] = 2  # missed: false negative
    predicted = np.zeros_like(target)
    predicted[5:15, 7:17] = 4
    predicted[25:35, 25:35] = 9  # no partner: false positive
    visual = draw(tmp_path, target, predicted)
    assert [p.caption for p in visual.panels] == [
        "ground truth",
        "prediction",
        "error map (IoU ≥ 0.5)",
    ]
    error = decode(visual.panels[-1].data_uri)
    matched_colour = iou_colours(np.array([2 / 3]))[0]
    references = {"matched": matched_colour, "fn": np.array(FN_COLOUR), "fp": np.array(FP_COLOUR)}

    def nearest(pixel):
        return min(references, key=lambda k: np.abs(pixel - references[k]).sum())

    assert nearest(error[10, 10]) == "matched"
    assert nearest(error[30, 10]) == "fn"
    assert nearest(error[30, 30]) == "fp"
    # Outlines are drawn opaque: the predicted partner's edge in its IoU colour.
    assert tuple(error[5, 12]) == tuple(matched_colour)
    assert tuple(error[25, 30]) == FP_COLOUR
    assert tuple(error[25, 10]) == FN_COLOUR
    # Background stays dark and grey.
    assert error[38, 38].max() < 60 and len(set(error[38, 38])) == 1


def test_large_and_3d_images_are_downscaled_and_sliced(tmp_path):
    target = np.zeros((5, 900, 1200), np.uint16)
    target[:, 100:300, 100:300] = 1
    source = (target * 500 + 100).astype(np.uint16)
    visual = draw(tmp_path, target, target.copy(), source=source)
    assert len(visual.panels) == 4 + 4  # the middle z plane, then the stack views
    sizes = {png_size(p.data_uri) for p in visual.panels[:4]}
    [(width, height)] = sizes
    views = {p.caption: png_size(p.data_uri) for p in visual.panels[4:]}
    assert views == {
        "ground truth, max projection along z": (1200 // 4, 900 // 4),
        "prediction, max projection along z": (1200 // 4, 900 // 4),
        "ground truth, xz plane (middle y)": (1200 // 4, 2),  # 5 z planes, every 4th
        "prediction, xz plane (middle y)": (1200 // 4, 2),
    }
    assert max(width, height) <= MAX_SIDE and width == 1200 // 4 and height == 900 // 4
    assert "middle plane z = 2 of 5" in visual.note and "1/4" in visual.note
    assert read_tiff(tmp_path / "target" / "x.tif").shape == (5, 900, 1200)  # untouched


def test_regression_and_leakage_sections_show_what_changed_and_what_leaked(
    pytester, make_qc, thresholds_file
):
    # Baseline: perfect predictions. Candidate: img01 loses 4 of its 10 disks, so by hand
    # its f1 goes 1 -> 2*6/(2*6+4) = 0.75, a drop of 0.25.
    limits = thresholds_file("regression:\n  per_image:\n    f1: {max_drop: 0.1}\n")
    qc = make_qc(3, root=pytester.path / "qc")
    common = [f"--predictions={qc.predictions}", f"--qc-source={qc.source}"]
    common += [f"--qc-target={qc.target}", f"--thresholds={limits}"]
    baseline = pytester.path / "baseline.json"
    assert pytester.runpytest(*QC, *common, f"--baseline={baseline}", "--update-baseline").ret == 0
    make_qc(3, dropped=(0, 4, 0), root=pytester.path / "qc")
    training = pytester.path / "training"
    training.mkdir()
    (training / "copy_of_img02.tif").write_bytes((qc.source / "img02.tif").read_bytes())
    result = pytester.runpytest(
        *QC, *common, f"--baseline={baseline}", f"--training-data={training}"
    )
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    tree = Tree((pytester.path / "qc-output" / "report.html").read_text()).root

    [regression] = tree.find_all("div", data_field="regression")
    [change] = regression.find_all("b", data_field="change")
    assert change.all_text() == "worse"
    rows = {r.attrs["data-image"]: r for r in regression.find_all("tr") if "data-image" in r.attrs}
    assert set(rows) == {"img00.tif", "img01.tif", "img02.tif"}
    assert rows["img01.tif"].find_all("td")[0].all_text() == "1 → 0.750 (−0.250)"
    assert rows["img00.tif"].find_all("td")[0].all_text() == "1 → 1 (±0)"
    assert "img01.tif: f1 dropped by 0.25" in regression.all_text()

    [leakage] = tree.find_all("div", data_field="leakage")
    text = leakage.all_text()
    # (the disk grids of make_qc share one layout, so the other images match it too)
    assert "img02.tif" in text and "copy_of_img02.tif" in text and "FAIL" in text


def test_error_map_colours_follow_the_legend():
    """The legend's gradient runs from the colour of IoU 0 to that of IoU 1, and a
    perfectly predicted object is outlined in the legend's last colour."""
    legend = iou_legend()
    assert len(legend) == 11
    as_hex = ["#{:02x}{:02x}{:02x}".format(*c) for c in iou_colours(np.linspace(0, 1, 11))]
    assert list(legend) == as_hex
    assert legend[0] != legend[-1]
    assert tuple(iou_colours(np.array([-1.0, 2.0]))[1]) == tuple(iou_colours(np.array([1.0]))[0])


def test_perfect_match_is_outlined_in_the_legends_last_colour(tmp_path):
    target = np.zeros((30, 30), np.uint16)
    target[5:20, 5:20] = 3
    visual = draw(tmp_path, target, target.copy())
    error = decode(visual.panels[-1].data_uri)
    last = legend_rgb(iou_legend()[-1])
    assert tuple(error[5, 10]) == last  # on the object's outline


def legend_rgb(colour):
    return tuple(int(colour[i : i + 2], 16) for i in (1, 3, 5))


def test_image_groups_are_shown_in_the_subgroups_table(pytester, make_qc, thresholds_file):
    """Each image group's pooled metrics, as in summary.json (img01 misses 4 of 10 disks,
    so group 'b' = img01 + img02 has recall 16/20 = 0.8 by hand)."""
    groups = pytester.path / "groups.csv"
    groups.write_text("image,group\nimg00.tif,a\nimg01.tif,b\nimg02.tif,b\n")
    run_report(pytester, make_qc, thresholds_file, f"--qc-groups={groups}")
    html = (pytester.path / "qc-output" / "report.html").read_text(encoding="utf-8")
    tree = Tree(html).root
    assert not tree.find_all(data_field="report_error"), "the QC sections failed to render"
    rows = {
        row.find_all("th")[0].all_text(): [cell.all_text() for cell in row.find_all("td")]
        for table in tree.find_all("table")
        for row in table.find_all("tr")
        if row.find_all("th") and row.find_all("th")[0].all_text() in ("a", "b")
    }
    assert set(rows) == {"a", "b"}
    metrics = sorted(json.loads((pytester.path / "qc-output" / "summary.json").read_text())[
        "subgroups"]["image_groups"][1]["values"])  # fmt: skip
    assert rows["b"][0] == "2 images"
    assert rows["b"][1 + metrics.index("recall")] == "0.800"
