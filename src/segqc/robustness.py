"""Metamorphic robustness tests: perturb a QC image, predict again, compare the metrics.

A model that is fit for release should segment a slightly noisier, dimmer, blurrier,
mirrored or rotated copy of an image about as well as the image itself. For each
perturbation and each QC image, :class:`RobustnessRunner` predicts the perturbed copy
with the session's predictor, measures it against the same ground truth (geometric
perturbations are undone on the predicted labels first, so the ground truth is exact),
and reports the drop of each metric: original minus perturbed, so a positive drop is
worse.

The perturbation functions are pure and act on the spatial axes only (a trailing
channel axis is left alone). Noise is drawn from a generator seeded by
``robustness.seed``, the perturbation and the image name, so a run is reproducible and
does not depend on test order.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage

from segqc.images import ImageReadError, read_tiff
from segqc.metrics.catalogue import METRICS
from segqc.metrics.scores import measure
from segqc.pairing import QcPair
from segqc.session import QcRun
from segqc.thresholds import RobustnessSettings

__all__ = [
    "Perturbation",
    "RobustnessResult",
    "RobustnessRunner",
    "flip",
    "gaussian_blur",
    "gaussian_noise",
    "intensity_offset",
    "intensity_scale",
    "plan_perturbations",
    "poisson_noise",
    "rot90",
]

_AXES = {"z": -3, "y": -2, "x": -1}
_RATIO_KEYS = frozenset(spec.key for spec in METRICS if spec.kind == "ratio")


def gaussian_noise(image: np.ndarray, *, snr: float, rng: np.random.Generator) -> np.ndarray:
    """Add white Gaussian noise with ``std(image) / std(noise) = snr``.

    Returns float32 (an integer image would clip or wrap the noise).
    """
    data = image.astype(np.float32)
    sigma = float(data.std()) / snr
    return (data + rng.normal(0.0, sigma, data.shape)).astype(np.float32)


def poisson_noise(image: np.ndarray, *, peak: float, rng: np.random.Generator) -> np.ndarray:
    """Shot noise: the image is read as photon counts, ``peak`` at its 99.8th percentile.

    The image minus its minimum is scaled so its 99.8th percentile is ``peak`` photons,
    replaced by Poisson draws and scaled back, so a lower ``peak`` is noisier.
    """
    data = image.astype(np.float64)
    low = float(data.min())
    high = float(np.percentile(data, 99.8)) - low
    scale = peak / high if high > 0 else 1.0
    counts = rng.poisson(np.maximum(data - low, 0) * scale)
    return (counts / scale + low).astype(np.float32)


def intensity_scale(image: np.ndarray, *, factor: float) -> np.ndarray:
    """Multiply every pixel by ``factor`` (float32)."""
    return (image.astype(np.float32) * np.float32(factor)).astype(np.float32)


def intensity_offset(image: np.ndarray, *, fraction: float) -> np.ndarray:
    """Add ``fraction`` of the image's range (max - min) to every pixel (float32)."""
    data = image.astype(np.float32)
    return data + np.float32(fraction * (float(data.max()) - float(data.min())))


def gaussian_blur(image: np.ndarray, *, sigma: float, n_spatial: int) -> np.ndarray:
    """Gaussian blur of the first ``n_spatial`` axes, ``sigma`` in pixels (float32)."""
    sigmas = [sigma] * n_spatial + [0.0] * (image.ndim - n_spatial)
    return ndimage.gaussian_filter(image.astype(np.float32), sigma=sigmas)


def flip(image: np.ndarray, *, axis: str, n_spatial: int) -> np.ndarray:
    """Mirror along spatial axis ``"z"``, ``"y"`` or ``"x"`` (its own inverse)."""
    return np.flip(image, axis=_spatial_axis(axis, image.ndim, n_spatial))


def rot90(image: np.ndarray, *, k: int, n_spatial: int) -> np.ndarray:
    """Rotate the YX plane by ``k`` quarter turns (undo with ``-k``)."""
    y = _spatial_axis("y", image.ndim, n_spatial)
    return np.rot90(image, k=k, axes=(y, y + 1))


