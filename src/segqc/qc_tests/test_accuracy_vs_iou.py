"""Quality metrics at other IoU thresholds: the ``aggregate_at`` limits of thresholds.yaml.

The QC set is pooled (as in ``test_aggregate``) at each IoU threshold that has limits.
The test is deselected when thresholds.yaml has no ``aggregate_at`` section.
"""

import pytest

from segqc.checks.accuracy import AccuracyCurve
from segqc.testing import assert_verdicts


def test_aggregate_at(qc_accuracy: AccuracyCurve | None) -> None:
    """The pooled QC set meets the ``aggregate_at`` limits at each IoU threshold."""
    if qc_accuracy is None:
        pytest.fail("no QC image could be evaluated; see the errors above", pytrace=False)
    assert_verdicts(qc_accuracy.verdicts)
