"""Negative controls as a user runs them (``--predictions`` mode, no TensorFlow).

QC data: ``make_qc``'s two images of 10 equal disks, predicted exactly (every ratio 1,
n_pred = 10), plus one image whose ground truth has no object. By hand: predicting
nothing there is the perfect answer and passes; predicting 3 squares fails, naming
n_pred. The negative control's 0/0 ratios (stardist writes 0) are not judged, read n/a
in the report, and stay out of the image mean: image-mean f1 = (1 + 1) / 2 = 1, where
stardist's ``matching_dataset(by_image=True)`` would give (1 + 1 + 0) / 3.
"""

import csv
import json
from html.parser import HTMLParser

import numpy as np
import pytest
import tifffile

from tests.helpers import OPTIONAL_SKIPPED

QC = ("--pyargs", "segqc.qc_tests")
LIMITS = (
    "per_image:\n  f1: {min: 0.7}\n  pixel_iou: {min: 0.6}\n"
    "aggregate:\n  precision: {min: 0.75}\n"
    "image_mean:\n  f1: {min: 0.75}\n  pixel_iou: {min: 0.7}\n"
)
SHAPE = (64, 128)  # make_qc's image size


def run_with_negative_control(pytester, make_qc, prediction):
    qc = make_qc(2, root=pytester.path / "qc")
    limits = pytester.path / "limits.yaml"
    limits.write_text(LIMITS, encoding="utf-8")
    name = "negative_01.tif" if prediction.any() else "negative_02.tif"
    tifffile.imwrite(qc.target / name, np.zeros(SHAPE, np.uint16))
    tifffile.imwrite(qc.predictions / name, prediction)
    result = pytester.runpytest(
        *QC, f"--predictions={qc.predictions}", f"--qc-target={qc.target}",
        f"--thresholds={limits}", "-v",
    )  # fmt: skip
    return result


class _Row(HTMLParser):
    """The ``data-metric`` cells of one row of the report's metrics table."""

    def __init__(self, image: str) -> None:
        super().__init__()
        self.image, self.inside, self.cells, self.current = image, False, {}, None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "tr":
            self.inside = attrs.get("data-image") == self.image
        elif tag == "td" and self.inside and "data-metric" in attrs:
            self.current = attrs["data-metric"]
            self.cells[self.current] = {"attrs": attrs, "text": ""}

    def handle_endtag(self, tag):
        if tag == "td":
            self.current = None
        elif tag == "tr":
            self.inside = False

    def handle_data(self, data):
        if self.current is not None:
            self.cells[self.current]["text"] += data


def report_row(path, image):
    parser = _Row(image)
    parser.feed(path.read_text(encoding="utf-8"))
    return parser.cells


def test_empty_prediction_on_empty_ground_truth_passes(pytester, make_qc):
    result = run_with_negative_control(pytester, make_qc, np.zeros(SHAPE, np.uint16))
    # 3 images, aggregate and image mean pass; before, negative_02.tif failed with
    # "f1 = 0 < min 0.7" and the image mean with f1 = 2/3.
    result.assert_outcomes(passed=5, skipped=OPTIONAL_SKIPPED)
    result.stdout.fnmatch_lines(["*test_image?negative_02.tif? PASSED*"])
    output = pytester.path / "qc-output"
    summary = json.loads((output / "summary.json").read_text(encoding="utf-8"))
    [rule] = [v for v in summary["limits"] if v["subject"] == "negative_02.tif"]
    assert {k: rule[k] for k in ("scope", "metric", "value", "max", "outcome", "key", "rule")} == {
        "scope": "per_image", "metric": "n_pred", "value": 0, "max": 0, "outcome": "pass",
        "key": "per_image", "rule": "negative_control",
    }  # fmt: skip
    assert "negative control" in rule["message"]
    [image] = [i for i in summary["images"] if i["name"] == "negative_02.tif"]
    assert (image["metrics"]["n_true"], image["metrics"]["f1"]) == (0, 0.0)  # stardist's
    assert summary["aggregate"]["image_mean"]["f1"] == 1.0  # not (1 + 1 + 0) / 3
    assert summary["aggregate"]["image_mean"]["n_pred"] == pytest.approx(20 / 3)
    with open(output / "metrics.csv", newline="") as handle:
        rows = {row["image"]: row for row in csv.DictReader(handle)}
    assert (rows["negative_02.tif"]["f1 score"], rows["negative_02.tif"]["n_pred"]) == ("0.0", "0")
    cells = report_row(output / "report.html", "negative_02.tif")
    assert cells["f1"]["text"].strip() == "n/a"
    assert cells["recall"]["text"].strip() == "n/a"
    assert cells["n_pred"]["attrs"]["data-outcome"] == "pass"
    assert "negative control" in cells["n_pred"]["attrs"]["title"]


def test_objects_predicted_on_empty_ground_truth_fail_naming_n_pred(pytester, make_qc):
    prediction = np.zeros(SHAPE, np.uint16)
    for i in range(3):
        prediction[10:14, 10 + 10 * i : 14 + 10 * i] = i + 1
    result = run_with_negative_control(pytester, make_qc, prediction)
    # The negative control fails; pooled precision 20 / 23 passes; the image mean
    # fails: its f1 and pixel IoU are a true 0 (fp = 3), so (1 + 1 + 0) / 3.
    result.assert_outcomes(passed=3, failed=2, skipped=OPTIONAL_SKIPPED)
    result.stdout.fnmatch_lines(
        [
            "*test_image?negative_01.tif? FAILED*",
            "*negative_01.tif: 3 objects predicted where the ground truth has none (n_pred = 3, "
            "an image without objects passes only with none predicted; thresholds.yaml "
            "per_image)*",
        ]
    )
    cells = report_row(pytester.path / "qc-output" / "report.html", "negative_01.tif")
    assert cells["n_pred"]["attrs"]["data-outcome"] == "fail"
    assert cells["recall"]["text"].strip() == "n/a"  # 0/0
    assert cells["f1"]["text"].startswith("0.000")  # 0 / 3: a true 0, below its min 0.7
    assert cells["f1"]["attrs"]["data-outcome"] == "fail"
