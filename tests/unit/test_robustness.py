"""Robustness: perturbation functions on small arrays, and one perturbed image measured.

The model double thresholds the raw (un-normalised) image at a fixed grey value: on
``make_qc``'s images (background ~100 +- 20, nuclei ~500) it finds exactly the ground
truth; under x0.5 intensity it still does (50 vs 250); under x2 the background
(~200 +- 40) crosses the threshold and the prediction breaks. It is equivariant, so a
flipped or rotated prediction mapped back onto the original grid is exact again.
"""

from dataclasses import replace

import numpy as np
import pytest
from skimage.measure import label

from segqc.checks.accuracy import IOU_GRID
from segqc.checks.robustness.perturbations import (
    RobustnessResult,
    flip,
    gaussian_blur,
    gaussian_noise,
    intensity_offset,
    intensity_scale,
    perturb_and_measure,
    plan_perturbations,
    poisson_noise,
    robustness_summary,
    rot90,
)
from segqc.data.pairing import QcPair
from segqc.pipeline.evaluate import EvaluationSettings, evaluate_image
from segqc.predict import PredictionResult
from segqc.thresholds.schema import RobustnessSettings


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


class RawThreshold:
    """Labels the connected regions of the raw image above 180; keeps what it was given."""

    needs_source_image = True

    def __init__(self, *, fail: bool = False) -> None:
        self.fail = fail
        self.images: list[np.ndarray] = []

    def predict(self, pair, image):
        self.images.append(image)
        if self.fail:
            raise RuntimeError("out of GPU memory\ntraceback lines")
        return PredictionResult(labels=label(np.asarray(image) > 180, connectivity=1))

    def describe(self):
        return {"kind": "raw threshold at 180 (test double)"}


SETTINGS = RobustnessSettings.model_validate(
    {
        "intensity_scale": {"factors": [0.5, 2], "max_drop": {"f1": 0.05}},
        "flip": {"axes": ["x"]},
        "rot90": {"k": [1]},
    }
)
PLAN = {p.id: p for p in plan_perturbations(SETTINGS)}


@pytest.fixture
def qc_pair(make_qc):
    qc = make_qc(1)
    return QcPair("img00.tif", qc.source / "img00.tif", qc.target / "img00.tif")


def measured(pair, perturbation, predictor=None, *, seed=0):
    """Evaluate ``pair`` and measure it under ``perturbation`` (an id of PLAN, or one)."""
    if isinstance(perturbation, str):
        perturbation = PLAN[perturbation]
    predictor = predictor or RawThreshold()
    original = evaluate_image(
        pair, predictor=predictor, settings=EvaluationSettings(0.5, IOU_GRID)
    ).scores
    return perturb_and_measure(
        perturbation, pair, predictor=predictor, original=original,
        iou_threshold=0.5, seed=seed,
    )  # fmt: skip


def test_the_double_is_exact_on_the_original_image(qc_pair):
    result = measured(qc_pair, "intensity_scale-x0.5")
    assert result.original["f1"] == 1.0 and result.original["tp"] == 10


@pytest.mark.parametrize("perturbation", ["intensity_scale-x0.5", "flip-x", "rot90-k1"])
def test_harmless_perturbations_drop_nothing(qc_pair, perturbation):
    # flip and rot90 only pass because the prediction is mapped back onto the original
    # grid: the disks are not symmetric under either
    result = measured(qc_pair, perturbation)
    assert result.error is None and result.passed and result.failures == []
    assert result.perturbed["tp"] == 10
    assert set(result.drop.values()) == {0.0}
    assert "tp" not in result.drop  # counts have no drop, only ratios
    assert result.max_drop == {"f1": 0.05}


def test_doubled_intensity_breaks_the_double_and_names_the_limit(qc_pair):
    result = measured(qc_pair, "intensity_scale-x2")
    assert not result.passed and result.drop["f1"] > 0.5
    (line,) = result.failures
    assert line == (
        f"img00.tif, intensity_scale-x2: f1 dropped by {result.drop['f1']:.4g} "
        f"(1 -> {result.perturbed['f1']:.4g}), more than 0.05 "
        "(thresholds.yaml robustness.intensity_scale.max_drop.f1)"
    )
    assert result.as_dict()["passed"] is False


def test_the_predictor_gets_the_perturbed_image(qc_pair):
    predictor = RawThreshold()
    measured(qc_pair, "rot90-k1", predictor)
    original, rotated = predictor.images
    np.testing.assert_array_equal(rotated, np.rot90(original))


