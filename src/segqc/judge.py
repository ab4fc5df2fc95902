"""Judge measured values against the limits of thresholds.yaml.

Pure functions: values and limits in, :class:`Verdict` objects out. The QC tests assert
on them (:func:`segqc.checks.assert_verdicts`) and the outputs record every one of them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal

from segqc.thresholds import Limit

__all__ = ["Verdict", "judge"]


@dataclass(frozen=True)
class Verdict:
    """The outcome of one limit on one value.

    Attributes
    ----------
    scope : str
        Section of thresholds.yaml (``per_image``, ``aggregate``, ``image_mean``, ...).
    subject : str
        What was measured: an image name, ``"pooled"`` or ``"image mean"``.
    metric : str
        Metric key.
    value : float
        The measured value (NaN if it could not be computed).
    min, max : float or None
        The limit's bounds.
    level : {"fail", "warn"}
        How a broken limit is reported.
    passed : bool
        Whether the value lies within the bounds.
    """

    scope: str
    subject: str
    metric: str
    value: float
    min: float | None
    max: float | None
    level: Literal["fail", "warn"]
    passed: bool

    @property
    def outcome(self) -> Literal["pass", "fail", "warn"]:
        """``pass``, or the level of a broken limit."""
        return "pass" if self.passed else self.level

    @property
    def key(self) -> str:
        """The thresholds.yaml key path of the broken bound (or of the limit if it passed)."""
        bound = self._broken_bound()
        return f"{self.scope}.{self.metric}" + (f".{bound}" if bound else "")

    def _broken_bound(self) -> str | None:
        if self.passed:
            return None
        if self.min is not None and not (self.value >= self.min):
            return "min"
        return "max"

    def message(self) -> str:
        """One line: subject, metric, value, limit, margin and the key to change."""
        bound = self._broken_bound()
        if bound is None:
            return f"{self.subject}: {self.metric} = {_fmt(self.value)} within limits"
        if math.isnan(self.value):
            return (
                f"{self.subject}: {self.metric} could not be computed (NaN); "
                f"thresholds.yaml {self.key}"
            )
        limit = self.min if bound == "min" else self.max
        assert limit is not None
        sign = "<" if bound == "min" else ">"
        margin = abs(self.value - limit)
        return (
            f"{self.subject}: {self.metric} = {_fmt(self.value)} {sign} {bound} {_fmt(limit)} "
            f"(off by {_fmt(margin)}; thresholds.yaml {self.key})"
        )

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready record with the outcome and key path."""
        return {
            **asdict(self),
            "outcome": self.outcome,
            "key": self.key,
            "message": self.message(),
        }


def _fmt(value: float) -> str:
    if float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.4g}"


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
    """
    verdicts = []
    for metric, limit in limits.items():
        value = float(values.get(metric, math.nan))
        passed = not math.isnan(value)
        if limit.min is not None:
            passed = passed and value >= limit.min
        if limit.max is not None:
            passed = passed and value <= limit.max
        verdicts.append(
            Verdict(scope, subject, metric, value, limit.min, limit.max, limit.level, passed)
        )
    return verdicts
