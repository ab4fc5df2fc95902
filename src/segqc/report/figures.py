"""Figures of the QC report, drawn with matplotlib's object API (no pyplot, no GUI)."""

from __future__ import annotations

import base64
import io
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

    Parameters
    ----------
    record : Mapping
        The ``accuracy_vs_iou`` record of summary.json.
    matching_threshold : float
        Drawn as a dashed vertical line (the threshold of the QC metrics table).

    Returns
    -------
    str
        A ``data:image/png;base64,...`` URI.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6.4, 3.6), dpi=110, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    thresholds = [s["iou_threshold"] for s in record["pooled"]]
    for key, colour, marker in zip(CURVE_METRICS, _LINE_COLOURS, _MARKERS, strict=True):
        values = [s[key] for s in record["pooled"]]
        axes.plot(thresholds, values, marker=marker, color=colour, label=key, markersize=4)
    axes.axvline(matching_threshold, color="#777777", linestyle="--", linewidth=1)
    for verdict in record["limits"]:
        threshold = float(verdict["scope"].split(".", 1)[1])
        for bound in ("min", "max"):
            if verdict[bound] is not None and verdict["metric"] in CURVE_METRICS:
                axes.plot(
                    [threshold],
                    [verdict[bound]],
                    marker="_" if verdict["passed"] else "x",
                    markersize=14,
                    markeredgewidth=2,
                    color="#D55E00" if not verdict["passed"] else "#555555",
                )
    axes.set_xlabel("IoU threshold")
    axes.set_ylabel("score (pooled over QC images)")
    axes.set_xlim(0.05, 0.95)
    axes.set_ylim(-0.02, 1.02)
    axes.grid(alpha=0.3)
    axes.legend(loc="lower left", fontsize=8, frameon=True)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def file_data_uri(path: Path) -> str | None:
    """A PNG file as a data URI (None if it does not exist or cannot be read)."""
    try:
        data = path.read_bytes()
    except OSError:
        return None
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")
