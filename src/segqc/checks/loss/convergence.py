"""Loss-curve convergence checks: ZeroCostDL4Mic's "Quality Control #1" as verdicts.

The seed's reading of training vs validation loss, made explicit:

* both still falling → train longer (``converged``, a warning by default);
* both flat → done;
* validation rising while training falls → overfitting: use the earlier weights
  (``weights_best.h5``), add training data, or augment (``overfitting``).

Each check is a pure function ``(history, settings) -> Verdict``; limits come from
the ``loss_curve:`` section of thresholds.yaml (:class:`LossCurveSettings`).

Smoothing
---------
Trend checks compare *smoothed* values so that one noisy epoch cannot fail a healthy
curve: the trailing moving median of ``smoothing_window`` epochs,
``s[i] = median(x[i-w+1], ..., x[i])`` (fewer values for the first ``w-1`` epochs).
The value "at the end" is therefore the median of the last ``w`` epochs. Losses are
assumed positive (StarDist's are: binary cross-entropy plus mean absolute error).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from segqc.checks.loss.history import LossHistory
from segqc.checks.verdict import Outcome, Verdict
from segqc.thresholds.loss import LossCurveSettings

__all__ = [
    "LOSS_CHECKS",
    "LossCurveSettings",
    "check_converged",
    "check_finite",
    "check_generalisation_gap",
    "check_history",
    "check_learning",
    "check_overfitting",
    "loss_verdict",
    "moving_median",
]


def loss_verdict(
    check: str, outcome: Outcome, message: str, values: dict[str, Any] | None = None
) -> Verdict:
    """The verdict of one loss-curve check.

    Parameters
    ----------
    check : str
        The check's name (one of :data:`LOSS_CHECKS`); the thresholds.yaml section is
        ``loss_curve.<check>``.
    outcome : {"pass", "fail", "warn", "skip"}
        ``skip``: the history cannot answer (too short, no val_loss, NaN values).
    message : str
        One line: diagnosis, numbers, action and the thresholds.yaml key.
    values : dict, optional
        The key numbers (JSON-ready), also recorded as JUnit properties.

    Returns
    -------
    Verdict
        Scope ``loss_curve``, subject ``loss curve``, metric ``check``; its record has
        ``check, outcome, message, values, key``.
    """
    key = f"loss_curve.{check}"
    record = {
        "check": check,
        "outcome": outcome,
        "message": message,
        "values": dict(values or {}),
        "key": key,
    }
    return Verdict("loss_curve", "loss curve", check, outcome, message, key, record=record)


def moving_median(values: np.ndarray, window: int) -> np.ndarray:
    """Trailing moving median: ``s[i] = median(values[max(0, i - window + 1) : i + 1])``.

    Parameters
    ----------
    values : ndarray, shape (n,)
    window : int
        Number of epochs, at least 1 (1 returns the values unchanged).

    Returns
    -------
    ndarray, shape (n,)
    """
    if window < 1:
        raise ValueError(f"`window` must be at least 1, got {window}")
    values = np.asarray(values, dtype=float)
    return np.array([np.median(values[max(0, i - window + 1) : i + 1]) for i in range(len(values))])


def _pct(fraction: float) -> str:
    value = 100 * abs(fraction)
    return f"{value:.0f}%" if value >= 10 else f"{value:.1f}%"


def _rel(new: float, old: float) -> float:
    """Relative change from ``old`` to ``new`` (losses are positive; 0 stays 0)."""
    return (new - old) / abs(old) if old != 0 else (0.0 if new == old else np.inf)


def _not_finite(history: LossHistory) -> str | None:
    series = [("loss", history.loss)]
    if history.val_loss is not None:
        series.append(("val_loss", history.val_loss))
    bad = [name for name, values in series if not np.all(np.isfinite(values))]
    return " and ".join(bad) if bad else None


def _skip_if_not_finite(check: str, history: LossHistory) -> Verdict | None:
    bad = _not_finite(history)
    if bad is None:
        return None
    return loss_verdict(
        check, "skip", f"{check}: not judged, {bad} has NaN/inf values (see loss_curve::finite)"
    )


def check_finite(history: LossHistory, settings: LossCurveSettings) -> Verdict:
    """Fail when loss or val_loss is NaN or infinite at any epoch, naming the first one."""
    problems = []
    values: dict[str, Any] = {"n_epochs": history.n_epochs}
    series = [("loss", history.loss)]
    if history.val_loss is not None:
        series.append(("val_loss", history.val_loss))
    for name, data in series:
        bad = np.flatnonzero(~np.isfinite(data))
        values[f"{name}_non_finite_epochs"] = len(bad)
        if len(bad):
            first = int(bad[0])
            what = "NaN" if np.isnan(data[first]) else "inf"
            problems.append(
                f"{name} is {what} from epoch {history.epochs[first]} "
                f"({len(bad)} of {history.n_epochs} epochs not finite)"
            )
    names = " and ".join(name for name, _ in series)
    if not problems:
        note = "" if history.val_loss is not None else " (no val_loss recorded)"
        return loss_verdict(
            "finite",
            "pass",
            f"finite: {names} finite over all {history.n_epochs} epochs{note}",
            values,
        )
    return loss_verdict(
        "finite",
        settings.finite.level,
        f"finite: {'; '.join(problems)}; training diverged — lower the learning rate, "
        "check the images and masks for NaN/inf values, and retrain "
        "(thresholds.yaml loss_curve.finite)",
        values,
    )


def check_learning(history: LossHistory, settings: LossCurveSettings) -> Verdict:
    """Training loss fell by at least ``min_drop`` from the first to the last epochs.

    Compares the mean training loss of the first ``k`` and last ``k`` epochs, with
    ``k = min(window, n // 2)`` so short histories still get a verdict.
    """
    skipped = _skip_if_not_finite("learning", history)
    if skipped:
        return skipped
    n = history.n_epochs
    if n < 2:
        message = (
            "learning: only 1 epoch recorded, so it cannot tell whether the training loss "
            "fell; train for more epochs"
        )
        return loss_verdict("learning", "skip", message)
    limits = settings.learning
    k = max(1, min(limits.window, n // 2))
    start, end = float(np.mean(history.loss[:k])), float(np.mean(history.loss[-k:]))
    drop = -_rel(end, start)
    first = _epochs(history, 0, k)
    last = _epochs(history, n - k, n)
    values = {"loss_start": start, "loss_end": end, "drop": drop, "window": k}
    numbers = f"mean of epochs {first}: {start:.4g} → epochs {last}: {end:.4g}"
    if drop >= limits.min_drop:
        return loss_verdict(
            "learning", "pass", f"learning: training loss fell {_pct(drop)} ({numbers})", values
        )
    key = (
        f"(limit: a fall of at least {_pct(limits.min_drop)}, thresholds.yaml "
        "loss_curve.learning.min_drop)"
    )
    if drop < 0:
        message = (
            f"learning: diverging — training loss rose {_pct(drop)} ({numbers}); lower the "
            f"learning rate and check the training images and masks {key}"
        )
    else:
        message = (
            f"learning: not learning — training loss fell only {_pct(drop)} ({numbers}); check "
            "that images and masks match, raise the learning rate or train longer "
            f"{key}"
        )
    return loss_verdict("learning", limits.level, message, values)


def _epochs(history: LossHistory, start: int, stop: int) -> str:
    first, last = int(history.epochs[start]), int(history.epochs[stop - 1])
    return str(first) if first == last else f"{first}–{last}"


def _watched(history: LossHistory) -> tuple[str, np.ndarray]:
    if history.val_loss is not None:
        return "val_loss", history.val_loss
    return "loss", history.loss


def check_converged(history: LossHistory, settings: LossCurveSettings) -> Verdict:
    """The smoothed val_loss changed by at most ``tolerance`` over the last ``last_epochs``.

    Without val_loss the training loss is watched instead (the message says so). A
    history of ``last_epochs`` epochs or fewer is too short to have converged.
    """
    skipped = _skip_if_not_finite("converged", history)
    if skipped:
        return skipped
    limits = settings.converged
    name, series = _watched(history)
    n = history.n_epochs
    if n <= limits.last_epochs:
        return loss_verdict(
            "converged",
            limits.level,
            f"converged: only {n} epoch{'s' if n > 1 else ''} — too short to tell whether "
            f"training converged (needs more than {limits.last_epochs}, thresholds.yaml "
            "loss_curve.converged.last_epochs); train longer",
            {"n_epochs": n},
        )
    smooth = moving_median(series, settings.smoothing_window)
    before, end = float(smooth[-1 - limits.last_epochs]), float(smooth[-1])
    change = _rel(end, before)
    values = {
        "watched": name,
        "smoothed_before": before,
        "smoothed_end": end,
        "change": change,
        "last_epochs": limits.last_epochs,
    }
    span = f"over the last {limits.last_epochs} epochs ({before:.4g} → {end:.4g})"
    tolerance = f"tolerance {_pct(limits.tolerance)}, thresholds.yaml loss_curve.converged"
    if abs(change) <= limits.tolerance:
        return loss_verdict(
            "converged", "pass", f"converged: smoothed {name} changed {_pct(change)} {span}", values
        )
    if change < 0:
        message = (
            f"converged: still improving — train longer: smoothed {name} fell {_pct(change)} "
            f"{span} ({tolerance}.tolerance)"
        )
    else:
        message = (
            f"converged: not converged — smoothed {name} rose {_pct(change)} {span}; see "
            f"loss_curve::overfitting ({tolerance}.tolerance)"
        )
    return loss_verdict("converged", limits.level, message, values)


def _needs_validation(check: str, history: LossHistory) -> Verdict | None:
    if history.val_loss is not None:
        return None
    return loss_verdict(
        check,
        "skip",
        f"{check}: no val_loss recorded in {history.source}, "
        "so it cannot be judged; train with validation data",
    )


def check_overfitting(history: LossHistory, settings: LossCurveSettings) -> Verdict:
    """The smoothed val_loss at the end is at most ``max_rise`` above its smoothed minimum.

    The epoch named is the one with the lowest raw val_loss: the epoch StarDist's
    checkpoint saved as ``weights_best.h5``. When val_loss rose while the (smoothed)
    training loss fell since that epoch the model overfits; when both rose, training
    became unstable.
    """
    skipped = _skip_if_not_finite("overfitting", history) or _needs_validation(
        "overfitting", history
    )
    if skipped:
        return skipped
    assert history.val_loss is not None
    n, window = history.n_epochs, settings.smoothing_window
    if n < max(3, window):
        message = (
            f"overfitting: only {n} epochs, too short to judge (needs {max(3, window)}, "
            "loss_curve.smoothing_window)"
        )
        return loss_verdict("overfitting", "skip", message)
    limits = settings.overfitting
    val = moving_median(history.val_loss, window)
    loss = moving_median(history.loss, window)
    minimum = float(val.min())
    rise = _rel(float(val[-1]), minimum)
    best = int(np.argmin(history.val_loss))
    epoch = int(history.epochs[best])
    loss_fall = -_rel(float(loss[-1]), float(loss[best]))
    values = {
        "rise": rise,
        "smoothed_val_min": minimum,
        "smoothed_val_end": float(val[-1]),
        "best_epoch": epoch,
        "loss_fall": loss_fall,
    }
    key = f"(limit: {_pct(limits.max_rise)}, thresholds.yaml loss_curve.overfitting.max_rise)"
    if rise <= limits.max_rise:
        message = (
            f"overfitting: none — val_loss ends {_pct(rise)} above its minimum (epoch {epoch})"
        )
        return loss_verdict("overfitting", "pass", f"{message} {key}", values)
    if loss_fall > 0:
        message = (
            f"overfitting: val_loss rose {_pct(rise)} above its minimum (epoch {epoch}) while "
            f"loss fell {_pct(loss_fall)}; use the epoch-{epoch} weights (weights_best.h5), "
            f"add training data, or augment {key}"
        )
    else:
        message = (
            f"overfitting: unstable — val_loss rose {_pct(rise)} above its minimum (epoch "
            f"{epoch}) and loss rose {_pct(loss_fall)} too; lower the learning rate, or use "
            f"the epoch-{epoch} weights (weights_best.h5) {key}"
        )
    return loss_verdict("overfitting", limits.level, message, values)


def check_generalisation_gap(history: LossHistory, settings: LossCurveSettings) -> Verdict:
    """The smoothed final val_loss is at most ``max_ratio`` times the training loss."""
    check = "generalisation_gap"
    skipped = _skip_if_not_finite(check, history) or _needs_validation(check, history)
    if skipped:
        return skipped
    assert history.val_loss is not None
    val = float(moving_median(history.val_loss, settings.smoothing_window)[-1])
    loss = float(moving_median(history.loss, settings.smoothing_window)[-1])
    if loss <= 0:
        return loss_verdict(
            check,
            "skip",
            f"{check}: final training loss is {loss:.4g}, so val_loss / loss is undefined",
        )
    limits = settings.generalisation_gap
    ratio = val / loss
    values = {"ratio": ratio, "smoothed_val_end": val, "smoothed_loss_end": loss}
    numbers = f"final val_loss is {ratio:.2f}× the training loss ({val:.4g} vs {loss:.4g})"
    if ratio <= limits.max_ratio:
        return loss_verdict(
            check, "pass", f"{check}: {numbers}, within {limits.max_ratio:g}×", values
        )
    return loss_verdict(
        check,
        limits.level,
        f"{check}: {numbers}; the model fits its training images much better than unseen "
        "ones — add training data or augmentation, or check that training and validation "
        f"images are alike (limit: {limits.max_ratio:g}×, thresholds.yaml "
        f"loss_curve.generalisation_gap.max_ratio)",
        values,
    )


#: The checks, in the order the QC tests run them, by name.
LOSS_CHECKS: dict[str, Callable[[LossHistory, LossCurveSettings], Verdict]] = {
    "finite": check_finite,
    "learning": check_learning,
    "converged": check_converged,
    "overfitting": check_overfitting,
    "generalisation_gap": check_generalisation_gap,
}


def check_history(history: LossHistory, settings: LossCurveSettings) -> dict[str, Verdict]:
    """Run every check of :data:`LOSS_CHECKS`; verdicts by check name."""
    return {name: check(history, settings) for name, check in LOSS_CHECKS.items()}
