"""segqc's performance benchmark: one command, one table of today's figures.

Run ``python bench/run.py`` (``--quick``: small sizes, a smoke run; ``--only a,f``: some
cases; ``--repeats N``: runs of the timed cases a, b and e, median reported, default 3,
``--quick`` 1). Every input is generated from fixed seeds in a temporary folder
(bench/inputs.py). Every pytest run is a subprocess, after one warm-up run, with Python's
bytecode and pytest's assertion-rewrite caches written as in a user's install; peak
memory is ``ru_maxrss`` from ``os.wait4`` (the process, or the largest of it and its
xdist workers). Sizes in brackets are ``--quick``'s. Rows read: case | reference |
segqc's figure | the reference's | ratio | target | result.

a. ``pytest --model fixtures/models/demo2d`` on 20 [4] QC images of 384² vs a bare script
   that loads the model, predicts the same images the same way and calls
   ``stardist.matching``. Target: ratio <= 1.15, informative (not a gate).
b. The same command again, served by the prediction cache, vs (a). Target <= 0.15.
c. segqc's matching engine vs ``stardist.matching`` at ~100, 1,000 and 5,000 objects (all
   fields identical) and on a pathological pair too large for stardist's dense matrices
   (bench/bench_matching.py, in this process). Target >= 10x faster at ~5,000 objects.
d. Plugin cost: an unrelated project with one plain test, ``python -m pytest -q -p
   no:cacheprovider`` with segqc installed vs with ``-p no:segqc``; 7 [3] alternating
   pairs, the median of the pairwise differences. Other plugins load alike on both
   sides; hypothesis's (1-3 s of start-up) is turned off on both. Target <= 0.10 s.
e. ``pytest -n 2`` vs ``-n 0`` in ``--predictions`` mode on 300 [30] 1024² pairs.
   Target >= 1.6x faster.
f. ``--predictions`` on 1,000 and 10,000 [100 and 1,000] 256² pairs (hard links to 50
   distinct ones): time per image, large vs small (target <= 1.15); growth of the peak
   RSS (MiB at large minus MiB at small) vs the growth of a yardstick's, a plain
   parametrised test file with as many tests, each recording 19 properties, run with
   pytest-html (target <= 1.25); ``-n 2`` at the large size (reported); report.html at
   the large size (target <= 30 MB) and the time headless Chromium takes to load it to a
   screenshot (target < 10 s).
g. One 16,384² [4,096²] uint32 pair (1024² tiles, distinct labels) in ``--predictions``
   mode: peak RSS vs 4x the bytes of the two label images (target <= 1.0); its
   tp/fp/fn/n_true/n_pred vs the sums over its four quadrants evaluated in a second run
   (target: equal).
h. Only with ``--only h`` (minutes): wall time of ``python -m pytest tests/unit -q -p
   no:cacheprovider`` (target < 60 s) and of the README's test command, the same over
   ``tests -n 2 --dist worksteal`` (target < 180 s), after a ``--collect-only`` warm-up.

Without ``fixtures/models/demo2d``, cases a and b train a tiny StarDist2D for one short
epoch (poor predictions, which do not matter for timing: both sides predict the same).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import sys
import tempfile
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from case_model import BARE_SCRIPT, model_rows
from case_scale import scale_rows
from case_slide import slide_rows
from case_startup import plugin_cost_row
from harness import (
    ENV,
    PYTHON,
    REPO,
    Row,
    measured,
    median,
    pool,
    predictions_args,
    print_table,
    pytest_qc,
    verdict,
    warm_up,
)

# bench/gpu_check.py reuses the environment and the bare floor
__all__ = ["BARE_SCRIPT", "ENV", "main"]

REPEATS = 3
DEFAULT_CASES = "abcdefg"


@dataclass(frozen=True)
class Sizes:
    """The cases' sizes (see the module docstring)."""

    model_images: int = 20
    plugin_pairs: int = 7
    xdist_images: int = 300
    scale: tuple[int, int] = (1_000, 10_000)
    slide_side: int = 16_384


QUICK = Sizes(4, 3, 30, (100, 1_000), 4_096)


def xdist_row(work: Path, n_images: int, repeats: int) -> Row:
    """Case e: ``-n 2`` vs ``-n 0`` in --predictions mode, medians of interleaved runs.

    Parameters
    ----------
    work : Path
        The bench's work folder.
    n_images : int
        The number of 1024² pairs.
    repeats : int
        Runs of each side.

    Returns
    -------
    Row
        Row e.
    """
    qc = pool(work, n_images)
    serials, parallels = [], []
    for _ in range(repeats):
        serials.append(measured(pytest_qc(*predictions_args(qc, work / "out_n0"), "-n", "0"), work))
        parallels.append(
            measured(pytest_qc(*predictions_args(qc, work / "out_n2"), "-n", "2"), work)
        )
    serial, parallel = median(serials), median(parallels)
    speedup = serial.wall / parallel.wall
    return Row(
        f"e. pytest -n 2, {n_images} images",
        "-n 0",
        f"{parallel.wall:.1f} s, {parallel.rss:.0f} MiB",
        f"{serial.wall:.1f} s, {serial.rss:.0f} MiB",
        f"{speedup:.2f}x speed-up",
        ">= 1.6x speed-up",
        verdict(speedup >= 1.6),
    )


