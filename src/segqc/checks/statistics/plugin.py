"""The statistical gates in a QC session: one small plugin object."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from segqc.checks.statistics.bootstrap import Interval, bootstrap_intervals
from segqc.checks.statistics.gates import judge_ci_limits, judge_worst_images, statistics_section
from segqc.checks.verdict import Verdict

if TYPE_CHECKING:
    from segqc.session import QcSession

__all__ = ["StatisticsOutcome", "StatisticsPlugin"]


@dataclass(frozen=True)
class StatisticsOutcome:
    """Bootstrap intervals of the QC set and the statistical gates' verdicts."""

    n_images: int
    intervals: dict[str, dict[str, Interval]]
    ci_verdicts: list[Verdict]
    worst_verdicts: list[Verdict]


class StatisticsPlugin:
    """Bootstrap intervals and statistical gates; adds ``statistics`` to summary.json."""

    def statistics(self, session: QcSession) -> StatisticsOutcome | None:
        """The intervals and gates over the evaluated images (None: none evaluated)."""
        scores = [(o.pair.name, o.scores) for o in session.outcomes if o.scores is not None]
        if not scores:
            return None
        limits = session.limits
        boot = limits.statistics.bootstrap
        intervals = bootstrap_intervals(
            [s for _, s in scores], n=boot.n, confidence=boot.confidence, seed=boot.seed
        )
        return StatisticsOutcome(
            n_images=len(scores),
            intervals=intervals,
            ci_verdicts=judge_ci_limits(intervals["aggregate"], limits, n_images=len(scores)),
            worst_verdicts=judge_worst_images(scores, limits.statistics),
        )

    def pytest_segqc_summary_section(self, session: QcSession) -> dict[str, Any]:
        """summary.json's ``statistics``: intervals and gates (null: no image evaluated)."""
        scores = [(o.pair.name, o.scores) for o in session.outcomes if o.scores is not None]
        return {"statistics": statistics_section(scores, session.limits)}
