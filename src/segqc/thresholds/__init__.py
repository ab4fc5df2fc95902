"""thresholds.yaml: the limits a model must meet, validated once.

The public API: :func:`load_thresholds` reads and validates a file into
:class:`LoadedThresholds` (raising :class:`ThresholdsError` with every problem at once);
:class:`Thresholds` is its content, with the sections declared in
:mod:`segqc.thresholds.schema` (and :mod:`segqc.thresholds.loss`,
:mod:`segqc.thresholds.regression`).
"""

from segqc.thresholds.reading import (
    LoadedThresholds,
    ThresholdsError,
    bundled_thresholds_path,
    load_thresholds,
)
from segqc.thresholds.schema import (
    LIMIT_SCOPES,
    DeviceAgreementSettings,
    Limit,
    RobustnessSettings,
    Thresholds,
)

__all__ = [
    "LIMIT_SCOPES",
    "DeviceAgreementSettings",
    "Limit",
    "LoadedThresholds",
    "RobustnessSettings",
    "Thresholds",
    "ThresholdsError",
    "bundled_thresholds_path",
    "load_thresholds",
]
