"""Robustness: the model segments perturbed copies of each QC image about as well.

One test per perturbation x image (``--robustness`` or ``robustness:`` in
thresholds.yaml); the allowed drop of each metric is ``robustness.<kind>.max_drop``.
"""

from typing import Any

import pytest

from segqc.checks.robustness.perturbations import RobustnessResult


def test_robustness(qc_robustness: RobustnessResult, record_property: Any) -> None:
    """The metrics drop by no more than ``max_drop`` under the perturbation."""
    for key, value in qc_robustness.drop.items():
        record_property(f"drop_{key}", value)
    if not qc_robustness.passed:
        pytest.fail("\n".join(qc_robustness.failures), pytrace=False)
