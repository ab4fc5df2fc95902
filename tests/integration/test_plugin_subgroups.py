"""Subgroups as a user runs them: size bins and image groups fail where the average passes.

Each image holds 4 small squares (4 x 4 = 16 px) and 4 large ones (12 x 12 = 144 px).
With edges [50, 100]: small = area < 50, medium = 50..100 (empty), large = area >= 100.
The condB image's prediction misses the small squares and cuts the large ones to
10 x 12 (IoU 120 / 144).
"""

import json

import numpy as np
import pytest
import tifffile

from tests.helpers import OPTIONAL_SKIPPED, SUBGROUP_LIMITS, squares

QC = ("--pyargs", "segqc.qc_tests")


def write_set(root, name, truth, prediction):
    for folder, data in (
        ("source", truth * 100 + 10),
        ("target", truth),
        ("predictions", prediction),
    ):
        path = root / folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        tifffile.imwrite(path, data.astype(np.uint16))


def test_size_bins_and_groups_fail_where_the_average_passes(pytester):
    root = pytester.path / "qc"
    write_set(root, "condA/a1.tif", squares(), squares())
    write_set(root, "condA/a2.tif", squares(), squares())
    write_set(root, "condB/b1.tif", squares(), squares(small=False, large_height=10))
    (pytester.path / "limits.yaml").write_text(SUBGROUP_LIMITS + "aggregate:\n  f1: {min: 0.8}\n")
    result = pytester.runpytest(
        *QC, f"--predictions={root / 'predictions'}", f"--qc-target={root / 'target'}",
        f"--qc-source={root / 'source'}", "--qc-groups", "subfolders",
        "--thresholds", "limits.yaml", "-v",
    )  # fmt: skip
    result.stdout.fnmatch_lines(
        [
            "*test_aggregate PASSED*",
            "*test_object_size?small? FAILED*",
            "*test_object_size?medium? SKIPPED*",
            "*test_object_size?large? FAILED*",
            "*test_image_group?condA? PASSED*",
            "*test_image_group?condB? FAILED*",
        ]
    )
    # pooled: small recall 8 of 12; large IoU (8 * 1 + 4 * 120/144) / 12
    result.stdout.fnmatch_lines(
        [
            "small objects (area < 50): recall = 0.6667 < min 0.9 (off by 0.2333; "
            "thresholds.yaml subgroups.object_size.limits.recall.min)",
        ]
    )
    result.stdout.fnmatch_lines(
        ["large objects (area >= 100): mean_matched_score = 0.9444 < min 0.95 *by_bin.large*"]
    )
    # condB: tp 4, fn 4, fp 0 -> f1 = 8 / 12
    result.stdout.fnmatch_lines(["group condB: f1 = 0.6667 < min 0.9*image_groups.limits.f1.min)"])
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    summary = json.loads((pytester.path / "qc-output" / "summary.json").read_text())
    bins = {b["bin"]: b for b in summary["subgroups"]["object_size"]}
    assert bins["small"]["values"]["recall"] == pytest.approx(8 / 12)
    assert bins["small"]["max_area"] == 50 and bins["large"]["min_area"] == 100
    assert [v["outcome"] for v in bins["small"]["limits"]] == ["fail"]
    groups = {g["group"]: g for g in summary["subgroups"]["image_groups"]}
    assert groups["condA"]["images"] == ["condA/a1.tif", "condA/a2.tif"]
    assert groups["condB"]["values"]["f1"] == pytest.approx(8 / 12)
    assert [img["name"] for img in summary["images"]] == [
        "condA/a1.tif",
        "condA/a2.tif",
        "condB/b1.tif",
    ]
    assert summary["robustness"] is None and summary["leakage"] is None


def test_groups_from_a_csv_file(pytester):
    root = pytester.path / "qc"
    write_set(root, "a1.tif", squares(), squares())
    write_set(root, "b1.tif", squares(), squares(small=False))
    (pytester.path / "groups.csv").write_text("image,group\na1.tif,bright\nb1.tif,dim\n")
    (pytester.path / "limits.yaml").write_text(SUBGROUP_LIMITS)
    result = pytester.runpytest(
        *QC, f"--predictions={root / 'predictions'}", f"--qc-target={root / 'target'}",
        "--qc-groups", "groups.csv", "--thresholds", "limits.yaml", "-v",
    )  # fmt: skip
    result.stdout.fnmatch_lines(
        ["*test_image_group?bright? PASSED*", "*test_image_group?dim? FAILED*"]
    )


def test_bad_groups_file_is_a_usage_error(pytester):
    root = pytester.path / "qc"
    write_set(root, "a1.tif", squares(), squares())
    write_set(root, "b1.tif", squares(), squares())
    (pytester.path / "groups.csv").write_text("image,group\na1.tif,x\nzz.tif,y\n")
    result = pytester.runpytest(
        *QC, f"--predictions={root / 'predictions'}", f"--qc-target={root / 'target'}",
        "--qc-groups", "groups.csv",
    )  # fmt: skip
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*groups.csv: not QC images: zz.tif", "*groups.csv: QC images without a group: b1.tif"]
    )
    assert "Traceback" not in result.stdout.str() + result.stderr.str()


def test_without_groups_or_bins_no_subgroup_tests_run(pytester, make_qc):
    qc = make_qc(2, root=pytester.path / "qc")
    result = pytester.runpytest(*QC, f"--predictions={qc.predictions}", f"--qc-target={qc.target}")
    # deselected: aggregate_at (no limits) + robustness, leakage, size-bin, image-group,
    # device agreement
    result.assert_outcomes(passed=4, skipped=OPTIONAL_SKIPPED, deselected=1 + 5)
