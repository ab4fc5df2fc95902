"""The loss-curve figure: training and validation loss, linear and log scale.

Like ZeroCostDL4Mic's QC plot, with the lowest validation loss marked (the epoch
StarDist saved as ``weights_best.h5``). matplotlib is imported only here, when the figure
is drawn, and through its object API with the Agg canvas, so the process-wide backend
is never changed.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import numpy as np

from segqc import __version__
from segqc.checks.loss.history import LossHistory
from segqc.data.writing import atomic_write_bytes

#: PNG text chunk holding the fingerprint of the history a figure was drawn from.
_KEY = "segqc-history"

__all__ = ["history_fingerprint", "plot_loss_curves"]


def history_fingerprint(history: LossHistory) -> str:
    """SHA-256 of everything the figure shows (and of segqc's version, which draws it)."""
    digest = hashlib.sha256(f"{__version__}|{history.source}|{history.kind}".encode())
    columns = {"epochs": history.epochs, "loss": history.loss, "val_loss": history.val_loss}
    for name, values in sorted({**columns, **history.extras}.items()):
        digest.update(name.encode())
        if values is not None:
            digest.update(np.ascontiguousarray(values, dtype=np.float64).tobytes())
    return digest.hexdigest()


def _drawn_from(path: Path) -> str | None:
    """The fingerprint stored in an existing figure, if it is a readable segqc PNG."""
    try:
        from PIL import Image

        with Image.open(path) as image:
            return str(getattr(image, "text", {}).get(_KEY)) if image.format == "PNG" else None
    except (OSError, ValueError):
        return None


def plot_loss_curves(history: LossHistory, path: Path) -> Path:
    """Draw ``history`` as a PNG: linear scale on the left, log scale on the right.

    Parameters
    ----------
    history : LossHistory
        The training history. Extra ``*_loss`` columns (e.g. ``prob_loss``) are drawn as
        thin lines.
    path : Path
        Where the PNG goes (written through a temporary file).

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    segqc.data.writing.OutputError
        The file cannot be written.

    Notes
    -----
    The PNG carries a fingerprint of the history (:func:`history_fingerprint`); when
    ``path`` already holds a figure drawn from the same history by the same segqc, it is
    kept as it is, so re-running QC on an unchanged model does not redraw it.
    """
    fingerprint = history_fingerprint(history)
    if path.is_file() and _drawn_from(path) == fingerprint:
        return path
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(11, 4.2), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    epochs = history.epochs
    for axes, scale in zip(figure.subplots(1, 2), ("linear", "log"), strict=True):
        axes.plot(epochs, history.loss, color="tab:blue", label="training loss")
        if history.val_loss is not None:
            axes.plot(epochs, history.val_loss, color="tab:orange", label="validation loss")
        for name, values in sorted(history.extras.items()):
            if name.endswith("_loss"):
                style = "--" if name.startswith("val_") else ":"
                axes.plot(epochs, values, style, linewidth=0.8, alpha=0.6, label=name)
        watched = history.val_loss if history.val_loss is not None else history.loss
        if np.any(np.isfinite(watched)):
            best = int(np.nanargmin(watched))
            axes.plot(
                [epochs[best]], [watched[best]], "o", color="tab:red", markersize=7,
                label=f"minimum (epoch {epochs[best]})",
            )  # fmt: skip
        axes.set_yscale(scale)
        axes.set_xlabel("epoch")
        axes.set_ylabel("loss" + (" (log scale)" if scale == "log" else ""))
        axes.grid(True, which="both", alpha=0.3)
        axes.legend(fontsize="small")
    figure.suptitle(f"Training and validation loss — {history.source}", fontsize="medium")
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", metadata={_KEY: fingerprint})
    return atomic_write_bytes(path, buffer.getvalue())
