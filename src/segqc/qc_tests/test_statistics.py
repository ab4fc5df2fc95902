"""Statistical gates: the bootstrap lower bound of pooled metrics, and the worst images.

Limits: ``aggregate.<metric>.min_ci_low`` and ``statistics.worst_images`` in
thresholds.yaml; bootstrap settings in ``statistics.bootstrap``.
"""

from typing import Any

import pytest

from segqc.checks.statistics.plugin import StatisticsOutcome
from segqc.testing import assert_verdicts


def test_aggregate_confidence(qc_statistics: StatisticsOutcome, record_property: Any) -> None:
    """The bootstrap interval's lower bound of each pooled metric reaches ``min_ci_low``."""
    for key, interval in qc_statistics.intervals["aggregate"].items():
        record_property(f"{key}_ci_low", interval.low)
        record_property(f"{key}_ci_high", interval.high)
    if not qc_statistics.ci_verdicts:
        pytest.skip("no 'min_ci_low' limits in the 'aggregate' section of thresholds.yaml")
    assert_verdicts(qc_statistics.ci_verdicts)


def test_worst_images(qc_statistics: StatisticsOutcome) -> None:
    """The mean over the worst images stays within ``statistics.worst_images``."""
    if not qc_statistics.worst_verdicts:
        pytest.skip("no 'statistics.worst_images' limits in thresholds.yaml")
    assert_verdicts(qc_statistics.worst_verdicts)
