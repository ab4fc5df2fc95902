"""Baseline file IO, drop direction, the significance rule and the new thresholds keys."""

from __future__ import annotations

import json

import pytest

from segqc.checks.regression.baseline import (
    BaselineError,
    baseline_document,
    compare_data,
    read_baseline,
)
from segqc.checks.regression.comparison import compare, drop_of, judge_drop
from segqc.checks.statistics.bootstrap import Interval
from segqc.metrics.scores import pool
from segqc.thresholds import Thresholds, ThresholdsError, load_thresholds
from segqc.thresholds.regression import BootstrapSettings, DropLimit, RegressionSettings
from tests.unit.counts import scores_from_counts


def make_document(scores, hashes=None):
    hashes = hashes or {name: ("s" + name, "t" + name) for name in scores}
    return baseline_document(
        scores=scores,
        hashes=hashes,
        model={"kind": "predictions folder", "path": "/x"},
        iou_threshold=0.5,
        thresholds={"path": "limits.yaml", "content": {}},
    )


@pytest.fixture
def three_images():
    return {
        "a.tif": scores_from_counts(10, 0, 0),
        "b.tif": scores_from_counts(6, 2, 4, iou=0.7),
        "c.tif": scores_from_counts(0, 3, 5),
    }


# --- baseline file ---------------------------------------------------------------------


def test_baseline_round_trip_gives_the_same_scores(tmp_path, three_images):
    path = tmp_path / "baseline.json"
    path.write_text(json.dumps(make_document(three_images), indent=2))
    baseline = read_baseline(path)
    loaded = baseline.scores()
    assert list(loaded) == ["a.tif", "b.tif", "c.tif"]
    for name, original in three_images.items():
        assert loaded[name].values() == original.values()
    assert pool(list(loaded.values())).values() == pool(list(three_images.values())).values()
    document = json.loads(path.read_text())
    assert document["schema"] == "segqc-baseline"
    assert document["images"][1]["metrics"]["fn"] == 4
    assert document["aggregate"]["pooled"]["tp"] == 16


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"schema": "segqc-baseline",\n  "images": [', r"baseline\.json:2:\d+: not a segqc baseline \(invalid JSON"),
        ('{"name": "something else"}', r'not a segqc baseline \(no "schema": "segqc-baseline"\)'),
        ("[1, 2]", "not a segqc baseline"),
    ],
    ids=["truncated", "foreign", "list"],
)  # fmt: skip
def test_unreadable_baseline_names_the_file(tmp_path, text, message):
    path = tmp_path / "baseline.json"
    path.write_text(text)
    with pytest.raises(BaselineError, match=message):
        read_baseline(path)


def test_baseline_with_broken_counts_is_invalid(tmp_path, three_images):
    document = make_document(three_images)
    del document["images"][0]["counts"]["matching"]
    path = tmp_path / "baseline.json"
    path.write_text(json.dumps(document))
    with pytest.raises(
        BaselineError,
        match=r"images\.0\.counts: .*cannot rebuild the scores \(KeyError: 'matching'\)",
    ):
        read_baseline(path)


def test_missing_baseline_says_how_to_write_one(tmp_path):
    with pytest.raises(BaselineError, match="not found; write one with --update-baseline"):
        read_baseline(tmp_path / "nope.json")


def test_compare_data_lists_every_difference(tmp_path, three_images):
    path = tmp_path / "baseline.json"
    path.write_text(json.dumps(make_document(three_images)))
    baseline = read_baseline(path)
    same = {name: ("s" + name, "t" + name) for name in three_images}
    assert not compare_data(baseline, same).differs
    # no source hash on one side: only the target is compared
    assert not compare_data(baseline, {n: (None, t) for n, (_, t) in same.items()}).differs
    changed = {**same, "b.tif": ("other", "tb.tif"), "d.tif": ("sd", "td")}
    del changed["c.tif"]
    mismatch = compare_data(baseline, changed)
    assert mismatch.only_in_baseline == ["c.tif"]
    assert mismatch.only_in_run == ["d.tif"]
    assert mismatch.changed == ["b.tif"]


# --- drops and verdicts ----------------------------------------------------------------


def test_drop_direction():
    assert drop_of("f1", 0.9, 0.8) == pytest.approx(0.1)
    assert drop_of("tp", 10, 12) == -2
    assert drop_of("fp", 2, 5) == 3
    assert drop_of("fn", 5, 2) == -3
    with pytest.raises(ValueError, match="no better direction"):
        drop_of("n_true", 1, 2)


def judge(old, new, *, ci=None, significant=False, metric="f1", max_drop=0.02):
    return judge_drop(
        scope="aggregate", subject="pooled", metric=metric, old=old, new=new,
        limit=DropLimit(max_drop=max_drop), drop_ci=ci, require_significant=significant,
        confidence=0.95,
    )  # fmt: skip


def test_improvement_passes_and_says_so():
    verdict = judge(0.8, 0.9)
    assert verdict.passed and verdict.record["change"] == "improved"
    assert verdict.message == "pooled: f1 improved by 0.1 (0.8 → 0.9)"


