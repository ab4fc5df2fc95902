"""One-piece vs block-wise prediction of large images: time and peak memory (not a test).

    python bench/bench_blocks.py [SIDE ...] [--block-size N] [--one-piece-max SIDE]

For each SIDE (default 8192 16384) a SIDE x SIDE uint16 image is made by mirror-tiling
a ``fixtures/qc2d`` DSB 2018 crop (which the demo model segments well) and predicted
with ``fixtures/models/demo2d`` through segqc's :class:`StarDistPredictor`, once in one
piece (``predict_instances`` with automatic ``n_tiles``) and once block-wise
(``predict_instances_big``, blocks of ``--block-size`` pixels, default 2048, forced even
below the 4096 ``block_above`` default). Each run is a fresh process on the CPU, so its
peak RSS is its own; "extra" is the peak minus the RSS once TensorFlow, the model and the
image are loaded. One-piece runs above ``--one-piece-max`` (default 8192) are skipped:
they need more memory than a shared 24 GB machine has to spare. The last column compares
the two label images (stardist.matching at IoU 0.9).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SOURCE = REPO / "fixtures" / "qc2d" / "source" / "dsb2018_r000_c336.tif"
MODEL = REPO / "fixtures" / "models" / "demo2d"


def make_image(side: int) -> np.ndarray:
    """A side x side image of mirror-tiled DSB nuclei."""
    import tifffile

    crop = tifffile.imread(SOURCE)
    tile = np.block([[crop, crop[:, ::-1]], [crop[::-1], crop[::-1, ::-1]]])
    reps = (side // tile.shape[0] + 1, side // tile.shape[1] + 1)
    return np.ascontiguousarray(np.tile(tile, reps)[:side, :side])


def rss_mb() -> float:
    """The process's resident memory now, in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def child(side: int, mode: str, block_size: int, labels_path: str) -> None:
    """Predict one image in this process and print one JSON line."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from segqc.predict.model_folder import inspect_model_folder
    from segqc.predict.stardist import BlockPolicy, PredictionParameters, StarDistPredictor

    folder = inspect_model_folder(MODEL)
    policy = (
        BlockPolicy(above=None)
        if mode == "one-piece"
        else BlockPolicy(above=block_size, size=block_size)
    )
    thresholds = folder.thresholds or {"prob": 0.5, "nms": 0.4}
    predictor = StarDistPredictor(
        folder,
        PredictionParameters(thresholds["prob"], thresholds["nms"], "bench", policy),
        device="cpu",
    )
    predictor.predict(None, make_image(256))  # type: ignore[arg-type]  # load and warm up
    image = make_image(side)
    loaded = rss_mb()
    started = time.perf_counter()
    result = predictor.predict(None, image)  # type: ignore[arg-type]
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    np.save(labels_path, result.labels)
    print(
        json.dumps(
            {
                "seconds": seconds,
                "peak_mb": peak,
                "loaded_mb": loaded,
                "objects": int(result.labels.max()),
                "n_blocks": result.blocks["n_blocks"] if result.blocks else 1,
            }
        )
    )


def run(side: int, mode: str, block_size: int, labels_path: str) -> dict[str, float] | None:
    command = [sys.executable, __file__, "--child", str(side), mode, str(block_size), labels_path]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        print(f"{side} {mode}: failed (exit {done.returncode})\n{done.stderr[-2000:]}")
        return None
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    if sys.argv[1:2] == ["--child"]:
        side, mode, block_size, labels_path = sys.argv[2:6]
        child(int(side), mode, int(block_size), labels_path)
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sides", nargs="*", type=int, default=[8192, 16384])
    parser.add_argument("--block-size", type=int, default=2048)
    parser.add_argument("--one-piece-max", type=int, default=8192)
    args = parser.parse_args()
    from stardist.matching import matching

    header = (
        f"{'image':>13} {'mode':>10} {'blocks':>6} {'objects':>8} {'time s':>8} "
        f"{'peak RSS MB':>11} {'extra MB':>9} {'f1@0.9':>7}"
    )
    print(header)
    print("-" * len(header))
    with tempfile.TemporaryDirectory() as tmp:
        for side in args.sides:
            paths = {mode: str(Path(tmp) / f"{mode}.npy") for mode in ("one-piece", "blocks")}
            results = {}
            for mode in ("one-piece", "blocks"):
                if mode == "one-piece" and side > args.one_piece_max:
                    print(f"{side:>6}x{side:<6} {mode:>10}   skipped (--one-piece-max)")
                    continue
                results[mode] = run(side, mode, args.block_size, paths[mode])
            agreement = ""
            if results.get("one-piece") and results.get("blocks"):
                one, blocks = (np.load(paths[m]) for m in ("one-piece", "blocks"))
                agreement = f"{matching(one, blocks, thresh=0.9).f1:.4f}"
                del one, blocks
            for mode, r in results.items():
                if r is None:
                    continue
                print(
                    f"{side:>6}x{side:<6} {mode:>10} {r['n_blocks']:>6} {r['objects']:>8} "
                    f"{r['seconds']:>8.1f} {r['peak_mb']:>11.0f} "
                    f"{r['peak_mb'] - r['loaded_mb']:>9.0f} "
                    f"{agreement if mode == 'blocks' else '':>7}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
