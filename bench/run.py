"""segqc's performance benchmark: one table, each case measured side by side.

Run ``python bench/run.py`` (a few minutes on 2 CPU cores; ``--quick`` for a smoke
run). Every input is generated from fixed seeds in a temporary folder. Each case runs
segqc and its reference in separate processes, one after the other, and reports the
wall time and the peak resident memory (``ru_maxrss`` of the process and the workers it
waited for, from ``os.wait4``); the timed cases a, b and e run ``--repeats`` times (3),
interleaved with their reference, and report the median run. ``--only`` picks cases:

a. ``pytest --model`` on N QC images vs a bare script that loads the same model,
   predicts the same images the same way and calls ``stardist.matching`` (the floor);
b. the same pytest command again, now served by the prediction cache, vs (a);
c. segqc's matching engine vs ``stardist.matching`` at ~100/1,000/5,000 objects and on
   a pathological pair (bench/bench_matching.py, run in-process);
d. peak memory of ``pytest --predictions`` on 200 vs 20 QC images;
e. ``pytest -n 2`` vs ``-n 0`` (pytest-xdist) in ``--predictions`` mode.

The model is ``fixtures/models/demo2d`` when present, else a tiny StarDist2D trained
for one short epoch in the temporary folder (its predictions are poor, which does not
matter for timing: both sides predict exactly the same).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np
import tifffile
from scipy import ndimage as ndi

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(BENCH))
DEMO2D = REPO / "fixtures" / "models" / "demo2d"
PYTHON = sys.executable
#: Cases a, b and e are timed this many times (``--repeats``), interleaved with their
#: reference, and the median run is reported: single runs on 2 cores vary by ~5%.
REPEATS = 3
# the checkout's segqc, also in pytest subprocesses and xdist workers; bytecode and
# pytest's assertion-rewrite caches are written as in any user's install (see warm_up),
# even where the shell sets PYTHONDONTWRITEBYTECODE (as this project's sandbox does)
ENV = {
    **{k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"},
    "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO / "src"), os.environ.get("PYTHONPATH")])),
    "TF_CPP_MIN_LOG_LEVEL": "2",
}

TRAIN_TINY_MODEL = """
import sys, json, numpy as np
from stardist.models import Config2D, StarDist2D
rng = np.random.default_rng(0)
sys.path.insert(0, sys.argv[2])
from run import qc_pair
pairs = [qc_pair((128, 128), 40, seed) for seed in range(8)]
X = [image.astype(np.float32) / image.max() for image, _ in pairs]
Y = [labels for _, labels in pairs]
conf = Config2D(n_rays=16, grid=(2, 2), n_channel_in=1, unet_n_depth=2, unet_n_filter_base=8,
                train_patch_size=(64, 64), train_batch_size=4, train_epochs=1,
                train_steps_per_epoch=10)
model = StarDist2D(conf, name="tiny", basedir=sys.argv[1])
model.train(X[:6], Y[:6], validation_data=(X[6:], Y[6:]), epochs=1, steps_per_epoch=10)
with open(f"{sys.argv[1]}/tiny/thresholds.json", "w") as handle:
    json.dump({"prob": 0.5, "nms": 0.4}, handle)
"""

# The floor: what anyone would write to get the same numbers without segqc.
BARE_SCRIPT = """
import json, sys
from pathlib import Path
import numpy as np, tifffile
from csbdeep.utils import normalize
from stardist.matching import matching
from stardist.models import StarDist2D
model_dir, source, target = map(Path, sys.argv[1:4])
model = StarDist2D(None, name=model_dir.name, basedir=str(model_dir.parent))
thresholds = json.loads((model_dir / "thresholds.json").read_text())
for path in sorted(source.glob("*.tif")):
    image = normalize(tifffile.imread(path), 1, 99.8, axis=(0, 1)).astype(np.float32)
    n_tiles = model._guess_n_tiles(image)
    labels, _ = model.predict_instances(
        image, prob_thresh=thresholds["prob"], nms_thresh=thresholds["nms"],
        n_tiles=n_tiles if any(n > 1 for n in n_tiles) else None, verbose=False,
        show_tile_progress=False)
    matching(tifffile.imread(target / path.name), labels, thresh=0.5)
