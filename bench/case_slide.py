"""Case g: one whole-slide pair in --predictions mode: peak memory and exact counts."""

from __future__ import annotations

from pathlib import Path

from harness import Row, make_inputs, measured, predictions_args, pytest_qc, summary, verdict

COUNTS = ("tp", "fp", "fn", "n_true", "n_pred")


def slide_rows(work: Path, side: int) -> list[Row]:
    """Evaluate one ``side`` x ``side`` uint32 pair, then its four quadrants separately.

    Parameters
    ----------
    work : Path
        The bench's work folder.
    side : int
        The slide's side in pixels (a multiple of 2,048).

    Returns
    -------
    list of Row
        Peak RSS against 4x the bytes of the two label images; the slide's counts
        against the sums over its quadrants.
    """
    root = work / f"slide_{side}"
    label_bytes = int(str(make_inputs("slide", root, side)["label_bytes"]))
    run = measured(pytest_qc(*predictions_args(root / "slide", work / "out_slide")), work)
    measured(pytest_qc(*predictions_args(root / "quadrants", work / "out_quadrants")), work)
    (whole,) = summary(work / "out_slide")["images"]
    parts = summary(work / "out_quadrants")["images"]
    if whole["metrics"] is None or any(part["metrics"] is None for part in parts):
        errors = "; ".join(str(image["error"]) for image in [whole, *parts] if image["error"])
        raise RuntimeError(f"case g: an image was not evaluated: {errors}")
    ours = {key: int(whole["metrics"][key]) for key in COUNTS}
    summed = {key: sum(int(part["metrics"][key]) for part in parts) for key in COUNTS}
    budget = 4 * label_bytes / 2**20
    share = run.rss / budget
    return [
        Row(
            f"g. whole slide {side:,}² uint32, peak RSS",
            "4x the two label images",
            f"{run.rss:,.0f} MiB ({run.wall:.0f} s)",
            f"{budget:,.0f} MiB",
            f"{share:.2f}x",
            "<= 1.0",
            verdict(share <= 1.0),
        ),
        Row(
            "g. slide counts tp/fp/fn/n_true/n_pred",
            "sums over 4 quadrants",
            "/".join(str(ours[key]) for key in COUNTS),
            "/".join(str(summed[key]) for key in COUNTS),
            "-",
            "equal",
            verdict(ours == summed),
        ),
    ]
