"""What makes a test a QC test: the fixtures of the QC suite, and the marker of checks
that were not asked for. Imports nothing, so the plugin can use it in any pytest run."""

from __future__ import annotations

__all__ = ["IMAGE_ATTRIBUTE", "INACTIVE_MARKER", "QC_FIXTURES", "WHOLE_SET_FIXTURES"]

#: The test report attribute naming the image of a per-image test (set by segqc.gate).
IMAGE_ATTRIBUTE = "segqc_image"

#: Tests of checks that were not asked for carry this marker and are deselected.
INACTIVE_MARKER = "segqc_inactive_check"
#: The fixtures of the QC suite: a test that requests one is a QC test.
QC_FIXTURES = frozenset(
    {
        "qc_session",
        "qc_outcomes",
        "qc_image",
        "qc_dataset",
        "qc_accuracy",
        "loss_curve",
        "qc_regression",
        "qc_statistics",
        "qc_robustness",
        "qc_device_agreement",
        "qc_leakage",
        "qc_size_bin",
        "qc_image_group",
    }
)
#: Fixtures that need every image's outcome.
WHOLE_SET_FIXTURES = frozenset(
    {"qc_outcomes", "qc_dataset", "qc_accuracy", "qc_regression", "qc_statistics",
     "qc_size_bin", "qc_image_group"}
)  # fmt: skip
