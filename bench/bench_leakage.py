"""Time the leakage check and show its score separation (not part of the tests).

    python bench/bench_leakage.py [n_qc] [n_training] [side]

Writes synthetic nuclei images (random disks, one seed per image) to a temporary
folder, plants 3 flipped/rotated crops of training images among the QC images, and runs
:func:`segqc.checks.leakage.search.find_leaks` with the default settings.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import tifffile
from scipy.ndimage import gaussian_filter
from skimage.draw import disk

from segqc.checks.leakage.search import find_leaks


def nuclei(seed: int, side: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    image = np.zeros((side, side))
    for _ in range(int(60 * (side / 256) ** 2)):
        centre = rng.uniform(0, side), rng.uniform(0, side)
        image[disk(centre, rng.uniform(4, 9), shape=image.shape)] = rng.uniform(0.5, 1)
    return (gaussian_filter(image, 1.5) * 400 + 100 + rng.normal(0, 15, image.shape)).astype(
        np.float32
    )


def main() -> None:
    n_qc, n_train, side = (
        int(a) for a in (sys.argv[1:] + ["100", "300", "256"][len(sys.argv) - 1 :])
    )
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "qc").mkdir()
        (root / "train").mkdir()
        for i in range(n_train):
            tifffile.imwrite(root / "train" / f"t{i:04d}.tif", nuclei(i, side))
        for i in range(n_qc - 3):
            tifffile.imwrite(root / "qc" / f"q{i:04d}.tif", nuclei(100_000 + i, side))
        for i in range(3):
            crop = nuclei(i * 7, side)[13 : side - 40, 30 : side - 9]
            tifffile.imwrite(root / "qc" / f"leak{i}.tif", np.rot90(crop[::-1], i + 1).copy())
        started = time.perf_counter()
        report = find_leaks(sorted((root / "qc").iterdir()), sorted((root / "train").iterdir()))
        seconds = time.perf_counter() - started
    scores = sorted(s for name, (_, s) in report.closest.items() if not name.startswith("leak"))
    leaks = sorted(leak.score for leak in report.leaks)
    print(f"{n_qc} QC x {n_train} training images of {side}x{side}: {seconds:.1f} s")
    print(f"leaks found: {len(report.leaks)} of 3, scores {[round(s, 3) for s in leaks]}")
    print(
        f"closest unrelated training image: median {np.median(scores):.3f}, max {max(scores):.3f}"
    )


if __name__ == "__main__":
    main()
