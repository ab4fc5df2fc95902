"""What the QC report shows, as plain data for the templates.

Everything here is read from the ``summary.json`` document (:func:`segqc.outputs.summary.
build_summary`), so the page and the JSON cannot disagree; only the pictures are drawn
from the files on disk (:mod:`segqc.report.panels`, :mod:`segqc.report.figures`).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from segqc.checks.accuracy import CURVE_METRICS
from segqc.checks.quality import NEGATIVE_CONTROL_RULE, undefined_metrics
from segqc.metrics.catalogue import METRICS, metric_spec

__all__ = [
    "Cell",
    "HeaderRow",
    "MetricsRow",
    "MetricsTable",
    "accuracy_rows",
    "header_rows",
    "image_statuses",
    "metrics_rows",
    "verdict_counts",
]

_RANK = {"pass": 0, "warn": 1, "fail": 2}
#: The metrics table's columns: verdicts on other metrics do not colour its rows.
_TABLE_METRICS = frozenset(spec.key for spec in METRICS)


@dataclass(frozen=True)
class Cell:
    """One metric value, with the limits that apply to it.

    ``outcome`` is ``pass``/``warn``/``fail`` when a limit applies (the worst of them),
    None otherwise; ``limit`` is the broken bound shown beside the value (``min 0.7``)
    and ``title`` explains it on hover.
    """

    metric: str
    text: str
    outcome: str | None = None
    limit: str | None = None
    title: str | None = None


@dataclass(frozen=True)
class MetricsRow:
    """A row of the quality-metrics table: an image, the pooled set or the image mean.

    The cells are built when :attr:`cells` is read, from the row's values and the
    verdicts of the summary: the table of 10,000 images is written a row at a time,
    without 200,000 cells in memory at once.
    """

    subject: str
    kind: str  # "image", "pooled" or "image mean"
    status: str  # "pass", "warn", "fail" or "error"
    error: str | None = None
    scope: str = ""  # the verdicts' scope: per_image, aggregate or image_mean
    values: Mapping[str, Any] = field(default_factory=dict, repr=False)
    verdicts: _Verdicts | None = field(default=None, repr=False)

    @property
    def cells(self) -> tuple[Cell, ...]:
        """One cell per metric (none for an image that could not be evaluated)."""
        if self.error is not None or self.verdicts is None:
            return ()
        # A negative control's 0/0 ratios are recorded as stardist's 0 but were not
        # judged: they read n/a (segqc.checks.quality.undefined_metrics).
        undefined = undefined_metrics(self.values)
        return tuple(
            _cell(
                spec.key,
                None if spec.key in undefined else self.values.get(spec.key),
                self.verdicts.of_cell(self.scope, self.subject, spec.key),
            )
            for spec in METRICS
        )


@dataclass(frozen=True)
class HeaderRow:
    """A row of the header table; ``field`` names it for tests and scripts."""

    field: str
    label: str
    value: str
    code: bool = False
    extra: str | None = None


class _Limit(NamedTuple):
    """What a table cell shows of one verdict: its outcome and the limit it was held to.

    ``message`` is kept only for a rule's verdict (a negative control), the one kind
    whose message the cell's title shows; the others' titles are written from the
    cell's own value.
    """

    metric: str
    outcome: str
    min: float | None
    max: float | None
    level: str
    key: str
    rule: str | None
    message: str


@dataclass
class _Verdicts:
    """The verdicts of summary.json's ``limits``, by table row (scope, subject).

    Only :class:`_Limit`'s fields are kept, and strings that repeat from row to row
    (``per_image.f1``) once: for 10,000 images the index is a few MB, not the 30,000
    verdict records it is read from.
    """

    by_row: dict[tuple[str, str], tuple[_Limit, ...]] = field(default_factory=dict)

    @classmethod
    def of(cls, limits: Iterable[Mapping[str, Any]]) -> _Verdicts:
        found: dict[tuple[str, str], list[_Limit]] = {}
        shared: dict[str, str] = {}
        for verdict in limits:
            rule = verdict.get("rule")
            limit = _Limit(
                shared.setdefault(verdict["metric"], verdict["metric"]),
                verdict["outcome"],
                verdict.get("min"),
                verdict.get("max"),
                shared.setdefault(verdict["level"], verdict["level"]),
                shared.setdefault(verdict["key"], verdict["key"]),
                rule,
                verdict["message"] if rule is not None else "",
            )
            found.setdefault((verdict["scope"], verdict["subject"]), []).append(limit)
        return cls({row: tuple(limits) for row, limits in found.items()})

    def of_cell(self, scope: str, subject: str, metric: str) -> list[_Limit]:
        return [limit for limit in self.by_row.get((scope, subject), ()) if limit.metric == metric]

    def worst(self, scope: str, subject: str) -> str:
        """The worst outcome of the verdicts on a row's cells (``pass`` without any)."""
        outcomes = [
            limit.outcome
            for limit in self.by_row.get((scope, subject), ())
            if limit.metric in _TABLE_METRICS
        ]
        return max(outcomes, key=lambda o: _RANK[o]) if outcomes else "pass"