def _spatial_axis(axis: str, ndim: int, n_spatial: int) -> int:
    if axis == "z" and n_spatial < 3:
        raise ValueError("axis 'z' needs a 3D image")
    channels = ndim - n_spatial
    return ndim - channels + _AXES[axis]


@dataclass(frozen=True)
class Perturbation:
    """One perturbation with one parameter value.

    ``apply(image, rng, n_spatial)`` makes the perturbed copy; ``undo(labels)`` maps a
    label image predicted on it back onto the original grid (identity for intensity
    perturbations).
    """

    id: str
    kind: str
    max_drop: dict[str, float]
    apply: Callable[[np.ndarray, np.random.Generator, int], np.ndarray]
    undo: Callable[[np.ndarray], np.ndarray] = field(default=lambda labels: labels)


def plan_perturbations(settings: RobustnessSettings) -> list[Perturbation]:
    """Expand the ``robustness:`` section into perturbations, in a fixed order.

    Ids: ``gaussian_noise-snr10``, ``poisson_noise-peak100``, ``intensity_scale-x2``,
    ``intensity_offset-0.1``, ``gaussian_blur-sigma1``, ``flip-x``, ``rot90-k1``.
    """
    plan: list[Perturbation] = []

    def drops(section: Any) -> dict[str, float]:
        return {key: value for key, value in section.max_drop if value is not None}

    if (s := settings.gaussian_noise) is not None:
        for snr in s.snr:
            plan.append(Perturbation(
                f"gaussian_noise-snr{snr:g}", "gaussian_noise", drops(s),
                lambda im, rng, n, snr=snr: gaussian_noise(im, snr=snr, rng=rng),
            ))  # fmt: skip
    if (s := settings.poisson_noise) is not None:
        for peak in s.peaks:
            plan.append(Perturbation(
                f"poisson_noise-peak{peak:g}", "poisson_noise", drops(s),
                lambda im, rng, n, peak=peak: poisson_noise(im, peak=peak, rng=rng),
            ))  # fmt: skip
    if (s := settings.intensity_scale) is not None:
        for factor in s.factors:
            plan.append(Perturbation(
                f"intensity_scale-x{factor:g}", "intensity_scale", drops(s),
                lambda im, rng, n, f=factor: intensity_scale(im, factor=f),
            ))  # fmt: skip
    if (s := settings.intensity_offset) is not None:
        for fraction in s.fractions:
            plan.append(Perturbation(
                f"intensity_offset-{fraction:g}", "intensity_offset", drops(s),
                lambda im, rng, n, f=fraction: intensity_offset(im, fraction=f),
            ))  # fmt: skip
    if (s := settings.gaussian_blur) is not None:
        for sigma in s.sigmas:
            plan.append(Perturbation(
                f"gaussian_blur-sigma{sigma:g}", "gaussian_blur", drops(s),
                lambda im, rng, n, sg=sigma: gaussian_blur(im, sigma=sg, n_spatial=n),
            ))  # fmt: skip
    if (s := settings.flip) is not None:
        for axis in s.axes:
            plan.append(Perturbation(
                f"flip-{axis}", "flip", drops(s),
                lambda im, rng, n, a=axis: flip(im, axis=a, n_spatial=n),
                lambda lab, a=axis: flip(lab, axis=a, n_spatial=lab.ndim),
            ))  # fmt: skip
    if (s := settings.rot90) is not None:
        for k in s.k:
            plan.append(Perturbation(
                f"rot90-k{k}", "rot90", drops(s),
                lambda im, rng, n, k=k: rot90(im, k=k, n_spatial=n),
                lambda lab, k=k: rot90(lab, k=-k, n_spatial=lab.ndim),
            ))  # fmt: skip
    return plan


