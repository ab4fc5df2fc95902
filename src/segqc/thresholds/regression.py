"""The ``regression:`` and ``statistics:`` sections of thresholds.yaml (pydantic schema).

Kept apart from :mod:`segqc.thresholds.schema` so that module stays about absolute limits; it
imports these models into its :class:`~segqc.thresholds.schema.Thresholds`, so they are
validated, and their mistakes reported, exactly like the rest of the file::

    regression:
      require_significant: false   # true: a drop beyond max_drop fails only if significant
      aggregate:  {f1: {max_drop: 0.02}}
      image_mean: {f1: {max_drop: 0.02}}
      per_image:  {f1: {max_drop: 0.10, level: warn}}
    statistics:
      bootstrap: {n: 1000, confidence: 0.95, seed: 0}
      worst_images: {fraction: 0.1, f1: {min: 0.5}}
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model, model_validator

from segqc.metrics.catalogue import METRICS

__all__ = [
    "DIRECTED_METRICS",
    "BootstrapSettings",
    "DropLimit",
    "RegressionSettings",
    "StatisticsSettings",
    "WorstLimit",
]

#: Metrics for which "better" is defined (see MetricSpec.better); only these may be
#: given regression or worst-case limits.
DIRECTED_METRICS: tuple[str, ...] = tuple(s.key for s in METRICS if s.better is not None)
_UNDIRECTED = tuple(s.key for s in METRICS if s.better is None)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class DropLimit(_Strict):
    """How much worse than the baseline a metric may get (one-sided: improvements pass)."""

    max_drop: float = Field(ge=0.0)
    level: Literal["fail", "warn"] = "fail"


class _RatioDrop(DropLimit):
    max_drop: float = Field(ge=0.0, le=1.0)


class WorstLimit(_Strict):
    """Bounds on the mean of a metric over the worst images."""

    min: float | None = None
    max: float | None = None
    level: Literal["fail", "warn"] = "fail"

    @model_validator(mode="after")
    def _bounds_make_sense(self) -> WorstLimit:
        if self.min is None and self.max is None:
            raise ValueError("a limit needs 'min' and/or 'max'")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min}) is greater than max ({self.max})")
        return self


class _DirectedOnly(_Strict):
    @model_validator(mode="before")
    @classmethod
    def _refuse_undirected(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for key in _UNDIRECTED:
                if key in data:
                    raise ValueError(
                        f"{key} cannot be limited here: it describes the data, so neither "
                        "higher nor lower is better"
                    )
        return data


_DropLimits: type[_Strict] = create_model(  # type: ignore[call-overload]
    "DropLimits",
    __base__=_DirectedOnly,
    **{
        spec.key: ((_RatioDrop if spec.kind == "ratio" else DropLimit) | None, None)
        for spec in METRICS
        if spec.better is not None
    },
)


class RegressionSettings(_Strict):
    """One-sided tolerances against a baseline, per scope, and whether drops must be
    significant (paired bootstrap over images) to fail."""

    require_significant: bool = False
    aggregate: _DropLimits = _DropLimits()  # type: ignore[valid-type]
    image_mean: _DropLimits = _DropLimits()  # type: ignore[valid-type]
    per_image: _DropLimits = _DropLimits()  # type: ignore[valid-type]

    def limits(self, scope: str) -> dict[str, DropLimit]:
        """The drop limits of ``scope`` (``aggregate``, ``image_mean``, ``per_image``)."""
        return {key: limit for key, limit in getattr(self, scope) if limit is not None}


class BootstrapSettings(_Strict):
    """Seeded bootstrap over images: ``n`` resamples, percentile interval at ``confidence``."""

    n: int = Field(default=1000, ge=100, le=100_000)
    confidence: float = Field(default=0.95, gt=0.5, lt=1.0)
    seed: int = Field(default=0, ge=0)


_WorstImages: type[_Strict] = create_model(  # type: ignore[call-overload]
    "WorstImages",
    __base__=_DirectedOnly,
    fraction=(float, Field(gt=0.0, le=1.0)),
    **{spec.key: (WorstLimit | None, None) for spec in METRICS if spec.better is not None},
)


class StatisticsSettings(_Strict):
    """Bootstrap settings and the worst-case gate."""

    bootstrap: BootstrapSettings = BootstrapSettings()
    worst_images: _WorstImages | None = None  # type: ignore[valid-type]

    def worst_limits(self) -> tuple[float, dict[str, WorstLimit]]:
        """``(fraction, limits by metric)`` of ``worst_images`` (``(0, {})`` if unset)."""
        if self.worst_images is None:
            return 0.0, {}
        section = self.worst_images
        limits = {k: v for k, v in section if k != "fraction" and v is not None}
        return float(section.fraction), limits
