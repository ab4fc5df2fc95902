"""Regression checks with the bundled demo models: demo2d (good) and demo2d_weak.

One predicting session compares the two models (``--baseline-model``); the two baseline
file runs after it read the predictions from segqc's prediction cache.
"""

import json

import pytest

from tests.helpers import DEMO2D, DEMO2D_WEAK, LOSS_CURVE_TESTS, QC2D

QC = ("--pyargs", "segqc.qc_tests")
DEMO_ARGS = (f"--qc-source={QC2D / 'source'}", f"--qc-target={QC2D / 'target'}",
             "--device", "cpu")  # fmt: skip
LIMITS = """\
regression:
  aggregate: {f1: {max_drop: 0.02}, recall: {max_drop: 0.02}}
  per_image: {f1: {max_drop: 0.10}}
"""


def test_demo_against_weak_improves_and_weak_against_demo_fails(tensorflow_ready, pytester):
    limits = pytester.path / "limits.yaml"
    limits.write_text(LIMITS)
    common = (*QC, *DEMO_ARGS, f"--thresholds={limits}")
    result = pytester.runpytest(*common, f"--model={DEMO2D}", f"--baseline-model={DEMO2D_WEAK}")
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(
        [f"compared 6 QC images with model {DEMO2D_WEAK} (run in this session): improved",
         "IMPROVED pooled: f1 improved by *"]
    )  # fmt: skip
    out = pytester.path / "qc-output"
    names = sorted(p.name for p in (QC2D / "source").iterdir())
    assert sorted(p.name for p in (out / "baseline-model" / "predictions").iterdir()) == names
    table = json.loads((out / "summary.json").read_text())["regression"]
    assert table["change"] == "improved"
    assert table["aggregate"]["f1"]["new"] > table["aggregate"]["f1"]["old"]
    assert table["aggregate"]["f1"]["delta_ci_low"] > 0  # a clear, significant improvement

    baseline = pytester.path / "demo2d.json"
    written = pytester.runpytest(*common, f"--model={DEMO2D}", f"--baseline={baseline}",
                                 "--update-baseline")  # fmt: skip
    assert written.ret == pytest.ExitCode.OK and baseline.is_file()
    result = pytester.runpytest(*common, f"--model={DEMO2D_WEAK}", f"--baseline={baseline}")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(failed=2, passed=6 + LOSS_CURVE_TESTS, skipped=5)
    result.stdout.fnmatch_lines(
        ["*_ test_regression_aggregate _*", "pooled: recall dropped by *",
         "pooled: f1 dropped by *(thresholds.yaml regression.aggregate.f1.max_drop)",
         "*_ test_regression_per_image _*"]
    )  # fmt: skip
    dropped = [
        v["subject"]
        for v in json.loads((out / "summary.json").read_text())["regression"]["verdicts"]
        if v["scope"] == "per_image" and v["outcome"] == "fail"
    ]
    assert dropped  # the images that got worse are named, one line each
    for name in dropped:
        result.stdout.fnmatch_lines([f"{name}: f1 dropped by *, more than max_drop 0.1 *"])