def test_noise_is_seeded_by_the_seed_the_perturbation_and_the_image(qc_pair):
    noise = plan_perturbations(RobustnessSettings.model_validate({"gaussian_noise": {}}))[0]
    first, again, other_seed = RawThreshold(), RawThreshold(), RawThreshold()
    measured(qc_pair, noise, first)
    measured(qc_pair, noise, again)
    measured(qc_pair, noise, other_seed, seed=1)
    np.testing.assert_array_equal(first.images[1], again.images[1])
    assert not np.array_equal(first.images[1], other_seed.images[1])
    renamed = RawThreshold()
    measured(replace(qc_pair, name="copy.tif"), noise, renamed)
    assert not np.array_equal(first.images[1], renamed.images[1])


def test_a_failing_prediction_is_that_results_one_line_error(qc_pair):
    original = evaluate_image(
        qc_pair, predictor=RawThreshold(), settings=EvaluationSettings(0.5, IOU_GRID)
    ).scores
    result = perturb_and_measure(
        PLAN["flip-x"], qc_pair, predictor=RawThreshold(fail=True), original=original,
        iou_threshold=0.5, seed=0,
    )  # fmt: skip
    assert result.error == "img00.tif, flip-x: prediction failed (out of GPU memory)"
    assert result.failures == [result.error] and not result.passed
    assert result.original == original.values() and result.perturbed is None


def test_without_original_scores_or_source_nothing_is_predicted(qc_pair):
    original = evaluate_image(
        qc_pair, predictor=RawThreshold(), settings=EvaluationSettings(0.5, IOU_GRID)
    ).scores
    predictor = RawThreshold()
    unevaluated = perturb_and_measure(
        PLAN["flip-x"], qc_pair, predictor=predictor, original=None, iou_threshold=0.5, seed=0
    )
    assert unevaluated.error == "img00.tif: the original image could not be evaluated"
    no_source = perturb_and_measure(
        PLAN["flip-x"], replace(qc_pair, source=None), predictor=predictor, original=original,
        iou_threshold=0.5, seed=0,
    )  # fmt: skip
    assert no_source.error == "img00.tif: no source image to perturb"
    assert predictor.images == []


def result(perturbation: str, image: str, f1_drop: float) -> RobustnessResult:
    kind = perturbation.split("-")[0]
    values = {"f1": 1.0}
    return RobustnessResult(
        perturbation, kind, image, values, {"f1": 1.0 - f1_drop}, {"f1": f1_drop}, {"f1": 0.05}
    )


def test_summary_is_in_plan_then_image_order_with_mean_drops():
    results = [
        result("rot90-k1", "a.tif", 0.0),
        result("intensity_scale-x2", "b.tif", 0.5),
        result("flip-x", "a.tif", 0.0),
        result("intensity_scale-x2", "a.tif", 0.25),
        result("intensity_scale-x0.5", "b.tif", 0.125),
    ]
    summary = robustness_summary(SETTINGS, results, ["a.tif", "b.tif"])
    assert summary["perturbations"] == [
        "intensity_scale-x0.5", "intensity_scale-x2", "flip-x", "rot90-k1",
    ]  # fmt: skip
    assert [(r["perturbation"], r["image"]) for r in summary["results"]] == [
        ("intensity_scale-x0.5", "b.tif"),
        ("intensity_scale-x2", "a.tif"),
        ("intensity_scale-x2", "b.tif"),
        ("flip-x", "a.tif"),
        ("rot90-k1", "a.tif"),
    ]
    assert summary["mean_drop"]["intensity_scale-x2"] == {"f1": 0.375}
    assert summary["mean_drop"]["intensity_scale-x0.5"] == {"f1": 0.125}
    assert [r["passed"] for r in summary["results"]] == [False, False, False, True, True]
    assert summary["seed"] == 0


def test_summary_does_not_depend_on_the_order_results_arrive_in():
    """Under xdist results arrive in any order; the mean drops must be the same to the
    last bit as without it (0.1 + 0.2 + 0.3 and 0.3 + 0.2 + 0.1 differ in floating point)."""
    drops = {"a.tif": 0.1, "b.tif": 0.2, "c.tif": 0.3}
    results = [result("intensity_scale-x2", name, drop) for name, drop in drops.items()]
    in_order = robustness_summary(SETTINGS, results, list(drops))
    reversed_ = robustness_summary(SETTINGS, results[::-1], list(drops))
    assert reversed_ == in_order
    assert in_order["mean_drop"]["intensity_scale-x2"]["f1"] == (0.1 + 0.2 + 0.3) / 3