def matching_rows() -> list[Row]:
    """Case c, from bench/bench_matching.py (in this process: run it last).

    Returns
    -------
    list of Row
        One row per matching case; ``*`` marks tracemalloc's peak of the call alone.
    """
    from bench_matching import measure_cases

    rows = []
    for r in measure_cases():
        peak = f"{r.segqc_s:.3f} s, {r.segqc_peak_bytes / 2**20:.0f} MiB*"
        if r.stardist_s is None:
            rows.append(
                Row(
                    f"c. pathological 1024², {r.n_true} vs {r.n_pred}",
                    "stardist.matching",
                    peak,
                    f"not run (~{r.dense_gb:.0f} GB dense)",
                    "-",
                    "< 10 s, < 2 GB",
                    verdict(r.segqc_s < 10 and r.segqc_peak_bytes < 2e9),
                )
            )
            continue
        speedup = r.stardist_s / r.segqc_s
        big = r.n_true >= 4000
        rows.append(
            Row(
                f"c. matching, {r.n_true} vs {r.n_pred} objects",
                "stardist.matching",
                peak,
                f"{r.stardist_s:.3f} s",
                f"{speedup:.0f}x faster, {'identical' if r.identical else 'DIFFERENT'}",
                ">= 10x faster" if big else "identical",
                verdict(bool(r.identical) and (speedup >= 10 or not big)),
            )
        )
    return rows


def tier_rows() -> list[Row]:
    """Case h: wall time of the unit tier and of the whole test suite.

    Returns
    -------
    list of Row
        One row per tier (a non-zero exit code is shown with the time).
    """
    accept = tuple(range(6))  # failures and collection errors are shown, not raised
    base = [PYTHON, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
    measured([*base, "--collect-only", "tests"], REPO, accept=accept)  # bytecode caches
    rows = []
    # The unit tier alone runs serially; the whole suite as the README and .ci/run run it.
    for tier, limit in ((["tests/unit"], 60), (["tests", "-n", "2", "--dist", "worksteal"], 180)):
        run = measured([*base, *tier], REPO, accept=accept)
        failed = f" (exit {run.code})" if run.code else ""
        rows.append(
            Row(
                f"h. pytest {' '.join(tier)}",
                "-",
                f"{run.wall:.0f} s{failed}",
                "-",
                "-",
                f"< {limit} s",
                verdict(run.wall < limit and not run.code),
            )
        )
    return rows


def progress(cases: str) -> None:
    """Say on stderr which case runs now (the table comes at the end).

    Parameters
    ----------
    cases : str
        The case letters.
    """
    print(f"[{dt.datetime.now():%H:%M:%S}] case {cases} ...", file=sys.stderr, flush=True)


def machine() -> str:
    """The machine and versions the figures were measured with, and the date.

    Returns
    -------
    str
        Two lines.
    """

    def installed(*names: str) -> str:
        for name in names:
            try:
                return version(name)
            except PackageNotFoundError:
                continue
        return "absent"

    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    return (
        f"{dt.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}, {os.cpu_count()} CPUs "
        f"(load average {load}), {platform.machine()}\n"
        f"Python {platform.python_version()}, pytest {installed('pytest')}, "
        f"numpy {installed('numpy')}, TensorFlow {installed('tensorflow', 'tensorflow-cpu')}"
    )


def main() -> None:
    """Parse the options, run the chosen cases, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, a smoke run")
    parser.add_argument(
        "--only", default=",".join(DEFAULT_CASES), metavar="CASES",
        help="the cases to run, e.g. a,f; h only when named [%(default)s]",
    )  # fmt: skip
    parser.add_argument(
        "--repeats", type=int, default=None, metavar="N",
        help=f"runs of cases a, b and e, median reported [{REPEATS}; --quick: 1]",
    )  # fmt: skip
    options = parser.parse_args()
    repeats = options.repeats or (1 if options.quick else REPEATS)
    only = set(options.only.replace(",", "").replace(" ", ""))
    if not only or only - set("abcdefgh"):
        parser.error(f"--only: cases are letters a to h, got {options.only!r}")
    size = QUICK if options.quick else Sizes()
    print(machine(), flush=True)
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="segqc-bench-") as tmp:
        work = Path(tmp)
        if only & set("abdefg"):
            warm_up(work)
        if only & set("ab"):
            progress("a, b")
            model = model_rows(work, size.model_images, repeats)
            rows += [r for r in model if r.case[0] in only]
        if "d" in only:
            progress("d")
            rows.append(plugin_cost_row(work, size.plugin_pairs))
        if "e" in only:
            progress("e")
            rows.append(xdist_row(work, size.xdist_images, repeats))
        if "f" in only:
            progress("f")
            rows += scale_rows(work, *size.scale)
        if "g" in only:
            progress("g")
            rows += slide_rows(work, size.slide_side)
        if "h" in only:
            progress("h")
            rows += tier_rows()
        if "c" in only:  # last: it grows this process, whose peak memory children inherit
            progress("c")
            rows += matching_rows()
    print()
    print_table(sorted(rows, key=lambda r: r.case[0]))
    print(
        f"\na, b, e: the median of {repeats} run(s). MiB: peak RSS of the process (xdist: the\n"
        "largest process); *: tracemalloc's peak of the matching call alone."
    )


if __name__ == "__main__":
    main()
