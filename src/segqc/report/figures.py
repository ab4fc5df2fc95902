"""Figures of the QC report that are not pictures of images: the accuracy-vs-IoU plot."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from segqc.checks.accuracy import CURVE_METRICS

__all__ = ["accuracy_figure", "file_data_uri"]

# Okabe-Ito colours, distinguishable with the common colour-vision deficiencies.
_LINE_COLOURS = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#000000")
_MARKERS = ("o", "s", "^", "D", "v")


def accuracy_figure(record: Mapping[str, Any], *, matching_threshold: float) -> str:
    """Pooled precision, recall, f1, accuracy and panoptic quality against IoU threshold.

    Drawn as SVG by hand: a handful of lines on fixed axes need no plotting library, and
    the figure stays sharp at any zoom.

    Parameters
    ----------
    record : Mapping
        The ``accuracy_vs_iou`` record of summary.json.
    matching_threshold : float
        Drawn as a dashed vertical line (the threshold of the QC metrics table).

    Returns
    -------
    str
        A ``data:image/svg+xml;base64,...`` URI.
    """
    plot = _Axes(
        left=58, top=12, right=628, bottom=318, x_range=(0.05, 0.95), y_range=(-0.02, 1.02)
    )
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {_WIDTH} {_HEIGHT}" '
        f'width="{_WIDTH}" height="{_HEIGHT}" font-family="DejaVu Sans, Arial, sans-serif" '
        'font-size="12">',
        f'<rect width="{_WIDTH}" height="{_HEIGHT}" fill="white"/>',
        *plot.grid(x_ticks=[t / 10 for t in range(1, 10)], y_ticks=[t / 5 for t in range(6)]),
        plot.vertical(matching_threshold, 'stroke="#777777" stroke-dasharray="5,4"'),
    ]
    thresholds = [float(s["iou_threshold"]) for s in record["pooled"]]
    for key, colour, marker in zip(CURVE_METRICS, _LINE_COLOURS, _MARKERS, strict=True):
        points = [
            plot.point(t, float(s[key])) for t, s in zip(thresholds, record["pooled"], strict=True)
        ]
        parts.append(
            f'<polyline fill="none" stroke="{colour}" stroke-width="1.8" '
            f'points="{" ".join(f"{x:.1f},{y:.1f}" for x, y in points)}"/>'
        )
        parts += [_marker(marker, x, y, colour) for x, y in points]
    for verdict in record["limits"]:
        threshold = float(verdict["scope"].split(".", 1)[1])
        for bound in ("min", "max"):
            if verdict[bound] is not None and verdict["metric"] in CURVE_METRICS:
                x, y = plot.point(threshold, float(verdict[bound]))
                parts.append(_limit_mark(x, y, passed=bool(verdict["passed"])))
    parts += plot.labels("IoU threshold", "score (pooled over QC images)")
    parts += _legend(plot.left + 10, plot.bottom - 10 - 17 * len(CURVE_METRICS))
    parts.append("</svg>")
    svg = "".join(parts).encode("utf-8")
    return "data:image/svg+xml;base64," + base64.b64encode(svg).decode("ascii")


_WIDTH, _HEIGHT = 640, 360


class _Axes:
    """Data coordinates to SVG pixels for one plot area, and its grid and labels."""

    def __init__(
        self,
        *,
        left: float,
        top: float,
        right: float,
        bottom: float,
        x_range: tuple[float, float],
        y_range: tuple[float, float],
    ) -> None:
        self.left, self.top, self.right, self.bottom = left, top, right, bottom
        self.x_range, self.y_range = x_range, y_range

    def point(self, x: float, y: float) -> tuple[float, float]:
        (x0, x1), (y0, y1) = self.x_range, self.y_range
        return (
            self.left + (x - x0) / (x1 - x0) * (self.right - self.left),
            self.bottom - (y - y0) / (y1 - y0) * (self.bottom - self.top),
        )

    def vertical(self, x: float, style: str) -> str:
        px = self.point(x, 0.0)[0]
        return f'<line x1="{px:.1f}" y1="{self.top}" x2="{px:.1f}" y2="{self.bottom}" {style}/>'

    def grid(self, *, x_ticks: list[float], y_ticks: list[float]) -> list[str]:
        lines = []
        for tick in x_ticks:
            px = self.point(tick, 0.0)[0]
            lines.append(f'<line x1="{px:.1f}" y1="{self.top}" x2="{px:.1f}" y2="{self.bottom}" '
                         'stroke="#e4e4e4"/>')  # fmt: skip
            lines.append(f'<text x="{px:.1f}" y="{self.bottom + 16}" text-anchor="middle">'
                         f"{tick:.1f}</text>")  # fmt: skip
        for tick in y_ticks:
            py = self.point(0.0, tick)[1]
            lines.append(f'<line x1="{self.left}" y1="{py:.1f}" x2="{self.right}" y2="{py:.1f}" '
                         'stroke="#e4e4e4"/>')  # fmt: skip
            lines.append(f'<text x="{self.left - 6}" y="{py + 4:.1f}" text-anchor="end">'
                         f"{tick:.1f}</text>")  # fmt: skip
        width, height = self.right - self.left, self.bottom - self.top
        lines.append(f'<rect x="{self.left}" y="{self.top}" width="{width}" height="{height}" '
                     'fill="none" stroke="#333333"/>')  # fmt: skip
        return lines

    def labels(self, x_label: str, y_label: str) -> list[str]:
        middle_x, middle_y = (self.left + self.right) / 2, (self.top + self.bottom) / 2
        return [
            f'<text x="{middle_x:.1f}" y="{self.bottom + 36}" text-anchor="middle">'
            f"{x_label}</text>",
            f'<text transform="translate(16 {middle_y:.1f}) rotate(-90)" text-anchor="middle">'
            f"{y_label}</text>",
        ]


def _marker(shape: str, x: float, y: float, colour: str, size: float = 3.5) -> str:
    s = size
    outlines = {
        "o": None,
        "s": [(-s, -s), (s, -s), (s, s), (-s, s)],
        "^": [(0, -s * 1.2), (s * 1.1, s * 0.8), (-s * 1.1, s * 0.8)],
        "D": [(0, -s * 1.3), (s * 1.1, 0), (0, s * 1.3), (-s * 1.1, 0)],
        "v": [(0, s * 1.2), (s * 1.1, -s * 0.8), (-s * 1.1, -s * 0.8)],
    }[shape]
    if outlines is None:
        return f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{s:.1f}" fill="{colour}"/>'
    points = " ".join(f"{x + dx:.1f},{y + dy:.1f}" for dx, dy in outlines)
    return f'<polygon points="{points}" fill="{colour}"/>'


def _limit_mark(x: float, y: float, *, passed: bool) -> str:
    """A limit of thresholds.yaml: a grey bar when met, an orange cross when not."""
    if passed:
        return (f'<line x1="{x - 8:.1f}" y1="{y:.1f}" x2="{x + 8:.1f}" y2="{y:.1f}" '
                'stroke="#555555" stroke-width="2.5"/>')  # fmt: skip
    return (f'<path d="M{x - 7:.1f},{y - 7:.1f}L{x + 7:.1f},{y + 7:.1f}M{x - 7:.1f},{y + 7:.1f}'
            f'L{x + 7:.1f},{y - 7:.1f}" stroke="#D55E00" stroke-width="2.5"/>')  # fmt: skip


def _legend(x: float, y: float) -> list[str]:
    rows = len(CURVE_METRICS)
    parts = [f'<rect x="{x}" y="{y - 6}" width="150" height="{17 * rows + 6}" fill="white" '
             'fill-opacity="0.85" stroke="#cccccc"/>']  # fmt: skip
    for row, (key, colour, marker) in enumerate(
        zip(CURVE_METRICS, _LINE_COLOURS, _MARKERS, strict=True)
    ):
        cy = y + 8 + 17 * row
        parts.append(f'<line x1="{x + 8}" y1="{cy}" x2="{x + 32}" y2="{cy}" stroke="{colour}" '
                     'stroke-width="1.8"/>')  # fmt: skip
        parts.append(_marker(marker, x + 20, cy, colour))
        parts.append(f'<text x="{x + 40}" y="{cy + 4}" font-size="11">{key}</text>')
    return parts


def file_data_uri(path: Path) -> str | None:
    """A PNG file as a data URI (None if it does not exist or cannot be read)."""
    try:
        data = path.read_bytes()
    except OSError:
        return None
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")
