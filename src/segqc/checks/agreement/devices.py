"""How far two predictions of the same images on two devices agree (``--compare-device``).

Users see the same StarDist model give different labels on GPU and CPU (stardist issue
#274): floating point differs between devices, and a probability near ``prob_thresh``
or an overlap near ``nms_thresh`` can tip an object in or out. The check predicts each
QC image a second time on the other device (:func:`segqc.pipeline.evaluate.
compare_predictions`) and limits two numbers per image (``device_agreement:`` in
thresholds.yaml):

* ``mismatched_pixels_per_million``: pixels on which the two label images disagree
  once their objects are paired (so the numbering does not count), per million pixels
  of the image; bioimage.io's ``reproducibility_tolerance`` limits
  ``mismatched_elements_per_million`` the same way (100 by default, as here);
* ``metric_difference``: the largest difference, in any ratio of the metrics table,
  between the two predictions measured against the ground truth (counts are recorded,
  not limited: a whole object in or out already shows in the pixels).

Pure functions: the plugin (:mod:`segqc.checks.agreement.plugin`) wires them.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable
from typing import Any

from segqc.checks.verdict import Verdict, format_number, judge
from segqc.metrics.catalogue import METRICS
from segqc.metrics.scores import QcScores
from segqc.pipeline.outcome import DeviceComparison, ImageOutcome
from segqc.thresholds import DeviceAgreementSettings

__all__ = [
    "SCOPE",
    "agreement_section",
    "judge_agreement",
    "metric_differences",
]

#: The verdicts' scope and the thresholds.yaml section.
SCOPE = "device_agreement"
_RATIOS = tuple(spec.key for spec in METRICS if spec.kind == "ratio")


def metric_differences(first: QcScores, second: QcScores) -> dict[str, float]:
    """``|second - first|`` of every metric of the metrics table, in its order.

    Parameters
    ----------
    first, second : QcScores
        The same image's two predictions, measured against its ground truth.

    Returns
    -------
    dict of str to float
        By metric key, counts included.
    """
    old, new = first.values(), second.values()
    return {spec.key: abs(float(new[spec.key]) - float(old[spec.key])) for spec in METRICS}


def _largest_ratio_difference(differences: dict[str, float]) -> tuple[str, float]:
    """The ratio metric that differs most (the first in table order on a tie)."""
    metric = max(_RATIOS, key=lambda key: differences[key])
    return metric, differences[metric]


def judge_agreement(
    name: str,
    comparison: DeviceComparison,
    scores: QcScores,
    settings: DeviceAgreementSettings,
) -> list[Verdict]:
    """The verdicts of one image: mismatched pixels per million, largest metric difference.

    Parameters
    ----------
    name : str
        The image.
    comparison : DeviceComparison
        Its second prediction, compared with the first.
    scores : QcScores
        The first prediction's scores.
    settings : DeviceAgreementSettings
        The limits.

    Returns
    -------
    list of Verdict
        Two verdicts; or one failed verdict naming why there is no second prediction.
    """
    differences = None
    if comparison.scores is not None:
        differences = metric_differences(scores, comparison.scores)
    return _judged(name, comparison, scores, differences, settings)


def _judged(
    name: str,
    comparison: DeviceComparison,
    scores: QcScores,
    differences: dict[str, float] | None,
    settings: DeviceAgreementSettings,
) -> list[Verdict]:
    """:func:`judge_agreement` on the :func:`metric_differences` already computed."""
    if comparison.error is not None or comparison.scores is None or differences is None:
        message = f"{name}: no second prediction on {comparison.device}: {comparison.error}"
        record = {
            "scope": SCOPE, "subject": name, "metric": "second_prediction", "value": None,
            "min": None, "max": None, "level": "fail", "passed": False, "outcome": "fail",
            "key": SCOPE, "message": message,
        }  # fmt: skip
        return [Verdict(SCOPE, name, "second_prediction", "fail", message, SCOPE, math.nan, record)]
    metric, largest = _largest_ratio_difference(differences)
    verdicts = judge(
        {
            "mismatched_pixels_per_million": comparison.mismatched_per_million,
            "metric_difference": largest,
        },
        {
            "mismatched_pixels_per_million": settings.mismatched_pixels_per_million,
            "metric_difference": settings.metric_difference,
        },
        scope=SCOPE,
        subject=name,
    )
    first, second = scores.values()[metric], comparison.scores.values()[metric]
    detail = {
        "mismatched_pixels_per_million": (
            f"{comparison.mismatched_pixels} of {comparison.pixels} pixels differ on "
            f"{comparison.device}"
        ),
        "metric_difference": (
            f"largest on {metric}: {format_number(first)}, then {format_number(second)} "
            f"on {comparison.device}"
        ),
    }
    return [_with_detail(verdict, detail[verdict.metric]) for verdict in verdicts]


def _with_detail(verdict: Verdict, detail: str) -> Verdict:
    message = f"{verdict.message}; {detail}"
    record = {**verdict.record, "message": message}
    return dataclasses.replace(verdict, message=message, record=record)


def agreement_section(
    outcomes: Iterable[ImageOutcome],
    settings: DeviceAgreementSettings,
    *,
    device: str | None,
    compare_device: str,
) -> dict[str, Any]:
    """summary.json's ``device_agreement``: every compared image and its verdicts.

    Parameters
    ----------
    outcomes : iterable of ImageOutcome
        The evaluated images (those without a comparison are left out).
    settings : DeviceAgreementSettings
        The limits in force.
    device : str or None
        Where the first prediction ran.
    compare_device : str
        ``--compare-device``.
    """
    images, verdicts = [], []
    for outcome in outcomes:
        comparison = outcome.comparison
        if comparison is None or outcome.scores is None:
            continue
        name = outcome.pair.name
        record: dict[str, Any] = {
            "name": name,
            "device": comparison.device,
            "error": comparison.error,
        }
        differences = None
        if comparison.scores is not None:
            differences = metric_differences(outcome.scores, comparison.scores)
            metric, largest = _largest_ratio_difference(differences)
            record.update(
                mismatched_pixels=comparison.mismatched_pixels,
                pixels=comparison.pixels,
                mismatched_pixels_per_million=comparison.mismatched_per_million,
                largest_metric_difference=largest,
                largest_metric=metric,
                metric_differences=differences,
            )
        images.append(record)
        judged = _judged(name, comparison, outcome.scores, differences, settings)
        verdicts += [verdict.as_dict() for verdict in judged]
    return {
        "device": device,
        "compare_device": compare_device,
        "limits": settings.model_dump(exclude_none=True),
        "n_images": len(images),
        "images": images,
        "verdicts": verdicts,
    }
