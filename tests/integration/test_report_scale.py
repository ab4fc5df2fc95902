"""The report of a large QC set: every image in the table, the telling ones in pictures.

QC data: 210 small images of 4 disks; img007 and img205 lose 2 disks (f1 = 2*2/(2*2+2)
= 0.667 by hand, below the 0.8 limit), every other image is perfect.
"""

from __future__ import annotations

import json
import re
from html import unescape

import numpy as np
import pytest
import tifffile

from tests.helpers import disks

QC = ("--pyargs", "segqc.qc_tests")
FAILING = ("img007.tif", "img205.tif")


@pytest.fixture
def large_qc(pytester: pytest.Pytester):
    root = pytester.path / "qc"
    for sub in ("target", "predictions"):
        (root / sub).mkdir(parents=True)
    labels = disks((40, 80), 4, radius=4, spacing=20)
    assert len(np.unique(labels)) == 5  # four disks and the background
    for i in range(210):
        name = f"img{i:03d}.tif"
        prediction = labels.copy()
        if name in FAILING:
            prediction[prediction > 2] = 0
        tifffile.imwrite(root / "target" / name, labels)
        tifffile.imwrite(root / "predictions" / name, prediction)
    (pytester.path / "limits.yaml").write_text("per_image:\n  f1: {min: 0.8}\n")
    return (
        *QC,
        f"--predictions={root / 'predictions'}",
        f"--qc-target={root / 'target'}",
        f"--thresholds={pytester.path / 'limits.yaml'}",
        "-p",
        "no:randomly",
    )


def shown(html: str) -> dict[str, str]:
    """Images with a picture section in the report, and why each is shown."""
    found = {}
    for block in re.findall(r'<details class="segqc-image.*?</summary>', html, flags=re.S):
        name = re.search(r'data-image="([^"]+)"', block).group(1)
        reason = re.search(r'data-field="reason">shown: ([^<]+)<', block)
        found[name] = reason.group(1) if reason else ""
    return found


def test_above_200_images_the_report_shows_failed_worst_and_sampled_images(pytester, large_qc):
    result = pytester.runpytest(*large_qc)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    html = (pytester.path / "qc-output" / "report.html").read_text(encoding="utf-8")
    rows = re.findall(r'<tr class="segqc-row-image[^"]*" data-image="([^"]+)"', html)
    assert rows == [f"img{i:03d}.tif" for i in range(210)]  # the table lists every image
    pictures = shown(html)
    assert {pictures[name] for name in FAILING} == {"failed"}
    reasons = set(pictures.values())
    assert "seeded sample" in reasons
    worst = [reason for reason in reasons if reason.startswith("worst #")]
    assert worst == [] or all("f1" in reason for reason in worst)
    assert 2 + 50 <= len(pictures) <= 2 + 50 + 50
    assert 'data-field="visuals_shown"' in html
    assert len(re.findall(r'class="segqc-visual"', html)) == len(pictures)
    assert 'id="segqc-metrics-filter"' in html and "aria-sort" in html
    # In view at first: every failing image and the first 200 passing ones; the other
    # passing rows are in the page, hidden until the reader asks (or filters, or sorts).
    row = r'<tr class="segqc-row-image[^"]*" data-image="([^"]+)" data-status='
    in_view = re.findall(row + r'"\w+">', html)
    hidden = re.findall(row + r'"pass" hidden>', html)
    passing = [name for name in rows if name not in FAILING]
    assert hidden == passing[200:] and len(hidden) == 8
    assert sorted(in_view) == sorted([*passing[:200], *FAILING])
    assert 'data-field="table-paging"' in html
    # pytest-html's own results table keeps the failed image tests, not the passing ones.
    blob = json.loads(unescape(re.search(r'data-jsonblob="([^"]*)"', html).group(1)))
    listed = sorted(test_id for test_id in blob["tests"] if "test_image[" in test_id)
    assert listed == [f"test_quality_metrics.py::test_image[{name}]" for name in FAILING]
    assert "test_quality_metrics.py::test_aggregate" in blob["tests"]


def test_report_images_all_writes_the_pictures_beside_the_report(pytester, large_qc):
    result = pytester.runpytest(*large_qc, "--report-images", "all")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    out = pytester.path / "qc-output"
    html = (out / "report.html").read_text(encoding="utf-8")
    assert len(shown(html)) == 210
    sources = re.findall(r'<img src="(report-images/[^"]+)"', html)
    assert len(sources) == 210 * 3  # ground truth, prediction, error map per image
    assert all((out / source).is_file() for source in sources)
    assert "data:image/png" not in html.split('id="segqc-visual"')[1]
    first = tifffile.imread(pytester.path / "qc" / "target" / "img000.tif")
    assert first.shape == (40, 80)
    # a later, smaller run puts its pictures into the page and removes the folder
    result = pytester.runpytest(*large_qc, "--report-images", "failed")
    assert not (out / "report-images").exists()
    html = (out / "report.html").read_text(encoding="utf-8")
    assert set(shown(html)) == set(FAILING)
    assert np.all([p.startswith("data:") for p in re.findall(r'<img src="([^"]+)"', html)])
