"""Device agreement: the model predicts each QC image alike on two devices.

One test per image with ``--compare-device cpu|gpu``; the limits are
``device_agreement.mismatched_pixels_per_million`` and
``device_agreement.metric_difference`` in thresholds.yaml.
"""

from typing import Any

from segqc.checks.verdict import Verdict
from segqc.testing import assert_verdicts


def test_device_agreement(qc_device_agreement: list[Verdict], record_property: Any) -> None:
    """The second prediction differs from the first by no more than the limits."""
    for verdict in qc_device_agreement:
        record_property(verdict.metric, verdict.value)
    assert_verdicts(qc_device_agreement)
