"""Regression checks: is the model at least as good as the released one, on the same images?

Compares with ``--baseline FILE`` (written earlier by ``--update-baseline``) or with
``--baseline-model DIR`` run in the same session. Limits come from the ``regression:``
section of thresholds.yaml; they are one-sided, so improvements always pass. Skipped when
no baseline is given.
"""

from typing import Any

import pytest

from segqc.checks.regression.comparison import Comparison
from segqc.testing import assert_verdicts


def _check(comparison: Comparison, scope: str, record_property: Any) -> None:
    __tracebackhide__ = True
    verdicts = comparison.verdicts_of(scope)
    record_property("change", comparison.change())
    if not verdicts:
        pytest.skip(f"no 'regression.{scope}' limits in thresholds.yaml")
    assert_verdicts(verdicts)


def test_regression_aggregate(qc_regression: Comparison, record_property: Any) -> None:
    """Pooled metrics (tp, fp, fn summed over images) did not drop beyond ``max_drop``."""
    _check(qc_regression, "aggregate", record_property)


def test_regression_image_mean(qc_regression: Comparison, record_property: Any) -> None:
    """Image-mean metrics did not drop beyond ``max_drop``."""
    _check(qc_regression, "image_mean", record_property)


def test_regression_per_image(qc_regression: Comparison, record_property: Any) -> None:
    """No QC image got worse than ``per_image`` ``max_drop``; offenders are named."""
    _check(qc_regression, "per_image", record_property)
