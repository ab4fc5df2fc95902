"""Judging values against limits, and the verdict a failing QC test shows."""

import math

from segqc.checks.verdict import Verdict, format_number, judge
from segqc.thresholds.schema import Limit


def test_min_max_and_levels():
    limits = {
        "f1": Limit(min=0.7),
        "fp": Limit(max=3),
        "recall": Limit(min=0.5, max=0.9, level="warn"),
    }
    verdicts = judge(
        {"f1": 0.65, "fp": 3, "recall": 0.95}, limits, scope="per_image", subject="a.tif"
    )
    assert [v.outcome for v in verdicts] == ["fail", "pass", "warn"]
    assert [v.passed for v in verdicts] == [False, True, False]  # a warning is not a pass
    assert verdicts[0].key == "per_image.f1.min"
    assert verdicts[1].key == "per_image.fp"  # no bound broken: the metric's key
    assert verdicts[2].key == "per_image.recall.max"
    assert (verdicts[2].scope, verdicts[2].subject, verdicts[2].metric) == (
        "per_image",
        "a.tif",
        "recall",
    )


def test_boundaries_are_inclusive():
    low, high = judge(
        {"f1": 0.7, "fp": 3},
        {"f1": Limit(min=0.7), "fp": Limit(max=3)},
        scope="aggregate",
        subject="pooled",
    )
    assert low.passed and high.passed


def test_nan_and_missing_values_never_pass():
    verdicts = judge({"f1": math.nan}, {"f1": Limit(min=0), "tp": Limit(max=1)},
                     scope="per_image", subject="x.tif")  # fmt: skip
    assert [v.passed for v in verdicts] == [False, False]
    assert math.isnan(verdicts[1].value)  # tp was not measured at all
    assert verdicts[0].message == (
        "x.tif: f1 could not be computed (NaN); thresholds.yaml per_image.f1.min"
    )


def test_message_names_image_metric_value_limit_margin_and_key():
    (verdict,) = judge({"f1": 0.62}, {"f1": Limit(min=0.7)}, scope="per_image", subject="a.tif")
    assert verdict.message == (
        "a.tif: f1 = 0.62 < min 0.7 (off by 0.08; thresholds.yaml per_image.f1.min)"
    )
    (above,) = judge({"fp": 5}, {"fp": Limit(max=3)}, scope="aggregate", subject="pooled")
    assert above.message == ("pooled: fp = 5 > max 3 (off by 2; thresholds.yaml aggregate.fp.max)")


def test_record_is_what_summary_json_keeps():
    (verdict,) = judge(
        {"recall": 0.4}, {"recall": Limit(min=0.5, level="warn")}, scope="image_mean",
        subject="image mean",
    )  # fmt: skip
    assert verdict.as_dict() == {
        "scope": "image_mean",
        "subject": "image mean",
        "metric": "recall",
        "value": 0.4,
        "min": 0.5,
        "max": None,
        "level": "warn",
        "passed": False,
        "outcome": "warn",
        "key": "image_mean.recall.min",
        "message": verdict.message,
    }


def test_a_skipped_check_does_not_fail():
    skipped = Verdict("loss_curve", "loss curve", "overfitting", "skip", "too short", "k")
    assert skipped.passed and math.isnan(skipped.value)


def test_numbers_in_messages():
    assert [format_number(x) for x in (3.0, 0.123456, 1e20, -2.0)] == [
        "3",
        "0.1235",
        "1e+20",
        "-2",
    ]
