"""Leakage as a user runs it: ``--training-data`` fails a QC image seen in training.

The images are random bright disks (``nuclei``, seeded: different seeds, different fields
of view); a leaked QC image is a flipped crop of a training image.
"""

import json

import numpy as np
import pytest
import tifffile

from tests.helpers import nuclei, training_folder

QC = ("--pyargs", "segqc.qc_tests")


@pytest.fixture
def training(tmp_path):
    return training_folder(tmp_path / "train")


def make_qc_from(root, images):
    for folder in ("source", "target", "predictions"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    for name, image in images.items():
        labels = (image > 300).astype(np.uint16)
        tifffile.imwrite(root / "source" / name, image)
        tifffile.imwrite(root / "target" / name, labels)
        tifffile.imwrite(root / "predictions" / name, labels)


def run_with_training(pytester, root, training):
    return pytester.runpytest(
        *QC, f"--predictions={root / 'predictions'}", f"--qc-target={root / 'target'}",
        f"--qc-source={root / 'source'}", f"--training-data={training}", "-v",
    )  # fmt: skip


def test_leakage_test_fails_naming_both_files(pytester, training):
    root = pytester.path / "qc"
    make_qc_from(
        root,
        {"fresh.tif": nuclei(50), "leaked.tif": np.flipud(nuclei(1)[20:180, 10:150]).copy()},
    )
    result = run_with_training(pytester, root, training)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            "*test_leakage FAILED*",
            "1 QC image(s) show the same field of view as training images*",
            f"leaked.tif: same field of view as training image {training}/train_1.tif "
            "(QC image found inside the training image, flipped, rotated 180°; NCC *)",
        ]
    )
    summary = json.loads((pytester.path / "qc-output" / "summary.json").read_text())
    assert summary["leakage"]["passed"] is False
    assert [leak["training"] for leak in summary["leakage"]["leaks"]] == [
        str(training / "train_1.tif")
    ]


def test_disjoint_data_passes(pytester, training):
    root = pytester.path / "qc"
    make_qc_from(root, {"a.tif": nuclei(50), "b.tif": nuclei(51)})
    result = run_with_training(pytester, root, training)
    result.stdout.fnmatch_lines(["*test_leakage PASSED*"])
    assert result.ret == pytest.ExitCode.OK


def test_missing_training_folder_is_a_usage_error(pytester, make_qc):
    qc = make_qc(1, root=pytester.path / "qc")
    result = run_with_training(pytester, qc.root, pytester.path / "nope")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: segqc: --training-data */nope: folder does not exist"])
