"""Compare a model with a baseline on the same QC images: one-sided, paired, with statistics.

The baseline's scores come from a baseline file
(:mod:`segqc.checks.regression.baseline`) or from a second model run in the same
session; either way :func:`compare` gets two ``{image: QcScores}`` mappings. For each
metric and scope, the *drop* is how much worse the new model is: ``old - new`` when
higher is better, ``new - old`` when lower is better (fp, fn). A drop beyond the
``regression:`` limit's ``max_drop`` fails; improvements always pass.

With ``regression.require_significant: true`` a drop beyond ``max_drop`` of a pooled or
image-mean metric fails only if the paired-bootstrap interval of the drop lies above 0
(:func:`segqc.checks.statistics.bootstrap.paired_delta_intervals`). Single images cannot
be bootstrapped, so ``per_image`` limits always apply ``max_drop`` alone. Every verdict
says which rule it applied.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

from segqc.checks.statistics.bootstrap import Interval, paired_delta_intervals
from segqc.checks.verdict import Verdict
from segqc.metrics.catalogue import METRIC_KEYS, metric_spec
from segqc.metrics.scores import QcScores, image_mean, pool
from segqc.thresholds.regression import BootstrapSettings, DropLimit, RegressionSettings

__all__ = ["Comparison", "compare", "drop_of", "judge_drop"]

Change = Literal["improved", "no change", "worse"]
_EPS = 1e-12  # float noise below this is "no change"


def drop_of(metric: str, old: float, new: float) -> float:
    """How much worse ``new`` is than ``old`` (negative: an improvement).

    Raises
    ------
    ValueError
        The metric has no better direction (``n_true``, ``n_pred``).
    """
    better = metric_spec(metric).better
    if better is None:
        raise ValueError(f"{metric} has no better direction, so it has no drop")
    return old - new if better == "higher" else new - old


def _change(drop: float) -> Change:
    if math.isnan(drop) or drop > _EPS:
        return "worse"
    return "improved" if drop < -_EPS else "no change"


def _fmt(value: float) -> str:
    if math.isnan(value):
        return "nan"
    if float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.4g}"


@dataclass(frozen=True)
class _Drop:
    """One ``max_drop`` limit on one metric of one subject, before it is a verdict.

    ``drop_ci`` is the paired-bootstrap interval of the drop (None for single images);
    ``significance_required`` records whether ``require_significant`` applied.
    """

    scope: str
    subject: str
    metric: str
    old: float
    new: float
    max_drop: float
    level: Literal["fail", "warn"]
    drop_ci: Interval | None
    confidence: float
    significance_required: bool
    passed: bool

    @property
    def drop(self) -> float:
        """How much worse the new model is (negative: better)."""
        return drop_of(self.metric, self.old, self.new)

    @property
    def change(self) -> Change:
        """``improved``, ``no change`` or ``worse``."""
        return _change(self.drop)

    @property
    def outcome(self) -> Literal["pass", "fail", "warn"]:
        """``pass``, or the level of a broken limit."""
        return "pass" if self.passed else self.level

    @property
    def key(self) -> str:
        """The thresholds.yaml key of the limit."""
        return f"regression.{self.scope}.{self.metric}.max_drop"

    @property
    def rule(self) -> str:
        """Which rule decided: ``max_drop`` alone, or ``max_drop`` and significance."""
        if self.significance_required and self.drop_ci is not None:
            return "max_drop, significant drops only"
        return "max_drop"

    def _ci_text(self) -> str:
        assert self.drop_ci is not None
        pct = f"{100 * self.confidence:g}%"
        return f"{pct} CI of the drop [{_fmt(self.drop_ci.low)}, {_fmt(self.drop_ci.high)}]"

    def message(self) -> str:
        """One line: subject, metric, old → new, the rule applied and the key to change."""
        what = f"{self.subject}: {self.metric}"
        values = f"({_fmt(self.old)} → {_fmt(self.new)})"
        if self.change == "no change":
            return f"{what}: no change ({_fmt(self.new)})"
        if self.change == "improved":
            return f"{what} improved by {_fmt(-self.drop)} {values}"
        text = f"{what} dropped by {_fmt(self.drop)} {values}"
        beyond = math.isnan(self.drop) or self.drop > self.max_drop + _EPS
        if not beyond:
            return f"{text}, within max_drop {_fmt(self.max_drop)}"
        text += f", more than max_drop {_fmt(self.max_drop)}"
        if self.rule == "max_drop, significant drops only":
            if self.passed:
                return (
                    f"{text} but not significantly ({self._ci_text()} includes 0); passes "
                    "because regression.require_significant is true"
                )
            text += f", and significantly ({self._ci_text()} excludes 0)"
        elif self.drop_ci is not None:
            significant = "significant" if self.drop_ci.low > 0 else "not significant"
            text += f" ({self._ci_text()}, {significant}; significance not required)"
        elif self.significance_required:
            text += " (one image: significance cannot be tested)"
        return f"{text} (thresholds.yaml {self.key})"

    def verdict(self) -> Verdict:
        """The :class:`~segqc.checks.verdict.Verdict`; its record has ``scope, subject,
        metric, old, new, delta, drop, max_drop, drop_ci_low, drop_ci_high, rule,
        change, level, passed, outcome, key, message``."""
        message = self.message()
        record = {
            "scope": self.scope,
            "subject": self.subject,
            "metric": self.metric,
            "old": self.old,
            "new": self.new,
            "delta": self.new - self.old,
            "drop": self.drop,
            "max_drop": self.max_drop,
            "drop_ci_low": self.drop_ci.low if self.drop_ci else None,
            "drop_ci_high": self.drop_ci.high if self.drop_ci else None,
            "rule": self.rule,
            "change": self.change,
            "level": self.level,
            "passed": self.passed,
            "outcome": self.outcome,
            "key": self.key,
            "message": message,
        }
        return Verdict(
            self.scope,
            self.subject,
            self.metric,
            self.outcome,
            message,
            self.key,
            self.drop,
            record,
        )


def judge_drop(
    *,
    scope: str,
    subject: str,
    metric: str,
    old: float,
    new: float,
    limit: DropLimit,
    drop_ci: Interval | None,
    require_significant: bool,
    confidence: float,
) -> Verdict:
    """Judge one drop: beyond ``max_drop`` fails, unless significance is required and the
    interval of the drop includes 0. A NaN drop never passes."""
    drop = drop_of(metric, old, new)
    beyond = math.isnan(drop) or drop > limit.max_drop + _EPS
    if require_significant and drop_ci is not None:
        passed = not (beyond and drop_ci.low > 0)
    else:
        passed = not beyond
    return _Drop(
        scope, subject, metric, old, new, limit.max_drop, limit.level, drop_ci, confidence,
        require_significant, passed,
    ).verdict()  # fmt: skip


@dataclass
class Comparison:
    """A paired comparison of a run with its baseline on their common images."""

    baseline: str
    compared: list[str]
    not_compared: dict[str, list[str]]
    old: dict[str, QcScores]
    new: dict[str, QcScores]
    deltas: dict[str, dict[str, Interval]]
    bootstrap: BootstrapSettings
    require_significant: bool
    verdicts: list[Verdict] = field(default_factory=list)

    def verdicts_of(self, scope: str) -> list[Verdict]:
        """The verdicts of one scope."""
        return [v for v in self.verdicts if v.scope == scope]

    def change(self) -> str:
        """``no change``, ``improved``, ``worse`` or ``mixed`` over the pooled metrics."""
        if all(self.old[n].values() == self.new[n].values() for n in self.compared):
            return "no change"
        changes = {
            _change(-interval.value if metric_spec(key).better == "higher" else interval.value)
            for key, interval in self.deltas.get("aggregate", {}).items()
            if metric_spec(key).better is not None
        } - {"no change"}
        if len(changes) == 1:
            return changes.pop()
        return "mixed" if changes else "no change"

    def table(self) -> dict[str, Any]:
        """The side-by-side table (old, new, delta) for summary.json's ``regression`` key."""
        old_points = _scope_points(self.old, self.compared)
        new_points = _scope_points(self.new, self.compared)
        scopes: dict[str, Any] = {}
        for scope in ("aggregate", "image_mean"):
            rows = {}
            for key, delta in self.deltas[scope].items():
                better = metric_spec(key).better
                rows[key] = {
                    "old": old_points[scope][key],
                    "new": new_points[scope][key],
                    "delta": delta.value,
                    "delta_ci_low": delta.low,
                    "delta_ci_high": delta.high,
                    "change": None
                    if better is None
                    else _change(-delta.value if better == "higher" else delta.value),
                }
            scopes[scope] = rows
        per_image = []
        for name in self.compared:
            old, new = self.old[name].values(), self.new[name].values()
            per_image.append(
                {
                    "name": name,
                    "metrics": {
                        key: {"old": old[key], "new": new[key], "delta": new[key] - old[key]}
                        for key in METRIC_KEYS
                    },
                }
            )
        return {
            "baseline": self.baseline,
            "change": self.change(),
            "compared_images": self.compared,
            "not_compared": self.not_compared,
            "require_significant": self.require_significant,
            "bootstrap": self.bootstrap.model_dump(),
            **scopes,
            "per_image": per_image,
            "verdicts": [v.as_dict() for v in self.verdicts],
        }


