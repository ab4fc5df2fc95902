"""Negative controls: QC images whose ground truth has no object (issue 16, point 15).

Such an image is judged on false positives: nothing predicted passes, any predicted
object fails naming n_pred. Its 0/0 ratios are not judged, read n/a in the report and
are left out of the image means. Every expected number is worked out by hand below from
squares of 4 x 4 = 16 pixels.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from segqc.checks.quality import (
    defined_image_mean,
    judge_dataset,
    judge_image,
    undefined_metrics,
)
from segqc.data.pairing import QcPair
from segqc.metrics.scores import measure
from segqc.pipeline.outcome import ImageOutcome
from segqc.report.content import metrics_rows
from segqc.thresholds.schema import Thresholds

#: Every ratio of the metrics table, written out rather than read from the catalogue.
RATIOS = {
    "pixel_iou", "precision", "recall", "accuracy", "f1", "mean_true_score",
    "mean_matched_score", "panoptic_quality", "seg", "aji", "dsb_score", "sq", "rq",
}  # fmt: skip

LIMITS = Thresholds.model_validate(
    {
        "per_image": {
            "f1": {"min": 0.7},
            "recall": {"min": 0.5},
            "pixel_iou": {"min": 0.6},
            "panoptic_quality": {"min": 0.5, "level": "warn"},
        },
        "aggregate": {"f1": {"min": 0.5}, "precision": {"min": 0.3}, "recall": {"min": 0.9}},
        "image_mean": {"f1": {"min": 0.9}, "recall": {"min": 0.9}, "n_pred": {"max": 5}},
    }
)


def squares(n: int, shape: tuple[int, int] = (16, 40)) -> np.ndarray:
    """``n`` disjoint 4 x 4 squares (16 px each) labelled 1..n along the top row."""
    labels = np.zeros(shape, np.uint16)
    for i in range(n):
        labels[2:6, 2 + 6 * i : 6 + 6 * i] = i + 1
    return labels


def outcome(name: str, gt: np.ndarray, pred: np.ndarray) -> ImageOutcome:
    return ImageOutcome(QcPair(name, None, Path(name)), scores=measure(gt, pred))


def empty() -> np.ndarray:
    return squares(0)


def test_empty_prediction_on_empty_ground_truth_passes():
    verdicts = judge_image(outcome("negative_02.tif", empty(), empty()), LIMITS)
    # Every ratio is 0/0 (no object, no foreground pixel anywhere): none is judged; the
    # one verdict is the negative-control rule, and it passes.
    assert len(verdicts) == 1
    (verdict,) = verdicts
    assert (verdict.scope, verdict.subject, verdict.metric) == (
        "per_image",
        "negative_02.tif",
        "n_pred",
    )
    assert (verdict.outcome, verdict.value, verdict.key) == ("pass", 0, "per_image")
    assert "negative control" in verdict.message
    assert verdict.record["rule"] == "negative_control"
    assert (verdict.record["min"], verdict.record["max"]) == (None, 0)


@pytest.mark.parametrize(("n", "objects"), [(3, "3 objects"), (1, "1 object")])
def test_predicted_objects_fail_naming_n_pred(n, objects):
    verdicts = judge_image(outcome("negative_01.tif", empty(), squares(n)), LIMITS)
    assert verdicts[0].outcome == "fail"
    assert verdicts[0].message == (
        f"negative_01.tif: {objects} predicted where the ground truth has none "
        f"(n_pred = {n}, an image without objects passes only with none predicted; "
        "thresholds.yaml per_image)"
    )
    # tp = fn = 0, fp = n: f1 = 0 / n, pixel_iou = 0 / (16 n px) and PQ = 0 / (n / 2)
    # are a true 0 and judged as on any image; recall = 0/0 is not judged.
    judged = {v.metric: (v.outcome, v.value) for v in verdicts[1:]}
    assert judged == {"f1": ("fail", 0.0), "pixel_iou": ("fail", 0.0),
                      "panoptic_quality": ("warn", 0.0)}  # fmt: skip


def test_images_with_objects_are_judged_as_before():
    # Two GT squares, one found exactly: tp = 1, fn = 1, f1 = 2 / (2 + 1) = 0.667.
    gt = squares(2)
    verdicts = judge_image(outcome("a.tif", gt, np.where(gt == 1, 1, 0)), LIMITS)
    assert {v.metric for v in verdicts} == {"f1", "recall", "pixel_iou", "panoptic_quality"}
    (f1,) = [v for v in verdicts if v.metric == "f1"]
    assert f1.outcome == "fail" and f1.value == pytest.approx(2 / 3)
    # Nothing found on an image that has objects is no negative control: recall = 0 / 2.
    missed = judge_image(outcome("b.tif", gt, empty()), LIMITS)
    assert {v.metric: v.value for v in missed}["recall"] == 0.0
    assert all(v.record.get("rule") is None for v in [*verdicts, *missed])


def test_undefined_metrics_by_hand():
    empty_both = measure(empty(), empty()).values()
    assert undefined_metrics(empty_both) == RATIOS
    # n_true = 0, n_pred = 2: recall = tp / (tp + fn) = 0/0, mean_true_score and seg
    # divide by n_true = 0, mean_matched_score and sq by tp = 0. precision = 0 / 2,
    # accuracy and f1 = 0 / 2, PQ and RQ = 0 / 1, dsb = 0 / 2 at each threshold,
    # pixel_iou and aji = 0 / 32 px are defined.
    two_predicted = measure(empty(), squares(2)).values()
    assert undefined_metrics(two_predicted) == {
        "recall", "mean_true_score", "mean_matched_score", "seg", "sq",
    }  # fmt: skip
    # Objects in the ground truth: never undefined here, even with nothing predicted.
    assert undefined_metrics(measure(squares(2), empty()).values()) == set()
    # stardist's numbers stay in the values (0 for 0/0; pixel_iou, seg, aji, dsb 1.0).
    assert empty_both["f1"] == 0.0 and empty_both["recall"] == 0.0


def test_rule_level_follows_the_per_image_limits():
    warn_only = Thresholds.model_validate({"per_image": {"f1": {"min": 0.7, "level": "warn"}}})
    verdicts = judge_image(outcome("n.tif", empty(), squares(2)), warn_only)
    assert [(v.metric, v.outcome) for v in verdicts] == [("n_pred", "warn"), ("f1", "warn")]
    # No per_image limit at all: nothing is judged per image, negative controls included.
    no_limits = Thresholds.model_validate({"per_image": {}})
    assert no_limits.limits("per_image") == {}
    assert judge_image(outcome("n.tif", empty(), squares(2)), no_limits) == []


def test_count_limits_still_apply_to_a_negative_control():
    counts = Thresholds.model_validate({"per_image": {"fp": {"max": 2}, "n_pred": {"max": 9}}})
    verdicts = judge_image(outcome("n.tif", empty(), squares(3)), counts)
    assert [(v.metric, v.key, v.outcome) for v in verdicts] == [
        ("n_pred", "per_image", "fail"),  # the rule: none may be predicted
        ("fp", "per_image.fp.max", "fail"),  # fp = 3 > 2
        ("n_pred", "per_image.n_pred", "pass"),  # the user's own limit, 3 <= 9
    ]


def test_pooled_scores_add_the_false_positives():
    gt = squares(2)
    positive = outcome("a.tif", gt, gt)  # tp = 2, fp = fn = 0
    quiet = outcome("n2.tif", empty(), empty())
    noisy = outcome("n1.tif", empty(), squares(3))
    alone = judge_dataset([positive], LIMITS).pooled
    with_quiet = judge_dataset([positive, quiet], LIMITS).pooled
    assert alone is not None and with_quiet is not None
    assert with_quiet.values() == alone.values()  # adds no count, no pixel
    dataset = judge_dataset([positive, noisy], LIMITS)
    assert dataset.pooled is not None
    pooled = dataset.pooled.values()
    # tp = 2, fp = 3, fn = 0: precision 2/5, recall 2/2, f1 = 4 / (4 + 3).
    assert (pooled["tp"], pooled["fp"], pooled["fn"]) == (2, 3, 0)
    assert pooled["precision"] == pytest.approx(2 / 5)
    assert pooled["recall"] == 1.0
    assert pooled["f1"] == pytest.approx(4 / 7)
    assert {v.metric: v.outcome for v in dataset.pooled_verdicts} == {
        "f1": "pass", "precision": "pass", "recall": "pass",
    }  # fmt: skip


def test_image_mean_leaves_out_ratios_a_negative_control_does_not_define():
    gt = squares(2)
    positive = outcome("a.tif", gt, gt)  # every ratio 1, n_pred = 2
    quiet = outcome("n2.tif", empty(), empty())
    noisy = outcome("n1.tif", empty(), squares(3))
    dataset = judge_dataset([positive, quiet], LIMITS)
    assert dataset.mean is not None
    # f1 and recall: only a.tif defines them, so the mean is its 1.0 (not (1 + 0) / 2);
    # counts are averaged over both images: n_pred = (2 + 0) / 2.
    assert (dataset.mean["f1"], dataset.mean["recall"]) == (1.0, 1.0)
    assert dataset.mean["n_pred"] == 1.0
    assert all(v.passed for v in dataset.mean_verdicts)
    mean = defined_image_mean([s.scores for s in (positive, quiet, noisy) if s.scores])
    # n1.tif's f1 is a true 0 (fp = 3): f1 = (1 + 0) / 2 over a.tif and n1.tif; its
    # recall is 0/0: recall = 1.0 from a.tif alone; n_pred = (2 + 0 + 3) / 3.
    assert mean["f1"] == 0.5 and mean["recall"] == 1.0
    assert mean["n_pred"] == pytest.approx(5 / 3)


def test_image_mean_differs_from_stardist_by_image_only_on_negative_controls():
    stardist_matching = pytest.importorskip("stardist.matching")
    gt = squares(2).astype(np.int64)
    pred = np.where(gt == 1, 1, 0)  # tp = 1, fn = 1: recall 1/2, f1 2/3
    nothing = empty().astype(np.int64)
    images = [(gt, pred), (nothing, nothing)]
    ours = defined_image_mean([measure(t, p) for t, p in images])
    theirs = stardist_matching.matching_dataset(
        [t for t, _ in images], [p for _, p in images], thresh=0.5, by_image=True,
        show_progress=False,
    )  # fmt: skip
    # stardist averages its 0 for the empty image into every ratio: f1 = (2/3 + 0) / 2.
    assert theirs.f1 == pytest.approx(1 / 3) and ours["f1"] == pytest.approx(2 / 3)
    assert theirs.recall == pytest.approx(1 / 4) and ours["recall"] == pytest.approx(1 / 2)
    # Without the negative control the two agree (to float32 precision).
    alone = stardist_matching.matching_dataset([gt], [pred], thresh=0.5, by_image=True,
                                               show_progress=False)  # fmt: skip
    assert defined_image_mean([measure(gt, pred)])["f1"] == pytest.approx(alone.f1, abs=5e-8)


def test_a_qc_set_of_negative_controls_only_judges_no_undefined_value():
    dataset = judge_dataset([outcome("n2.tif", empty(), empty())], LIMITS)
    assert dataset.mean is not None
    assert math.isnan(dataset.mean["f1"])  # no image defines it: null in summary.json
    assert [v.metric for v in dataset.mean_verdicts] == ["n_pred"]  # a count: defined
    assert dataset.pooled_verdicts == []  # pooled f1, precision, recall: all 0/0


def _summary(outcomes: list[ImageOutcome]) -> dict:
    """The parts of summary.json that the metrics table reads."""
    dataset = judge_dataset(outcomes, LIMITS)
    verdicts = [v for o in outcomes for v in judge_image(o, LIMITS)]
    assert dataset.pooled is not None
    return {
        "images": [
            {"name": o.pair.name, "error": None, "metrics": o.scores.values() if o.scores else None}
            for o in outcomes
        ],
        "aggregate": {"pooled": dataset.pooled.values(), "image_mean": dataset.mean},
        "limits": [v.as_dict() for v in [*verdicts, *dataset.pooled_verdicts]],
    }


def test_report_table_marks_n_pred_and_shows_undefined_ratios_as_n_a():
    gt = squares(2)
    summary = _summary(
        [
            outcome("a.tif", gt, gt),
            outcome("negative_01.tif", empty(), squares(3)),
            outcome("negative_02.tif", empty(), empty()),
        ]
    )
    # summary.json keeps stardist's numbers for the negative controls
    assert summary["images"][2]["metrics"]["f1"] == 0.0
    rows = {row.subject: row for row in metrics_rows(summary)}
    quiet = {cell.metric: cell for cell in rows["negative_02.tif"].cells}
    assert {m for m, c in quiet.items() if c.text == "n/a"} == RATIOS
    assert (quiet["n_pred"].text, quiet["n_pred"].outcome) == ("0", "pass")
    assert quiet["n_pred"].title is not None and "negative control" in quiet["n_pred"].title
    assert rows["negative_02.tif"].status == "pass"
    noisy = {cell.metric: cell for cell in rows["negative_01.tif"].cells}
    assert {m for m, c in noisy.items() if c.text == "n/a"} == {
        "recall", "mean_true_score", "mean_matched_score", "seg", "sq",
    }  # fmt: skip
    assert (noisy["n_pred"].text, noisy["n_pred"].outcome) == ("3", "fail")
    assert noisy["n_pred"].limit == "max 0"
    assert noisy["n_pred"].title is not None
    assert noisy["n_pred"].title.startswith("FAIL: negative_01.tif: 3 objects predicted")
    assert (noisy["f1"].text, noisy["f1"].outcome) == ("0.000", "fail")
    assert rows["negative_01.tif"].status == "fail"
    # An image with objects shows every value, as before.
    assert all(cell.text != "n/a" for cell in rows["a.tif"].cells)
