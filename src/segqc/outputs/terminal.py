"""The ``segqc`` section of pytest's terminal summary, read from the summary document.

Lines are ``(level, text)`` pairs (:func:`summary_lines`); the plugin writes them with
pytest's terminal reporter, in red for ``error``/``fail`` and yellow for ``warn``. The
headline counts exactly the FAIL and WARN lines printed below it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["summary_lines"]


def _broken(records: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return [r for r in records if r.get("outcome") in ("fail", "warn")]


def summary_lines(
    summary: Mapping[str, Any],
    *,
    problems: Sequence[str] = (),
    written: Sequence[Path] = (),
) -> list[tuple[str, str]]:
    """What the terminal shows at the end of a QC session.

    Parameters
    ----------
    summary : mapping
        The summary.json document.
    problems : sequence of str
        Outputs that could not be written, and other problems of the session.
    written : sequence of Path
        The output files written.

    Returns
    -------
    list of (level, text)
        Levels: ``info``, ``note``, ``error``, ``fail``, ``warn``.
    """
    images = summary.get("images") or []
    errors = [image for image in images if image.get("error")]
    broken = _broken(summary.get("limits") or [])
    loss = summary.get("loss_curve") or {}
    broken_loss = _broken(loss.get("checks") or [])
    agreement = summary.get("device_agreement") or {}
    broken_agreement = _broken(agreement.get("verdicts") or [])
    counted = [*broken, *broken_loss, *broken_agreement]
    n_fail = sum(v["outcome"] == "fail" for v in counted)
    n_warn = sum(v["outcome"] == "warn" for v in counted)
    n_pairs = summary["qc"]["n_pairs"]
    lines: list[tuple[str, str]] = []
    if images:
        lines.append(
            (
                "info",
                f"{len(images) - len(errors)} of {n_pairs} QC images evaluated; "
                f"{n_fail} limit{'s' if n_fail != 1 else ''} failed, "
                f"{n_warn} warning{'s' if n_warn != 1 else ''}",
            )
        )
    else:
        lines.append(("info", f"0 of {n_pairs} QC images evaluated (no image test ran)"))
    for image in images:
        lines += [("note", note) for note in image.get("notes") or []]
    lines += [("error", str(image["error"])) for image in errors]
    lines += [(str(v["outcome"]), str(v["message"])) for v in broken]
    lines += [(str(v["outcome"]), f"loss_curve::{v['message']}") for v in broken_loss]
    lines += [(str(v["outcome"]), f"device_agreement::{v['message']}") for v in broken_agreement]
    lines += [("error", problem) for problem in problems]
    lines += [("info", f"wrote {path}") for path in written]
    return lines
