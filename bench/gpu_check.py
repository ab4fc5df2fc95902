"""GPU vs CPU, measured: same labels, same metrics, how much faster, and segqc's overhead.

Run ``python bench/gpu_check.py`` on a machine with an NVIDIA GPU and ``segqc[gpu]``
(about a minute). It predicts the demo QC set (``fixtures/models/demo2d`` on
``fixtures/qc2d``; ``--with-3d`` adds ``demo3d`` on ``fixtures/qc3d``) the way segqc
predicts, once on the GPU and once on the CPU, and prints one table:

* the GPU's name, the TensorFlow and stardist versions, and what CUDA TensorFlow sees;
* images per second on each device, after one warm-up image (the set is predicted
  ``--rounds`` times, the labels kept from the first round);
* mismatched pixels per million between the two devices' label images, after pairing
  their objects as the matching does (label ids may differ, StarDist numbers objects by
  score): the number ``--compare-device`` limits
  (:func:`segqc.metrics.matching.mismatched_pixels_of`), and how many label images are
  identical up to relabelling;
* every metric of segqc's table (mean over images on each device) and its largest
  absolute GPU-CPU difference over the images;
* the wall time of ``pytest --model fixtures/models/demo2d --device gpu --no-cache`` vs a
  bare load / predict / ``stardist.matching`` loop on the GPU (bench/run.py's floor).

TensorFlow's device choice is process-wide, so each device predicts in its own process:
this script runs itself with ``--device cpu|gpu --out DIR`` (``CUDA_VISIBLE_DEVICES=""``
for the CPU). Without a visible GPU it exits 1 with a one-line message; ``--allow-cpu``
then compares the CPU with itself instead (a test of this script, not a measurement).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import tifffile

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(REPO / "src"))  # this checkout's segqc, as in the subprocesses
from run import BARE_SCRIPT, ENV  # noqa: E402  (bench/run.py: PYTHONPATH, the bare floor)

PYTHON = sys.executable
CPU_ENV = {**ENV, "CUDA_VISIBLE_DEVICES": ""}
#: The QC sets: name -> (model folder, QC folder with source/ and target/).
SETS = {
    "demo2d": (REPO / "fixtures" / "models" / "demo2d", REPO / "fixtures" / "qc2d"),
    "demo3d": (REPO / "fixtures" / "models" / "demo3d", REPO / "fixtures" / "qc3d"),
}

PROBE = """
import json, os, tensorflow as tf, stardist
gpus = tf.config.list_physical_devices("GPU")
build = tf.sysconfig.get_build_info()
print(json.dumps({
    "gpus": [tf.config.experimental.get_device_details(g).get("device_name", g.name)
             for g in gpus],
    "tensorflow": tf.__version__, "stardist": stardist.__version__,
    "cuda_build": tf.test.is_built_with_cuda(), "cuda": build.get("cuda_version"),
    "cudnn": build.get("cudnn_version"), "visible": os.environ.get("CUDA_VISIBLE_DEVICES"),
}))
"""


def run_quietly(command: list[str], env: dict[str, str]) -> tuple[float, str]:
    """Run ``command`` in the checkout; return (wall seconds, stdout); raise on failure.

    Exit code 1 is accepted: a pytest run whose QC limits fail still measured its time.
    """
    started = time.perf_counter()
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode not in (0, 1):
        tail = "\n".join(done.stderr.splitlines()[-15:])
        raise RuntimeError(f"{' '.join(command)} exited {done.returncode}:\n{tail}")
    return wall, done.stdout


def predict_sets(device: Literal["cpu", "gpu"], out: Path, sets: list[str], rounds: int) -> None:
    """Worker mode: predict each set with segqc's predictor, write labels and timings.

    Parameters
    ----------
    device : {"cpu", "gpu"}
        Passed to :class:`~segqc.predict.stardist.StarDistPredictor`.
    out : Path
        Receives ``<set>/<image>.tif`` (the first round's labels) and ``timings.json``.
    sets : list of str
        Keys of :data:`SETS`.
    rounds : int
        How many times the set is predicted for the timing.
    """
    from segqc.data.axes import read_source_image
    from segqc.data.images import read_tiff
    from segqc.data.pairing import discover_pairs
    from segqc.predict.model_folder import inspect_model_folder
    from segqc.predict.stardist import StarDistPredictor, resolve_parameters
    from segqc.thresholds import load_thresholds

    # pytest run from the checkout reads its thresholds.yaml (prediction: prob/nms)
    settings = load_thresholds(REPO / "thresholds.yaml").thresholds.prediction
    timings: dict[str, object] = {}
    for name in sets:
        model_dir, qc = SETS[name]
        folder = inspect_model_folder(model_dir)
        predictor = StarDistPredictor(folder, resolve_parameters(folder, settings), device=device)
        pairs = discover_pairs(qc / "source", qc / "target").pairs
        images = []
        for pair in pairs:
            assert pair.source is not None
            shape = read_tiff(pair.target).shape
            images.append(read_source_image(pair.source, spatial_shape=shape, model=folder))
        started = time.perf_counter()
        predictor.predict(pairs[0], images[0])  # warm-up: loads TensorFlow and the network
        warm_up = time.perf_counter() - started
        (out / name).mkdir(parents=True)
        seconds = []
        for attempt in range(rounds):
            for pair, image in zip(pairs, images, strict=True):
                started = time.perf_counter()
                # predict() normalises with prepare_input and picks n_tiles, as in a QC run
                labels = predictor.predict(pair, image).labels
                seconds.append(time.perf_counter() - started)
                if attempt == 0:
                    tifffile.imwrite(out / name / pair.name, labels, compression="zlib")
        timings[name] = {"device": predictor.device_name, "warm_up_s": warm_up, "s": seconds}
    (out / "timings.json").write_text(json.dumps(timings))


@dataclass
class Comparison:
    """One set's differences: mismatched pixels per million, identical images, metrics."""

    images: int
    ppm: float  # after pairing the objects as the matching does
    raw_ppm: float  # label ids compared as written
    identical: int
    metrics: dict[str, list[tuple[float, float]]]  # key -> (gpu, cpu) value of each image


def compare_set(name: str, gpu: Path, cpu: Path, iou_threshold: float) -> Comparison:
    """Label and metric differences of one set between the two devices' outputs."""
    from segqc.data.images import read_tiff
    from segqc.metrics.matching import label_overlaps, mismatched_pixels_of
    from segqc.metrics.scores import measure

    targets = sorted((SETS[name][1] / "target").glob("*.tif"))
    mismatched = raw = pixels = identical = 0
    values: dict[str, list[tuple[float, float]]] = {}
    for target_path in targets:
        target = read_tiff(target_path)
        on_gpu = tifffile.imread(gpu / name / target_path.name)
        on_cpu = tifffile.imread(cpu / name / target_path.name)
        differ = mismatched_pixels_of(label_overlaps(on_gpu, on_cpu), iou_threshold=iou_threshold)
        mismatched += differ
        raw += int(np.count_nonzero(on_gpu != on_cpu))
        pixels += on_gpu.size
        identical += differ == 0
        gpu_scores = measure(target, on_gpu, iou_threshold=iou_threshold).values()
        cpu_scores = measure(target, on_cpu, iou_threshold=iou_threshold).values()
        for key, value in gpu_scores.items():
            values.setdefault(key, []).append((float(value), float(cpu_scores[key])))
    return Comparison(
        len(targets), 1e6 * mismatched / pixels, 1e6 * raw / pixels, identical, values
    )


def largest_difference(pairs: list[tuple[float, float]]) -> float:
    """max |gpu - cpu| over images; NaN on both sides counts as equal, on one as inf."""
    largest = 0.0
    for on_gpu, on_cpu in pairs:
        if math.isnan(on_gpu) or math.isnan(on_cpu):
            largest = largest if math.isnan(on_gpu) and math.isnan(on_cpu) else math.inf
        else:
            largest = max(largest, abs(on_gpu - on_cpu))
    return largest


def number(value: float) -> str:
    """A metric value for the table."""
    return "nan" if math.isnan(value) else f"{value:.4g}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--allow-cpu", action="store_true",
        help="without a visible GPU, compare the CPU with itself instead of failing",
    )  # fmt: skip
    parser.add_argument("--with-3d", action="store_true", help="also demo3d on fixtures/qc3d")
    parser.add_argument("--rounds", type=int, default=3, help="predictions of the set timed [3]")
    parser.add_argument("--device", choices=("cpu", "gpu"), help=argparse.SUPPRESS)  # worker
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--sets", nargs="+", default=["demo2d"], help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.device:
        predict_sets(options.device, options.out, options.sets, options.rounds)
        return

    probe = json.loads(run_quietly([PYTHON, "-c", PROBE], ENV)[1].splitlines()[-1])
    has_gpu = bool(probe["gpus"])
    if not has_gpu and not options.allow_cpu:
        sys.exit(
            "gpu_check: TensorFlow sees no GPU (tf.config.list_physical_devices('GPU') is "
            f"empty, CUDA_VISIBLE_DEVICES={probe['visible'] or '(unset)'}); install segqc[gpu] "
            "and the NVIDIA driver, or pass --allow-cpu to compare the CPU with itself"
        )
    fast, fast_env = ("gpu", ENV) if has_gpu else ("cpu", CPU_ENV)
    label = "GPU" if has_gpu else "CPU*"
    sets = ["demo2d", "demo3d"] if options.with_3d else ["demo2d"]
    from segqc.thresholds import load_thresholds

    iou = load_thresholds(REPO / "thresholds.yaml").thresholds.matching.iou_threshold
    rows: list[tuple[str, str, str, str]] = [
        ("GPU", ", ".join(probe["gpus"]) or "none visible (--allow-cpu: CPU vs CPU)", "", ""),
        ("TensorFlow / stardist", f"{probe['tensorflow']} / {probe['stardist']}", "", ""),
        (
            "CUDA (TensorFlow's build)",
            f"CUDA {probe['cuda']}, cuDNN {probe['cudnn']}" if probe["cuda_build"] else "none",
            "",
            "",
        ),
        (
            "CUDA visibility",
            f"CUDA_VISIBLE_DEVICES={probe['visible'] or '(unset)'}, "
            f"{len(probe['gpus'])} GPU(s) visible",
            "",
            "",
        ),
    ]
    with tempfile.TemporaryDirectory(prefix="segqc-gpu-check-") as tmp:
        work = Path(tmp)
        timings = {}
        for side, device, env in (("gpu", fast, fast_env), ("cpu", "cpu", CPU_ENV)):
            worker = [PYTHON, __file__, "--device", device, "--out", str(work / side)]
            run_quietly([*worker, "--rounds", str(options.rounds), "--sets", *sets], env)
            timings[side] = json.loads((work / side / "timings.json").read_text())
        for name in sets:
            gpu_t, cpu_t = timings["gpu"][name], timings["cpu"][name]
            fast_rate = len(gpu_t["s"]) / sum(gpu_t["s"])
            slow_rate = len(cpu_t["s"]) / sum(cpu_t["s"])
            found = compare_set(name, work / "gpu", work / "cpu", iou)
            rows += [
                (f"{name}: device used", gpu_t["device"], cpu_t["device"], ""),
                (
                    f"{name}: images/s ({len(gpu_t['s'])} predictions)",
                    f"{fast_rate:.2f}",
                    f"{slow_rate:.2f}",
                    f"{fast_rate / slow_rate:.2f}x faster",
                ),
                (
                    f"{name}: mismatched px per million",
                    "",
                    "",
                    f"{found.ppm:.1f} after relabelling ({found.raw_ppm:.1f} as written)",
                ),
                (
                    f"{name}: identical up to relabelling",
                    "",
                    "",
                    f"{found.identical}/{found.images} images",
                ),
            ]
            for key, pairs in found.metrics.items():
                rows.append(
                    (
                        f"{name}: {key} (mean of images)",
                        number(float(np.nanmean([g for g, _ in pairs]))),
                        number(float(np.nanmean([c for _, c in pairs]))),
                        f"max |diff| {number(largest_difference(pairs))}",
                    )
                )
        model, qc = SETS["demo2d"]
        bare = work / "bare.py"
        bare.write_text(BARE_SCRIPT)
        floor, _ = run_quietly(
            [PYTHON, str(bare), str(model), str(qc / "source"), str(qc / "target")], fast_env
        )
        # hypothesis is only a test dependency; its pytest plugin alone costs ~1 s of
        # start-up that a user of segqc[gpu] does not pay (as in bench/run.py)
        suite = [
            PYTHON, "-m", "pytest", "--model", str(model), "--device", fast, "--no-cache",
            "--qc-output", str(work / "qc-output"), "-q", "-p", "no:cacheprovider",
            "-p", "no:hypothesispytest",
        ]  # fmt: skip
        segqc_wall, _ = run_quietly(suite, fast_env)
        rows.append(
            (
                f"pytest --model demo2d --device {fast} vs bare loop",
                f"{segqc_wall:.1f} s",
                f"{floor:.1f} s",
                f"{segqc_wall / floor:.2f}x",
            )
        )
    header = ("check", f"{label} / segqc", "CPU / bare", "comparison")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for line in [header, tuple("-" * w for w in widths), *rows]:
        print(" | ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)).rstrip())
    if not has_gpu:
        print(f"* no GPU visible: both sides ran on the CPU ({os.cpu_count()} CPUs).")


if __name__ == "__main__":
    main()
