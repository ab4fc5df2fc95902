"""Read and validate ``thresholds.yaml``: the limits a model must meet.

The schema is declared once with pydantic (strict types, no unknown keys); this module
only turns pydantic's findings into messages a user can act on::

    thresholds.yaml: per_image.f1_score: unknown metric; did you mean 'f1'?
    thresholds.yaml:7:3: YAML syntax error: mapping values are not allowed here

Every problem is reported at once, through :class:`ThresholdsError`, which the plugin
turns into a ``pytest.UsageError`` (exit code 4).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    create_model,
    field_validator,
    model_validator,
)

from segqc.loss_settings import LossCurveSettings
from segqc.metrics.catalogue import METRICS, metric_spec
from segqc.regression_settings import RegressionSettings, StatisticsSettings

__all__ = [
    "LIMIT_SCOPES",
    "Limit",
    "LoadedThresholds",
    "Thresholds",
    "ThresholdsError",
    "bundled_thresholds_path",
    "load_thresholds",
]

#: Sections holding metric limits, in the order they are judged.
LIMIT_SCOPES: tuple[str, ...] = ("per_image", "aggregate", "image_mean")


class ThresholdsError(ValueError):
    """thresholds.yaml is missing, unreadable or invalid; the message lists every problem."""


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
    """StarDist post-processing thresholds; ``None`` keeps the model's thresholds.json."""

    prob_thresh: float | None = Field(default=None, ge=0.0, le=1.0)
    nms_thresh: float | None = Field(default=None, ge=0.0, le=1.0)


# --- robustness, leakage and subgroup checks (segqc.robustness, .leakage, .subgroups) ---

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
    # Pooled limits at other IoU thresholds: {0.7: {f1: {min: 0.6}}} (see segqc.accuracy).
    aggregate_at: dict[Annotated[float, Field(gt=0.0, le=1.0)], _MetricLimits] = {}  # type: ignore[valid-type]
    regression: RegressionSettings = RegressionSettings()
    statistics: StatisticsSettings = StatisticsSettings()
    loss_curve: LossCurveSettings = LossCurveSettings()

    @field_validator("aggregate_at")
    @classmethod
    def _no_pixel_iou_at(cls, value: dict[float, Any]) -> dict[float, Any]:
        for threshold, section in value.items():
            if section.pixel_iou is not None:
                raise ValueError(
                    f"{threshold}.pixel_iou: pixel_iou does not depend on the IoU threshold; "
                    "limit it under 'aggregate'"
                )
        return value

    def limits(self, scope: str) -> dict[str, Limit]:
        """Return the limits set in ``scope`` (one of :data:`LIMIT_SCOPES`), by metric key.

        Limits with only ``min_ci_low`` are left out: :mod:`segqc.stat_gates` judges those.
        """
        section = getattr(self, scope)
        return {
            key: limit
            for key, limit in section
            if limit is not None and (limit.min is not None or limit.max is not None)
        }


@dataclass(frozen=True)
class LoadedThresholds:
    """Validated thresholds plus where they came from (shown in the report)."""

    thresholds: Thresholds
    path: Path
    text: str
    is_bundled_default: bool


def bundled_thresholds_path() -> Path:
    """Path of the thresholds.yaml shipped with segqc (used when the rootdir has none)."""
    return Path(str(resources.files("segqc") / "resources" / "thresholds.yaml"))


def load_thresholds(path: Path, *, is_bundled_default: bool = False) -> LoadedThresholds:
    """Read ``path`` with ``yaml.safe_load`` and validate it.

    Parameters
    ----------
    path : Path
        The thresholds file.
    is_bundled_default : bool
        Recorded in the result so outputs can say the bundled defaults were used.

    Returns
    -------
    LoadedThresholds

    Raises
    ------
    ThresholdsError
        File missing, unreadable, not YAML, empty, or not matching the schema. The message
        names the file, the key path and the fix, one problem per line.
    """
    name = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ThresholdsError(
            f"{name}: file not found; give an existing file with --thresholds "
            "(the bundled default is used only when no --thresholds is given)"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ThresholdsError(f"{name}: cannot read the file ({exc})") from None
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{name}:{mark.line + 1}:{mark.column + 1}" if mark is not None else name
        problem = getattr(exc, "problem", None) or str(exc)
        raise ThresholdsError(f"{where}: YAML syntax error: {problem}") from None
    if document is None:
        raise ThresholdsError(
            f"{name}: the file is empty; add at least one section (e.g. 'per_image:') — "
            "the bundled thresholds.yaml documents every key"
        )
    if not isinstance(document, dict):
        raise ThresholdsError(
            f"{name}: expected a mapping of sections (matching, per_image, ...), "
            f"got a {type(document).__name__}"
        )
    try:
        thresholds = Thresholds.model_validate(document)
    except ValidationError as exc:
        raise ThresholdsError("\n".join(_describe_errors(name, exc))) from None
    return LoadedThresholds(thresholds, path, text, is_bundled_default)


def _describe_errors(name: str, exc: ValidationError) -> Iterator[str]:
    for error in exc.errors():
        loc = tuple(str(part) for part in error["loc"])
        key_path = ".".join(loc)
        if error["type"] == "extra_forbidden":
            yield f"{name}: {key_path}: {_unknown_key_message(loc)}"
        elif error["type"] in {"model_type", "model_attributes_type"}:
            yield f"{name}: {key_path}: expected a mapping, got {_show(error['input'])}"
        else:
            message = error["msg"].removeprefix("Value error, ")
            yield f"{name}: {key_path}: {message} (got {_show(error['input'])})"


def _unknown_key_message(loc: tuple[str, ...]) -> str:
    model: type[BaseModel] = Thresholds
    for part in loc[:-1]:
        if part not in model.model_fields:
            continue  # a key of a mapping section (an IoU threshold of aggregate_at)
        annotation = model.model_fields[part].annotation
        model = _model_in(annotation)
    valid = list(model.model_fields)
    what = {1: "unknown section", 2: "unknown metric" if loc[0] in LIMIT_SCOPES else "unknown key"}
    kind = "unknown metric" if loc[0] == "aggregate_at" else what.get(len(loc), "unknown key")
    close = closest_key(loc[-1], valid)
    hint = f"did you mean '{close}'?" if close else f"valid keys: {', '.join(valid)}"
    return f"{kind}; {hint}"


def closest_key(typo: str, valid: list[str]) -> str | None:
    """The valid key a typo most likely meant: containment first, then edit similarity.

    ``f1_score`` -> ``f1`` and ``iou`` -> ``iou_threshold`` (containment), ``pixeliou`` ->
    ``pixel_iou`` (similarity); None when nothing is close.
    """
    lowered = typo.lower()
    containing = [key for key in valid if key in lowered or lowered in key]
    if containing:
        return max(containing, key=len)
    close = difflib.get_close_matches(lowered, valid, n=1, cutoff=0.6)
    return close[0] if close else None


def _model_in(annotation: Any) -> type[BaseModel]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        if isinstance(arg, type) and issubclass(arg, BaseModel):
            return arg
    raise TypeError(f"no pydantic model in {annotation!r}")


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
