"""Bias: every object-size bin and every image group meets its own limits.

Size bins: ``subgroups.object_size`` in thresholds.yaml. Image groups: ``--qc-groups``
(subfolders or a CSV), limits in ``subgroups.image_groups``.
"""

from typing import Any

import pytest

from segqc.checks.subgroups.grouping import GroupOutcome, SizeBinOutcome
from segqc.testing import assert_verdicts


def test_object_size(qc_size_bin: SizeBinOutcome, record_property: Any) -> None:
    """Recall and mean matched IoU of the bin's ground-truth objects meet the limits."""
    if qc_size_bin.values["n_true"] == 0:
        pytest.skip(f"no ground-truth {qc_size_bin.label} in the QC set")
    for key, value in qc_size_bin.values.items():
        record_property(key, value)
    if not qc_size_bin.verdicts:
        pytest.skip("no limits for this bin in subgroups.object_size")
    assert_verdicts(qc_size_bin.verdicts)


def test_image_group(qc_image_group: GroupOutcome, record_property: Any) -> None:
    """The group's images, pooled, meet the ``subgroups.image_groups`` limits."""
    if qc_image_group.values is None:
        pytest.fail(
            f"group {qc_image_group.name}: none of its images could be evaluated", pytrace=False
        )
    for key, value in qc_image_group.values.items():
        record_property(key, value)
    if not qc_image_group.verdicts:
        pytest.skip("no limits in subgroups.image_groups")
    assert_verdicts(qc_image_group.verdicts)
