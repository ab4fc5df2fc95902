"""Gates on statistics of the QC set: the bootstrap lower bound and the worst images.

* ``aggregate.<metric>.min_ci_low`` — the lower bound of the bootstrap interval of the
  pooled metric must reach the limit: "we are 97.5 % sure the model is at least this good
  on images like these", not just "it was this good on these 12 images".
* ``statistics.worst_images`` — the mean of a metric over the worst ``fraction`` of images
  (at least one) must stay within ``min``/``max``: a good average cannot hide a set of
  images the model fails on.

Pure functions from scores to :class:`~segqc.checks.verdict.Verdict`; the QC suite asserts on
them and summary.json records them under ``statistics``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal

from segqc.checks.statistics.bootstrap import Interval, bootstrap_intervals, worst_images
from segqc.checks.verdict import Verdict, format_number
from segqc.metrics.catalogue import metric_spec
from segqc.metrics.scores import QcScores
from segqc.thresholds.regression import StatisticsSettings
from segqc.thresholds.schema import Thresholds

__all__ = ["judge_ci_limits", "judge_worst_images", "statistics_section"]


def _gate_verdict(
    *,
    scope: str,
    subject: str,
    metric: str,
    value: float,
    bound: Literal["min_ci_low", "min", "max"],
    limit: float,
    level: Literal["fail", "warn"],
    passed: bool,
    detail: str,
) -> Verdict:
    """One statistical gate as a :class:`Verdict`.

    ``value`` is what was judged (the interval's lower bound, or the worst images'
    mean); ``detail`` says where it came from (the interval, or which images were the
    worst). The record has ``scope, subject, metric, value, bound, limit, level,
    passed, outcome, detail, key, message``.
    """
    key = f"{scope}.{metric}.{bound}"
    name = "CI low" if bound == "min_ci_low" else "mean"
    head = f"{subject}: {metric} {name} = {format_number(value)}"
    if passed:
        message = f"{head} within {bound} {format_number(limit)} ({detail})"
    else:
        sign = ">" if bound == "max" else "<"
        margin = abs(value - limit)
        message = (
            f"{head} {sign} {bound} {format_number(limit)} (off by {format_number(margin)}; "
            f"{detail}; thresholds.yaml {key})"
        )
    outcome: Literal["pass", "fail", "warn"] = "pass" if passed else level
    record = {
        "scope": scope,
        "subject": subject,
        "metric": metric,
        "value": value,
        "bound": bound,
        "limit": limit,
        "level": level,
        "passed": passed,
        "outcome": outcome,
        "detail": detail,
        "key": key,
        "message": message,
    }
    return Verdict(scope, subject, metric, outcome, message, key, value, record)


def judge_ci_limits(
    intervals: dict[str, Interval],
    thresholds: Thresholds,
    *,
    n_images: int,
) -> list[Verdict]:
    """Judge the ``min_ci_low`` limits of the ``aggregate`` section.

    Parameters
    ----------
    intervals : dict of metric to Interval
        Bootstrap intervals of the pooled metrics.
    thresholds : Thresholds
        The validated thresholds.yaml.
    n_images : int
        Images the intervals were computed over (for the message).
    """
    boot = thresholds.statistics.bootstrap
    verdicts = []
    section: Any = thresholds.aggregate
    for metric, limit in section:
        gate = getattr(limit, "min_ci_low", None) if limit is not None else None
        if gate is None:
            continue
        interval = intervals[metric]
        detail = (
            f"pooled {format_number(interval.value)}, {100 * boot.confidence:g}% CI "
            f"[{format_number(interval.low)}, {format_number(interval.high)}] "
            f"over {n_images} images, "
            f"{boot.n} resamples, seed {boot.seed}"
        )
        passed = not math.isnan(interval.low) and interval.low >= gate
        verdict = _gate_verdict(
            scope="aggregate", subject="pooled", metric=metric, value=interval.low,
            bound="min_ci_low", limit=gate, level=limit.level, passed=passed, detail=detail,
        )  # fmt: skip
        verdicts.append(verdict)
    return verdicts


def judge_worst_images(
    scores: Sequence[tuple[str, QcScores]], settings: StatisticsSettings
) -> list[Verdict]:
    """Judge ``statistics.worst_images``: mean of each limited metric over the worst images."""
    fraction, limits = settings.worst_limits()
    if not scores or not limits:
        return []
    verdicts = []
    for metric, limit in limits.items():
        better = metric_spec(metric).better
        assert better is not None  # refused by the schema
        mean, names = worst_images(
            [(name, s.values()[metric]) for name, s in scores], fraction=fraction, better=better
        )
        subject = f"worst {100 * fraction:g}% of images"
        detail = f"{len(names)} of {len(scores)}: {', '.join(names)}"
        for bound, value in (("min", limit.min), ("max", limit.max)):
            if value is None:
                continue
            ok = mean >= value if bound == "min" else mean <= value
            verdict = _gate_verdict(
                scope="statistics.worst_images", subject=subject, metric=metric, value=mean,
                bound="min" if bound == "min" else "max", limit=value, level=limit.level,
                passed=bool(ok), detail=detail,
            )  # fmt: skip
            verdicts.append(verdict)
    return verdicts


def statistics_section(
    scores: Sequence[tuple[str, QcScores]], thresholds: Thresholds
) -> dict[str, Any] | None:
    """summary.json's ``statistics``: bootstrap intervals and statistical gates.

    None when no image was evaluated.
    """
    if not scores:
        return None
    boot = thresholds.statistics.bootstrap
    intervals = bootstrap_intervals(
        [s for _, s in scores], n=boot.n, confidence=boot.confidence, seed=boot.seed
    )
    gates = judge_ci_limits(intervals["aggregate"], thresholds, n_images=len(scores))
    gates += judge_worst_images(scores, thresholds.statistics)
    return {
        "bootstrap": {
            **boot.model_dump(),
            "method": "percentile interval, resampling images with replacement",
        },
        "n_images": len(scores),
        "aggregate": {k: v.as_dict() for k, v in intervals["aggregate"].items()},
        "image_mean": {k: v.as_dict() for k, v in intervals["image_mean"].items()},
        "gates": [g.as_dict() for g in gates],
    }
