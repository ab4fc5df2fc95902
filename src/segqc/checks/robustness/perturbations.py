"""Metamorphic robustness tests: perturb a QC image, predict again, compare the metrics.

A model that is fit for release should segment a slightly noisier, dimmer, blurrier,
mirrored or rotated copy of an image about as well as the image itself. For each
perturbation and each QC image, :func:`perturb_and_measure` predicts the perturbed copy
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
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from segqc.data.images import ImageReadError, read_tiff
from segqc.data.pairing import QcPair
from segqc.metrics.catalogue import METRICS
from segqc.metrics.scores import QcScores, measure
from segqc.predict import Predictor
from segqc.thresholds.schema import RobustnessSettings

__all__ = [
    "Perturbation",
    "RobustnessResult",
    "flip",
    "gaussian_blur",
    "gaussian_noise",
    "intensity_offset",
    "intensity_scale",
    "perturb_and_measure",
    "plan_perturbations",
    "poisson_noise",
    "robustness_summary",
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
    from scipy import ndimage  # only when blurring: keeps plugin start-up light

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


# kind -> (name of the settings list, id of one value)
_KINDS: dict[str, tuple[str, Callable[[Any], str]]] = {
    "gaussian_noise": ("snr", lambda v: f"snr{v:g}"),
    "poisson_noise": ("peaks", lambda v: f"peak{v:g}"),
    "intensity_scale": ("factors", lambda v: f"x{v:g}"),
    "intensity_offset": ("fractions", lambda v: f"{v:g}"),
    "gaussian_blur": ("sigmas", lambda v: f"sigma{v:g}"),
    "flip": ("axes", lambda v: str(v)),
    "rot90": ("k", lambda v: f"k{v}"),
}


@dataclass(frozen=True)
class Perturbation:
    """One perturbation kind with one parameter value, and its allowed metric drops."""

    kind: str
    value: Any
    max_drop: dict[str, float]

    @property
    def id(self) -> str:
        """``gaussian_noise-snr10``, ``intensity_scale-x2``, ``flip-x``, ``rot90-k1``, ..."""
        return f"{self.kind}-{_KINDS[self.kind][1](self.value)}"

    def apply(self, image: np.ndarray, rng: np.random.Generator, n_spatial: int) -> np.ndarray:
        """The perturbed copy of ``image`` (``n_spatial`` leading axes are spatial)."""
        kind, value = self.kind, self.value
        if kind == "gaussian_noise":
            return gaussian_noise(image, snr=value, rng=rng)
        if kind == "poisson_noise":
            return poisson_noise(image, peak=value, rng=rng)
        if kind == "intensity_scale":
            return intensity_scale(image, factor=value)
        if kind == "intensity_offset":
            return intensity_offset(image, fraction=value)
        if kind == "gaussian_blur":
            return gaussian_blur(image, sigma=value, n_spatial=n_spatial)
        if kind == "flip":
            return flip(image, axis=value, n_spatial=n_spatial)
        return rot90(image, k=value, n_spatial=n_spatial)

    def undo(self, labels: np.ndarray) -> np.ndarray:
        """Map labels predicted on the perturbed copy back onto the original grid."""
        if self.kind == "flip":
            return flip(labels, axis=self.value, n_spatial=labels.ndim)
        if self.kind == "rot90":
            return rot90(labels, k=-self.value, n_spatial=labels.ndim)
        return labels


def plan_perturbations(settings: RobustnessSettings) -> list[Perturbation]:
    """Expand the ``robustness:`` section into perturbations, in a fixed order.

    Ids: ``gaussian_noise-snr10``, ``poisson_noise-peak100``, ``intensity_scale-x2``,
    ``intensity_offset-0.1``, ``gaussian_blur-sigma1``, ``flip-x``, ``rot90-k1``.
    """
    plan = []
    for kind, (values_key, _) in _KINDS.items():
        section = getattr(settings, kind)
        if section is None:
            continue
        drops = {key: value for key, value in section.max_drop if value is not None}
        plan += [Perturbation(kind, value, drops) for value in getattr(section, values_key)]
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


def perturb_and_measure(
    perturbation: Perturbation,
    pair: QcPair,
    *,
    predictor: Predictor,
    original: QcScores | None,
    iou_threshold: float,
    seed: int,
) -> RobustnessResult:
    """Predict a perturbed copy of one QC image and compare its metrics with the original's.

    Parameters
    ----------
    perturbation : Perturbation
        What to do to the image.
    pair : QcPair
        The QC image (with its source) and its ground truth.
    predictor : Predictor
        The session's predictor (it must need the source image).
    original : QcScores or None
        The scores of the unperturbed image (None: it could not be evaluated).
    iou_threshold : float
        The matching threshold.
    seed : int
        ``robustness.seed``; noise is drawn from a generator seeded by it, the
        perturbation and the image name, so a result does not depend on test order.

    Returns
    -------
    RobustnessResult
        With ``error`` set (one line) when anything fails.
    """
    limits = perturbation.max_drop

    def failed(message: str) -> RobustnessResult:
        values = original.values() if original is not None else None
        return RobustnessResult(
            perturbation.id, perturbation.kind, pair.name, values, None, {}, limits, message
        )

    if original is None:
        return failed(f"{pair.name}: the original image could not be evaluated")
    if pair.source is None:
        return failed(f"{pair.name}: no source image to perturb")
    try:
        image = read_tiff(pair.source)
        target = read_tiff(pair.target)
        if target.dtype == np.bool_:
            from skimage.measure import label

            target = np.asarray(label(target, connectivity=1))
        rng = np.random.default_rng(
            [seed, zlib.crc32(perturbation.id.encode()), zlib.crc32(pair.name.encode())]
        )
        perturbed_image = perturbation.apply(image, rng, target.ndim)
        labels = predictor.predict(pair, perturbed_image).labels
        labels = perturbation.undo(np.asarray(labels))
        scores = measure(target, labels, iou_threshold=iou_threshold)
    except ImageReadError as exc:
        return failed(str(exc))
    except Exception as exc:  # a model failing on one perturbed image fails that test
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return failed(f"{pair.name}, {perturbation.id}: prediction failed ({reason})")
    values, perturbed = original.values(), scores.values()
    drop = {key: values[key] - perturbed[key] for key in values if key in _RATIO_KEYS}
    return RobustnessResult(
        perturbation.id, perturbation.kind, pair.name, values, perturbed, drop, limits
    )


def robustness_summary(
    settings: RobustnessSettings,
    results: Iterable[RobustnessResult],
    image_order: Sequence[str],
) -> dict[str, Any]:
    """The ``robustness`` section of summary.json: settings, results, mean drops.

    Results are in plan order, then QC image order, however they were computed.
    """
    plan = plan_perturbations(settings)
    plan_index = {p.id: i for i, p in enumerate(plan)}
    image_index = {name: i for i, name in enumerate(image_order)}
    listed = list(results)
    ordered = sorted(
        listed,
        key=lambda r: (
            plan_index.get(r.perturbation, len(plan)),
            image_index.get(r.image, len(image_index)),
        ),
    )
    mean_drop: dict[str, dict[str, float]] = {}
    for perturbation in plan:
        rows = [r for r in ordered if r.perturbation == perturbation.id]  # one order: one sum
        keys = sorted({k for r in rows for k in r.drop})
        mean_drop[perturbation.id] = {
            key: float(np.mean([r.drop[key] for r in rows if key in r.drop])) for key in keys
        }
    return {
        "seed": settings.seed,
        "perturbations": [p.id for p in plan],
        "results": [r.as_dict() for r in ordered],
        "mean_drop": mean_drop,
    }
