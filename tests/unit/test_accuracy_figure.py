"""The accuracy-vs-IoU figure of the report, read back as SVG.

Coordinates are checked against the axes drawn in the figure itself (its tick labels),
not against segqc's own mapping: a point at IoU 0.5 must sit on the tick labelled 0.5.
"""

from __future__ import annotations

import base64
import xml.etree.ElementTree as ET

import pytest

from segqc.checks.accuracy import CURVE_METRICS
from segqc.report.figures import accuracy_figure

SVG = "{http://www.w3.org/2000/svg}"
THRESHOLDS = [t / 10 for t in range(1, 10)]


def record(limits: list[dict] | None = None) -> dict:
    pooled = [
        {
            "iou_threshold": t,
            **{key: round(1 - t * (i + 1) / 5, 3) for i, key in enumerate(CURVE_METRICS)},
        }
        for t in THRESHOLDS
    ]
    return {"pooled": pooled, "limits": limits or []}


def drawn(uri: str) -> ET.Element:
    header, data = uri.split(",", 1)
    assert header == "data:image/svg+xml;base64"
    return ET.fromstring(base64.b64decode(data))


def tick_positions(svg: ET.Element) -> tuple[dict[str, float], dict[str, float]]:
    """Tick label text -> pixel position, for the x axis (middle-anchored) and y axis."""
    x_ticks, y_ticks = {}, {}
    for text in svg.iter(f"{SVG}text"):
        if text.get("text-anchor") == "middle" and text.get("x") and text.text[0].isdigit():
            x_ticks[text.text] = float(text.get("x"))
        elif text.get("text-anchor") == "end":
            y_ticks[text.text] = float(text.get("y")) - 4  # baseline sits 4 px below the tick
    return x_ticks, y_ticks


def test_one_line_per_curve_metric_through_its_values_with_a_legend():
    svg = drawn(accuracy_figure(record(), matching_threshold=0.5))
    x_ticks, y_ticks = tick_positions(svg)
    lines = [p for p in svg.iter(f"{SVG}polyline")]
    assert len(lines) == len(CURVE_METRICS)
    # precision (the first line) is 1 - t/5: 0.9 at IoU 0.5, 0.8 at IoU 1.0 -> check 0.5
    points = [tuple(map(float, xy.split(","))) for xy in lines[0].get("points").split()]
    assert [round(x, 1) for x, _ in points] == [round(x_ticks[f"{t:.1f}"], 1) for t in THRESHOLDS]
    y_at = {label: y for label, y in y_ticks.items()}
    per_unit = y_at["0.0"] - y_at["1.0"]
    assert points[4][1] == pytest.approx(y_at["0.0"] - 0.9 * per_unit, abs=0.1)
    legend = [t.text for t in svg.iter(f"{SVG}text") if t.text in CURVE_METRICS]
    assert legend == list(CURVE_METRICS)


def test_limits_are_marked_where_they_lie_and_failed_ones_as_a_cross():
    limits = [
        {"scope": "aggregate_at.0.7", "metric": "recall", "min": 0.5, "max": None, "passed": False},
        {"scope": "aggregate_at.0.3", "metric": "f1", "min": None, "max": 0.9, "passed": True},
    ]
    svg = drawn(accuracy_figure(record(limits), matching_threshold=0.5))
    x_ticks, y_ticks = tick_positions(svg)
    crosses = [p for p in svg.iter(f"{SVG}path") if p.get("stroke") == "#D55E00"]
    assert len(crosses) == 1
    # the cross is centred on (0.7, 0.5): its path starts 7 px up and left of that point
    start = crosses[0].get("d").split("L")[0].lstrip("M")
    x, y = map(float, start.split(","))
    per_unit = y_ticks["0.0"] - y_ticks["1.0"]
    assert x + 7 == pytest.approx(x_ticks["0.7"], abs=0.1)
    assert y + 7 == pytest.approx(y_ticks["0.0"] - 0.5 * per_unit, abs=0.1)
    bars = [line for line in svg.iter(f"{SVG}line") if line.get("stroke") == "#555555"]
    assert len(bars) == 1
    assert (float(bars[0].get("x1")) + float(bars[0].get("x2"))) / 2 == pytest.approx(
        x_ticks["0.3"], abs=0.1
    )


def test_the_matching_threshold_is_a_dashed_line_at_its_iou():
    svg = drawn(accuracy_figure(record(), matching_threshold=0.7))
    x_ticks, _ = tick_positions(svg)
    [dashed] = [line for line in svg.iter(f"{SVG}line") if line.get("stroke-dasharray")]
    assert float(dashed.get("x1")) == pytest.approx(x_ticks["0.7"], abs=0.1)
