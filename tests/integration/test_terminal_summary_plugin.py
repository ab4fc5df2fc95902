"""The segqc terminal summary counts every FAIL and WARN line it prints (issue 16, point 16).

QC data: ``make_qc``'s two images of 10 disks, predicted exactly, so no metric limit
breaks. The training history's val_loss still falls by 0.01 an epoch at the end: over
the last 10 epochs its smoothed value falls about 11 %, far beyond the 2 % ``converged``
tolerance, so that check warns (level warn) while the other loss checks pass. Before,
the headline said "0 warnings" right above the ``WARN loss_curve::converged`` line.
"""

import numpy as np
import pytest

from tests.helpers import LOSS_CURVE_TESTS, REGRESSION_TESTS
from tests.unit.loss_logs import write_csv

QC = ("--pyargs", "segqc.qc_tests")


def test_loss_curve_warning_is_counted_in_the_headline(pytester, make_qc):
    qc = make_qc(2, root=pytester.path / "qc")
    epochs = np.arange(1, 41)
    # loss falls 36 % (learning passes); val_loss ends at its minimum (no overfitting)
    # and at 0.8 / 0.6 = 1.33 times the loss (gap below 2).
    history = write_csv(
        pytester.path / "training_evaluation.csv",
        {"loss": 1.0 - 0.01 * epochs, "val_loss": 1.2 - 0.01 * epochs},
    )
    limits = pytester.path / "limits.yaml"
    limits.write_text("per_image:\n  f1: {min: 0.7}\n", encoding="utf-8")
    result = pytester.runpytest(
        *QC, f"--predictions={qc.predictions}", f"--qc-target={qc.target}",
        f"--thresholds={limits}", f"--training-log={history}",
    )  # fmt: skip
    # The 5 loss tests ran (converged passes with a warning) beside the 2 image tests;
    # regression skips (no baseline), test_aggregate and test_image_mean skip (no limits).
    assert result.ret == pytest.ExitCode.OK
    result.assert_outcomes(passed=2 + LOSS_CURVE_TESTS, skipped=REGRESSION_TESTS + 2, warnings=1)
    lines = result.stdout.lines
    [headline] = [line for line in lines if "QC images evaluated" in line]
    warned = [line for line in lines if line.startswith("WARN ")]
    failed = [line for line in lines if line.startswith("FAIL ")]
    assert [line.split("::")[0] for line in warned] == ["WARN loss_curve"]
    assert "converged" in warned[0]
    assert failed == []
    assert headline.endswith("0 limits failed, 1 warning")
