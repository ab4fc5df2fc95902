"""The benchmark's harness: the runs' environment, measured subprocesses, the table.

Standard library only: the bench's own process stays small, because Linux hands a
child the peak memory of its parent at ``exec`` (see bench/inputs.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
PYTHON = sys.executable
# the checkout's segqc, also in pytest subprocesses and xdist workers; bytecode and
# pytest's assertion-rewrite caches are written as in any user's install (see warm_up),
# even where the shell sets PYTHONDONTWRITEBYTECODE (as this project's sandbox does)
ENV = {
    **{k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"},
    "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO / "src"), os.environ.get("PYTHONPATH")])),
    "TF_CPP_MIN_LOG_LEVEL": "2",
}


class Run(NamedTuple):
    """One measured process: wall seconds, peak RSS in MiB, exit code."""

    wall: float
    rss: float
    code: int


def measured(
    command: list[str],
    cwd: Path,
    *,
    env: dict[str, str] | None = None,
    accept: tuple[int, ...] = (0, 1),
) -> Run:
    """Run ``command`` and measure it.

    Parameters
    ----------
    command : list of str
        The command line.
    cwd : Path
        Its working folder.
    env : dict, optional
        Extra environment variables, on top of :data:`ENV`.
    accept : tuple of int
        Exit codes that are results (1: QC limits failed); others raise.

    Returns
    -------
    Run
        Wall time, and peak RSS (``ru_maxrss`` from ``os.wait4``: the process, or the
        largest of it and the children it waited for, such as xdist workers).
    """
    started = time.perf_counter()
    process = subprocess.Popen(
        command,
        cwd=cwd,
        env={**ENV, **(env or {})},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode not in accept:
        error = process.stderr.read().decode()[-3000:] if process.stderr else ""
        raise RuntimeError(f"{' '.join(command)} exited {process.returncode}:\n{error}")
    return Run(wall, usage.ru_maxrss / 1024, process.returncode)


def median(runs: list[Run]) -> Run:
    """The run of median wall time (of an odd number of runs; the upper one otherwise)."""
    return sorted(runs)[len(runs) // 2]


def pytest_qc(*args: str) -> list[str]:
    """The bundled QC suite's pytest command line with ``args``.

    Parameters
    ----------
    *args : str
        segqc's options.

    Returns
    -------
    list of str
        The command (hypothesis's pytest plugin is turned off: it is a test dependency of
        segqc only, and its start-up, ~1 s, is not paid by a user of segqc[cpu]).
    """
    return [
        PYTHON, "-m", "pytest", "--pyargs", "segqc.qc_tests", "-q",
        "-p", "no:cacheprovider", "-p", "no:hypothesispytest", *args,
    ]  # fmt: skip


def predictions_args(qc: Path, output: Path) -> tuple[str, ...]:
    """segqc's options for a --predictions run of ``qc`` writing to ``output``.

    Parameters
    ----------
    qc : Path
        A QC folder with target/ and predictions/.
    output : Path
        The --qc-output folder.

    Returns
    -------
    tuple of str
        The options.
    """
    # with '=': pytest reads a path after a space as a test path, and picks its rootdir
    return (
        f"--predictions={qc / 'predictions'}", f"--qc-target={qc / 'target'}",
        f"--qc-output={output}",
    )  # fmt: skip


def make_inputs(kind: str, root: Path, *numbers: int) -> dict[str, object]:
    """Write seeded inputs with bench/inputs.py in a child process.

    Parameters
    ----------
    kind : str
        ``model-qc``, ``pool`` or ``slide``.
    root : Path
        The bench's work folder.
    *numbers : int
        The kind's sizes (see bench/inputs.py).

    Returns
    -------
    dict
        What inputs.py printed (``folder``, or the slide's ``label_bytes``).
    """
    done = subprocess.run(
        [PYTHON, str(BENCH / "inputs.py"), kind, str(root), *map(str, numbers)],
        env=ENV, capture_output=True, text=True, check=True,
    )  # fmt: skip
    return json.loads(done.stdout.strip().splitlines()[-1])


def pool(root: Path, n_images: int, side: int = 1024, objects: int = 1500) -> Path:
    """A --predictions QC folder of ``n_images`` hard-linked seeded pairs.

    Parameters
    ----------
    root : Path
        The bench's work folder.
    n_images : int
        The number of pairs.
    side : int
        Each image's side in pixels.
    objects : int
        Nuclei per image.

    Returns
    -------
    Path
        The folder (target/, predictions/).
    """
    distinct = 30 if side >= 1024 else 50
    return Path(str(make_inputs("pool", root, n_images, side, objects, distinct)["folder"]))


def warm_up(work: Path) -> None:
    """One small run first, so every case meets the caches a user's second run meets.

    pytest rewrites the asserts of segqc's modules (a pytest11 plugin package) and of
    the QC tests, and caches the result in ``__pycache__``; without that cache each
    process (the controller and every xdist worker) recompiles them, ~0.3 s.

    Parameters
    ----------
    work : Path
        The bench's work folder.
    """
    qc = pool(work, 2, side=256, objects=60)
    measured(pytest_qc(*predictions_args(qc, work / "out_warm_up")), work)


def summary(output: Path) -> dict:
    """The summary.json a run wrote to ``output``.

    Parameters
    ----------
    output : Path
        The run's --qc-output folder.

    Returns
    -------
    dict
        The parsed document.
    """
    return json.loads((output / "summary.json").read_text())


@dataclass(frozen=True)
class Row:
    """One row of the table: a case, its reference, both figures, ratio, target, result."""

    case: str
    reference: str
    ours: str
    theirs: str
    ratio: str
    target: str
    result: str


def verdict(ok: bool | None, *, informative: bool = False) -> str:
    """The result column.

    Parameters
    ----------
    ok : bool or None
        Whether the target is met; None when the case has no target.
    informative : bool
        The target is informative, not a gate.

    Returns
    -------
    str
        ``pass``/``FAIL``, ``met (info)``/``missed (info)``, or ``-``.
    """
    if ok is None:
        return "-"
    if informative:
        return "met (info)" if ok else "missed (info)"
    return "pass" if ok else "FAIL"


def print_table(rows: list[Row]) -> None:
    """Print ``rows`` as one aligned table.

    Parameters
    ----------
    rows : list of Row
        The measured rows.
    """
    header = ("case", "reference", "segqc", "reference figure", "ratio", "target", "result")
    lines: list[tuple[str, ...]] = [header]
    lines += [(r.case, r.reference, r.ours, r.theirs, r.ratio, r.target, r.result) for r in rows]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    lines.insert(1, tuple("-" * w for w in widths))
    for line in lines:
        print(" | ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)).rstrip())
