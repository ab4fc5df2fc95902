"""Find QC images that are copies of training images: flipped, rotated, cropped or not.

A QC image the model was trained on makes its metrics overstate how well the model does
on new data. :func:`find_leaks` compares every QC source image with every training image
and reports the pairs that show the same field of view.

Method (documented in docs/checks.md, "Leakage"):

1. **Signature image.** Each image is reduced to 2D (channels averaged, a Z stack
   max-projected), smoothed (Gaussian, sigma = 0.75 downsample) and block-averaged by
   ``downsample`` (default 4; averaging also removes
   most pixel noise) and scaled so its 1st/99.8th percentiles are 0/1.
2. **Probe.** The square window of side ``probe_size`` (default 32 signature pixels, so
   128 image pixels) with the highest variance is cut from each signature — the most
   textured part of the image, unlikely to match anything by chance.
3. **Search.** The probe, in each of the 8 flips/90° rotations of the square, is located
   in the other set's signatures by normalised cross-correlation (NCC, Lewis 1995): the
   correlations of all positions come from one FFT per image and probe transform, the
   window means and variances from integral images. NCC is 1 for an exact copy, is
   unchanged by brightness and contrast changes, and stays high under noise and mild blur.
4. **Both directions.** QC probes are searched in training images (a QC image cut from a
   training image) and training probes in QC images (training patches cut from what is
   now a QC image). A pair's score is the larger of the two; it is a leak when the
   score reaches ``ncc_threshold`` (default 0.9).

Two crops that overlap only partly are found when one probe falls in the overlap.
Unrelated images of nuclei score about 0.2–0.4 (see ``bench/bench_leakage.py``).

References
----------
.. [1] J. P. Lewis, "Fast Normalized Cross-Correlation", Vision Interface, 1995.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from segqc.data.images import ImageReadError, read_tiff

__all__ = [
    "DIHEDRAL",
    "Leak",
    "LeakageReport",
    "find_leaks",
    "list_training_images",
    "ncc_search",
    "signature_image",
]

#: The 8 flips/rotations of a square, by name: (flip left-right first?, quarter turns).
DIHEDRAL: tuple[tuple[str, bool, int], ...] = tuple(
    (("flipped, " if flip else "") + (f"rotated {90 * k}°" if k else "as is"), flip, k)
    for flip in (False, True)
    for k in range(4)
)

# Signature pixels per chunk of images searched at once (bounds memory to ~100 MB).
_CHUNK_PIXELS = 1 << 22


@dataclass(frozen=True)
class Leak:
    """A QC image that shows the same field of view as a training image."""

    qc: Path
    training: Path
    score: float
    how: str

    def message(self) -> str:
        """One line naming both files."""
        return (
            f"{self.qc.name}: same field of view as training image {self.training} "
            f"({self.how}; NCC {self.score:.3f})"
        )


@dataclass(frozen=True)
class LeakageReport:
    """Every leak found, the closest training image of each QC image, unreadable files."""

    leaks: tuple[Leak, ...]
    closest: dict[str, tuple[str, float]]
    problems: tuple[str, ...]
    n_qc: int
    n_training: int
    seconds: float
    settings: dict[str, float] = field(default_factory=dict)


def list_training_images(folder: Path) -> list[Path]:
    """The ``.tif``/``.tiff`` files directly in ``folder``, sorted by name."""
    return sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in (".tif", ".tiff")
    )


def signature_image(image: np.ndarray, *, downsample: int) -> np.ndarray:
    """Reduce an image to the small 2D float32 image that is compared.

    Parameters
    ----------
    image : numpy.ndarray
        ``(Y, X)``, ``(Y, X, C)`` with C <= 4, ``(Z, Y, X)`` or ``(Z, Y, X, C)``.
    downsample : int
        Block size of the mean downsampling (1 keeps every pixel).

    Returns
    -------
    numpy.ndarray
        2D float32, ``shape // downsample``, percentiles 1 / 99.8 mapped to 0 / 1.
    """
    data = np.asarray(image, dtype=np.float32)
    if data.ndim >= 3 and data.shape[-1] <= 4:
        data = data.mean(axis=-1)
    while data.ndim > 2:
        data = data.max(axis=0)
    if downsample > 1:
        # Smoothing first makes crops at offsets that are not multiples of the block size
        # give nearly the same blocks.
        from scipy import ndimage  # lazily: only --training-data runs need scipy here

        data = ndimage.gaussian_filter(data, sigma=0.75 * downsample)
    h, w = (data.shape[0] // downsample) * downsample, (data.shape[1] // downsample) * downsample
    data = data[:h, :w].reshape(h // downsample, downsample, w // downsample, downsample)
    data = data.mean(axis=(1, 3))
    if data.size == 0:
        return data.astype(np.float32)
    low, high = np.percentile(data, (1, 99.8))
    return ((data - low) / (high - low if high > low else 1.0)).astype(np.float32)


def _window_sums(images: np.ndarray, side: int) -> tuple[np.ndarray, np.ndarray]:
    """Sum and sum of squares of every side x side window, from integral images."""
    padded = np.pad(images.astype(np.float64), ((0, 0), (1, 0), (1, 0)))
    out = []
    for values in (padded, padded**2):
        integral = values.cumsum(axis=1).cumsum(axis=2)
        out.append(
            integral[:, side:, side:]
            - integral[:, :-side, side:]
            - integral[:, side:, :-side]
            + integral[:, :-side, :-side]
        )
    return out[0], out[1]


def _probe(signature: np.ndarray, size: int) -> np.ndarray:
    """The square window of side ``min(size, shape)`` with the highest variance."""
    side = min(size, *signature.shape)
    sums, squares = _window_sums(signature[None], side)
    variance = squares[0] - sums[0] ** 2 / side**2
    y, x = np.unravel_index(int(np.argmax(variance)), variance.shape)
    return signature[y : y + side, x : x + side]


def ncc_search(probe: np.ndarray, images: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Best normalised cross-correlation of a square probe, in any of its 8 flips/rotations.

    Parameters
    ----------
    probe : numpy.ndarray
        Square 2D array.
    images : sequence of numpy.ndarray
        2D arrays of any sizes; those smaller than the probe score 0.

    Returns
    -------
    scores : numpy.ndarray
        float64, one per image: the highest NCC over every position where the probe
        fits entirely and every transform in :data:`DIHEDRAL` (0 when nothing fits).
    transforms : numpy.ndarray
        int, the index in :data:`DIHEDRAL` of the transform that scored best.
    """
    return _Bank(images).search(probe)


