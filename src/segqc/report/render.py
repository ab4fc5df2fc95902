"""Render the QC report sections from the summary.json document and the files on disk."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from segqc.accuracy import CURVE_METRICS
from segqc.metrics.catalogue import METRICS
from segqc.report.checks import check_sections
from segqc.report.content import (
    accuracy_rows,
    header_rows,
    image_statuses,
    metrics_rows,
    verdict_counts,
)
from segqc.report.figures import accuracy_figure, file_data_uri
from segqc.report.inline import DeferredImages
from segqc.report.visuals import (
    FN_COLOUR,
    FP_COLOUR,
    IOU_LEGEND,
    ImageVisual,
    Panel,
    load_visual,
    render_visual,
)
from segqc.reporting import QcSessionPlugin
from segqc.session import ImageOutcome, QcRun

__all__ = ["render_failure", "render_report"]

#: Written by the loss-curve checks next to summary.json; shown when summary.json has
#: a ``loss_curve`` record (so a stale file from an earlier run is never shown).
LOSS_FIGURE = "loss_curve.png"


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


def _summary_of(session_plugin: QcSessionPlugin, exitstatus: int) -> dict[str, Any]:
    """summary.json's document; built here only if segqc wrote none (nothing evaluated)."""
    if session_plugin.summary is not None:
        return session_plugin.summary
    from segqc.summary import build_summary, run_status

    run = session_plugin.run
    dataset = run.dataset()
    return build_summary(
        run,
        dataset,
        status=run_status(run, dataset, exitstatus=exitstatus),
        qc_folders=session_plugin.folders,
        ignored_files=[str(p) for p in session_plugin.ignored],
        test_counts=session_plugin.test_counts,
    )


def _loss_section(summary: Mapping[str, Any]) -> dict[str, Any] | None:
    """The loss-curve checks' figure, verdicts and key facts (None: the checks did not run).

    Reads the ``loss_curve`` record of summary.json (see :mod:`segqc.loss_session`).
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


def _visual_of(
    run: QcRun, outcome: ImageOutcome | None, deferred: DeferredImages | None
) -> ImageVisual | None:
    """The panels drawn when the image was evaluated, else drawn now from its files.

    With ``deferred``, panels read from a visuals file are given placeholders instead
    of their pictures, which :class:`DeferredImages` puts into the written report.
    """
    if outcome is None or outcome.scores is None:
        return None
    if outcome.visual_file is not None:
        try:
            visual = load_visual(outcome.visual_file)
        except (OSError, ValueError, KeyError, TypeError):
            pass  # removed or damaged: draw it again
        else:
            if deferred is None:
                return visual
            panels = tuple(
                Panel(panel.caption, deferred.placeholder(outcome.visual_file, index))
                for index, panel in enumerate(visual.panels)
            )
            return ImageVisual(panels, visual.note)
    return render_visual(run, outcome)


def _visuals(
    run: QcRun, rows: list[Any], deferred: DeferredImages | None
) -> Iterator[dict[str, Any]]:
    """One entry per image row, each visual loaded only when the template reaches it.

    A generator, so the report holds the panels of one image at a time besides the
    HTML rendered so far.
    """
    outcomes = {o.pair.name: o for o in run.outcomes}
    for row in rows:
        if row.kind != "image":
            continue
        visual = _visual_of(run, outcomes.get(row.subject), deferred)
        yield {"row": row, "visual": visual, "open": row.status in ("fail", "error")}


def _accuracy_png(run: QcRun, record: Mapping[str, Any], *, matching_threshold: float) -> str:
    """The accuracy-vs-IoU figure, from the picture cache when it was drawn before."""
    cache = run.picture_cache
    if cache is None:
        return accuracy_figure(record, matching_threshold=matching_threshold)
    from segqc.cache import picture_key
    from segqc.outputs import OutputError

    key = picture_key("accuracy figure", record=record, matching_threshold=matching_threshold)
    cached = cache.get(key)
    if cached is not None and isinstance(cached.get("data_uri"), str):
        return str(cached["data_uri"])
    data_uri = accuracy_figure(record, matching_threshold=matching_threshold)
    with contextlib.suppress(OutputError):  # not cached: drawn again next time
        cache.put(key, {"data_uri": data_uri})
    return data_uri


def _colour(rgb: tuple[int, ...]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*(int(c) for c in rgb))


def render_report(
    session_plugin: QcSessionPlugin, *, exitstatus: int, deferred: DeferredImages | None = None
) -> str:
    """All segqc sections of the report, as one HTML fragment.

    Parameters
    ----------
    session_plugin : QcSessionPlugin
        The run, its folders and the summary it built.
    exitstatus : int
        pytest's exit status so far (used only when no summary was built).
    deferred : DeferredImages, optional
        Collects the image panels as placeholders, to be put into the written file by
        :meth:`DeferredImages.inline_into`; None puts the pictures in the fragment.

    Returns
    -------
    str
        HTML rendered from ``resources/report/qc_report.jinja2`` with autoescaping.
    """
    summary = _summary_of(session_plugin, exitstatus)
    run = session_plugin.run
    rows = metrics_rows(summary)
    statuses = image_statuses(rows)
    record = summary.get("accuracy_vs_iou")
    matching_threshold = summary["matching"]["iou_threshold"]
    chunks = (
        _environment()
        .get_template("qc_report.jinja2")
        .generate(
            summary=summary,
            status=summary["status"],
            counts=verdict_counts(summary, statuses),
            header=header_rows(summary),
            thresholds_text=run.thresholds.text,
            metrics=METRICS,
            rows=rows,
            unevaluated=[p.name for p in run.pending()],
            loss=_loss_section(summary),
            checks=check_sections(summary),
            accuracy=record,
            accuracy_rows=accuracy_rows(summary),
            accuracy_metrics=(*CURVE_METRICS, "tp", "fp", "fn"),
            accuracy_png=(
                _accuracy_png(run, record, matching_threshold=matching_threshold)
                if record
                else None
            ),
            visuals=_visuals(run, rows, deferred),
            iou_threshold=matching_threshold,
            fn_colour=_colour(FN_COLOUR),
            fp_colour=_colour(FP_COLOUR),
            iou_gradient=", ".join(IOU_LEGEND),
            output_dir=str(session_plugin.output_dir),
        )
    )
    # One non-ASCII character (≥, ×, –) makes Python store the whole fragment at 2 bytes
    # per character (tens of MB when the pictures are in it, without ``deferred``); as
    # character references the same page is ASCII, 1 byte per character.
    return "".join(
        chunk if chunk.isascii() else chunk.encode("ascii", "xmlcharrefreplace").decode("ascii")
        for chunk in chunks
    )


def render_failure(detail: str, output_dir: Path) -> str:
    """A box saying the report sections could not be rendered, and where the data is."""
    return str(
        _environment()
        .get_template("failure.jinja2")
        .render(detail=detail, output_dir=str(output_dir))
    )
