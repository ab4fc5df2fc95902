"""The schema of ``thresholds.yaml``, declared once with pydantic: strict types, no
unknown keys, ranges checked per metric kind. Reading the file and turning pydantic's
findings into messages a user can act on is :mod:`segqc.thresholds.reading`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    create_model,
    field_validator,
    model_validator,
)

from segqc.metrics.catalogue import METRICS, metric_spec
from segqc.thresholds.loss import LossCurveSettings
from segqc.thresholds.regression import RegressionSettings, StatisticsSettings

__all__ = [
    "LIMIT_SCOPES",
    "DeviceAgreementSettings",
    "Limit",
    "Thresholds",
]

#: Sections holding metric limits, in the order they are judged.
LIMIT_SCOPES: tuple[str, ...] = ("per_image", "aggregate", "image_mean")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class Limit(_Strict):
    """A lower and/or upper bound on one metric.

    ``level: warn`` reports a broken limit as a pytest warning instead of a failure.
    """

    min: float | None = None
    max: float | None = None
    level: Literal["fail", "warn"] = "fail"

    @model_validator(mode="after")
    def _bounds_make_sense(self) -> Limit:
        if self.min is None and self.max is None and getattr(self, "min_ci_low", None) is None:
            gates = (
                "'min', 'max' and/or 'min_ci_low'"
                if hasattr(self, "min_ci_low")
                else "'min' and/or 'max'"
            )
            raise ValueError(f"a limit needs {gates}")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min}) is greater than max ({self.max})")
        return self


class _RatioLimit(Limit):
    min: float | None = Field(default=None, ge=0.0, le=1.0)
    max: float | None = Field(default=None, ge=0.0, le=1.0)


class _CountLimit(Limit):
    min: float | None = Field(default=None, ge=0.0)
    max: float | None = Field(default=None, ge=0.0)


class _AggregateRatioLimit(_RatioLimit):
    """Aggregate limits may also gate on the bootstrap interval's lower bound."""

    min_ci_low: float | None = Field(default=None, ge=0.0, le=1.0)


# One optional field per metric, typed by the metric's kind, so that ranges are checked by
# pydantic and an unknown metric is an "extra" key we can suggest a correction for.
_MetricLimits: type[_Strict] = create_model(  # type: ignore[call-overload]
    "MetricLimits",
    __base__=_Strict,
    **{
        spec.key: ((_RatioLimit if spec.kind == "ratio" else _CountLimit) | None, None)
        for spec in METRICS
    },
)
_AggregateLimits: type[_Strict] = create_model(  # type: ignore[call-overload]
    "AggregateLimits",
    __base__=_Strict,
    **{
        spec.key: ((_AggregateRatioLimit if spec.kind == "ratio" else _CountLimit) | None, None)
        for spec in METRICS
    },
)


class MatchingSettings(_Strict):
    """How predicted objects are matched to ground-truth objects."""

    iou_threshold: float = Field(default=0.5, gt=0.0, le=1.0)


class PredictionSettings(_Strict):
    """StarDist post-processing thresholds and the block-wise prediction of large images.

    ``prob_thresh``/``nms_thresh``: ``None`` keeps the model's thresholds.json.

    An image with a spatial axis longer than ``block_above`` pixels is predicted in
    blocks of ``block_size`` pixels per side with StarDist's ``predict_instances_big``
    (``block_above`` 0 or ``None``: never; ``block_size`` ``None``: 2048, or
    ``block_above`` if smaller). Neighbouring blocks overlap by at least
    ``block_min_overlap`` pixels, which must exceed the largest object's size
    (``None``: the larger of 128 and the model's receptive field). See
    :mod:`segqc.predict.stardist`.
    """

    prob_thresh: float | None = Field(default=None, ge=0.0, le=1.0)
    nms_thresh: float | None = Field(default=None, ge=0.0, le=1.0)
    block_above: int | None = Field(default=4096, ge=0)
    block_size: int | None = Field(default=None, ge=16)
    block_min_overlap: int | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _blocks_fit(self) -> PredictionSettings:
        if self.block_size is None:
            return self
        if self.block_above and self.block_size > self.block_above:
            raise ValueError(
                f"block_size ({self.block_size}) is larger than block_above "
                f"({self.block_above}): an image just above block_above would be one block; "
                "set block_size <= block_above"
            )
        if self.block_min_overlap is not None and self.block_min_overlap >= self.block_size:
            raise ValueError(
                f"block_min_overlap ({self.block_min_overlap}) must be smaller than "
                f"block_size ({self.block_size}), with room for the model's context on "
                "both sides of a block"
            )
        return self


