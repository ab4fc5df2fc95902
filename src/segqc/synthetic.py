"""Seeded synthetic fluorescent nuclei with exact instance labels.

The generator places non-overlapping ellipses (2D) or ellipsoids (3D) of varied
size, shape, orientation and brightness, renders them on a smooth uneven
background, blurs the result with a Gaussian point-spread function and adds
Poisson (shot) and Gaussian (read) noise. It is pure NumPy/scikit-image: it never
imports TensorFlow, so tests can make QC data on the fly cheaply.

The same ``seed`` always gives the same image and labels (all randomness comes
from one :func:`numpy.random.default_rng`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

__all__ = ["synthetic_nuclei_2d", "synthetic_nuclei_3d"]

# Camera offset added before read noise so that noise below the offset is not clipped
# at zero when converting to uint16 (real cameras do the same).
_CAMERA_OFFSET = 100.0


def synthetic_nuclei_2d(
    shape: tuple[int, int] = (128, 128),
    *,
    seed: int,
    n_nuclei: int = 18,
    radius_range: tuple[float, float] = (6.0, 12.0),
    max_eccentricity: float = 0.8,
    intensity_range: tuple[float, float] = (60.0, 220.0),
    background: float = 15.0,
    blur_sigma: float = 1.0,
    read_noise_std: float = 3.0,
    min_gap: int = 1,
) -> tuple[NDArray[np.uint16], NDArray[np.uint16]]:
    """Make a 2D image of fluorescent nuclei and its instance label mask.

    Parameters
    ----------
    shape : tuple of int
        ``(rows, columns)`` of the image.
    seed : int
        Seed of :func:`numpy.random.default_rng`; the output is a pure function of
        the seed and the other arguments.
    n_nuclei : int
        Number of nuclei to *try* to place. Fewer are placed when the image is too
        crowded for the requested sizes (placement gives up after many failed
        attempts); the label mask tells how many there are.
    radius_range : tuple of float
        Smallest and largest semi-major axis in pixels.
    max_eccentricity : float
        Largest eccentricity of an ellipse, in ``[0, 1)``; 0 gives only circles.
    intensity_range : tuple of float
        Range of the mean photon count of a nucleus above the background.
    background : float
        Mean photon count of the background; a smooth gradient and a blurred random
        field modulate it by about +-50 %.
    blur_sigma : float
        Standard deviation in pixels of the Gaussian point-spread function.
    read_noise_std : float
        Standard deviation of the additive Gaussian read noise, in counts.
    min_gap : int
        Least number of background pixels between two nuclei.

    Returns
    -------
    image : numpy.ndarray of uint16, shape ``shape``
        Noisy image; a camera offset of 100 counts keeps the noise above zero.
    labels : numpy.ndarray of uint16, shape ``shape``
        0 for background and ``1..N`` for the ``N`` nuclei, numbered in the order
        they were placed. Nuclei may be cut by the image border.

    Examples
    --------
    >>> image, labels = synthetic_nuclei_2d((96, 96), seed=0, n_nuclei=8)
    >>> image.dtype, labels.dtype, image.shape
    (dtype('uint16'), dtype('uint16'), (96, 96))
    >>> int(labels.max()) == len(np.unique(labels)) - 1
    True
    """
    return _synthetic_nuclei(
        shape,
        spacing=(1.0, 1.0),
        seed=seed,
        n_nuclei=n_nuclei,
        radius_range=radius_range,
        max_eccentricity=max_eccentricity,
        intensity_range=intensity_range,
        background=background,
        blur_sigma=blur_sigma,
        read_noise_std=read_noise_std,
        min_gap=min_gap,
    )


def synthetic_nuclei_3d(
    shape: tuple[int, int, int] = (32, 64, 64),
    *,
    seed: int,
    n_nuclei: int = 30,
    spacing: tuple[float, float, float] = (2.0, 1.0, 1.0),
    radius_range: tuple[float, float] = (5.0, 8.0),
    max_eccentricity: float = 0.6,
    intensity_range: tuple[float, float] = (40.0, 140.0),
    background: float = 60.0,
    blur_sigma: float = 1.0,
    read_noise_std: float = 6.0,
    min_gap: int = 1,
) -> tuple[NDArray[np.uint16], NDArray[np.uint16]]:
    """Make a 3D stack of fluorescent nuclei and its instance label mask.

    Parameters
    ----------
    shape : tuple of int
        ``(planes, rows, columns)`` of the stack.
    seed : int
        Seed of :func:`numpy.random.default_rng`; the output is a pure function of
        the seed and the other arguments.
    n_nuclei : int
        Number of nuclei to *try* to place (see :func:`synthetic_nuclei_2d`).
    spacing : tuple of float
        Voxel size along ``(z, y, x)`` in arbitrary physical units; ``(2, 1, 1)``
        makes nuclei look flattened along z by a factor 2, as in a typical
        anisotropic confocal stack.
    radius_range : tuple of float
        Smallest and largest semi-major axis in physical units.
    max_eccentricity : float
        Largest eccentricity of the two minor axes relative to the major one.
    intensity_range : tuple of float
        Range of the mean photon count of a nucleus above the background.
    background : float
        Mean photon count of the background (modulated as in 2D).
    blur_sigma : float
        Standard deviation of the Gaussian point-spread function in physical
        units (so it is narrower in voxels along a coarser axis).
    read_noise_std : float
        Standard deviation of the additive Gaussian read noise, in counts.
    min_gap : int
        Least number of background voxels between two nuclei.

    Returns
    -------
    image : numpy.ndarray of uint16, shape ``shape``
        Noisy stack with a camera offset of 100 counts.
    labels : numpy.ndarray of uint16, shape ``shape``
        0 for background and ``1..N`` for the ``N`` nuclei.

    Examples
    --------
    >>> image, labels = synthetic_nuclei_3d((16, 48, 48), seed=1, n_nuclei=6)
    >>> image.shape, labels.dtype
    ((16, 48, 48), dtype('uint16'))
    """
    return _synthetic_nuclei(
        shape,
        spacing=spacing,
        seed=seed,
        n_nuclei=n_nuclei,
        radius_range=radius_range,
        max_eccentricity=max_eccentricity,
        intensity_range=intensity_range,
        background=background,
        blur_sigma=blur_sigma,
        read_noise_std=read_noise_std,
        min_gap=min_gap,
    )


def _synthetic_nuclei(
    shape: Sequence[int],
    *,
    spacing: Sequence[float],
    seed: int,
    n_nuclei: int,
    radius_range: tuple[float, float],
    max_eccentricity: float,
    intensity_range: tuple[float, float],
    background: float,
    blur_sigma: float,
    read_noise_std: float,
    min_gap: int,
) -> tuple[NDArray[np.uint16], NDArray[np.uint16]]:
    """Shared implementation of the 2D and 3D generators (any dimension)."""
    shape = tuple(int(s) for s in shape)
    spacing_arr = np.asarray(spacing, dtype=float)
    if len(spacing_arr) != len(shape) or any(s < 1 for s in shape):
        raise ValueError(f"`shape` must have {len(spacing_arr)} positive entries, got {shape}")
    r_min, r_max = radius_range
    if not 0 < r_min <= r_max:
        raise ValueError(f"`radius_range` must satisfy 0 < min <= max, got {radius_range}")
    if not 0 <= max_eccentricity < 1:
        raise ValueError(f"`max_eccentricity` must be in [0, 1), got {max_eccentricity}")
    if n_nuclei < 0:
        raise ValueError(f"`n_nuclei` must be >= 0, got {n_nuclei}")
    if min_gap < 0:
        raise ValueError(f"`min_gap` must be >= 0, got {min_gap}")

    rng = np.random.default_rng(seed)
    ndim = len(shape)
    labels = _place_ellipsoids(
        shape, spacing_arr, rng, n_nuclei, radius_range, max_eccentricity, min_gap
    )
    n_placed = int(labels.max())

    # Signal: per-nucleus brightness with a smooth internal texture (chromatin-like).
    brightness = np.concatenate([[0.0], rng.uniform(*intensity_range, size=n_placed)])
    texture = 1.0 + 0.25 * _smooth_field(shape, rng, sigma=2.0 / spacing_arr)
    signal = brightness[labels] * texture

    # Background: a linear gradient plus a blurred random field, both smooth.
    grids = np.meshgrid(*(np.linspace(-1, 1, s) for s in shape), indexing="ij")
    slope = rng.uniform(-0.25, 0.25, size=ndim)
    gradient = sum((g * k for g, k in zip(grids, slope, strict=True)), np.zeros(shape))
    blotches = 0.25 * _smooth_field(shape, rng, sigma=12.0 / spacing_arr)
    expected = background * np.clip(1.0 + gradient + blotches, 0.2, None) + signal

    expected = ndimage.gaussian_filter(expected, sigma=blur_sigma / spacing_arr)
    photons = rng.poisson(np.clip(expected, 0, None)).astype(float)
    counts = photons + _CAMERA_OFFSET + rng.normal(0.0, read_noise_std, size=shape)
    image = np.clip(np.rint(counts), 0, np.iinfo(np.uint16).max).astype(np.uint16)
    return image, labels.astype(np.uint16)


def _place_ellipsoids(
    shape: tuple[int, ...],
    spacing: NDArray[np.float64],
    rng: np.random.Generator,
    n_nuclei: int,
    radius_range: tuple[float, float],
    max_eccentricity: float,
    min_gap: int,
) -> NDArray[np.int32]:
    """Rasterise up to ``n_nuclei`` randomly oriented, non-overlapping ellipsoids."""
    ndim = len(shape)
    labels = np.zeros(shape, dtype=np.int32)
    # Occupied voxels grown by `min_gap`, so that new nuclei keep their distance.
    occupied = np.zeros(shape, dtype=bool)
    gap_structure = ndimage.generate_binary_structure(ndim, ndim)
    max_attempts = 50 * max(n_nuclei, 1)
    n_placed = 0
    for _ in range(max_attempts):
        if n_placed == n_nuclei:
            break
        major = rng.uniform(*radius_range)
        eccentricities = rng.uniform(0.0, max_eccentricity, size=ndim - 1)
        semi_axes = np.concatenate([[major], major * np.sqrt(1 - eccentricities**2)])
        rotation = _random_rotation(ndim, rng)
        # Centres may lie near the border, so that some nuclei are cut as in crops.
        center = rng.uniform(0.0, 1.0, size=ndim) * (np.asarray(shape) - 1)

        # The box holds the ellipsoid plus a margin of `min_gap` for the dilation.
        half = np.ceil(major / spacing).astype(int) + 1 + min_gap
        lo = np.maximum(np.floor(center).astype(int) - half, 0)
        hi = np.minimum(np.floor(center).astype(int) + half + 1, shape)
        box = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))
        coords = np.stack(
            np.meshgrid(*(np.arange(a, b) for a, b in zip(lo, hi, strict=True)), indexing="ij"),
            axis=-1,
        )
        local = ((coords - center) * spacing) @ rotation  # along the ellipsoid's axes
        inside = np.sum((local / semi_axes) ** 2, axis=-1) <= 1.0
        # Skip slivers cut by the border and nuclei touching existing ones.
        if inside.sum() < 0.3 * _ellipsoid_voxels(semi_axes, spacing):
            continue
        if np.any(occupied[box] & inside):
            continue
        n_placed += 1
        labels[box][inside] = n_placed
        if min_gap > 0:
            inside = ndimage.binary_dilation(inside, gap_structure, iterations=min_gap)
        occupied[box] |= inside
    return labels


def _ellipsoid_voxels(semi_axes: NDArray[np.float64], spacing: NDArray[np.float64]) -> float:
    """Expected number of voxels inside an ellipsoid (its volume over voxel size)."""
    ndim = len(semi_axes)
    unit_ball = np.pi if ndim == 2 else 4.0 / 3.0 * np.pi if ndim == 3 else 2.0
    return float(unit_ball * np.prod(semi_axes) / np.prod(spacing))


def _random_rotation(ndim: int, rng: np.random.Generator) -> NDArray[np.float64]:
    """Uniformly random rotation matrix (QR of a Gaussian matrix, signs fixed)."""
    q, r = np.linalg.qr(rng.normal(size=(ndim, ndim)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


def _smooth_field(
    shape: tuple[int, ...], rng: np.random.Generator, sigma: NDArray[np.float64]
) -> NDArray[np.float64]:
    """Gaussian-blurred white noise rescaled to zero mean and unit maximum magnitude."""
    field = ndimage.gaussian_filter(rng.normal(size=shape), sigma=sigma)
    field -= field.mean()
    peak = np.abs(field).max()
    return field / peak if peak > 0 else field
