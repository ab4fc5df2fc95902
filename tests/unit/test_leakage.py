"""Leakage: QC images that are flipped/rotated crops of training images are found."""

import json

import numpy as np
import pytest
import tifffile
from scipy.ndimage import gaussian_filter
from skimage.draw import disk

from segqc.checks.leakage.search import DIHEDRAL, find_leaks, ncc_search, signature_image

QC = ("--pyargs", "segqc.qc_tests")


def nuclei(seed, shape=(192, 192), n=40):
    """Random bright disks (different seeds: different fields of view)."""
    rng = np.random.default_rng(seed)
    image = np.zeros(shape)
    for _ in range(n):
        centre = rng.uniform(0, shape[0]), rng.uniform(0, shape[1])
        image[disk(centre, rng.uniform(4, 9), shape=shape)] = rng.uniform(0.5, 1)
    image = gaussian_filter(image, 1.5) * 400 + 100 + rng.normal(0, 15, shape)
    return np.clip(image, 0, 65535).astype(np.uint16)


def test_ncc_of_a_probe_with_itself_is_one_in_every_orientation():
    rng = np.random.default_rng(0)
    probe = rng.random((8, 8))
    for _, flip, k in DIHEDRAL:
        placed = np.zeros((20, 24))
        placed[5:13, 9:17] = np.rot90(probe[:, ::-1] if flip else probe, k)
        placed[placed == 0] = rng.random(int((placed == 0).sum()))
        scores, best = ncc_search(probe, [placed * 3 + 7])  # gain and offset do not matter
        assert scores[0] == pytest.approx(1.0, abs=1e-4)
        assert DIHEDRAL[best[0]][1:] == (flip, k)


def test_ncc_of_unrelated_noise_is_low_and_small_images_score_zero():
    rng = np.random.default_rng(1)
    scores, _ = ncc_search(rng.random((16, 16)), [rng.random((40, 40)), rng.random((8, 8))])
    assert scores[0] < 0.6 and scores[1] == 0.0


def test_signature_reduces_channels_and_z_and_downsamples():
    stack = np.zeros((3, 40, 48, 2), np.float32)
    stack[1, 8:16, 8:16, :] = 1
    signature = signature_image(stack, downsample=4)
    assert signature.shape == (10, 12)
    assert signature[3, 3] > signature[8, 10]


@pytest.fixture
def training(tmp_path):
    folder = tmp_path / "train"
    folder.mkdir()
    for seed in range(4):
        tifffile.imwrite(folder / f"train_{seed}.tif", nuclei(seed))
    return folder


def test_flipped_rotated_crop_is_found_and_disjoint_data_is_not(tmp_path, training):
    qc = tmp_path / "qc"
    qc.mkdir()
    crop = np.rot90(np.fliplr(nuclei(2)[30:170, 25:185]), 1)
    tifffile.imwrite(qc / "leaked.tif", (crop * 1.5).astype(np.float32))
    tifffile.imwrite(qc / "fresh.tif", nuclei(100))
    report = find_leaks(sorted(qc.iterdir()), sorted(training.iterdir()))
    (leak,) = report.leaks
    assert (leak.qc.name, leak.training.name) == ("leaked.tif", "train_2.tif")
    assert report.closest["fresh.tif"][1] < 0.7


def test_training_patch_inside_a_qc_image_is_found(tmp_path):
    folder = tmp_path / "train"
    folder.mkdir()
    big = nuclei(7, shape=(256, 256), n=70)
    tifffile.imwrite(folder / "patch.tif", big[100:196, 60:156])
    tifffile.imwrite(tmp_path / "qc.tif", big)
    (leak,) = find_leaks([tmp_path / "qc.tif"], [folder / "patch.tif"]).leaks
    assert "training image found inside the QC image" in leak.how


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
        *QC, "--predictions", str(root / "predictions"), "--qc-target", str(root / "target"),
        "--qc-source", str(root / "source"), "--training-data", str(training), "-v",
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
