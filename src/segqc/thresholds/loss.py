"""The ``loss_curve:`` section of thresholds.yaml, declared with pydantic.

Validated like the rest of thresholds.yaml (strict types, no unknown keys; see
:mod:`segqc.thresholds.schema`); the checks that use it are in :mod:`segqc.checks.loss.convergence`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "ConvergedSettings",
    "FiniteSettings",
    "GapSettings",
    "LearningSettings",
    "LossCurveSettings",
    "OverfittingSettings",
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class FiniteSettings(_Strict):
    """No NaN or inf in loss or val_loss."""

    level: Literal["fail", "warn"] = "fail"


class LearningSettings(_Strict):
    """Training loss fell by at least ``min_drop`` (mean of the first vs last ``window``)."""

    min_drop: float = Field(default=0.1, ge=0.0, le=1.0)
    window: int = Field(default=5, ge=1)
    level: Literal["fail", "warn"] = "fail"


class ConvergedSettings(_Strict):
    """Smoothed val_loss changed by at most ``tolerance`` over the last ``last_epochs``."""

    last_epochs: int = Field(default=10, ge=1)
    tolerance: float = Field(default=0.02, ge=0.0)
    level: Literal["fail", "warn"] = "warn"


class OverfittingSettings(_Strict):
    """Smoothed val_loss at the end at most ``max_rise`` above its minimum."""

    max_rise: float = Field(default=0.1, ge=0.0)
    level: Literal["fail", "warn"] = "fail"


class GapSettings(_Strict):
    """Smoothed final val_loss / loss at most ``max_ratio``."""

    max_ratio: float = Field(default=2.0, gt=0.0)
    level: Literal["fail", "warn"] = "fail"


class LossCurveSettings(_Strict):
    """The ``loss_curve:`` section of thresholds.yaml."""

    required: bool = False
    smoothing_window: int = Field(default=5, ge=1)
    finite: FiniteSettings = FiniteSettings()
    learning: LearningSettings = LearningSettings()
    converged: ConvergedSettings = ConvergedSettings()
    overfitting: OverfittingSettings = OverfittingSettings()
    generalisation_gap: GapSettings = GapSettings()
