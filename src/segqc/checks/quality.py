"""Quality Control #3 (ZeroCostDL4Mic): the metrics table judged against its limits.

Pure functions: outcomes and thresholds in, verdicts out. Per image against
``per_image``; over the QC set pooled (tp, fp, fn summed over images) against
``aggregate`` and as the mean over images against ``image_mean``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from segqc.checks.verdict import Verdict, judge
from segqc.metrics.scores import QcScores, image_mean, pool
from segqc.pipeline.outcome import ImageOutcome
from segqc.thresholds.schema import Thresholds

__all__ = ["DatasetOutcome", "iter_verdicts", "judge_dataset", "judge_image"]


def judge_image(outcome: ImageOutcome, thresholds: Thresholds) -> list[Verdict]:
    """The ``per_image`` verdicts of one image ([] when it has no scores)."""
    if outcome.scores is None:
        return []
    return judge(
        outcome.scores.values(),
        thresholds.limits("per_image"),
        scope="per_image",
        subject=outcome.pair.name,
    )


@dataclass(frozen=True)
class DatasetOutcome:
    """Scores over all evaluated images: pooled and image mean, with their verdicts."""

    n_images: int
    pooled: QcScores | None
    mean: dict[str, float] | None
    pooled_verdicts: list[Verdict]
    mean_verdicts: list[Verdict]


def judge_dataset(outcomes: Iterable[ImageOutcome], thresholds: Thresholds) -> DatasetOutcome:
    """Pool the evaluated images and judge the ``aggregate`` and ``image_mean`` limits."""
    scores = [o.scores for o in outcomes if o.scores is not None]
    if not scores:
        return DatasetOutcome(0, None, None, [], [])
    pooled = pool(scores)
    mean = image_mean(scores)
    return DatasetOutcome(
        n_images=len(scores),
        pooled=pooled,
        mean=mean,
        pooled_verdicts=judge(
            pooled.values(), thresholds.limits("aggregate"), scope="aggregate", subject="pooled"
        ),
        mean_verdicts=judge(
            mean, thresholds.limits("image_mean"), scope="image_mean", subject="image mean"
        ),
    )


def iter_verdicts(
    outcomes: Sequence[ImageOutcome], dataset: DatasetOutcome, thresholds: Thresholds
) -> Iterator[Verdict]:
    """Every metric-limit verdict: per image (in QC order), then pooled, then image mean."""
    for outcome in outcomes:
        yield from judge_image(outcome, thresholds)
    yield from dataset.pooled_verdicts
    yield from dataset.mean_verdicts