class _Bank:
    """Images to search, in chunks whose FFTs and window statistics are computed once."""

    def __init__(self, images: Sequence[np.ndarray]) -> None:
        self.n = len(images)
        self.chunks: list[_Chunk] = []
        start = 0
        while start < self.n:
            height, width = images[start].shape
            stop = start + 1
            while stop < self.n:
                h = max(height, images[stop].shape[0])
                w = max(width, images[stop].shape[1])
                if h * w * (stop + 1 - start) > _CHUNK_PIXELS:
                    break
                height, width, stop = h, w, stop + 1
            self.chunks.append(_Chunk(start, list(images[start:stop]), height, width))
            start = stop

    def search(self, probe: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        side = probe.shape[0]
        if probe.ndim != 2 or probe.shape[1] != side:
            raise ValueError(f"the probe must be a square 2D array, got shape {probe.shape}")
        scores = np.zeros(self.n)
        best = np.zeros(self.n, dtype=int)
        for chunk in self.chunks:
            part = slice(chunk.start, chunk.start + len(chunk.sizes))
            chunk.search(probe, scores[part], best[part])
        return scores, best


class _Chunk:
    def __init__(self, start: int, images: list[np.ndarray], height: int, width: int) -> None:
        self.start = start
        self.height, self.width = height, width
        self.sizes = np.array([im.shape for im in images]).reshape(-1, 2)
        self.canvas = np.zeros((len(images), height, width), np.float32)
        for i, image in enumerate(images):
            self.canvas[i, : image.shape[0], : image.shape[1]] = image
        from scipy import fft  # lazily: only --training-data runs need it

        self.spectrum = fft.rfft2(self.canvas)
        self._stats: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def _window_stats(self, side: int) -> tuple[np.ndarray, np.ndarray]:
        """Window standard deviations times side, and where a probe fits (cached by side)."""
        if side not in self._stats:
            sums, squares = _window_sums(self.canvas, side)
            spread = np.sqrt(np.maximum(squares - sums**2 / side**2, 0))
            rows = np.arange(self.height - side + 1)[None, :, None]
            cols = np.arange(self.width - side + 1)[None, None, :]
            fits = (rows <= (self.sizes[:, 0] - side)[:, None, None]) & (
                cols <= (self.sizes[:, 1] - side)[:, None, None]
            )
            # Blank windows (padding, empty background) correlate with nothing.
            self._stats[side] = (spread, fits & (spread > 1e-3 * side))
        return self._stats[side]

    def search(self, probe: np.ndarray, scores: np.ndarray, best: np.ndarray) -> None:
        side = probe.shape[0]
        if self.height < side or self.width < side:
            return
        from scipy import fft

        spread, valid = self._window_stats(side)
        n_rows, n_cols = self.height - side + 1, self.width - side + 1
        for index, (_, flip, k) in enumerate(DIHEDRAL):
            template = np.rot90(probe[:, ::-1] if flip else probe, k).astype(np.float64)
            template = template - template.mean()
            norm = np.sqrt((template**2).sum())
            if norm == 0:
                continue
            padded = np.zeros((self.height, self.width), np.float32)
            padded[:side, :side] = template
            correlation = fft.irfft2(
                self.spectrum * np.conj(fft.rfft2(padded)), s=(self.height, self.width)
            )[:, :n_rows, :n_cols]
            with np.errstate(invalid="ignore", divide="ignore"):
                ncc = np.where(valid, correlation / (spread * norm), -1.0)
            ncc = ncc.reshape(len(self.sizes), -1).max(axis=1)
            better = ncc > scores
            scores[better] = ncc[better]
            best[better] = index


def find_leaks(
    qc_images: Sequence[Path],
    training_images: Sequence[Path],
    *,
    ncc_threshold: float = 0.9,
    downsample: int = 4,
    probe_size: int = 32,
) -> LeakageReport:
    """Compare every QC image with every training image (see the module docstring).

    Parameters
    ----------
    qc_images, training_images : sequence of Path
        TIFF files.
    ncc_threshold : float
        A pair whose best NCC reaches this is a leak.
    downsample, probe_size : int
        Signature block size and probe side (in signature pixels).

    Returns
    -------
    LeakageReport
        Unreadable files are listed in ``problems`` (one line each) and left out.
    """
    started = time.perf_counter()
    problems: list[str] = []
    qc = _signatures(qc_images, downsample, problems)
    training = _signatures(training_images, downsample, problems)
    score = np.zeros((len(qc), len(training)))
    how = np.zeros((len(qc), len(training)), dtype=int)
    direction = np.zeros((len(qc), len(training)), dtype=bool)  # True: training inside QC
    if qc and training:
        training_bank = _Bank([sig for _, sig in training])
        for i, (_, sig) in enumerate(qc):
            score[i], how[i] = training_bank.search(_probe(sig, probe_size))
        qc_bank = _Bank([sig for _, sig in qc])
        for j, (_, sig) in enumerate(training):
            reverse, reverse_how = qc_bank.search(_probe(sig, probe_size))
            better = reverse > score[:, j]
            score[better, j], how[better, j] = reverse[better], reverse_how[better]
            direction[better, j] = True
    leaks = []
    closest: dict[str, tuple[str, float]] = {}
    for i, (qc_path, _) in enumerate(qc):
        if training:
            best_j = int(np.argmax(score[i]))
            closest[qc_path.name] = (
                training[best_j][0].name,
                round(float(score[i, best_j]), 4),
            )
        for j in np.flatnonzero(score[i] >= ncc_threshold).tolist():
            transform = DIHEDRAL[how[i, j]][0]
            where = (
                "training image found inside the QC image"
                if direction[i, j]
                else "QC image found inside the training image"
            )
            leaks.append(Leak(qc_path, training[j][0], float(score[i, j]), f"{where}, {transform}"))
    return LeakageReport(
        leaks=tuple(leaks),
        closest=closest,
        problems=tuple(problems),
        n_qc=len(qc),
        n_training=len(training),
        seconds=time.perf_counter() - started,
        settings={
            "ncc_threshold": ncc_threshold,
            "downsample": downsample,
            "probe_size": probe_size,
        },
    )


def _signatures(
    paths: Sequence[Path], downsample: int, problems: list[str]
) -> list[tuple[Path, np.ndarray]]:
    found = []
    for path in paths:
        try:
            image = read_tiff(path)
        except ImageReadError as exc:
            problems.append(str(exc))
            continue
        if not np.issubdtype(image.dtype, np.number) or image.ndim < 2:
            problems.append(f"{path}: not an image (dtype {image.dtype}, shape {image.shape})")
            continue
        found.append((path, signature_image(image, downsample=downsample)))
    return found
