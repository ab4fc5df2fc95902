"""Bootstrap confidence intervals over QC images, and the worst-images mean.

The unit of resampling is the image: a QC set of 5–30 images is a sample of the images
the model will meet, and objects within an image are not independent. Each bootstrap
replicate draws ``n_images`` image indices with replacement (a seeded
``numpy.random.Generator``), re-pools the replicate's counts (tp, fp, fn, n_true, n_pred,
foreground pixels, matched-IoU sums) and recomputes the ratios with the same formulas as
:func:`segqc.metrics.scores.pool`; image-mean metrics are the replicate's mean of the
per-image values. Intervals are percentile intervals (Efron & Tibshirani 1993, ch. 13).

For two models on the same images, :func:`paired_delta_intervals` applies the *same*
resampled indices to both (a paired bootstrap), so the interval of ``new - old`` reflects
how consistently the models differ image by image, not how hard the images are.

Everything is vectorised over replicates: a replicate is a row of image weights
(how often each image was drawn), and pooled sums are one matrix product.

References
----------
B. Efron, R. J. Tibshirani, *An Introduction to the Bootstrap*, Chapman & Hall, 1993.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from segqc.metrics.catalogue import METRIC_KEYS
from segqc.metrics.scores import QcScores, image_mean, metric_columns, pool

__all__ = [
    "COUNT_COLUMNS",
    "Interval",
    "bootstrap_intervals",
    "count_matrix",
    "paired_delta_intervals",
    "pooled_from_sums",
    "pooled_replicates",
    "resample_weights",
    "weight_blocks",
    "worst_images",
]

#: The additive per-image quantities every pooled metric is computed from.
COUNT_COLUMNS: tuple[str, ...] = (
    "tp", "fp", "fn", "n_true", "n_pred", "intersection", "union", "sum_matched_score",
)  # fmt: skip


@dataclass(frozen=True)
class Interval:
    """A point estimate with its bootstrap percentile interval ``[low, high]``."""

    value: float
    low: float
    high: float

    def as_dict(self) -> dict[str, float]:
        """``{"value", "ci_low", "ci_high"}`` for summary.json."""
        return {"value": self.value, "ci_low": self.low, "ci_high": self.high}

    def excludes_zero(self) -> bool:
        """Whether 0 lies outside the interval."""
        return self.low > 0 or self.high < 0

    def flipped(self) -> Interval:
        """The interval of ``-x`` (e.g. a drop from a delta)."""
        return Interval(0.0 - self.value, 0.0 - self.high, 0.0 - self.low)


def count_matrix(scores: Sequence[QcScores]) -> np.ndarray:
    """Per-image counts, shape ``(n_images, len(COUNT_COLUMNS))``, float64."""
    rows = [
        (
            s.matching.tp, s.matching.fp, s.matching.fn, s.matching.n_true, s.matching.n_pred,
            s.foreground.intersection, s.foreground.union, s.matching.sum_matched_score,
        )
        for s in scores
    ]  # fmt: skip
    return np.asarray(rows, dtype=np.float64).reshape(len(rows), len(COUNT_COLUMNS))


def _ratio(num: np.ndarray, den: np.ndarray, *, where: np.ndarray, empty: float) -> np.ndarray:
    out = np.full(np.broadcast(num, den).shape, empty, dtype=np.float64)
    np.divide(num, den, out=out, where=where & (den != 0))
    return out


def pooled_from_sums(sums: np.ndarray) -> dict[str, np.ndarray]:
    """Every QC metric from pooled counts, vectorised over leading axes.

    Parameters
    ----------
    sums : np.ndarray
        Shape ``(..., len(COUNT_COLUMNS))``: summed counts in :data:`COUNT_COLUMNS` order.

    Returns
    -------
    dict of str to np.ndarray
        The 13 metrics by key. Same formulas and zero conventions as
        :func:`segqc.metrics.matching.pool_matching` (ratios are 0 when tp = 0, pixel IoU
        is 1 when both masks are empty); the matched-IoU sum is kept in float64, so values
        can differ from :func:`segqc.metrics.scores.pool` by float32 rounding (~1e-7).
    """
    tp, fp, fn, n_true, n_pred, inter, union, sms = np.moveaxis(sums, -1, 0)
    has_tp = tp > 0
    return {
        "pixel_iou": _ratio(inter, union, where=union > 0, empty=1.0),
        "fp": fp,
        "tp": tp,
        "fn": fn,
        "precision": _ratio(tp, tp + fp, where=has_tp, empty=0.0),
        "recall": _ratio(tp, tp + fn, where=has_tp, empty=0.0),
        "accuracy": _ratio(tp, tp + fp + fn, where=has_tp, empty=0.0),
        "f1": _ratio(2 * tp, 2 * tp + fp + fn, where=has_tp, empty=0.0),
        "n_true": n_true,
        "n_pred": n_pred,
        "mean_true_score": _ratio(sms, n_true, where=n_true > 0, empty=0.0),
        "mean_matched_score": _ratio(sms, tp, where=has_tp, empty=0.0),
        "panoptic_quality": _ratio(sms, tp + fp / 2 + fn / 2, where=(tp + fp + fn) > 0, empty=0.0),
    }


#: Draws per block of replicates (8 MiB of int64): the replicates are drawn and re-pooled
#: a block at a time, so memory does not grow with replicates x images.
_BLOCK_DRAWS = 1 << 20


def weight_blocks(n_images: int, *, n: int, seed: int) -> Iterator[np.ndarray]:
    """How often each image is drawn in each of ``n`` bootstrap replicates, by blocks.

    Yields
    ------
    np.ndarray
        int64, shape ``(rows, n_images)``, a block of consecutive replicates; each row
        sums to ``n_images``. Together the blocks are :func:`resample_weights`: every
        block holds an even number of draws, and numpy's bounded integers come two per
        64-bit word, so drawing block by block continues the same random stream.
    """
    if n_images < 1:
        raise ValueError(f"`n_images` must be at least 1, got {n_images}")
    rows = max(2, 2 * ((_BLOCK_DRAWS // n_images) // 2))
    rng = np.random.default_rng(seed)
    for start in range(0, n, rows):
        size = min(rows, n - start)
        indices = rng.integers(0, n_images, size=(size, n_images))
        flat = indices + n_images * np.arange(size)[:, None]
        yield np.bincount(flat.ravel(), minlength=size * n_images).reshape(size, n_images)


def resample_weights(n_images: int, *, n: int, seed: int) -> np.ndarray:
    """How often each image is drawn in each of ``n`` bootstrap replicates.

    Returns
    -------
    np.ndarray
        int64, shape ``(n, n_images)``; each row sums to ``n_images``. Row ``b`` counts
        the indices of ``numpy.random.default_rng(seed).integers(0, n_images, (n,
        n_images))[b]``, so the same seed always gives the same replicates.
    """
    return np.concatenate(list(weight_blocks(n_images, n=n, seed=seed)))


def pooled_replicates(scores: Sequence[QcScores], weights: np.ndarray) -> dict[str, np.ndarray]:
    """Every pooled metric of every replicate, as :func:`~segqc.metrics.scores.pool` does.

    Parameters
    ----------
    scores : sequence of QcScores
        One per image.
    weights : np.ndarray
        ``(n_replicates, n_images)`` draw counts (:func:`resample_weights`).

    Returns
    -------
    dict of str to np.ndarray
        One value per replicate for every key of :data:`METRIC_KEYS`. The ZeroCost and
        community metrics are re-pooled from summed counts in one matrix product each;
        a metric this module has no formula for falls back to calling ``pool`` on each
        replicate (slower, same numbers).
    """
    pooled = pooled_from_sums(weights @ count_matrix(scores))
    if hasattr(scores[0], "seg"):  # community metrics (SEG, AJI, DSB, SQ, RQ)
        pooled.update(_community_replicates(scores, weights, pooled))
    for key in METRIC_KEYS:
        if key not in pooled:
            pooled[key] = np.array(
                [pool([s for s, k in zip(scores, row, strict=True) for _ in range(k)]).values()[key]
                 for row in weights]
            )  # fmt: skip
    return pooled


def _community_replicates(
    scores: Sequence[Any], weights: np.ndarray, pooled: dict[str, np.ndarray]
) -> dict[str, np.ndarray]:
    seg = weights @ np.array(
        [(s.seg.n_true, s.seg.n_pred, s.seg.sum_jaccard) for s in scores], dtype=np.float64
    )
    aji = weights @ np.array([(s.aji.intersection, s.aji.union) for s in scores], np.float64)
    dsb = [
        weights @ np.array([getattr(s.dsb, k) for s in scores], np.float64)
        for k in ["tp", "fp", "fn"]
    ]
    n_true, n_pred, sum_jaccard = seg.T
    empty_seg = np.where(n_pred == 0, 1.0, 0.0)
    dsb_total = dsb[0] + dsb[1] + dsb[2]
    per_threshold = _ratio(dsb[0], dsb_total, where=dsb_total > 0, empty=1.0)
    tp, fp, fn = pooled["tp"], pooled["fp"], pooled["fn"]
    return {
        "seg": np.where(
            n_true > 0, _ratio(sum_jaccard, n_true, where=n_true > 0, empty=0.0), empty_seg
        ),
        "aji": _ratio(aji[:, 0], aji[:, 1], where=aji[:, 1] > 0, empty=1.0),
        "dsb_score": per_threshold.mean(axis=1),
        "sq": pooled["mean_matched_score"],
        "rq": _ratio(tp, tp + fp / 2 + fn / 2, where=(tp + fp + fn) > 0, empty=0.0),
    }


def _replicates(
    scores: Sequence[QcScores], blocks: Iterable[np.ndarray]
) -> dict[str, dict[str, np.ndarray]]:
    """Pooled and image-mean metrics of every replicate, re-pooled a block at a time."""
    values = np.ascontiguousarray(metric_columns(scores).T)  # (n_images, metrics)
    pooled: dict[str, list[np.ndarray]] = {}
    means: list[np.ndarray] = []
    for weights in blocks:
        for key, draws in pooled_replicates(scores, weights).items():
            pooled.setdefault(key, []).append(draws)
        means.append((weights @ values) / len(scores))
    mean = np.concatenate(means)
    return {
        "aggregate": {key: np.concatenate(parts) for key, parts in pooled.items()},
        "image_mean": {k: mean[:, i] for i, k in enumerate(METRIC_KEYS)},
    }


def _percentiles(samples: np.ndarray, confidence: float) -> tuple[float, float]:
    alpha = 1.0 - confidence
    low, high = np.quantile(samples, [alpha / 2, 1 - alpha / 2])
    return float(low), float(high)


def bootstrap_intervals(
    scores: Sequence[QcScores], *, n: int = 1000, confidence: float = 0.95, seed: int = 0
) -> dict[str, dict[str, Interval]]:
    """Percentile intervals of the pooled and image-mean metrics, resampling images.

    Parameters
    ----------
    scores : sequence of QcScores
        One per evaluated image (at least one).
    n : int
        Number of bootstrap replicates.
    confidence : float
        Coverage of the interval, e.g. 0.95.
    seed : int
        Seed of the generator; the same inputs and seed give identical intervals.

    Returns
    -------
    dict
        ``{"aggregate": {metric: Interval}, "image_mean": {metric: Interval}}``; the point
        values are :func:`~segqc.metrics.scores.pool` and
        :func:`~segqc.metrics.scores.image_mean` of ``scores``.
    """
    samples = _replicates(scores, weight_blocks(len(scores), n=n, seed=seed))
    points = {"aggregate": pool(scores).values(), "image_mean": image_mean(scores)}
    return {
        scope: {
            key: Interval(float(points[scope][key]), *_percentiles(draws, confidence))
            for key, draws in samples[scope].items()
        }
        for scope in samples
    }


def paired_delta_intervals(
    old: Sequence[QcScores],
    new: Sequence[QcScores],
    *,
    n: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[str, dict[str, Interval]]:
    """Paired bootstrap of ``new - old`` for pooled and image-mean metrics.

    ``old[i]`` and ``new[i]`` must be the same image. Each replicate resamples image
    indices once and applies them to both models.

    Returns
    -------
    dict
        ``{"aggregate": {metric: Interval}, "image_mean": {metric: Interval}}`` where
        ``value`` is the observed delta (new - old) and ``[low, high]`` its interval.
    """
    if len(old) != len(new):
        raise ValueError(f"`old` and `new` must pair up, got {len(old)} and {len(new)} images")
    # The same blocks for both models: drawn twice from the same seed.
    old_samples = _replicates(old, weight_blocks(len(old), n=n, seed=seed))
    new_samples = _replicates(new, weight_blocks(len(new), n=n, seed=seed))
    points = {
        "aggregate": (pool(old).values(), pool(new).values()),
        "image_mean": (image_mean(old), image_mean(new)),
    }
    result: dict[str, dict[str, Interval]] = {}
    for scope, (old_point, new_point) in points.items():
        result[scope] = {
            key: Interval(
                float(new_point[key] - old_point[key]),
                *_percentiles(new_samples[scope][key] - old_samples[scope][key], confidence),
            )
            for key in new_samples[scope]
        }
    return result


def worst_images(
    values: Sequence[tuple[str, float]],
    *,
    fraction: float,
    better: Literal["higher", "lower"],
) -> tuple[float, list[str]]:
    """Mean of a metric over the worst ``fraction`` of images (at least one image).

    Parameters
    ----------
    values : sequence of (image name, value)
    fraction : float
        In (0, 1]; ``ceil(fraction * n_images)`` images are taken.
    better : {"higher", "lower"}
        The worst images are the lowest values when higher is better, else the highest.
        Ties are broken by image name.

    Returns
    -------
    (mean, names)
        The mean over the worst images and their names, worst first.
    """
    if not values:
        raise ValueError("worst_images needs at least one image")
    if not 0 < fraction <= 1:
        raise ValueError(f"`fraction` must be in (0, 1], got {fraction}")
    k = max(1, math.ceil(fraction * len(values) - 1e-9))
    sign = 1.0 if better == "higher" else -1.0
    ranked = sorted(values, key=lambda item: (sign * item[1], item[0]))[:k]
    return float(np.mean([v for _, v in ranked])), [name for name, _ in ranked]
