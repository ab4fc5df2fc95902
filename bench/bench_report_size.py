"""Size and time of the QC report for a large QC set (never part of the tests).

    python bench/bench_report_size.py [n_images] [side]

Writes n synthetic images (default 200, 1024 x 1024 px, ~150 nuclei each; the
prediction misses some and adds a few) to a temporary folder, runs the QC suite in
--predictions mode, and prints the wall time and the size of qc-output/report.html.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import tifffile
from skimage.draw import disk


def write_qc(root: Path, n_images: int, side: int) -> None:
    rng = np.random.default_rng(0)
    for name in ("source", "target", "predictions"):
        (root / name).mkdir()
    for i in range(n_images):
        labels = np.zeros((side, side), np.uint16)
        centres = rng.integers(12, side - 12, (int(150 * (side / 1024) ** 2), 2))
        for k, (y, x) in enumerate(centres, start=1):
            labels[disk((y, x), rng.integers(6, 11), shape=labels.shape)] = k
        predicted = np.roll(labels, 1, axis=1)
        predicted[np.isin(predicted, rng.choice(len(centres), 5) + 1)] = 0
        image = 100 + 400 * (labels > 0) + rng.normal(0, 30, labels.shape)
        name = f"nuclei_{i:03d}.tif"
        tifffile.imwrite(root / "source" / name, np.clip(image, 0, 65535).astype(np.uint16))
        tifffile.imwrite(root / "target" / name, labels)
        tifffile.imwrite(root / "predictions" / name, predicted)


def main() -> None:
    n_images = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    side = int(sys.argv[2]) if len(sys.argv) > 2 else 1024
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_qc(root, n_images, side)
        command = [
            sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
            "--pyargs", "segqc.qc_tests", "--predictions", str(root / "predictions"),
            "--qc-source", str(root / "source"), "--qc-target", str(root / "target"),
            "--qc-output", str(root / "out"),
        ]  # fmt: skip
        for html in (False, True):
            started = time.perf_counter()
            subprocess.run(
                [*command, *([] if html else ["-p", "no:html"])],
                cwd=root,
                capture_output=True,
                check=False,
                text=True,
            )
            seconds = time.perf_counter() - started
            report = root / "out" / "report.html"
            size = f"{report.stat().st_size / 1e6:.1f} MB" if report.exists() else "-"
            print(
                f"{n_images} images {side}x{side} px, report {html!s:5}: {seconds:6.1f} s  {size}"
            )


if __name__ == "__main__":
    main()
