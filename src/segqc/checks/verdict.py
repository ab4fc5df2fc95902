"""One verdict type for every check, and the judging of metric limits.

Every check of segqc (metric limits, the loss curve, statistical gates, regression
drops, subgroups) hands its findings over as :class:`Verdict` objects. The QC tests
assert on them (:func:`segqc.testing.assert_verdicts`), the terminal summary and the
report show them, and summary.json records each one as its check documents it
(:attr:`Verdict.record`).

:func:`judge` is the judging of metric limits: pure, values and limits in, verdicts out.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from segqc.thresholds.schema import Limit

__all__ = ["Outcome", "Verdict", "format_number", "judge"]

#: ``pass``; ``fail`` or ``warn`` (the level of a broken limit); ``skip``: the check
#: cannot answer (a loss curve too short to judge, say).
Outcome = Literal["pass", "fail", "warn", "skip"]


@dataclass(frozen=True)
class Verdict:
    """The outcome of one check on one subject.

    Attributes
    ----------
    scope : str
        The thresholds.yaml section that was judged: ``per_image``, ``aggregate``,
        ``aggregate_at.0.7``, ``loss_curve``, ``regression.aggregate``, ...
    subject : str
        What was judged: an image name, ``"pooled"``, ``"image mean"``, a group, ...
    metric : str
        The metric key (or the loss-curve check's name).
    outcome : {"pass", "fail", "warn", "skip"}
        ``fail``/``warn``: a limit of that level is broken.
    message : str
        One line a person can act on: subject, metric, value, limit, margin and the
        thresholds.yaml key to change.
    key : str
        The thresholds.yaml key path of the limit (of the broken bound, if any).
    value : float
        The judged value (NaN when there is none).
    record : Mapping
        The verdict as summary.json records it; each check documents its fields.
    """

    scope: str
    subject: str
    metric: str
    outcome: Outcome
    message: str
    key: str
    value: float = math.nan
    record: Mapping[str, Any] = field(default_factory=dict, compare=False)

    @property
    def passed(self) -> bool:
        """Whether no limit is broken (``pass`` or ``skip``)."""
        return self.outcome in ("pass", "skip")

    def as_dict(self) -> dict[str, Any]:
        """The JSON-ready record of summary.json."""
        return dict(self.record)


def format_number(value: float) -> str:
    """A value as messages show it: integers plainly, other numbers to 4 digits."""
    if float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.4g}"


def _broken_bound(value: float, limit: Limit, passed: bool) -> str | None:
    if passed:
        return None
    if limit.min is not None and not (value >= limit.min):
        return "min"
    return "max"


def _limit_message(subject: str, metric: str, value: float, limit: Limit, bound: str | None,
                   key: str) -> str:  # fmt: skip
    if bound is None:
        return f"{subject}: {metric} = {format_number(value)} within limits"
    if math.isnan(value):
        return f"{subject}: {metric} could not be computed (NaN); thresholds.yaml {key}"
    bound_value = limit.min if bound == "min" else limit.max
    assert bound_value is not None
    sign = "<" if bound == "min" else ">"
    margin = abs(value - bound_value)
    return (
        f"{subject}: {metric} = {format_number(value)} {sign} {bound} "
        f"{format_number(bound_value)} (off by {format_number(margin)}; thresholds.yaml {key})"
    )


def judge(
    values: Mapping[str, float],
    limits: Mapping[str, Limit],
    *,
    scope: str,
    subject: str,
) -> list[Verdict]:
    """Compare each limited metric with its value.

    Parameters
    ----------
    values : Mapping[str, float]
        Measured values by metric key.
    limits : Mapping[str, Limit]
        Limits by metric key; metrics without a limit are not judged.
    scope, subject : str
        Recorded in each verdict (see :class:`Verdict`).

    Returns
    -------
    list of Verdict
        One per limit, in the order of ``limits``. A NaN or missing value never passes.
        Each record has ``scope, subject, metric, value, min, max, level, passed,
        outcome, key, message``.
    """
    verdicts = []
    for metric, limit in limits.items():
        value = float(values.get(metric, math.nan))
        passed = not math.isnan(value)
        if limit.min is not None:
            passed = passed and value >= limit.min
        if limit.max is not None:
            passed = passed and value <= limit.max
        bound = _broken_bound(value, limit, passed)
        key = f"{scope}.{metric}" + (f".{bound}" if bound else "")
        outcome: Outcome = "pass" if passed else limit.level
        message = _limit_message(subject, metric, value, limit, bound, key)
        record = {
            "scope": scope,
            "subject": subject,
            "metric": metric,
            "value": value,
            "min": limit.min,
            "max": limit.max,
            "level": limit.level,
            "passed": passed,
            "outcome": outcome,
            "key": key,
            "message": message,
        }
        verdicts.append(Verdict(scope, subject, metric, outcome, message, key, value, record))
    return verdicts
