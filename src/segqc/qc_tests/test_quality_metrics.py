"""Quality Control #3 (ZeroCostDL4Mic): quality metrics against ground-truth masks.

Limits come from the ``per_image``, ``aggregate`` and ``image_mean`` sections of
thresholds.yaml; the fixtures come from the segqc plugin.
"""

from typing import Any

import pytest

from segqc.checks.quality import DatasetOutcome
from segqc.pipeline.outcome import ImageOutcome
from segqc.session import QcSession
from segqc.testing import assert_image, assert_verdicts


def test_image(qc_image: ImageOutcome, qc_session: QcSession) -> None:
    """Each QC image meets the ``per_image`` limits."""
    assert_image(qc_image, qc_session.limits)


def test_aggregate(qc_dataset: DatasetOutcome, record_property: Any) -> None:
    """The QC set, pooled (tp, fp, fn summed over images), meets the ``aggregate`` limits."""
    if qc_dataset.pooled is None:
        pytest.fail("no QC image could be evaluated; see the errors above", pytrace=False)
    for key, value in qc_dataset.pooled.values().items():
        record_property(key, value)
    if not qc_dataset.pooled_verdicts:
        pytest.skip("no 'aggregate' limits in thresholds.yaml")
    assert_verdicts(qc_dataset.pooled_verdicts)


def test_image_mean(qc_dataset: DatasetOutcome, record_property: Any) -> None:
    """The mean over images (each image weighs the same) meets the ``image_mean`` limits."""
    if qc_dataset.mean is None:
        pytest.fail("no QC image could be evaluated; see the errors above", pytrace=False)
    for key, value in qc_dataset.mean.items():
        record_property(key, value)
    if not qc_dataset.mean_verdicts:
        pytest.skip("no 'image_mean' limits in thresholds.yaml")
    assert_verdicts(qc_dataset.mean_verdicts)
