"""Judging values against limits, and the messages a failing QC test shows."""

import math

from segqc.checks.verdict import judge
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
    assert verdicts[0].key == "per_image.f1.min"
    assert verdicts[2].key == "per_image.recall.max"


def test_boundaries_are_inclusive():
    (verdict,) = judge({"f1": 0.7}, {"f1": Limit(min=0.7)}, scope="aggregate", subject="pooled")
    assert verdict.passed


def test_nan_and_missing_values_never_pass():
    verdicts = judge({"f1": math.nan}, {"f1": Limit(min=0), "tp": Limit(max=1)},
                     scope="per_image", subject="x.tif")  # fmt: skip
    assert [v.passed for v in verdicts] == [False, False]
    assert "could not be computed" in verdicts[0].message()


def test_message_names_image_metric_value_limit_margin_and_key():
    (verdict,) = judge({"f1": 0.62}, {"f1": Limit(min=0.7)}, scope="per_image", subject="a.tif")
    assert verdict.message() == (
        "a.tif: f1 = 0.62 < min 0.7 (off by 0.08; thresholds.yaml per_image.f1.min)"
    )
