"""Benchmark segqc.metrics.matching against stardist.matching.

Run ``python bench/bench_matching.py``. Each case matches a seeded random ground truth
against a perturbed copy at the nine thresholds 0.1 ... 0.9 (one call each side), checks
that every field is identical and prints a table. Timings are best-of-3 for segqc and a
single run for stardist (after a warm-up that compiles its numba kernel).
"""

from __future__ import annotations

import sys
import time
import tracemalloc
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

# Prefer this checkout's source over any installed segqc (an editable install may point
# at another worktree).
_SRC = Path(__file__).resolve().parents[1] / "src"
if _SRC.is_dir():
    sys.path.insert(0, str(_SRC))

from stardist.matching import matching  # noqa: E402

from segqc.metrics.matching import MatchingStats, match_labels_at  # noqa: E402

THRESHOLDS = tuple(round(0.1 * k, 1) for k in range(1, 10))
FIELDS = (
    "fp",
    "tp",
    "fn",
    "precision",
    "recall",
    "accuracy",
    "f1",
    "n_true",
    "n_pred",
    "mean_true_score",
    "mean_matched_score",
    "panoptic_quality",
)
# bytes per dense cell that stardist holds at once: uint64 overlap, float32 IoU, bool
# mask, float64 indicator, float32 tie-breaker, float64 cost
DENSE_BYTES_PER_CELL = 8 + 4 + 1 + 8 + 4 + 8


def blobs(shape: tuple[int, int], n: int, radius: float, rng: np.random.Generator) -> np.ndarray:
    """n random discs (later ones painted over earlier ones), random non-sequential ids."""
    labels = np.zeros(shape, np.int32)
    ids = rng.choice(np.arange(1, 50 * n), size=n, replace=False)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    for label, (cy, cx), r in zip(
        ids, rng.uniform(0, shape, size=(n, 2)), rng.uniform(0.6, 1.4, n) * radius, strict=True
    ):
        y0, y1 = int(max(cy - r, 0)), int(min(cy + r + 1, shape[0]))
        x0, x1 = int(max(cx - r, 0)), int(min(cx + r + 1, shape[1]))
        disc = (yy[y0:y1, x0:x1] - cy) ** 2 + (xx[y0:y1, x0:x1] - cx) ** 2 <= r * r
        labels[y0:y1, x0:x1][disc] = label
    return labels


def perturbed(y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    pred = ndi.grey_erosion(np.roll(y, tuple(rng.integers(-2, 3, size=2)), axis=(0, 1)), size=2)
    ids = np.unique(pred)[1:]
    pred[np.isin(pred, rng.choice(ids, size=len(ids) // 20, replace=False))] = 0
    return pred


def pathological_pair(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """~2,600 ground-truth blobs vs a prediction labelling every 2x2 block separately."""
    y_true = blobs((1024, 1024), 2600, 7.0, rng)
    blocks = np.arange(512 * 512, dtype=np.int64).reshape(512, 512) + 1
    y_pred = np.repeat(np.repeat(blocks, 2, axis=0), 2, axis=1)
    return y_true, y_pred


def segqc_run(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[tuple, float, float]:
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        stats = match_labels_at(y_true, y_pred, iou_thresholds=THRESHOLDS)
        times.append(time.perf_counter() - t0)
    tracemalloc.start()
    match_labels_at(y_true, y_pred, iou_thresholds=THRESHOLDS)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return stats, min(times), peak


def identical(ours: tuple, ref: tuple) -> bool:
    return all(
        getattr(o, f) == getattr(r, f) for o, r in zip(ours, ref, strict=True) for f in FIELDS
    )


@dataclass(frozen=True)
class CaseResult:
    """One measured case: segqc against stardist (``stardist_s`` None when not run)."""

    name: str
    n_true: int
    n_pred: int
    segqc_s: float
    stardist_s: float | None
    segqc_peak_bytes: int
    identical: bool | None
    dense_gb: float


def measure_cases(seed: int = 2024) -> list[CaseResult]:
    """Time segqc and stardist on ~100/1,000/5,000 objects and segqc on the pathological pair.

    The same seeded inputs feed ``python bench/bench_matching.py`` and case c of
    ``bench/run.py``.
    """
    rng = np.random.default_rng(seed)
    warm = np.zeros((8, 8), np.int32)
    warm[2:5, 2:5] = 1
    matching(warm, warm)  # compile stardist's numba kernel outside the timings

    results = []
    for name, shape, n, radius in (
        ("~100 objects", (256, 256), 100, 8.0),
        ("~1,000 objects", (640, 640), 1000, 7.0),
        ("~5,000 objects", (1024, 1024), 5000, 5.5),
    ):
        y_true = blobs(shape, n, radius, rng)
        y_pred = perturbed(y_true, rng)
        ours, t_ours, peak = segqc_run(y_true, y_pred)
        t0 = time.perf_counter()
        ref = matching(y_true, y_pred, thresh=THRESHOLDS)
        t_ref = time.perf_counter() - t0
        results.append(_result(name, ours, t_ours, peak, t_ref, identical(ours, ref)))

    # stardist is not run on the pathological pair: its dense matrices need ~22 GB.
    y_true, y_pred = pathological_pair(rng)
    ours, t_ours, peak = segqc_run(y_true, y_pred)
    results.append(_result("1024² pathological", ours, t_ours, peak, None, None))
    return results


def _result(
    name: str,
    ours: tuple[MatchingStats, ...],
    t_ours: float,
    peak: int,
    t_ref: float | None,
    same: bool | None,
) -> CaseResult:
    cells = (ours[0].n_true + 1) * (ours[0].n_pred + 1)
    return CaseResult(
        name, ours[0].n_true, ours[0].n_pred, t_ours, t_ref, peak, same,
        cells * DENSE_BYTES_PER_CELL / 1e9,
    )  # fmt: skip


def main() -> None:
    header = (
        "case",
        "n_true",
        "n_pred",
        "segqc s",
        "stardist s",
        "speed-up",
        "segqc peak",
        "identical",
    )
    rows = []
    for r in measure_cases():
        ran = r.stardist_s is not None
        rows.append(
            (
                r.name,
                r.n_true,
                r.n_pred,
                f"{r.segqc_s:.3f}",
                f"{r.stardist_s:.3f}"
                if ran
                else f"skipped (dense matrix would need ~{r.dense_gb:.0f} GB)",
                f"{r.stardist_s / r.segqc_s:.0f}x" if ran else "-",
                f"{r.segqc_peak_bytes / 2**20:.0f} MiB",
                ("yes" if r.identical else "NO") if ran else "-",
            )
        )
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, tuple("-" * w for w in widths), *rows]:
        print(" | ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=True)))


if __name__ == "__main__":
    main()
