"""Accuracy vs IoU threshold: the pooled QC set matched at IoU 0.1 … 0.9.

One IoU threshold hides how tight the outlines are: a model can find every nucleus at
IoU 0.5 and few at 0.8. Each image is matched at every threshold when it is evaluated
(:attr:`segqc.session.ImageOutcome.curve`, from the overlaps already counted for its
metrics, on the xdist worker that evaluated it); this stage pools those counts over
images like the ``aggregate`` scope (an outcome without them, e.g. built elsewhere, is
re-read from disk and matched here), and judges the ``aggregate_at`` limits of
thresholds.yaml::

    aggregate_at:
      0.7: {f1: {min: 0.6}}
      0.9: {tp: {min: 10}, level: warn}

The result goes to the report (figure and table), to ``summary.json``
(``accuracy_vs_iou``) and to the ``test_aggregate_at`` QC test.
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

from segqc.images import ImageReadError, read_tiff
from segqc.judge import Verdict, judge
from segqc.metrics.catalogue import METRIC_KEYS
from segqc.metrics.matching import (
    LabelImageError,
    MatchingStats,
    match_labels_at,
    pool_matching,
)
from segqc.prediction import PredictionsFolder

if TYPE_CHECKING:  # segqc.session imports this module
    from segqc.session import ImageOutcome, QcRun

__all__ = [
    "CURVE_METRICS",
    "IOU_GRID",
    "AccuracyCurve",
    "accuracy_vs_iou",
    "curve_thresholds",
    "deselect_unused_aggregate_at",
    "labels_of",
    "prediction_path",
]

#: The thresholds every curve is computed at (stardist's and ZeroCostDL4Mic's plots).
IOU_GRID: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)

#: The metrics drawn in the figure; the table also shows tp, fp and fn.
CURVE_METRICS: tuple[str, ...] = ("precision", "recall", "f1", "accuracy", "panoptic_quality")


def curve_thresholds(aggregate_at: Mapping[float, Any]) -> tuple[float, ...]:
    """:data:`IOU_GRID` plus every threshold of ``aggregate_at``, increasing."""
    return tuple(sorted(set(IOU_GRID) | {float(t) for t in aggregate_at}))


@dataclass(frozen=True)
class AccuracyCurve:
    """Pooled matching statistics of the QC set at several IoU thresholds.

    Attributes
    ----------
    pooled : tuple of MatchingStats
        One per threshold, increasing; :data:`IOU_GRID` plus every threshold of
        ``aggregate_at``.
    images : tuple of str
        The images pooled.
    unreadable : tuple of str
        Evaluated images whose files could no longer be read (one line each, file first).
    verdicts : tuple of Verdict
        The ``aggregate_at`` limits judged (scope ``aggregate_at.<threshold>``).
    """

    pooled: tuple[MatchingStats, ...]
    images: tuple[str, ...]
    unreadable: tuple[str, ...]
    verdicts: tuple[Verdict, ...]

    @property
    def thresholds(self) -> tuple[float, ...]:
        """The IoU thresholds, increasing."""
        return tuple(s.iou_threshold for s in self.pooled)

    def as_dict(self) -> dict[str, Any]:
        """The ``accuracy_vs_iou`` record of summary.json."""
        return {
            "n_images": len(self.images),
            "unreadable": list(self.unreadable),
            "thresholds": list(self.thresholds),
            "pooled": [asdict(s) for s in self.pooled],
            "limits": [v.as_dict() for v in self.verdicts],
        }


def prediction_path(run: QcRun, outcome: ImageOutcome) -> Path:
    """Where the predicted labels of ``outcome`` are on disk.

    The file segqc wrote (``--model``), the other tool's file (``--predictions``), or
    where segqc writes predictions when the outcome does not say.
    """
    if outcome.prediction_file is not None:
        return outcome.prediction_file
    if isinstance(run.predictor, PredictionsFolder):
        found = run.predictor.files.get(outcome.pair.name)
        if found is not None:
            return found
    return run.output_dir / "predictions" / f"{outcome.pair.stem}.tif"


def labels_of(run: QcRun, outcome: ImageOutcome) -> tuple[np.ndarray, np.ndarray]:
    """Read the ground truth and the prediction of an evaluated image back from disk.

    Raises
    ------
    ImageReadError
        A file cannot be read any more; the message starts with the path.
    """
    return read_tiff(outcome.pair.target), read_tiff(prediction_path(run, outcome))


_CACHE: weakref.WeakKeyDictionary[QcRun, tuple[int, AccuracyCurve | None]] = (
    weakref.WeakKeyDictionary()
)


def accuracy_vs_iou(run: QcRun) -> AccuracyCurve | None:
    """Match every evaluated image at each threshold, pool, and judge ``aggregate_at``.

    Computed once per run and number of evaluated images (the QC test, summary.json and
    the report share it).

    Parameters
    ----------
    run : QcRun
        The run; only images with scores are used.

    Returns
    -------
    AccuracyCurve or None
        None when no image has been evaluated, or none could be read back.
    """
    evaluated = [o for o in run.outcomes if o.scores is not None]
    cached = _CACHE.get(run)
    if cached is not None and cached[0] == len(evaluated):
        return cached[1]
    curve = _compute(run, evaluated)
    _CACHE[run] = (len(evaluated), curve)
    return curve


def _compute(run: QcRun, evaluated: list[ImageOutcome]) -> AccuracyCurve | None:
    limits_at = run.thresholds.thresholds.aggregate_at
    thresholds = curve_thresholds(limits_at)
    per_image: list[tuple[MatchingStats, ...]] = []
    images: list[str] = []
    unreadable: list[str] = []
    for outcome in evaluated:
        curve = outcome.curve
        if curve is not None and tuple(s.iou_threshold for s in curve) == thresholds:
            per_image.append(curve)
            images.append(outcome.pair.name)
            continue
        try:
            target, predicted = labels_of(run, outcome)
            per_image.append(match_labels_at(target, predicted, iou_thresholds=thresholds))
        except (ImageReadError, LabelImageError) as exc:
            unreadable.append(str(exc))
            continue
        images.append(outcome.pair.name)
    if not per_image:
        return None
    pooled = tuple(pool_matching([stats[i] for stats in per_image]) for i in range(len(thresholds)))
    by_threshold = {s.iou_threshold: s for s in pooled}
    verdicts: list[Verdict] = []
    for threshold, section in limits_at.items():
        set_limits = ((key, getattr(section, key)) for key in METRIC_KEYS)
        limits = {key: limit for key, limit in set_limits if limit is not None}
        stats = by_threshold[float(threshold)]
        values = {key: float(value) for key, value in asdict(stats).items()}
        verdicts += judge(
            values,
            limits,
            scope=f"aggregate_at.{threshold:g}",
            subject=f"pooled at IoU {threshold:g}",
        )
    return AccuracyCurve(pooled, tuple(images), tuple(unreadable), tuple(verdicts))


def deselect_unused_aggregate_at(
    config: pytest.Config, items: list[pytest.Item], run: QcRun | None
) -> None:
    """Drop ``test_aggregate_at`` from the run when thresholds.yaml sets no ``aggregate_at``.

    Deselected rather than skipped, so a run without such limits shows the same test
    counts as before the section existed.
    """
    if run is not None and run.thresholds.thresholds.aggregate_at:
        return
    unused = [
        item
        for item in items
        if isinstance(item, pytest.Function) and item.originalname == "test_aggregate_at"
    ]
    if unused:
        items[:] = [item for item in items if item not in unused]
        config.hook.pytest_deselected(items=unused)