def _fmt(value: Any, kind: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if kind == "count":
        return str(int(value))
    return f"{float(value):.3f}"


def _bound_text(limit: _Limit) -> str:
    parts = []
    if limit.min is not None:
        parts.append(f"min {limit.min:g}")
    if limit.max is not None:
        parts.append(f"max {limit.max:g}")
    return ", ".join(parts)


def _cell(metric: str, value: Any, verdicts: list[_Limit]) -> Cell:
    text = _fmt(value, metric_spec(metric).kind)
    if not verdicts:
        return Cell(metric, text)
    worst = max(verdicts, key=lambda v: _RANK[v.outcome])
    titles = [
        f"{v.outcome.upper()}: {v.message}"
        if v.rule == NEGATIVE_CONTROL_RULE
        else f"{v.outcome.upper()}: {metric} = {text}, limit {_bound_text(v)} "
        f"({'level warn, ' if v.level == 'warn' else ''}thresholds.yaml {v.key})"
        for v in verdicts
    ]
    limit = _bound_text(worst) if worst.outcome != "pass" else None
    return Cell(metric, text, worst.outcome, limit, "\n".join(titles))


def _status(cells: Iterable[Cell]) -> str:
    outcomes = [c.outcome for c in cells if c.outcome]
    return max(outcomes, key=lambda o: _RANK[o]) if outcomes else "pass"


def _row(
    subject: str, kind: str, scope: str, values: Mapping[str, Any], found: _Verdicts
) -> MetricsRow:
    status = found.worst(scope, subject)
    return MetricsRow(subject, kind, status, scope=scope, values=values, verdicts=found)


class MetricsTable:
    """The rows of the quality-metrics table, built each time the table is read.

    One row per image (in QC order), then the pooled and the image-mean rows. A row
    and its values exist only while it is read: the table of 10,000 images is written
    without 10,000 rows in memory, and read as often as the report needs (statuses,
    folded rows, the table, the visual assessment).

    Parameters
    ----------
    summary : mapping
        The summary.json document.
    """

    def __init__(self, summary: Mapping[str, Any]) -> None:
        self._images = summary["images"]
        self._aggregate = summary["aggregate"]
        self._verdicts = _Verdicts.of(summary["limits"])

    def __iter__(self) -> Iterator[MetricsRow]:
        found = self._verdicts
        for image in self._images:
            if image["metrics"] is None:
                yield MetricsRow(image["name"], "image", "error", error=image["error"])
            else:
                yield _row(image["name"], "image", "per_image", image["metrics"], found)
        aggregate = self._aggregate
        if aggregate["pooled"] is not None:
            yield _row("pooled", "pooled", "aggregate", aggregate["pooled"], found)
        if aggregate["image_mean"] is not None:
            yield _row("image mean", "image mean", "image_mean", aggregate["image_mean"], found)

    def __len__(self) -> int:
        aggregate = self._aggregate
        return len(self._images) + sum(
            aggregate[key] is not None for key in ("pooled", "image_mean")
        )


def metrics_rows(summary: Mapping[str, Any]) -> MetricsTable:
    """One row per image (in QC order), then the pooled and the image-mean rows.

    On a negative control (an image whose ground truth has no object) the ratios that
    are 0/0 read ``n/a`` and its ``n_pred`` cell carries the negative-control verdict;
    image-mean values undefined on every image (null in summary.json) read ``n/a`` too.

    Returns
    -------
    MetricsTable
        The rows, built each time they are read (see :class:`MetricsTable`).
    """
    return MetricsTable(summary)


def image_statuses(rows: Iterable[MetricsRow]) -> dict[str, str]:
    """``pass``/``warn``/``fail``/``error`` by image name."""
    return {row.subject: row.status for row in rows if row.kind == "image"}


def verdict_counts(summary: Mapping[str, Any], statuses: Mapping[str, str]) -> dict[str, int]:
    """Images by status and limits by outcome, for the verdict banner."""
    counts = {f"images_{s}": 0 for s in ("pass", "warn", "fail", "error")}
    for status in statuses.values():
        counts[f"images_{status}"] += 1
    outcomes = Counter(verdict["outcome"] for verdict in summary["limits"])
    for outcome in ("pass", "warn", "fail"):
        counts[f"limits_{outcome}"] = outcomes[outcome]
    counts["images"] = summary["qc"]["n_pairs"]
    counts["evaluated"] = sum(1 for s in statuses.values() if s != "error")
    return counts


def _device_text(summary: Mapping[str, Any]) -> str:
    """The device that predicted, or why none did (TensorFlow is loaded only to predict)."""
    device = summary["predictor"].get("device")
    if device:
        return str(device)
    evaluated = [i for i in summary.get("images") or [] if i.get("status") == "evaluated"]
    if evaluated and all(i.get("cached") for i in evaluated):
        return "none: every prediction came from the prediction cache"
    return "none: the model predicted no image"


def header_rows(summary: Mapping[str, Any]) -> list[HeaderRow]:
    """What was tested, with what, and how: model, weights, settings, data, versions."""
    predictor = summary["predictor"]
    rows = []
    if "weights" in predictor:
        rows += [
            HeaderRow("model", "Model", str(predictor.get("name", "")), extra=predictor["path"]),
            HeaderRow("model_kind", "Model type", str(predictor.get("kind", ""))),
            HeaderRow("weights", "Weights file", predictor["weights"], code=True),
            HeaderRow(
                "weights_sha256", "Weights SHA-256", str(predictor.get("weights_sha256")), code=True
            ),
            HeaderRow(
                "prediction_thresholds",
                "Prediction thresholds",
                f"prob_thresh = {predictor['prob_thresh']:g}, "
                f"nms_thresh = {predictor['nms_thresh']:g}",
                extra=f"from {predictor['thresholds_source']}",
            ),
            HeaderRow("device", "Device", _device_text(summary)),
        ]
    elif predictor.get("kind") == "predictions folder":
        rows.append(
            HeaderRow("predictions", "Predictions folder", predictor["path"], code=True,
                      extra="predicted by another tool; no model was run")
        )  # fmt: skip
    else:  # a plugin's predictor (pytest_segqc_make_predictor): show what it says of itself
        rows.append(HeaderRow("predictor", "Predictor", str(predictor.get("kind", "unknown"))))
        rows += [
            HeaderRow(f"predictor_{key}", key, str(value))
            for key, value in predictor.items()
            if key != "kind" and value is not None
        ]
    qc = summary["qc"]
    rows.append(
        HeaderRow(
            "iou_threshold",
            "Matching",
            f"IoU ≥ {summary['matching']['iou_threshold']:g}",
            extra="a predicted object matches a ground-truth object at this IoU or above",
        )
    )
    for role in ("source", "target", "predictions"):
        if role in qc:
            rows.append(HeaderRow(f"qc_{role}", f"QC {role}", qc[role], code=True))
    rows += [
        HeaderRow("qc_pairs", "QC images", f"{qc['n_evaluated']} of {qc['n_pairs']} evaluated"),
        HeaderRow("qc_content_sha256", "QC content SHA-256", qc["content_sha256"], code=True,
                  extra="names and contents of every QC source and target file"),
    ]  # fmt: skip
    if qc["ignored_files"]:
        rows.append(HeaderRow("qc_ignored", "Ignored files", ", ".join(qc["ignored_files"])))
    thresholds = summary["thresholds"]
    rows += [
        HeaderRow(
            "thresholds_file",
            "Thresholds file",
            thresholds["path"],
            code=True,
            extra="segqc's bundled defaults" if thresholds["bundled_default"] else None,
        ),
        HeaderRow("created", "Date (UTC)", summary["created"]),
        HeaderRow(
            "versions",
            "Versions",
            ", ".join(f"{name} {value}" for name, value in summary["versions"].items()),
        ),
    ]
    return rows


def accuracy_rows(summary: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The accuracy-vs-IoU table: one row per threshold, limits highlighted."""
    record = summary.get("accuracy_vs_iou")
    if not record:
        return []
    found = _Verdicts.of(record["limits"])
    matching_threshold = summary["matching"]["iou_threshold"]
    rows = []
    for stats in record["pooled"]:
        threshold = stats["iou_threshold"]
        scope = f"aggregate_at.{threshold:g}"
        subject = f"pooled at IoU {threshold:g}"
        cells = [
            _cell(key, stats[key], found.of_cell(scope, subject, key))
            for key in (*CURVE_METRICS, "tp", "fp", "fn")
        ]
        rows.append(
            {
                "threshold": threshold,
                "is_matching": math.isclose(threshold, matching_threshold),
                "cells": cells,
                "status": _status(cells),
            }
        )
    return rows
