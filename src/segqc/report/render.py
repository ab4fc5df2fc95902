"""Render the QC report sections from the summary.json document and the files on disk."""

from __future__ import annotations

import functools
import os
import shutil
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from segqc.checks.accuracy import CURVE_METRICS
from segqc.metrics.catalogue import METRICS
from segqc.report.content import (
    MetricsRow,
    accuracy_rows,
    header_rows,
    image_statuses,
    metrics_rows,
    verdict_counts,
)
from segqc.report.figures import accuracy_figure, file_data_uri
from segqc.report.inline import DeferredContent
from segqc.report.panels import FN_COLOUR, FP_COLOUR, ImageVisual, Panel, iou_legend
from segqc.report.sections import check_sections
from segqc.report.store import PanelStore, picture_files

__all__ = ["render_failure", "render_report_chunks"]

#: Written by the loss-curve checks next to summary.json; shown when summary.json has
#: a ``loss_curve`` record (so a stale file from an earlier run is never shown).
LOSS_FIGURE = "loss_curve.png"
#: A metrics table of more images shows its problem images and this many passing ones
#: at first, and the rest on request: a browser lays out a table of 10,000 rows of 20
#: cells for tens of seconds before it shows the page.
TABLE_PAGE = 200


@functools.cache
def _environment() -> Any:
    import jinja2

    return jinja2.Environment(
        loader=jinja2.PackageLoader("segqc", "resources/report"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _loss_section(summary: Mapping[str, Any]) -> dict[str, Any] | None:
    """The loss-curve checks' figure, verdicts and key facts (None: the checks did not run).

    Reads the ``loss_curve`` record of summary.json (see :mod:`segqc.checks.loss.plugin`).
    """
    record = summary.get("loss_curve")
    if not isinstance(record, Mapping):
        return None
    if record.get("status") != "found":
        looked = " and ".join(record.get("looked") or [])
        missing = record.get("error") or (
            f"No training history found (looked for {looked})."
            if looked
            else "No training history: --predictions mode has no model folder to read one "
            "from; give --training-log PATH."
        )
        return {"missing": missing}
    figure = record.get("figure")
    facts = {
        "history": f"{record['source']} ({record['format']}, {record['n_epochs']} epochs)",
        "final loss": f"{record['final_loss']:.4g}",
        "final val_loss": (
            f"{record['final_val_loss']:.4g}"
            if record.get("final_val_loss") is not None
            else "none"
        ),
        "smoothing": f"trailing moving median of {record['smoothing_window']} epochs",
    }
    return {
        "missing": None,
        "figure": file_data_uri(Path(figure)) if figure else None,
        "checks": list(record.get("checks") or []),
        "facts": facts,
    }


def _visuals(
    rows: Iterable[MetricsRow],
    panels: PanelStore | None,
    deferred: DeferredContent | None,
    pictures: Path | None,
    report_dir: Path | None,
) -> Iterator[dict[str, Any]]:
    """One entry per image shown in the visual assessment, panels loaded one at a time.

    When every image has panels (or none is drawn), every image row is listed;
    otherwise only the images with panels (the metrics table lists the rest). A
    generator, so the report holds the panels of one image at a time besides the HTML
    rendered so far.
    """
    image_rows = (row for row in rows if row.kind == "image")
    listed = _visual_names(rows, panels)
    for index, row in enumerate(image_rows, start=1):
        if row.subject not in listed:
            continue
        visual = _visual_of(row.subject, index, panels, deferred, pictures, report_dir)
        reason = panels.reason(row.subject) if panels is not None else None
        yield {
            "row": row,
            "index": index,
            "visual": visual,
            "reason": reason or "",
            "open": row.status in ("fail", "error"),
        }


def _visual_names(rows: Iterable[MetricsRow], panels: PanelStore | None) -> frozenset[str]:
    """The images listed in the visual assessment (see :func:`_visuals`)."""
    names = [row.subject for row in rows if row.kind == "image"]
    if panels is None or all(name in panels for name in names):
        return frozenset(names)
    return frozenset(name for name in names if name in panels)


def _visual_of(
    name: str,
    index: int,
    panels: PanelStore | None,
    deferred: DeferredContent | None,
    pictures: Path | None,
    report_dir: Path | None,
) -> ImageVisual | None:
    """The panels of image ``name``: placeholders to inline later (``deferred``), links to
    picture files (``pictures``), or the pictures themselves."""
    if panels is None:
        return None
    if deferred is not None:
        path = panels.file(name)
        visual = panels.load(name)
        if path is None or visual is None:
            return None
        return ImageVisual(
            tuple(
                Panel(panel.caption, deferred.placeholder(path, i))
                for i, panel in enumerate(visual.panels)
            ),
            visual.note,
        )
    visual = panels.load(name)
    if visual is None or pictures is None:
        return visual
    files = list(picture_files(visual, pictures, f"image{index:05d}"))
    base = report_dir or pictures.parent
    return ImageVisual(
        tuple(
            Panel(panel.caption, os.path.relpath(path, base).replace(os.sep, "/"))
            for panel, path in zip(visual.panels, files, strict=False)
        ),
        visual.note,
    )


def _colour(rgb: tuple[int, ...]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*(int(c) for c in rgb))


def render_report_chunks(
    summary: Mapping[str, Any],
    *,
    thresholds_text: str,
    panels: PanelStore | None = None,
    deferred: DeferredContent | None = None,
    pictures: Path | None = None,
    report_dir: Path | None = None,
    all_images: Sequence[str] = (),
    output_dir: Path | None = None,
) -> Iterator[str]:
    """All segqc sections of the report, as pieces of one HTML fragment, rendered as
    they are asked for (the table of 10,000 images is never held whole).

    Parameters
    ----------
    summary : mapping
        The summary.json document: every number and verdict the report shows.
    thresholds_text : str
        The thresholds file as written, shown in full.
    panels : PanelStore, optional
        The images' panels (None: no pictures).
    deferred : DeferredContent, optional
        Collects the panels as placeholders, to be put into the written file by
        :meth:`DeferredContent.inline_into`.
    pictures : Path, optional
        Write the panels as picture files into this folder (emptied first) and link
        them, relative to ``report_dir``, instead of putting them into the page.
    report_dir : Path, optional
        The folder of the report file (for the links to ``pictures``).
    all_images : sequence of str
        Every QC image's name, so the report can list those not evaluated.
    output_dir : Path, optional
        Where metrics.csv and summary.json are, for the page's footer.

    Yields
    ------
    str
        Pieces of the HTML rendered from ``resources/report/qc_report.jinja2`` with
        autoescaping, each ASCII.
    """
    if pictures is not None and pictures.is_dir():
        shutil.rmtree(pictures)
    rows = metrics_rows(summary)
    statuses = image_statuses(rows)
    record = summary.get("accuracy_vs_iou")
    matching_threshold = summary["matching"]["iou_threshold"]
    evaluated = {image["name"] for image in summary.get("images") or []}
    unevaluated = [name for name in all_images if name not in evaluated]
    page = TABLE_PAGE if len(statuses) > TABLE_PAGE else 0
    chunks = (
        _environment()
        .get_template("qc_report.jinja2")
        .generate(
            summary=summary,
            status=summary["status"],
            counts=verdict_counts(summary, statuses),
            header=header_rows(summary),
            thresholds_text=thresholds_text,
            metrics=METRICS,
            rows=rows,
            table_page=page,
            folded=_folded_rows(rows, page),
            unevaluated=unevaluated,
            loss=_loss_section(summary),
            checks=check_sections(summary),
            accuracy=record,
            accuracy_rows=accuracy_rows(summary),
            accuracy_metrics=(*CURVE_METRICS, "tp", "fp", "fn"),
            accuracy_figure=(
                accuracy_figure(record, matching_threshold=matching_threshold) if record else None
            ),
            visuals=_visuals(rows, panels, deferred, pictures, report_dir),
            visual_names=_visual_names(rows, panels),
            n_images=sum(1 for row in rows if row.kind == "image"),
            n_with_panels=len(panels) if panels is not None else 0,
            pictures_folder=pictures.name if pictures is not None else None,
            iou_threshold=matching_threshold,
            fn_colour=_colour(FN_COLOUR),
            fp_colour=_colour(FP_COLOUR),
            iou_gradient=", ".join(iou_legend()),
            output_dir=str(output_dir or ""),
        )
    )
    # One non-ASCII character (≥, ×, –) makes Python store the whole fragment at 2 bytes
    # per character; as character references the same page is ASCII, 1 byte per character.
    for chunk in chunks:
        if not chunk.isascii():
            chunk = chunk.encode("ascii", "xmlcharrefreplace").decode("ascii")
        yield chunk


def _folded_rows(rows: Iterable[MetricsRow], page: int) -> frozenset[str]:
    """The passing images after the first ``page``: hidden until the reader asks.

    Every failed, warned or unevaluated image stays in view, whatever the table's size;
    ``page`` 0 hides nothing.
    """
    if not page:
        return frozenset()
    passing = [row.subject for row in rows if row.kind == "image" and row.status == "pass"]
    return frozenset(passing[page:])


def render_failure(detail: str, output_dir: Path) -> str:
    """A box saying the report sections could not be rendered, and where the data is."""
    return str(
        _environment()
        .get_template("failure.jinja2")
        .render(detail=detail, output_dir=str(output_dir))
    )
