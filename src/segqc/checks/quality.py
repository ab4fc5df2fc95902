"""Quality Control #3 (ZeroCostDL4Mic): the metrics table judged against its limits.

Pure functions: outcomes and thresholds in, verdicts out. Per image against
``per_image``; over the QC set pooled (tp, fp, fn summed over images) against
``aggregate`` and as the mean over images against ``image_mean``.

Negative controls: an image whose ground truth has no object is judged on false
positives (:func:`judge_image`). Its ratios that are 0/0 (:func:`undefined_metrics`) are
not judged, and are left out of the image means; metrics.csv and summary.json's
``images[].metrics`` keep stardist's numbers (0 for 0/0).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from segqc.checks.verdict import Outcome, Verdict, judge
from segqc.metrics.catalogue import METRIC_KEYS, METRICS
from segqc.metrics.scores import QcScores, metric_columns, pool
from segqc.pipeline.outcome import ImageOutcome
from segqc.thresholds.schema import Limit, Thresholds

__all__ = [
    "NEGATIVE_CONTROL_RULE",
    "DatasetOutcome",
    "defined_image_mean",
    "iter_verdicts",
    "judge_dataset",
    "judge_image",
    "negative_control_verdict",
    "undefined_metrics",
]

#: ``record["rule"]`` of the verdict of a negative-control image (see :func:`judge_image`).
NEGATIVE_CONTROL_RULE = "negative_control"

_RATIOS = frozenset(spec.key for spec in METRICS if spec.kind == "ratio")
# With no ground-truth object, tp = fn = 0 and n_true = 0 whatever is predicted, so
# these are 0/0; the other ratios have n_pred (or predicted pixels) below the line.
_UNDEFINED_WITHOUT_TRUTH = frozenset(
    {"recall", "mean_true_score", "mean_matched_score", "seg", "sq"}
)


def undefined_metrics(values: Mapping[str, float]) -> frozenset[str]:
    """The ratios that are 0/0 on a negative control (a ground truth with no object).

    Parameters
    ----------
    values : mapping
        Metric values by key, as :meth:`QcScores.values` gives them (or summary.json
        records them): ``n_true`` and ``n_pred`` decide.

    Returns
    -------
    frozenset of str
        Empty unless ``n_true == 0``. Then ``recall``, ``mean_true_score``,
        ``mean_matched_score``, ``seg`` and ``sq`` (nothing to find, nothing matched);
        when nothing is predicted either, every ratio (``pixel_iou``, ``precision``,
        ``f1``, ``aji``, ... are 0/0 too). With objects predicted, ``precision``,
        ``accuracy``, ``f1``, ``panoptic_quality``, ``rq``, ``dsb_score``, ``pixel_iou``
        and ``aji`` are a true 0 and stay defined.
    """
    if values.get("n_true") != 0:
        return frozenset()
    if values.get("n_pred") == 0:
        return _RATIOS
    return _UNDEFINED_WITHOUT_TRUTH


def negative_control_verdict(subject: str, n_pred: float, limits: Mapping[str, Limit]) -> Verdict:
    """The verdict of a negative-control image: passes only with no object predicted.

    Parameters
    ----------
    subject : str
        The image name.
    n_pred : float
        Objects predicted on it.
    limits : mapping
        The ``per_image`` limits: the rule fails when any of them is ``level: fail``,
        and only warns when every one is ``level: warn``.

    Returns
    -------
    Verdict
        Scope ``per_image``, metric ``n_pred``, key ``per_image``; its record has the
        fields of :func:`~segqc.checks.verdict.judge` (``max`` 0) plus ``rule``:
        ``"negative_control"``.
    """
    n = int(n_pred)
    level: Outcome = "fail" if any(lim.level == "fail" for lim in limits.values()) else "warn"
    passed = n == 0
    outcome: Outcome = "pass" if passed else level
    if passed:
        message = (
            f"{subject}: negative control, no object predicted where the ground truth "
            "has none (n_pred = 0)"
        )
    else:
        message = (
            f"{subject}: {n} object{'s' if n != 1 else ''} predicted where the ground truth "
            f"has none (n_pred = {n}, an image without objects passes only with none "
            "predicted; thresholds.yaml per_image)"
        )
    record = {
        "scope": "per_image",
        "subject": subject,
        "metric": "n_pred",
        "value": float(n_pred),
        "min": None,
        "max": 0.0,
        "level": level,
        "passed": passed,
        "outcome": outcome,
        "key": "per_image",
        "message": message,
        "rule": NEGATIVE_CONTROL_RULE,
    }
    return Verdict(
        "per_image", subject, "n_pred", outcome, message, "per_image", float(n_pred), record
    )


def judge_image(outcome: ImageOutcome, thresholds: Thresholds) -> list[Verdict]:
    """The ``per_image`` verdicts of one image ([] when it has no scores).

    An image whose ground truth has no object (``n_true == 0``, a negative control) is
    judged on false positives: it passes with nothing predicted and fails naming
    ``n_pred`` otherwise (:func:`negative_control_verdict`, listed first). Its ratios
    that are 0/0 (:func:`undefined_metrics`: ``recall``, ``mean_true_score``, ... and,
    with nothing predicted, every ratio) are not judged; its counts, and the ratios that
    are a true 0 when objects are predicted (``precision``, ``f1``, ...), are judged
    against their limits as on any image. The rule applies only when ``per_image`` sets
    a limit; it fails unless every ``per_image`` limit is ``level: warn``.
    """
    if outcome.scores is None:
        return []
    values = outcome.scores.values()
    limits = thresholds.limits("per_image")
    subject = outcome.pair.name
    undefined = undefined_metrics(values)
    if values["n_true"] != 0 or not limits:
        return judge(values, limits, scope="per_image", subject=subject)
    defined = {key: limit for key, limit in limits.items() if key not in undefined}
    return [
        negative_control_verdict(subject, values["n_pred"], limits),
        *judge(values, defined, scope="per_image", subject=subject),
    ]


def defined_image_mean(scores: Sequence[QcScores]) -> dict[str, float]:
    """Mean of every metric over the images where it is defined, each image weighing the same.

    Like :func:`segqc.metrics.scores.image_mean`, except that a ratio that is 0/0 on a
    negative control (:func:`undefined_metrics`) is left out of that ratio's mean
    instead of counting as 0: an image with no ground-truth object and no prediction
    does not lower the mean f1. A ratio undefined on every image is NaN. Without
    negative controls the two are equal. ``stardist.matching.matching_dataset(...,
    by_image=True)`` averages stardist's 0 over every image instead.
    """
    if not scores:
        raise ValueError("cannot average an empty list of images")
    columns = dict(zip(METRIC_KEYS, metric_columns(scores), strict=True))
    undefined = [
        undefined_metrics({"n_true": n_true, "n_pred": n_pred})
        for n_true, n_pred in zip(columns["n_true"], columns["n_pred"], strict=True)
    ]
    mean = {}
    for key, column in columns.items():
        defined = np.fromiter((key not in skip for skip in undefined), bool, len(undefined))
        mean[key] = float(np.mean(column[defined])) if defined.any() else math.nan
    return mean


@dataclass(frozen=True)
class DatasetOutcome:
    """Scores over all evaluated images: pooled and image mean, with their verdicts."""

    n_images: int
    pooled: QcScores | None
    mean: dict[str, float] | None
    pooled_verdicts: list[Verdict]
    mean_verdicts: list[Verdict]


def judge_dataset(outcomes: Iterable[ImageOutcome], thresholds: Thresholds) -> DatasetOutcome:
    """Pool the evaluated images and judge the ``aggregate`` and ``image_mean`` limits.

    Negative controls pool like any image (their false positives add to ``fp``); the
    image mean is :func:`defined_image_mean`. A value undefined over the whole QC set
    (every image a negative control) is not judged.
    """
    scores = [o.scores for o in outcomes if o.scores is not None]
    if not scores:
        return DatasetOutcome(0, None, None, [], [])
    pooled = pool(scores)
    pooled_values = pooled.values()
    mean = defined_image_mean(scores)
    pooled_undefined = undefined_metrics(pooled_values)
    aggregate = {
        key: limit
        for key, limit in thresholds.limits("aggregate").items()
        if key not in pooled_undefined
    }
    # Undefined on every image: no image to average.
    nowhere = frozenset.intersection(*(undefined_metrics(s.values()) for s in scores))
    image_mean = {
        key: limit for key, limit in thresholds.limits("image_mean").items() if key not in nowhere
    }
    return DatasetOutcome(
        n_images=len(scores),
        pooled=pooled,
        mean=mean,
        pooled_verdicts=judge(pooled_values, aggregate, scope="aggregate", subject="pooled"),
        mean_verdicts=judge(mean, image_mean, scope="image_mean", subject="image mean"),
    )


def iter_verdicts(
    outcomes: Sequence[ImageOutcome], dataset: DatasetOutcome, thresholds: Thresholds
) -> Iterator[Verdict]:
    """Every metric-limit verdict: per image (in QC order), then pooled, then image mean."""
    for outcome in outcomes:
        yield from judge_image(outcome, thresholds)
    yield from dataset.pooled_verdicts
    yield from dataset.mean_verdicts
