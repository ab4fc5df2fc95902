"""Leakage: QC images that are flipped/rotated crops of training images are found."""

import numpy as np
import pytest
import tifffile

from segqc.checks.leakage.search import DIHEDRAL, find_leaks, ncc_search, signature_image
from tests.helpers import nuclei, training_folder


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
    return training_folder(tmp_path / "train")


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
