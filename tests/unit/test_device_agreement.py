"""Device agreement: two predictions of one image compared, whatever their numbering.

The reference for the mismatched pixels is built here from stardist's own matching
(``stardist.matching.matching(..., report_matches=True)`` pairs the objects) and a
pixel-by-pixel comparison after renumbering the second image's paired objects.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import tifffile
import yaml
from stardist.matching import matching

from segqc.checks.agreement.devices import agreement_section, judge_agreement
from segqc.data.pairing import QcPair
from segqc.metrics.matching import label_overlaps, mismatched_pixels_of
from segqc.metrics.scores import measure
from segqc.pipeline.evaluate import EvaluationSettings, evaluate_image
from segqc.pipeline.outcome import (
    DeviceComparison,
    ImageOutcome,
    outcome_from_dict,
    outcome_to_dict,
)
from segqc.predict import PredictionResult
from segqc.thresholds import DeviceAgreementSettings, bundled_thresholds_path
from tests.helpers import disks

SETTINGS = EvaluationSettings(iou_threshold=0.5, curve_thresholds=(0.5,))


def reference_mismatches(first: np.ndarray, second: np.ndarray, threshold: float) -> int:
    """Pixels that differ once ``second``'s objects paired by stardist carry ``first``'s labels."""
    found = matching(first, second, thresh=threshold, report_matches=True)
    renumbered = np.where(second > 0, -1, 0)  # unpaired objects match no label of first
    for first_label, second_label in found.matched_pairs[: found.tp]:
        renumbered[second == second_label] = first_label
    return int(np.count_nonzero(renumbered != first))


def shifted(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Objects moved by up to 3 pixels, some removed, numbered anew."""
    moved = np.roll(labels, tuple(rng.integers(-3, 4, size=2)), axis=(0, 1))
    gone = rng.choice(np.unique(moved)[1:], size=2, replace=False)
    moved[np.isin(moved, gone)] = 0
    values = np.unique(moved)[1:]
    lut = np.zeros(int(moved.max()) + 1, dtype=np.int32)
    lut[values] = rng.permutation(len(values)) + 50
    return lut[moved]


def test_the_same_objects_numbered_otherwise_do_not_mismatch():
    first = disks((64, 128), 12)
    second = np.where(first > 0, 100 - first, 0)
    assert mismatched_pixels_of(label_overlaps(first, second)) == 0


def test_a_missing_object_mismatches_by_its_area():
    first = disks((64, 128), 12)
    second = first.copy()
    second[second == 5] = 0
    assert mismatched_pixels_of(label_overlaps(first, second)) == np.count_nonzero(first == 5)
    assert mismatched_pixels_of(label_overlaps(second, first)) == np.count_nonzero(first == 5)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("threshold", [0.3, 0.5, 0.8])
def test_mismatched_pixels_equal_a_pixel_by_pixel_count(seed, threshold):
    rng = np.random.default_rng(seed)
    first = disks((96, 160), 24, radius=int(rng.integers(4, 9)))
    second = shifted(first, rng)
    assert mismatched_pixels_of(
        label_overlaps(first, second), iou_threshold=threshold
    ) == reference_mismatches(first, second, threshold)


def test_an_empty_prediction_mismatches_everywhere_the_other_has_objects():
    first = disks((32, 64), 3)
    empty = np.zeros_like(first)
    assert mismatched_pixels_of(label_overlaps(first, empty)) == np.count_nonzero(first)
    assert mismatched_pixels_of(label_overlaps(empty, empty)) == 0


def comparison_of(first: np.ndarray, second: np.ndarray, truth: np.ndarray) -> DeviceComparison:
    return DeviceComparison(
        "GPU (test)",
        mismatched_pixels=mismatched_pixels_of(label_overlaps(first, second)),
        pixels=first.size,
        scores=measure(truth, second),
    )


