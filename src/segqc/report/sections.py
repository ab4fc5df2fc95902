"""Report content for the checks beyond the metrics table: regression, statistics,
robustness, leakage, subgroups and device agreement.

Pure functions from the summary.json document to plain rows the template
``resources/report/checks.jinja2`` renders; a section is None when its check did not run.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["check_sections"]

_RATIO_FORMAT = "{:.3f}"


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float) and not value.is_integer():
        return _RATIO_FORMAT.format(value)
    return str(int(value)) if isinstance(value, int | float) else str(value)


def _signed(value: Any) -> str:
    if value is None:
        return "–"
    text = _fmt(abs(value))
    return ("+" if value > 0 else "−" if value < 0 else "±") + text


def _broken(verdicts: Any) -> list[dict[str, Any]]:
    return [v for v in verdicts or [] if v.get("outcome") != "pass"]


def _regression(record: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if not record:
        return None
    tables = []
    for scope, title in (("aggregate", "pooled"), ("image_mean", "image mean")):
        rows = [
            {
                "metric": metric,
                "old": _fmt(entry["old"]),
                "new": _fmt(entry["new"]),
                "delta": _signed(entry["delta"]),
                "ci": (
                    f"[{_signed(entry['delta_ci_low'])}, {_signed(entry['delta_ci_high'])}]"
                    if entry.get("delta_ci_low") is not None
                    else "–"
                ),
                "change": entry.get("change") or "",
            }
            for metric, entry in (record.get(scope) or {}).items()
        ]
        tables.append({"title": title, "rows": rows})
    limited = sorted(
        {v["metric"] for v in record.get("verdicts") or [] if v.get("scope") == "per_image"}
    ) or ["f1"]
    per_image = [
        {
            "name": image["name"],
            "cells": [
                {
                    "text": f"{_fmt(m['old'])} → {_fmt(m['new'])} ({_signed(m['delta'])})",
                    "change": "worse" if m["delta"] < 0 else "improved" if m["delta"] > 0 else "",
                }
                for m in (image["metrics"].get(key) for key in limited)
                if m is not None
            ],
        }
        for image in record.get("per_image") or []
    ]
    return {
        "baseline": record.get("baseline"),
        "change": record.get("change"),
        "not_compared": record.get("not_compared") or {},
        "tables": tables,
        "per_image_metrics": limited,
        "per_image": per_image,
        "broken": _broken(record.get("verdicts")),
    }


def _statistics(record: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if not record:
        return None
    bootstrap = record.get("bootstrap") or {}
    rows = [
        {
            "metric": metric,
            "value": _fmt(entry["value"]),
            "ci": f"[{_fmt(entry['ci_low'])}, {_fmt(entry['ci_high'])}]",
        }
        for metric, entry in (record.get("aggregate") or {}).items()
    ]
    return {
        "method": (
            f"{bootstrap.get('n')} bootstrap resamples of the {record.get('n_images')} "
            f"images, {round(100 * bootstrap.get('confidence', 0.95))} % percentile "
            f"interval, seed {bootstrap.get('seed')}"
        ),
        "rows": rows,
        "gates": record.get("gates") or [],
    }


def _robustness(record: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if not record or not record.get("results"):
        return None
    perturbations = list(record.get("perturbations") or [])
    images = sorted({r["image"] for r in record["results"]})
    cells: dict[tuple[str, str], dict[str, Any]] = {}
    for result in record["results"]:
        limited = result.get("max_drop") or {}
        parts = [
            f"{metric} {_signed(-result['drop'][metric])}"
            for metric in limited
            if result.get("drop") and metric in result["drop"]
        ]
        cells[(result["image"], result["perturbation"])] = {
            "text": result.get("error") or ", ".join(parts) or "–",
            "passed": bool(result.get("passed")),
        }
    return {
        "perturbations": perturbations,
        "rows": [
            {"image": image, "cells": [cells.get((image, p)) for p in perturbations]}
            for image in images
        ],
    }


def _leakage(record: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if not record:
        return None
    best = max(
        ((name, v["training"], v["score"]) for name, v in (record.get("closest") or {}).items()),
        key=lambda item: item[2],
        default=None,
    )
    return {
        "training_data": record.get("training_data"),
        "method": record.get("method"),
        "threshold": record.get("ncc_threshold"),
        "leaks": record.get("leaks") or [],
        "problems": record.get("problems") or [],
        "closest": ({"qc": best[0], "training": best[1], "score": _fmt(best[2])} if best else None),
    }


def _subgroups(record: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if not record or not (record.get("object_size") or record.get("image_groups")):
        return None

    def table(entries: list[dict[str, Any]], label: str) -> dict[str, Any]:
        metrics = sorted({key for entry in entries for key in entry.get("values", {})})
        return {
            "label": label,
            "metrics": metrics,
            "rows": [
                {
                    "name": entry.get("bin") or entry.get("group"),
                    "extra": (
                        f"area {entry.get('min_area', 0)}–{entry.get('max_area') or '∞'} px"
                        if "bin" in entry
                        else f"{entry.get('n_evaluated', 0)} images"
                    ),
                    "cells": [_fmt(entry["values"].get(m)) for m in metrics],
                    "broken": _broken(entry.get("limits")),
                }
                for entry in entries
            ],
        }

    return {
        "tables": [
            table(record.get("object_size") or [], "object size"),
            table(record.get("image_groups") or [], "image group"),
        ]
    }


#: Images listed in the device-agreement table: those with a broken limit, then the
#: largest mismatches, up to this many (summary.json has every image).
AGREEMENT_ROWS = 50


def _bound(value: float | None) -> str:
    return "none" if value is None else f"{value:g}"


def _device_agreement(record: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if not record:
        return None
    broken = _broken(record.get("verdicts"))
    failing = {v["subject"] for v in broken}
    images = sorted(
        record.get("images") or [],
        key=lambda i: (i["name"] not in failing, -(i.get("mismatched_pixels_per_million") or 0)),
    )
    rows = [
        {
            "name": image["name"],
            "device": image["device"],
            "ppm": _fmt(image.get("mismatched_pixels_per_million")),
            "difference": _fmt(image.get("largest_metric_difference")),
            # with no difference at all, no metric differs most
            "metric": (image.get("largest_metric") or "–")
            if image.get("largest_metric_difference")
            else "–",
            "error": image.get("error"),
            "passed": image["name"] not in failing,
        }
        for image in images[:AGREEMENT_ROWS]
    ]
    limits = record.get("limits") or {}
    return {
        "device": record.get("device") or "the first device",
        "compare_device": record.get("compare_device"),
        "n_images": record.get("n_images", 0),
        "ppm_limit": _bound((limits.get("mismatched_pixels_per_million") or {}).get("max")),
        "difference_limit": _bound((limits.get("metric_difference") or {}).get("max")),
        "broken": broken,
        "rows": rows,
        "more": max(0, len(images) - AGREEMENT_ROWS),
    }


def check_sections(summary: Mapping[str, Any]) -> dict[str, Any]:
    """The template context of every optional check section of the report."""
    return {
        "regression": _regression(summary.get("regression")),
        "statistics": _statistics(summary.get("statistics")),
        "robustness": _robustness(summary.get("robustness")),
        "leakage": _leakage(summary.get("leakage")),
        "subgroups": _subgroups(summary.get("subgroups")),
        "device_agreement": _device_agreement(summary.get("device_agreement")),
    }