"""


def qc_labels(shape: tuple[int, int], n: int, seed: int) -> np.ndarray:
    """``n`` round nuclei at seeded random places (nearest-centre cells cut to radius 7)."""
    rng = np.random.default_rng(seed)
    seeds = np.zeros(shape, np.int32)
    centres = rng.integers(0, shape, size=(n, 2))
    seeds[centres[:, 0], centres[:, 1]] = np.arange(1, n + 1)
    distance, (iy, ix) = ndi.distance_transform_edt(seeds == 0, return_indices=True)
    labels = seeds[iy, ix]
    labels[distance > 7] = 0
    return labels


def qc_pair(shape: tuple[int, int], n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A noisy uint16 image and its label mask."""
    labels = qc_labels(shape, n, seed)
    rng = np.random.default_rng(seed + 10_000)
    image = 100 + 300 * ndi.gaussian_filter((labels > 0).astype(float), 1.5)
    image = image + rng.normal(0, 15, shape)
    return np.clip(image, 0, 65535).astype(np.uint16), labels.astype(np.uint16)


def write_qc(root: Path, n_images: int, shape: tuple[int, int], n_objects: int) -> Path:
    """source/, target/ and predictions/ (GT shifted by one pixel, ~5% dropped)."""
    for sub in ("source", "target", "predictions"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for i in range(n_images):
        image, labels = qc_pair(shape, n_objects, seed=i)
        tifffile.imwrite(root / "source" / f"qc{i:04d}.tif", image)
        tifffile.imwrite(root / "target" / f"qc{i:04d}.tif", labels, compression="zlib")
        tifffile.imwrite(
            root / "predictions" / f"qc{i:04d}.tif", predicted(labels), compression="zlib"
        )
    return root


def predicted(labels: np.ndarray) -> np.ndarray:
    """A plausible prediction: the ground truth shifted by a pixel, every 20th object lost."""
    prediction = np.roll(labels, 1, axis=1)
    prediction[np.isin(prediction, np.arange(1, int(labels.max()) + 1, 20))] = 0
    return prediction


def predictions_pool(root: Path, n_images: int, *, distinct: int = 30) -> Path:
    """--predictions QC folders of ``n_images`` 1024² pairs (~1,500 objects each).

    Only ``distinct`` seeded pairs are generated; the others are hard links to them
    under new names, which keeps set-up time and disk use small (the run reads every
    file all the same: there is no prediction cache in --predictions mode).
    """
    pool = root / "pool"
    if not pool.exists():
        for sub in ("target", "predictions"):
            (pool / sub).mkdir(parents=True)
        for i in range(distinct):
            labels = qc_labels((1024, 1024), 1500, seed=1000 + i).astype(np.uint16)
            tifffile.imwrite(pool / "target" / f"{i}.tif", labels, compression="zlib")
            tifffile.imwrite(
                pool / "predictions" / f"{i}.tif", predicted(labels), compression="zlib"
            )
    folder = root / f"qc_{n_images}"
    if folder.exists():
        return folder
    for sub in ("target", "predictions"):
        (folder / sub).mkdir(parents=True)
        for i in range(n_images):
            os.link(pool / sub / f"{i % distinct}.tif", folder / sub / f"qc{i:04d}.tif")
    return folder


def median(runs: list[tuple[float, float, int]]) -> tuple[float, float, int]:
    """The run of median wall time (an odd number of runs)."""
    return sorted(runs)[len(runs) // 2]


def measured(command: list[str], cwd: Path) -> tuple[float, float, int]:
    """Run ``command``; return (wall seconds, peak RSS in MiB, exit code)."""
    started = time.perf_counter()
    process = subprocess.Popen(
        command, cwd=cwd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode not in (0, 1):  # 1: QC limits failed, expected with a tiny model
        error = process.stderr.read().decode() if process.stderr else ""
        raise RuntimeError(f"{' '.join(command)} exited {process.returncode}:\n{error}")
    return wall, usage.ru_maxrss / 1024, process.returncode


def pytest_qc(*args: str) -> list[str]:
    # hypothesis is only a test dependency of segqc; its pytest plugin alone costs ~1 s
    # of start-up, which a user of segqc[cpu] does not pay.
    return [
        PYTHON,
        "-m",
        "pytest",
        "--pyargs",
        "segqc.qc_tests",
        "-q",
        "-p",
        "no:cacheprovider",
        "-p",
        "no:hypothesispytest",
        *args,
    ]


def warm_up(work: Path) -> None:
    """One small run first, so every case meets the caches a user's second run meets.

    pytest rewrites the asserts of segqc's modules (a pytest11 plugin package) and of
    the QC tests, and caches the result in ``__pycache__``; without that cache each
    process (the controller and every xdist worker) recompiles them, ~0.3 s.
    """
    qc = predictions_pool(work, 2)
    measured(
        pytest_qc(
            "--predictions", str(qc / "predictions"), "--qc-target", str(qc / "target"),
            "--qc-output", str(work / "out_warm_up"),
        ),
        work,
    )  # fmt: skip


def model_cases(work: Path, n_images: int, repeats: int) -> list[tuple[str, ...]]:
    """Cases a and b."""
    if DEMO2D.is_dir():
        model = DEMO2D
    else:
        script = work / "train_tiny.py"
        script.write_text(TRAIN_TINY_MODEL)
        measured([PYTHON, str(script), str(work / "models"), str(BENCH)], work)
        model = work / "models" / "tiny"
    qc = write_qc(work / "qc_model", n_images, (384, 384), 200)
    bare = work / "bare.py"
    bare.write_text(BARE_SCRIPT)
    floors, firsts, seconds = [], [], []
    for attempt in range(repeats):  # interleaved, so drifts in machine load hit both sides
        floors.append(
            measured([PYTHON, str(bare), str(model), str(qc / "source"), str(qc / "target")], work)
        )
        suite = pytest_qc(
            "--model", str(model), "--qc-source", str(qc / "source"),
            "--qc-target", str(qc / "target"), "--qc-output", str(work / f"out_a{attempt}"),
        )  # fmt: skip
        firsts.append(measured(suite, work))  # a new output folder: an empty cache
        seconds.append(measured(suite, work))
    floor, first, second = median(floors), median(firsts), median(seconds)
    return [
        row(
            f"a. pytest --model, {n_images} images ({model.name})",
            "bare predict+matching",
            first,
            floor,
            "<= 1.15",
        ),
        row("b. same run, prediction cache warm", "first run (a)", second, first, "<= 0.15"),
    ]


def memory_case(work: Path, small: int, large: int) -> tuple[str, ...]:
    """Case d: --predictions on ``large`` vs ``small`` images of the same kind."""
    runs = []
    for n in (small, large):
        qc = predictions_pool(work, n)
        runs.append(
            measured(
                pytest_qc(
                    "--predictions",
                    str(qc / "predictions"),
                    "--qc-target",
                    str(qc / "target"),
                    "--qc-output",
                    str(work / f"out_{n}"),
                ),
                work,
            )
        )
    return row(
        f"d. peak RSS, {large} vs {small} images",
        f"{small} images",
        runs[1],
        runs[0],
        "<= 1.2 (RSS)",
        by="rss",
    )


def xdist_case(work: Path, n_images: int, repeats: int) -> tuple[str, ...]:
    """Case e: -n 2 vs -n 0 in --predictions mode."""
    qc = predictions_pool(work, n_images)
    base = ("--predictions", str(qc / "predictions"), "--qc-target", str(qc / "target"))
    serials, parallels = [], []
    for _ in range(repeats):
        serials.append(
            measured(pytest_qc(*base, "-n", "0", "--qc-output", str(work / "out_n0")), work)
        )
        parallels.append(
            measured(pytest_qc(*base, "-n", "2", "--qc-output", str(work / "out_n2")), work)
        )
    serial, parallel = median(serials), median(parallels)
    return row(
        f"e. pytest -n 2, {n_images} images",
        "-n 0",
        parallel,
        serial,
        ">= 1.6 speed-up",
        speedup=True,
    )


def row(
    case: str,
    reference: str,
    ours: tuple[float, float, int],
    ref: tuple[float, float, int],
    target: str,
    *,
    by: str = "time",
    speedup: bool = False,
) -> tuple[str, ...]:
    if by == "rss":
        ratio = f"{ours[1] / ref[1]:.2f}x"
    elif speedup:
        ratio = f"{ref[0] / ours[0]:.2f}x faster"
    else:
        ratio = f"{ours[0] / ref[0]:.2f}x"
    return (
        case,
        reference,
        f"{ours[0]:.1f} s",
        f"{ref[0]:.1f} s",
        f"{ours[1]:.0f} MiB",
        f"{ref[1]:.0f} MiB",
        ratio,
        target,
    )


def matching_cases() -> list[tuple[str, ...]]:
    """Case c, from bench/bench_matching.py."""
    from bench_matching import measure_cases

    rows = []
    for r in measure_cases():
        if r.stardist_s is None:
            rows.append(
                (
                    f"c. pathological 1024², {r.n_true} vs {r.n_pred}",
                    "stardist.matching",
                    f"{r.segqc_s:.3f} s",
                    "not run",
                    f"{r.segqc_peak_bytes / 2**20:.0f} MiB*",
                    f"~{r.dense_gb:.0f} GB dense",
                    "-",
                    "< 10 s, < 2 GB",
                )
            )
            continue
        same = "identical" if r.identical else "DIFFERENT"
        rows.append(
            (
                f"c. matching, {r.n_true} vs {r.n_pred} objects",
                "stardist.matching",
                f"{r.segqc_s:.3f} s",
                f"{r.stardist_s:.3f} s",
                f"{r.segqc_peak_bytes / 2**20:.0f} MiB*",
                "-",
                f"{r.stardist_s / r.segqc_s:.0f}x faster, {same}",
                ">= 10x at ~5,000",
            )
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, a smoke run")
    parser.add_argument(
        "--only", default="abcde", metavar="CASES", help="the cases to run, e.g. 'ab' [all]"
    )
    parser.add_argument(
        "--repeats", type=int, default=None, metavar="N",
        help=f"time cases a, b and e N times and report the median [{REPEATS}; --quick: 1]",
    )  # fmt: skip
    options = parser.parse_args()
    repeats = options.repeats or (1 if options.quick else REPEATS)
    n_model, small, large, n_xdist = (4, 5, 20, 30) if options.quick else (20, 20, 200, 300)
    header = (
        "case",
        "reference",
        "segqc",
        "reference",
        "segqc peak",
        "reference peak",
        "ratio",
        "target",
    )
    rows = []
    with tempfile.TemporaryDirectory(prefix="segqc-bench-") as tmp:
        work = Path(tmp)
        warm_up(work)
        if {"a", "b"} & set(options.only):
            rows += [r for r in model_cases(work, n_model, repeats) if r[0][0] in options.only]
        if "d" in options.only:
            rows.append(memory_case(work, small, large))
        if "e" in options.only:
            rows.append(xdist_case(work, n_xdist, repeats))
        if "c" in options.only:  # last: it grows this process, whose size forks inherit
            rows += matching_cases()
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for line in [header, tuple("-" * w for w in widths), *rows]:
        print(" | ".join(str(v).ljust(w) for v, w in zip(line, widths, strict=True)))
    print(
        textwrap.dedent(f"""
        a, b, e: the median of {repeats} run(s); peak: ru_maxrss of the process (and its xdist
        workers); * = tracemalloc peak of the matching call alone. {os.cpu_count()} CPUs,
        Python {sys.version.split()[0]}.""")
    )


if __name__ == "__main__":
    main()
