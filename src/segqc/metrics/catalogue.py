"""The metrics segqc knows: ZeroCostDL4Mic's QC table first, then other communities'.

One entry per metric: the key used in ``thresholds.yaml``, ``summary.json`` and JUnit
properties; the column name of ZeroCostDL4Mic's ``QC_metrics_*.csv``; whether it is a
ratio in [0, 1] or a count; and one line a person can read in the report.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["COMMUNITY_KEYS", "METRICS", "METRIC_KEYS", "ZEROCOST_KEYS", "MetricSpec", "metric_spec"]


@dataclass(frozen=True)
class MetricSpec:
    """Description of one metric.

    Attributes
    ----------
    key : str
        Name used in thresholds.yaml, summary.json and JUnit properties.
    csv_column : str
        Column header in metrics.csv (ZeroCostDL4Mic's wording).
    kind : {"ratio", "count"}
        Ratios lie in [0, 1] (higher is better); counts are non-negative integers.
    description : str
        One line shown in the report and in docs/metrics.md.
    direction : {"higher", "lower"} or None
        Set only where :attr:`better` cannot be told from ``kind``.
    """

    key: str
    csv_column: str
    kind: Literal["ratio", "count"]
    description: str
    direction: Literal["higher", "lower"] | None = None

    @property
    def better(self) -> Literal["higher", "lower"] | None:
        """Which way is better: ratios and ``tp`` higher, ``fp``/``fn`` lower.

        None for counts that describe the data rather than the model (``n_true``,
        ``n_pred``): they cannot be given regression limits.
        """
        if self.direction is not None:
            return self.direction
        return "higher" if self.kind == "ratio" else None


METRICS: tuple[MetricSpec, ...] = (
    MetricSpec(
        "pixel_iou",
        "Prediction v. GT Intersection over Union",
        "ratio",
        "foreground pixels in both masks / foreground pixels in either (whole image)",
    ),
    MetricSpec(
        "fp", "false positive", "count", "predicted objects without a match (n_pred - tp)", "lower"
    ),
    MetricSpec(
        "tp",
        "true positive",
        "count",
        "predicted objects matching a GT object at IoU >= t",
        "higher",
    ),
    MetricSpec(
        "fn", "false negative", "count", "GT objects without a match (n_true - tp)", "lower"
    ),
    MetricSpec("precision", "precision", "ratio", "tp / (tp + fp)"),
    MetricSpec("recall", "recall", "ratio", "tp / (tp + fn)"),
    MetricSpec("accuracy", "accuracy", "ratio", "tp / (tp + fp + fn)"),
    MetricSpec("f1", "f1 score", "ratio", "2 tp / (2 tp + fp + fn)"),
    MetricSpec("n_true", "n_true", "count", "number of objects in the ground truth"),
    MetricSpec("n_pred", "n_pred", "count", "number of objects in the prediction"),
    MetricSpec(
        "mean_true_score",
        "mean_true_score",
        "ratio",
        "sum of matched IoUs / n_true (unmatched GT objects count as 0)",
    ),
    MetricSpec(
        "mean_matched_score", "mean_matched_score", "ratio", "mean IoU of the matched pairs"
    ),
    MetricSpec(
        "panoptic_quality",
        "panoptic_quality",
        "ratio",
        "sum of matched IoUs / (tp + fp/2 + fn/2)",
    ),
    # Beyond ZeroCostDL4Mic: metrics.csv columns after its 13, in this order.
    # Formulas and sources: segqc.metrics.community.
    MetricSpec(
        "seg",
        "seg",
        "ratio",
        "Cell Tracking Challenge SEG: mean Jaccard of each GT object with the predicted "
        "object covering more than half of it (0 if none)",
    ),
    MetricSpec(
        "aji",
        "aji",
        "ratio",
        "aggregated Jaccard index (Kumar et al. 2017): sum of |G ∩ best S| / "
        "(sum of |G ∪ best S| + unused predicted pixels)",
    ),
    MetricSpec(
        "dsb_score",
        "dsb_score",
        "ratio",
        "Data Science Bowl 2018: mean over IoU thresholds 0.5, 0.55, ..., 0.95 of "
        "tp / (tp + fp + fn)",
    ),
    MetricSpec("sq", "sq", "ratio", "panoptic segmentation quality: mean IoU of matched pairs"),
    MetricSpec("rq", "rq", "ratio", "panoptic recognition quality: tp / (tp + fp/2 + fn/2)"),
)

METRIC_KEYS: tuple[str, ...] = tuple(spec.key for spec in METRICS)

#: The 13 columns of ZeroCostDL4Mic's QC table, in its order.
ZEROCOST_KEYS: tuple[str, ...] = METRIC_KEYS[:13]

#: The metrics other communities report (segqc.metrics.community).
COMMUNITY_KEYS: tuple[str, ...] = METRIC_KEYS[13:]

_BY_KEY = {spec.key: spec for spec in METRICS}


def metric_spec(key: str) -> MetricSpec:
    """Return the :class:`MetricSpec` of ``key`` (KeyError if segqc has no such metric)."""
    return _BY_KEY[key]
