"""The community metrics (SEG, AJI, DSB score, SQ, RQ) gated in every scope, as a user runs it.

The metrics themselves are tested against hand-computed cases and naive references in
tests/unit/test_community_metrics.py.
"""

import json

import pytest

from tests.helpers import OPTIONAL_SKIPPED


def test_community_metrics_gate_in_every_scope(pytester, make_qc, thresholds_file):
    # make_qc: 10 equal disks per image; img01's prediction drops 4 of them. By hand for
    # img01: every kept disk is exact, so SEG = AJI = DSB = 6/10 (AJI: C = 6 A,
    # U = 6 A + 4 A for the unpaired GT), SQ = 1, RQ = 6 / (6 + 4/2).
    qc = make_qc(3, dropped=(0, 4, 0), root=pytester.path / "qc")
    limits = thresholds_file(
        "per_image:\n  seg: {min: 0.7}\n  sq: {min: 0.99}\n"
        "aggregate:\n  aji: {min: 0.9}\n  dsb_score: {min: 0.8}\n"
        "image_mean:\n  rq: {min: 0.95}\n"
    )
    result = pytester.runpytest(
        "--pyargs", "segqc.qc_tests", f"--predictions={qc.predictions}",
        f"--qc-target={qc.target}", f"--thresholds={limits}",
    )  # fmt: skip
    result.assert_outcomes(passed=2, failed=3, skipped=OPTIONAL_SKIPPED)
    result.stdout.fnmatch_lines(
        [
            "*img01.tif: seg = 0.6 < min 0.7 (off by 0.1; thresholds.yaml per_image.seg.min)*",
            # pooled AJI = (10 + 6 + 10) A / 30 A
            "*pooled: aji = 0.8667 < min 0.9 (off by 0.03333; thresholds.yaml aggregate.aji.min)*",
            # image mean RQ = (1 + 0.75 + 1) / 3
            "*image mean: rq = 0.9167 < min 0.95*",
        ]
    )
    summary = json.loads((pytester.path / "qc-output" / "summary.json").read_text())
    img01 = summary["images"][1]["metrics"]
    assert (img01["seg"], img01["aji"], img01["dsb_score"]) == pytest.approx((0.6, 0.6, 0.6))
    assert (img01["sq"], img01["rq"]) == pytest.approx((1.0, 0.75))
    assert summary["aggregate"]["pooled"]["dsb_score"] == pytest.approx(26 / 30)