# --- robustness, leakage and subgroup checks (segqc.checks.robustness, .leakage, .subgroups) ---

_RATIO_KEYS = tuple(spec.key for spec in METRICS if spec.kind == "ratio")

# The largest allowed drop (original minus perturbed) of ratio metrics under one perturbation.
MaxDrop: type[_Strict] = create_model(  # type: ignore[call-overload]
    "MaxDrop",
    __base__=_Strict,
    **{key: (float | None, Field(default=None, ge=0.0, le=1.0)) for key in _RATIO_KEYS},
)


_PositiveFloat = Annotated[float, Field(gt=0.0)]


class _PerturbationSettings(_Strict):
    max_drop: MaxDrop = MaxDrop(f1=0.05)  # type: ignore[valid-type,call-arg]

    @model_validator(mode="after")
    def _some_drop_limit(self) -> _PerturbationSettings:
        if not any(value is not None for _, value in self.max_drop):  # type: ignore[attr-defined]
            raise ValueError("max_drop needs at least one metric, e.g. {f1: 0.05}")
        return self


class GaussianNoiseSettings(_PerturbationSettings):
    """Additive Gaussian noise; ``snr`` = std(image) / std(noise)."""

    snr: list[_PositiveFloat] = Field(default=[10.0], min_length=1)


class PoissonNoiseSettings(_PerturbationSettings):
    """Shot noise; ``peaks`` = photons at the image's 99.8th percentile above its minimum."""

    peaks: list[_PositiveFloat] = Field(default=[100.0], min_length=1)


class IntensityScaleSettings(_PerturbationSettings):
    """Multiply every pixel by each factor."""

    factors: list[_PositiveFloat] = Field(default=[0.5, 2.0], min_length=1)


class IntensityOffsetSettings(_PerturbationSettings):
    """Add a fraction of the image's range (max - min) to every pixel."""

    fractions: list[float] = Field(default=[0.1], min_length=1)


class GaussianBlurSettings(_PerturbationSettings):
    """Gaussian blur of the spatial axes, sigma in pixels."""

    sigmas: list[_PositiveFloat] = Field(default=[1.0], min_length=1)


class FlipSettings(_PerturbationSettings):
    """Mirror along each axis; the prediction is flipped back before it is measured."""

    axes: list[Literal["z", "y", "x"]] = Field(default=["y", "x"], min_length=1)


class Rot90Settings(_PerturbationSettings):
    """Rotate the YX plane by k x 90 degrees; the prediction is rotated back."""

    k: list[Literal[1, 2, 3]] = Field(default=[1], min_length=1)


class RobustnessSettings(_Strict):
    """Metamorphic tests: perturbations, their parameters and the allowed metric drops."""

    seed: int = 0
    gaussian_noise: GaussianNoiseSettings | None = None
    poisson_noise: PoissonNoiseSettings | None = None
    intensity_scale: IntensityScaleSettings | None = None
    intensity_offset: IntensityOffsetSettings | None = None
    gaussian_blur: GaussianBlurSettings | None = None
    flip: FlipSettings | None = None
    rot90: Rot90Settings | None = None

    @classmethod
    def default(cls) -> RobustnessSettings:
        """Every perturbation with its default parameters (``--robustness`` alone)."""
        return cls(
            gaussian_noise=GaussianNoiseSettings(),
            poisson_noise=PoissonNoiseSettings(),
            intensity_scale=IntensityScaleSettings(),
            intensity_offset=IntensityOffsetSettings(),
            gaussian_blur=GaussianBlurSettings(),
            flip=FlipSettings(),
            rot90=Rot90Settings(),
        )