def test_no_change():
    verdict = judge(0.8, 0.8)
    assert verdict.passed and verdict.message == "pooled: f1: no change (0.8)"


def test_drop_within_tolerance_passes():
    verdict = judge(0.9, 0.89)
    assert verdict.passed and verdict.record["change"] == "worse"
    assert "within max_drop 0.02" in verdict.message


def test_drop_beyond_tolerance_fails_naming_the_key():
    verdict = judge(0.9, 0.85, ci=Interval(0.05, -0.01, 0.1))
    assert not verdict.passed and verdict.record["rule"] == "max_drop"
    assert verdict.message.endswith("(thresholds.yaml regression.aggregate.f1.max_drop)")
    assert "not significant; significance not required" in verdict.message


def test_lower_is_better_metric_fails_when_it_rises():
    assert not judge(2, 5, metric="fp", max_drop=1).passed
    assert judge(5, 2, metric="fp", max_drop=1).passed


def test_required_significance_spares_a_noisy_drop():
    verdict = judge(0.9, 0.85, ci=Interval(0.05, -0.01, 0.1), significant=True)
    assert verdict.passed and verdict.record["rule"] == "max_drop, significant drops only"
    assert "not significantly (95% CI of the drop [-0.01, 0.1] includes 0)" in verdict.message


def test_required_significance_fails_a_significant_drop():
    verdict = judge(0.9, 0.85, ci=Interval(0.05, 0.02, 0.1), significant=True)
    assert not verdict.passed
    assert "and significantly (95% CI of the drop [0.02, 0.1] excludes 0)" in verdict.message


def test_required_significance_never_spares_a_drop_within_tolerance_check():
    # within max_drop passes whatever the interval says
    assert judge(0.9, 0.89, ci=Interval(0.01, 0.005, 0.02), significant=True).passed


def test_compare_per_image_names_the_worse_images(three_images):
    new = {**three_images, "b.tif": scores_from_counts(2, 2, 8, iou=0.7)}
    settings = RegressionSettings.model_validate(
        {"per_image": {"recall": {"max_drop": 0.1}}, "aggregate": {"recall": {"max_drop": 0.1}}}
    )
    comparison = compare(
        three_images, new, settings=settings, bootstrap=BootstrapSettings(n=200), baseline="x"
    )
    broken = [v for v in comparison.verdicts if not v.passed]
    assert [(v.scope, v.subject) for v in broken] == [
        ("aggregate", "pooled"),
        ("per_image", "b.tif"),
    ]
    # pooled recall: 16/25 -> 12/25
    assert broken[0].value == pytest.approx(4 / 25)
    # pooled mean_matched_score rises, (8 + 1.4) / 12 > (8 + 4.2) / 16, as image a weighs more
    assert comparison.deltas["aggregate"]["mean_matched_score"].value == pytest.approx(
        9.4 / 12 - 12.2 / 16, abs=1e-6
    )
    assert comparison.change() == "mixed"
    table = comparison.table()
    assert table["per_image"][1]["metrics"]["recall"]["delta"] == pytest.approx(0.2 - 0.6)


# --- thresholds.yaml -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("regression:\n  aggregate:\n    n_true: {max_drop: 1}\n", "regression.aggregate: n_true cannot be limited here"),
        ("regression:\n  aggregate:\n    f1_score: {max_drop: 0.1}\n", "regression.aggregate.f1_score: unknown key; did you mean 'f1'?"),
        ("regression:\n  per_image:\n    f1: {max_drop: 1.5}\n", r"regression.per_image.f1.max_drop: Input should be less than or equal to 1"),
        ("regression:\n  per_image:\n    f1: {min: 0.5}\n", "regression.per_image.f1.min: unknown key"),
        ("aggregate:\n  f1: {level: warn}\n", "aggregate.f1: a limit needs 'min', 'max' and/or 'min_ci_low'"),
        ("per_image:\n  f1: {min_ci_low: 0.5}\n", "per_image.f1.min_ci_low: unknown key"),
        ("statistics:\n  worst_images: {f1: {min: 0.5}}\n", "statistics.worst_images.fraction: Field required"),
        ("statistics:\n  bootstrap: {n: 10}\n", "statistics.bootstrap.n: Input should be greater than or equal to 100"),
    ],
    ids=["undirected", "typo", "ratio-range", "wrong-bound", "ci-alone-missing", "ci-per-image", "fraction", "n-too-small"],
)  # fmt: skip
def test_bad_regression_and_statistics_keys(thresholds_file, text, message):
    with pytest.raises(ThresholdsError, match=message):
        load_thresholds(thresholds_file(text))


def test_min_ci_low_alone_is_not_an_absolute_limit():
    thresholds = Thresholds.model_validate({"aggregate": {"f1": {"min_ci_low": 0.7}}})
    assert thresholds.limits("aggregate") == {}
    assert thresholds.aggregate.f1.min_ci_low == 0.7


def test_bundled_thresholds_have_regression_defaults():
    from segqc.thresholds import bundled_thresholds_path

    regression = load_thresholds(bundled_thresholds_path()).thresholds.regression
    assert regression.limits("aggregate")["f1"].max_drop == 0.02
    assert regression.limits("per_image")["f1"].max_drop == 0.10
