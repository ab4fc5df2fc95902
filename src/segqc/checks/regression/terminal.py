"""What the regression check prints at the end of a session: a side-by-side table
(old, new, delta with its bootstrap interval) and one line per verdict worth reading."""

from __future__ import annotations

from collections import Counter

from segqc.checks.regression.comparison import Comparison
from segqc.metrics.catalogue import metric_spec

__all__ = ["terminal_lines"]


def _num(value: float, *, signed: bool = False) -> str:
    if float(value).is_integer() and abs(value) < 1e15:
        return f"{int(value):+d}" if signed else str(int(value))
    return f"{value:+.4f}" if signed else f"{value:.4f}"


def terminal_lines(comparison: Comparison) -> list[tuple[str, str]]:
    """``(level, text)`` lines: the headline, the pooled table, then the verdicts.

    Levels: ``info``, ``improved``, ``fail``, ``warn``; per-image verdicts are counted,
    and only the broken ones are listed by image.
    """
    lines: list[tuple[str, str]] = []
    if not comparison.compared:
        lines.append(("error", f"no QC image in common with {comparison.baseline}"))
        return lines
    lines.append(
        (
            "info",
            f"compared {len(comparison.compared)} QC images with {comparison.baseline}: "
            f"{comparison.change()}",
        )
    )
    table = comparison.table()
    pct = f"{100 * comparison.bootstrap.confidence:g}%"
    lines.append(
        ("info", f"  {'pooled':<20}{'old':>10}{'new':>10}{'delta':>10}  {pct} CI of delta")
    )
    for key, row in table["aggregate"].items():
        if metric_spec(key).better is None:
            continue
        lines.append(
            (
                "info",
                f"  {key:<20}{_num(row['old']):>10}{_num(row['new']):>10}"
                f"{_num(row['delta'], signed=True):>10}  "
                f"[{_num(row['delta_ci_low'], signed=True)}, "
                f"{_num(row['delta_ci_high'], signed=True)}]",
            )
        )
    per_image: Counter[tuple[str, str]] = Counter()
    for verdict in comparison.verdicts:
        if verdict.scope == "per_image":
            per_image[(verdict.metric, verdict.record["change"])] += 1
            if verdict.passed:
                continue
        level = verdict.outcome if not verdict.passed else verdict.record["change"]
        lines.append(({"no change": "info", "worse": "info"}.get(level, level), verdict.message))
    for metric in dict.fromkeys(m for m, _ in per_image):
        counts = ", ".join(
            f"{per_image[(metric, change)]} {change}"
            for change in ("improved", "no change", "worse")
        )
        lines.append(("info", f"per image, {metric}: {counts}"))
    for reason, names in comparison.not_compared.items():
        lines.append(("warn", f"not compared ({reason}): {', '.join(names)}"))
    return lines