class LeakageSettings(_Strict):
    """How QC images are compared with training images (``--training-data``)."""

    ncc_threshold: float = Field(default=0.9, gt=0.0, le=1.0)
    downsample: int = Field(default=4, ge=1)
    probe_size: int = Field(default=32, ge=4)


def _set_limits(section: Any) -> dict[str, Limit]:
    """The limits set in a metric-limits section, by metric key."""
    return {key: limit for key, limit in section if limit is not None}


_SIZE_BIN_KEYS = ("n_true", "tp", "fn", "recall", "mean_true_score", "mean_matched_score")

# Limits of one object-size bin: the metrics that are defined per ground-truth object.
SizeBinLimits: type[_Strict] = create_model(  # type: ignore[call-overload]
    "SizeBinLimits",
    __base__=_Strict,
    **{
        key: ((_RatioLimit if metric_spec(key).kind == "ratio" else _CountLimit) | None, None)
        for key in _SIZE_BIN_KEYS
    },
)


class ObjectSizeSettings(_Strict):
    """Bins of ground-truth object area (pixels, voxels in 3D) and their limits."""

    edges: list[float] = Field(min_length=1)
    names: list[str] | None = None
    limits: SizeBinLimits = SizeBinLimits()  # type: ignore[valid-type]
    by_bin: dict[str, SizeBinLimits] = {}  # type: ignore[valid-type]

    @model_validator(mode="after")
    def _bins_make_sense(self) -> ObjectSizeSettings:
        if any(b <= a for a, b in zip(self.edges, self.edges[1:], strict=False)):
            raise ValueError(f"edges must increase, got {self.edges}")
        if self.edges[0] <= 0:
            raise ValueError(f"edges must be positive areas, got {self.edges}")
        if self.names is not None and len(self.names) != len(self.edges) + 1:
            raise ValueError(
                f"{len(self.edges)} edges make {len(self.edges) + 1} bins, "
                f"but {len(self.names)} names were given"
            )
        unknown = sorted(set(self.by_bin) - set(self.bin_names()))
        if unknown:
            raise ValueError(
                f"by_bin: unknown bin {', '.join(unknown)}; bins are {', '.join(self.bin_names())}"
            )
        return self

    def bin_names(self) -> list[str]:
        """The names given, else small/medium/large (two edges) or size0, size1, ..."""
        if self.names is not None:
            return list(self.names)
        if len(self.edges) == 2:
            return ["small", "medium", "large"]
        return [f"size{i}" for i in range(len(self.edges) + 1)]

    def bin_limits(self, name: str) -> dict[str, Limit]:
        """Limits of bin ``name``: ``limits`` overridden metric by metric by ``by_bin``."""
        merged = _set_limits(self.limits)
        if name in self.by_bin:
            merged.update(_set_limits(self.by_bin[name]))
        return merged


class ImageGroupSettings(_Strict):
    """Limits of each image group (subfolders or ``--qc-groups`` CSV), pooled per group."""

    limits: _MetricLimits = _MetricLimits()  # type: ignore[valid-type]
    by_group: dict[str, _MetricLimits] = {}  # type: ignore[valid-type]

    def group_limits(self, name: str) -> dict[str, Limit]:
        """Limits of group ``name``: ``limits`` overridden metric by metric by ``by_group``."""
        merged = _set_limits(self.limits)
        if name in self.by_group:
            merged.update(_set_limits(self.by_group[name]))
        return merged


