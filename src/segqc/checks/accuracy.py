"""Accuracy vs IoU threshold: the pooled QC set matched at IoU 0.1 … 0.9.

One IoU threshold hides how tight the outlines are: a model can find every nucleus at
IoU 0.5 and few at 0.8. Each image is matched at every threshold when it is evaluated
(:attr:`segqc.pipeline.outcome.ImageOutcome.curve`, from the overlaps already counted
for its metrics); this check pools those counts over images like the ``aggregate`` scope
and judges the ``aggregate_at`` limits of thresholds.yaml::

    aggregate_at:
      0.7: {f1: {min: 0.6}}
      0.9: {tp: {min: 10, level: warn}}

The result goes to the report (figure and table), to ``summary.json``
(``accuracy_vs_iou``) and to the ``test_aggregate_at`` QC test.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from segqc.checks.verdict import Verdict, judge
from segqc.metrics.catalogue import METRIC_KEYS
from segqc.metrics.matching import MatchingStats, pool_matching
from segqc.pipeline.outcome import ImageOutcome

__all__ = ["CURVE_METRICS", "IOU_GRID", "AccuracyCurve", "accuracy_curve", "curve_thresholds"]

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
    verdicts : tuple of Verdict
        The ``aggregate_at`` limits judged (scope ``aggregate_at.<threshold>``).
    """

    pooled: tuple[MatchingStats, ...]
    images: tuple[str, ...]
    verdicts: tuple[Verdict, ...]

    @property
    def thresholds(self) -> tuple[float, ...]:
        """The IoU thresholds, increasing."""
        return tuple(s.iou_threshold for s in self.pooled)

    def as_dict(self) -> dict[str, Any]:
        """The ``accuracy_vs_iou`` record of summary.json."""
        return {
            "n_images": len(self.images),
            "unreadable": [],
            "thresholds": list(self.thresholds),
            "pooled": [asdict(s) for s in self.pooled],
            "limits": [v.as_dict() for v in self.verdicts],
        }


def accuracy_curve(
    outcomes: Iterable[ImageOutcome], aggregate_at: Mapping[float, Any]
) -> AccuracyCurve | None:
    """Pool every evaluated image's curve and judge the ``aggregate_at`` limits.

    Parameters
    ----------
    outcomes : iterable of ImageOutcome
        Images without scores are left out.
    aggregate_at : mapping
        The ``aggregate_at`` section of thresholds.yaml (threshold -> metric limits).

    Returns
    -------
    AccuracyCurve or None
        None when no image has been evaluated.

    Raises
    ------
    ValueError
        An image was matched at other thresholds than :func:`curve_thresholds` gives.
    """
    thresholds = curve_thresholds(aggregate_at)
    per_image: list[Sequence[MatchingStats]] = []
    images: list[str] = []
    for outcome in outcomes:
        if outcome.scores is None or outcome.curve is None:
            continue
        if tuple(s.iou_threshold for s in outcome.curve) != thresholds:
            raise ValueError(
                f"{outcome.pair.name}: matched at {[s.iou_threshold for s in outcome.curve]}, "
                f"not at the curve's thresholds {list(thresholds)}"
            )
        per_image.append(outcome.curve)
        images.append(outcome.pair.name)
    if not per_image:
        return None
    pooled = tuple(pool_matching([stats[i] for stats in per_image]) for i in range(len(thresholds)))
    by_threshold = {s.iou_threshold: s for s in pooled}
    verdicts: list[Verdict] = []
    for threshold, section in aggregate_at.items():
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
    return AccuracyCurve(pooled, tuple(images), tuple(verdicts))
