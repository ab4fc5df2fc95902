"""Generalisation: no QC image is a (flipped, rotated, cropped) copy of a training image.

Active with ``--training-data DIR``; settings in ``leakage:`` of thresholds.yaml.
"""

import pytest

from segqc.checks.leakage.search import LeakageReport


def test_leakage(qc_leakage: LeakageReport) -> None:
    """Every QC image shows a field of view the model was not trained on."""
    lines = [leak.message() for leak in qc_leakage.leaks]
    if lines:
        lines.insert(
            0,
            f"{len({leak.qc for leak in qc_leakage.leaks})} QC image(s) show the same field "
            "of view as training images, so their metrics overstate generalisation:",
        )
    lines += [f"cannot compare {problem}" for problem in qc_leakage.problems]
    if lines:
        pytest.fail("\n".join(lines), pytrace=False)