class SubgroupSettings(_Strict):
    """Metrics per object-size bin and per image group, each with their own limits."""

    object_size: ObjectSizeSettings | None = None
    image_groups: ImageGroupSettings = ImageGroupSettings()


#: The metrics of the accuracy curve (segqc.checks.accuracy), which aggregate_at may limit.
class DeviceAgreementSettings(_Strict):
    """How far a second prediction on another device may differ (``--compare-device``).

    Like bioimage.io's ``reproducibility_tolerance`` (``mismatched_elements_per_million``,
    100 by default there), for label images: pixels are compared after pairing the
    objects of the two predictions, so their numbering does not count.
    """

    mismatched_pixels_per_million: _CountLimit = _CountLimit(max=100)
    metric_difference: _RatioLimit = _RatioLimit(max=0.01)


_MATCHING_KEYS = (
    "fp", "tp", "fn", "precision", "recall", "accuracy", "f1", "n_true", "n_pred",
    "mean_true_score", "mean_matched_score", "panoptic_quality",
)  # fmt: skip
_NOT_AT_OTHER_THRESHOLDS = tuple(
    spec.key for spec in METRICS if spec.key not in _MATCHING_KEYS and spec.key != "pixel_iou"
)


class Thresholds(_Strict):
    """The whole of thresholds.yaml."""

    matching: MatchingSettings = MatchingSettings()
    prediction: PredictionSettings = PredictionSettings()
    per_image: _MetricLimits = _MetricLimits()  # type: ignore[valid-type]
    aggregate: _AggregateLimits = _AggregateLimits()  # type: ignore[valid-type]
    image_mean: _MetricLimits = _MetricLimits()  # type: ignore[valid-type]
    robustness: RobustnessSettings | None = None
    leakage: LeakageSettings = LeakageSettings()
    subgroups: SubgroupSettings = SubgroupSettings()
    # Pooled limits at other IoU thresholds: {0.7: {f1: {min: 0.6}}} (see segqc.checks.accuracy).
    aggregate_at: dict[Annotated[float, Field(gt=0.0, le=1.0)], _MetricLimits] = {}  # type: ignore[valid-type]
    regression: RegressionSettings = RegressionSettings()
    statistics: StatisticsSettings = StatisticsSettings()
    loss_curve: LossCurveSettings = LossCurveSettings()
    # None: the defaults apply when --compare-device is given (see DeviceAgreementSettings)
    device_agreement: DeviceAgreementSettings | None = None

    @field_validator("aggregate_at")
    @classmethod
    def _only_matching_metrics_at(cls, value: dict[float, Any]) -> dict[float, Any]:
        """Refuse metrics the accuracy curve does not compute at other IoU thresholds."""
        for threshold, section in value.items():
            if section.pixel_iou is not None:
                raise ValueError(
                    f"{threshold}.pixel_iou: pixel_iou does not depend on the IoU threshold; "
                    "limit it under 'aggregate'"
                )
            others = [key for key in _NOT_AT_OTHER_THRESHOLDS if getattr(section, key) is not None]
            if others:
                raise ValueError(
                    f"{threshold}.{others[0]}: {', '.join(others)} "
                    f"{'is' if len(others) == 1 else 'are'} measured at matching.iou_threshold "
                    "only; limit it under 'aggregate'. At other thresholds: "
                    f"{', '.join(_MATCHING_KEYS)}"
                )
        return value

    def limits(self, scope: str) -> dict[str, Limit]:
        """Return the limits set in ``scope`` (one of :data:`LIMIT_SCOPES`), by metric key.

        Limits with only ``min_ci_low`` are left out: :mod:`segqc.checks.statistics.gates`
        judges those.
        """
        section = getattr(self, scope)
        return {
            key: limit
            for key, limit in section
            if limit is not None and (limit.min is not None or limit.max is not None)
        }