def test_judged_by_mismatched_pixels_per_million_and_the_largest_ratio_difference():
    truth = disks((120, 120), 16, radius=5, spacing=24)
    assert np.unique(truth).size == 17
    second = truth.copy()
    second[second == 16] = 0  # one disk lost
    area = np.count_nonzero(truth == 16)
    comparison = comparison_of(truth, second, truth)
    assert comparison.mismatched_per_million == pytest.approx(1e6 * area / truth.size)
    verdicts = judge_agreement(
        "a.tif", comparison, measure(truth, truth), DeviceAgreementSettings()
    )
    by_metric = {v.metric: v for v in verdicts}
    assert by_metric["mismatched_pixels_per_million"].outcome == "fail"
    assert by_metric["mismatched_pixels_per_million"].value == pytest.approx(1e6 * area / 14_400)
    # equal disks: pixel IoU, recall and accuracy all lose 1/16 (f1 less: 1 - 30/31);
    # the first of them in the metrics table's order is named
    difference = by_metric["metric_difference"]
    assert difference.value == pytest.approx(1 / 16)
    assert difference.outcome == "fail"
    assert "largest on pixel_iou: 1, then 0.9375 on GPU (test)" in difference.message
    assert difference.record["message"] == difference.message

    lenient = DeviceAgreementSettings.model_validate(
        {"mismatched_pixels_per_million": {"max": 1e6}, "metric_difference": {"max": 0.1}}
    )
    verdicts = judge_agreement("a.tif", comparison, measure(truth, truth), lenient)
    assert [v.outcome for v in verdicts] == ["pass", "pass"]


def test_no_second_prediction_is_one_failed_verdict_naming_why():
    truth = disks((32, 64), 3)
    comparison = DeviceComparison("GPU (test)", error="a.tif: second prediction failed (boom)")
    settings = DeviceAgreementSettings()
    (verdict,) = judge_agreement("a.tif", comparison, measure(truth, truth), settings)
    assert verdict.outcome == "fail"
    assert verdict.message == (
        "a.tif: no second prediction on GPU (test): a.tif: second prediction failed (boom)"
    )
    assert math.isnan(verdict.value)


def test_a_comparison_travels_with_its_outcome():
    truth = disks((32, 64), 3)
    second = truth.copy()
    second[second == 2] = 0
    pair = QcPair("a.tif", None, Path("target/a.tif"))
    outcome = ImageOutcome(pair, scores=measure(truth, truth),
                           comparison=comparison_of(truth, second, truth))  # fmt: skip
    back = outcome_from_dict(outcome_to_dict(outcome))
    assert back.comparison == outcome.comparison
    assert back.comparison.scores.values() == outcome.comparison.scores.values()


class Stand:
    """A predictor returning fixed labels, or raising."""

    needs_source_image = True

    def __init__(self, labels=None, error=None, device="CPU"):
        self.labels, self.error, self.device = labels, error, device

    def predict(self, pair, image):
        if self.error is not None:
            raise self.error
        return PredictionResult(labels=self.labels)

    def describe(self):
        return {"kind": "stand-in", "device": self.device}


def test_a_failing_second_prediction_leaves_the_image_and_its_metrics(make_qc):
    qc = make_qc(1, dropped=(2,))
    prediction = tifffile.imread(qc.predictions / "img00.tif")
    pair = QcPair("img00.tif", qc.source / "img00.tif", qc.target / "img00.tif")
    failing = Stand(error=RuntimeError("CUDA error: out of memory"), device="GPU (test)")
    outcome = evaluate_image(
        pair, predictor=Stand(prediction), settings=SETTINGS, second_predictor=failing
    )
    assert outcome.error is None and outcome.scores.matching.tp == 8
    assert outcome.comparison.error == (
        f"{qc.source / 'img00.tif'}: second prediction failed "
        "(RuntimeError: CUDA error: out of memory)"
    )
    agreeing = evaluate_image(
        pair, predictor=Stand(prediction), settings=SETTINGS, second_predictor=Stand(prediction)
    )
    assert agreeing.comparison.mismatched_pixels == 0
    assert agreeing.comparison.pixels == 64 * 128
    assert agreeing.comparison.device == "CPU"

    section = agreement_section(
        [outcome, agreeing], DeviceAgreementSettings(), device="GPU (x)", compare_device="cpu"
    )
    assert [i["error"] is None for i in section["images"]] == [False, True]
    assert [v["outcome"] for v in section["verdicts"]] == ["fail", "pass", "pass"]


def test_the_bundled_thresholds_example_states_the_defaults():
    lines = bundled_thresholds_path().read_text(encoding="utf-8").splitlines()
    start = lines.index(next(line for line in lines if line.startswith("# device_agreement:")))
    example = "\n".join(line[2:] for line in lines[start : start + 3])
    section = yaml.safe_load(example)["device_agreement"]
    assert DeviceAgreementSettings.model_validate(section) == DeviceAgreementSettings()
