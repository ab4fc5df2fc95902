"""metrics.csv: ZeroCostDL4Mic's QC metrics table, one row per evaluated image."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator, Mapping

from segqc.metrics.catalogue import METRICS

__all__ = ["CSV_HEADER", "metrics_csv_lines"]

CSV_HEADER: tuple[str, ...] = ("image", *(spec.csv_column for spec in METRICS))


def metrics_csv_lines(rows: Iterable[tuple[str, Mapping[str, float]]]) -> Iterator[str]:
    """ZeroCostDL4Mic's QC metrics table as CSV, a line at a time.

    Parameters
    ----------
    rows : iterable of (image name, values by metric key)
        Read one at a time, so the table of any QC set is written without being held.

    Yields
    ------
    str
        The header ``image, Prediction v. GT Intersection over Union, false positive,
        ...``, then one line per image; counts as integers, ratios with full precision.
        Each line ends with ``\\n``.
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")

    def line(fields: Iterable[object]) -> str:
        buffer.seek(0)
        buffer.truncate()
        writer.writerow(fields)
        return buffer.getvalue()

    yield line(CSV_HEADER)
    for name, values in rows:
        yield line(
            [name]
            + [
                int(values[spec.key]) if spec.kind == "count" else repr(float(values[spec.key]))
                for spec in METRICS
            ]
        )
