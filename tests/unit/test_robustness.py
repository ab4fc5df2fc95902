"""Robustness: perturbation functions on small arrays, and the tests run as a user would.

The acceptance double is a predictor that thresholds the raw (un-normalised) image at a
fixed grey value, supplied through the ``pytest_segqc_make_predictor`` hook: on the
conftest QC images (background ~100, nuclei ~500) it is exact, under x2 intensity the
background (~200 +- 40) crosses the threshold and the prediction breaks.
"""

import json

import numpy as np
import pytest

from segqc.checks.robustness.perturbations import (
    flip,
    gaussian_blur,
    gaussian_noise,
    intensity_offset,
    intensity_scale,
    plan_perturbations,
    poisson_noise,
    rot90,
)
from segqc.thresholds.schema import RobustnessSettings

QC = ("--pyargs", "segqc.qc_tests")


def test_flip_and_rot90_are_undone_exactly():
    image = np.arange(3 * 4 * 5 * 2).reshape(3, 4, 5, 2)  # Z, Y, X, C
    for axis in "zyx":
        assert np.array_equal(
            flip(flip(image, axis=axis, n_spatial=3), axis=axis, n_spatial=3), image
        )
    assert np.array_equal(flip(image, axis="x", n_spatial=3), image[:, :, ::-1, :])
    for k in (1, 2, 3):
        turned = rot90(image, k=k, n_spatial=3)
        assert turned.shape[-1] == 2 and turned.shape[0] == 3
        assert np.array_equal(rot90(turned, k=-k, n_spatial=3), image)
    square = np.array([[1, 2], [3, 4]])
    assert rot90(square, k=1, n_spatial=2).tolist() == [[2, 4], [1, 3]]


def test_gaussian_noise_has_the_requested_snr_and_is_seeded():
    image = np.random.default_rng(0).uniform(0, 1000, (256, 256))
    noisy = gaussian_noise(image, snr=5, rng=np.random.default_rng(1))
    measured = image.std() / (noisy - image).std()
    assert measured == pytest.approx(5, rel=0.02)
    again = gaussian_noise(image, snr=5, rng=np.random.default_rng(1))
    assert np.array_equal(noisy, again)
    assert not np.array_equal(noisy, gaussian_noise(image, snr=5, rng=np.random.default_rng(2)))


def test_poisson_noise_variance_follows_the_photon_count():
    image = np.full((200, 200), 10.0)
    image[:, 100:] = 110.0  # 99.8th percentile 110, minimum 10 -> 100 photons there
    noisy = poisson_noise(image, peak=100, rng=np.random.default_rng(0))
    bright = noisy[:, 100:]
    # counts ~ Poisson(100), scaled by 1: mean 110, std 10
    assert bright.mean() == pytest.approx(110, abs=0.5)
    assert bright.std() == pytest.approx(10, rel=0.05)
    assert np.all(noisy[:, :100] == 10.0)


def test_intensity_and_blur():
    image = np.array([[0, 10], [20, 40]], np.uint16)
    assert intensity_scale(image, factor=2).tolist() == [[0, 20], [40, 80]]
    assert intensity_offset(image, fraction=0.1).tolist() == [[4, 14], [24, 44]]
    spike = np.zeros((9, 9, 2), np.float32)
    spike[4, 4, :] = [1, 5]
    blurred = gaussian_blur(spike, sigma=1, n_spatial=2)
    assert blurred[..., 0].sum() == pytest.approx(1, abs=1e-4)
    assert blurred[4, 4, 1] / blurred[4, 4, 0] == pytest.approx(5)  # channels kept apart
    assert blurred[4, 4, 0] == pytest.approx(1 / (2 * np.pi), rel=0.05)


def test_plan_ids_follow_the_settings():
    settings = RobustnessSettings.model_validate(
        {"gaussian_noise": {"snr": [10, 5]}, "intensity_scale": {"factors": [2]}, "rot90": {}}
    )
    assert [p.id for p in plan_perturbations(settings)] == [
        "gaussian_noise-snr10", "gaussian_noise-snr5", "intensity_scale-x2", "rot90-k1",
    ]  # fmt: skip


RAW_THRESHOLD_CONFTEST = """
import numpy as np
from skimage.measure import label
from segqc.predict.stardist import PredictionResult

class RawThreshold:
    needs_source_image = True
    def predict(self, pair, image):
        return PredictionResult(labels=label(np.asarray(image) > 180, connectivity=1))
    def describe(self):
        return {"kind": "raw threshold at 180 (test double)"}

def pytest_segqc_make_predictor(config, model_dir):
    return RawThreshold()
"""