def _scope_points(scores: dict[str, QcScores], names: list[str]) -> dict[str, dict[str, float]]:
    listed = [scores[n] for n in names]
    return {"aggregate": pool(listed).values(), "image_mean": image_mean(listed)}


def compare(
    old: dict[str, QcScores],
    new: dict[str, QcScores],
    *,
    settings: RegressionSettings,
    bootstrap: BootstrapSettings,
    baseline: str,
    not_compared: dict[str, list[str]] | None = None,
) -> Comparison:
    """Compare ``new`` with ``old`` on their common images and judge the drop limits.

    Parameters
    ----------
    old, new : dict of image name to QcScores
        The baseline's and this run's scores.
    settings : RegressionSettings
        The ``regression:`` section of thresholds.yaml.
    bootstrap : BootstrapSettings
        Replicates, confidence and seed of the paired bootstrap.
    baseline : str
        What the baseline is (file or model), for messages.
    not_compared : dict, optional
        Images left out, by reason, recorded in the table.

    Returns
    -------
    Comparison
        Empty (no verdicts) when the two have no image in common.
    """
    names = [n for n in new if n in old]
    comparison = Comparison(
        baseline=baseline,
        compared=names,
        not_compared=not_compared or {},
        old=old,
        new=new,
        deltas={},
        bootstrap=bootstrap,
        require_significant=settings.require_significant,
    )
    if not names:
        return comparison
    old_list, new_list = [old[n] for n in names], [new[n] for n in names]
    comparison.deltas = paired_delta_intervals(
        old_list, new_list, n=bootstrap.n, confidence=bootstrap.confidence, seed=bootstrap.seed
    )
    old_values, new_values = _scope_points(old, names), _scope_points(new, names)
    significant, confidence = settings.require_significant, bootstrap.confidence
    for scope, subject in (("aggregate", "pooled"), ("image_mean", "image mean")):
        for metric, limit in settings.limits(scope).items():
            better = metric_spec(metric).better
            delta = comparison.deltas[scope][metric]
            comparison.verdicts.append(
                judge_drop(
                    scope=scope, subject=subject, metric=metric,
                    old=old_values[scope][metric], new=new_values[scope][metric], limit=limit,
                    drop_ci=delta.flipped() if better == "higher" else delta,
                    require_significant=significant, confidence=confidence,
                )
            )  # fmt: skip
    for metric, limit in settings.limits("per_image").items():
        for name in names:
            comparison.verdicts.append(
                judge_drop(
                    scope="per_image", subject=name, metric=metric,
                    old=old[name].values()[metric], new=new[name].values()[metric],
                    limit=limit, drop_ci=None, require_significant=significant,
                    confidence=confidence,
                )
            )  # fmt: skip
    return comparison