@dataclass(frozen=True)
class RobustnessResult:
    """One perturbation of one image: metrics before and after, drops and verdict."""

    perturbation: str
    kind: str
    image: str
    original: dict[str, float] | None
    perturbed: dict[str, float] | None
    drop: dict[str, float]
    max_drop: dict[str, float]
    error: str | None = None

    @property
    def failures(self) -> list[str]:
        """One line per metric that dropped more than allowed (or the error)."""
        if self.error:
            return [self.error]
        lines = []
        for key, limit in self.max_drop.items():
            drop = self.drop[key]
            if not drop <= limit:
                assert self.original is not None and self.perturbed is not None
                lines.append(
                    f"{self.image}, {self.perturbation}: {key} dropped by {drop:.4g} "
                    f"({self.original[key]:.4g} -> {self.perturbed[key]:.4g}), more than "
                    f"{limit:g} (thresholds.yaml robustness.{self.kind}.max_drop.{key})"
                )
        return lines

    @property
    def passed(self) -> bool:
        """No error and every limited drop within its limit."""
        return not self.failures

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready record for summary.json."""
        return {
            "perturbation": self.perturbation,
            "image": self.image,
            "drop": self.drop,
            "max_drop": self.max_drop,
            "original": self.original,
            "perturbed": self.perturbed,
            "passed": self.passed,
            "error": self.error,
        }


class RobustnessRunner:
    """Predict perturbed copies of QC images with the run's predictor, once each."""

    def __init__(self, run: QcRun, settings: RobustnessSettings) -> None:
        self.run = run
        self.settings = settings
        self.plan = plan_perturbations(settings)
        self.results: dict[tuple[str, str], RobustnessResult] = {}

    def evaluate(self, perturbation: Perturbation, pair: QcPair) -> RobustnessResult:
        """Result of ``perturbation`` on ``pair`` (computed on the first call)."""
        key = (perturbation.id, pair.name)
        if key not in self.results:
            self.results[key] = self._evaluate(perturbation, pair)
        return self.results[key]

    def _evaluate(self, perturbation: Perturbation, pair: QcPair) -> RobustnessResult:
        limits = perturbation.max_drop
        outcome = self.run.evaluate(pair)

        def failed(message: str) -> RobustnessResult:
            original = outcome.scores.values() if outcome.scores else None
            return RobustnessResult(
                perturbation.id, perturbation.kind, pair.name, original, None, {}, limits, message
            )

        if outcome.scores is None:
            return failed(f"{pair.name}: the original image could not be evaluated")
        assert pair.source is not None
        try:
            image = read_tiff(pair.source)
            target = read_tiff(pair.target)
            if target.dtype == np.bool_:
                from skimage.measure import label

                target = np.asarray(label(target, connectivity=1))
            rng = np.random.default_rng(
                [self.settings.seed, zlib.crc32(perturbation.id.encode()),
                 zlib.crc32(pair.name.encode())]
            )  # fmt: skip
            perturbed_image = perturbation.apply(image, rng, target.ndim)
            labels = self.run.predictor.predict(pair, perturbed_image).labels
            labels = perturbation.undo(np.asarray(labels))
            scores = measure(target, labels, iou_threshold=self.run.iou_threshold)
        except ImageReadError as exc:
            return failed(str(exc))
        except Exception as exc:  # a model failing on one perturbed image fails that test
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            return failed(f"{pair.name}, {perturbation.id}: prediction failed ({reason})")
        original, perturbed = outcome.scores.values(), scores.values()
        drop = {key: original[key] - perturbed[key] for key in original if key in _RATIO_KEYS}
        return RobustnessResult(
            perturbation.id, perturbation.kind, pair.name, original, perturbed, drop, limits
        )

    def summary(self) -> dict[str, Any]:
        """The ``robustness`` section of summary.json: settings, results, mean drops."""
        results = [r.as_dict() for r in self.results.values()]
        mean_drop: dict[str, dict[str, float]] = {}
        for perturbation in self.plan:
            rows = [r for r in self.results.values() if r.perturbation == perturbation.id]
            keys = sorted({k for r in rows for k in r.drop})
            mean_drop[perturbation.id] = {
                key: float(np.mean([r.drop[key] for r in rows if key in r.drop])) for key in keys
            }
        return {
            "seed": self.settings.seed,
            "perturbations": [p.id for p in self.plan],
            "results": results,
            "mean_drop": mean_drop,
        }
