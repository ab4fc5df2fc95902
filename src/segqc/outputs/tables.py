"""metrics.csv: ZeroCostDL4Mic's QC metrics table, one row per evaluated image."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping

from segqc.metrics.catalogue import METRICS

__all__ = ["CSV_HEADER", "metrics_csv_text"]

CSV_HEADER: tuple[str, ...] = ("image", *(spec.csv_column for spec in METRICS))


def metrics_csv_text(rows: Iterable[tuple[str, Mapping[str, float]]]) -> str:
    """ZeroCostDL4Mic's QC metrics table as CSV text.

    Parameters
    ----------
    rows : iterable of (image name, values by metric key)

    Returns
    -------
    str
        Header ``image, Prediction v. GT Intersection over Union, false positive, ...``
        then one row per image; counts as integers, ratios with full precision.
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_HEADER)
    for name, values in rows:
        writer.writerow(
            [name]
            + [
                int(values[spec.key]) if spec.kind == "count" else repr(float(values[spec.key]))
                for spec in METRICS
            ]
        )
    return buffer.getvalue()