def test_a_model_without_normalisation_fails_under_x2_intensity(pytester, make_qc):
    qc = make_qc(2, root=pytester.path / "qc")
    pytester.makeconftest(RAW_THRESHOLD_CONFTEST)
    (pytester.path / "limits.yaml").write_text(
        "robustness:\n  intensity_scale: {factors: [0.5, 2], max_drop: {f1: 0.05}}\n"
        "  flip: {axes: [x]}\n"
    )
    result = pytester.runpytest(
        *QC, "--model", str(pytester.path), "--qc-source", str(qc.source),
        "--qc-target", str(qc.target), "--thresholds", "limits.yaml", "-v",
    )  # fmt: skip
    result.stdout.fnmatch_lines(
        [
            "*test_robustness?intensity_scale-x0.5?img00.tif?? PASSED*",
            "*test_robustness?intensity_scale-x0.5?img01.tif?? PASSED*",
            "*test_robustness?intensity_scale-x2?img00.tif?? FAILED*",
            "*test_robustness?intensity_scale-x2?img01.tif?? FAILED*",
            "*test_robustness?flip-x?img00.tif?? PASSED*",
        ]
    )
    result.stdout.fnmatch_lines(
        ["img00.tif, intensity_scale-x2: f1 dropped by * (1 -> *), more than 0.05 "
         "(thresholds.yaml robustness.intensity_scale.max_drop.f1)"]
    )  # fmt: skip
    assert "Traceback" not in result.stdout.str()
    summary = json.loads((pytester.path / "qc-output" / "summary.json").read_text())
    table = {(r["perturbation"], r["image"]): r for r in summary["robustness"]["results"]}
    assert table["intensity_scale-x0.5", "img00.tif"]["drop"]["f1"] == 0.0
    assert table["intensity_scale-x2", "img00.tif"]["drop"]["f1"] > 0.5
    assert table["flip-x", "img01.tif"]["passed"] is True
    assert summary["robustness"]["perturbations"] == [
        "intensity_scale-x0.5", "intensity_scale-x2", "flip-x",
    ]  # fmt: skip


def test_robustness_is_skipped_with_predictions(pytester, make_qc):
    qc = make_qc(1, root=pytester.path / "qc")
    result = pytester.runpytest(
        *QC, "--predictions", str(qc.predictions), "--qc-target", str(qc.target),
        "--robustness", "-rs",
    )  # fmt: skip
    result.stdout.fnmatch_lines(["*robustness needs a model to predict perturbed images*"])


def test_tiny_model_gets_a_robustness_test_per_perturbation_and_image(
    pytester, make_qc, tiny_model_dir
):
    qc = make_qc(2, root=pytester.path / "qc")
    result = pytester.runpytest(
        *QC, "--model", str(tiny_model_dir), "--qc-source", str(qc.source),
        "--qc-target", str(qc.target), "--robustness", "-v", "-k", "robustness",
    )  # fmt: skip
    # --robustness alone: the default plan, 9 perturbations (snr10, peak100, x0.5, x2,
    # +0.1, sigma1, flip-y, flip-x, rot90-k1) for each of the 2 images
    outcomes = result.parseoutcomes()
    assert outcomes.get("passed", 0) + outcomes.get("failed", 0) == 18
    result.stdout.fnmatch_lines(["*test_robustness?rot90-k1?img01.tif??*"])
    summary = json.loads((pytester.path / "qc-output" / "summary.json").read_text())
    assert len(summary["robustness"]["results"]) == 18


def test_robustness_results_reach_summary_json_under_xdist(pytester, make_qc, worker_path):
    """The robustness tests run on the workers; the controller's summary.json has the
    same table as a run without xdist (in plan order, then image order)."""
    qc = make_qc(3, root=pytester.path / "qc")
    pytester.makeconftest(RAW_THRESHOLD_CONFTEST)
    (pytester.path / "limits.yaml").write_text(
        "robustness:\n  intensity_scale: {factors: [0.5, 2], max_drop: {f1: 0.05}}\n"
        "  flip: {axes: [x]}\n"
    )
    args = (*QC, "--model", str(pytester.path), "--qc-source", str(qc.source),
            "--qc-target", str(qc.target), "--thresholds", "limits.yaml")  # fmt: skip
    tables = {}
    for workers in ("0", "2"):
        output = f"out-n{workers}"
        pytester.runpytest(*args, "-n", workers, "--qc-output", output)
        summary = json.loads((pytester.path / output / "summary.json").read_text())
        tables[workers] = summary["robustness"]
    assert len(tables["2"]["results"]) == 3 * 3  # 3 perturbations x 3 images
    assert tables["2"] == tables["0"]
    assert tables["2"]["mean_drop"]["intensity_scale-x2"]["f1"] > 0.5
