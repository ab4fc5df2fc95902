"""Case f: --predictions runs at two QC-set sizes, against a plain pytest-html yardstick."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

from harness import PYTHON, Row, measured, pool, predictions_args, pytest_qc, summary, verdict

SIDE, OBJECTS = 256, 60
#: Every test records 19 properties, about as many as segqc's per-image tests.
YARDSTICK = """
import os

import pytest

N = int(os.environ["SEGQC_BENCH_TESTS"])
KEYS = [f"metric_{k:02d}" for k in range(19)]


@pytest.mark.parametrize("index", range(N), ids=[f"qc{i:05d}" for i in range(N)])
def test_image(index, record_property):
    for k, key in enumerate(KEYS):
        record_property(key, (19 * index + k) / 7)
"""
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--window-size=1280,2000",
)  # fmt: skip


def yardstick(work: Path, n_tests: int) -> tuple[float, float]:
    """Run the yardstick with ``n_tests`` tests and pytest-html; return (wall s, peak MiB).

    Parameters
    ----------
    work : Path
        The bench's work folder.
    n_tests : int
        The number of tests.

    Returns
    -------
    tuple of float
        Wall seconds and peak RSS in MiB.
    """
    project = work / "yardstick"
    if not project.exists():
        project.mkdir()
        (project / "pytest.ini").write_text("[pytest]\n")
        (project / "test_yardstick.py").write_text(YARDSTICK)
    command = [
        PYTHON, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:hypothesispytest",
        "-p", "no:segqc", f"--html={project / f'report_{n_tests}.html'}",
        "--self-contained-html",
    ]  # fmt: skip
    run = measured(command, project, env={"SEGQC_BENCH_TESTS": str(n_tests)}, accept=(0,))
    return run.wall, run.rss


def chromium_seconds(report: Path, work: Path) -> tuple[float | None, str]:
    """Seconds headless Chromium takes to load ``report`` and write a screenshot.

    Parameters
    ----------
    report : Path
        The HTML file.
    work : Path
        The bench's work folder (for Chromium's profile and the screenshot).

    Returns
    -------
    tuple
        The seconds (None without a screenshot) and the table's cell; both None and
        "skipped: no chromium" where Chromium is not installed.
    """
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        return None, "skipped: no chromium"
    profile, shot = work / "chromium-profile", work / "shot.png"
    command = [
        chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--screenshot={shot}",
        report.as_uri(),
    ]  # fmt: skip
    started = time.perf_counter()
    try:
        subprocess.run(command, capture_output=True, timeout=300, check=False)
    except subprocess.TimeoutExpired:
        return None, "no screenshot in 300 s"
    seconds = time.perf_counter() - started
    if not shot.exists():
        return None, f"no screenshot after {seconds:.1f} s"
    return seconds, f"{seconds:.1f} s"


def scale_rows(work: Path, small: int, large: int) -> list[Row]:
    """Case f: time per image and memory growth from ``small`` to ``large`` images.

    Parameters
    ----------
    work : Path
        The bench's work folder.
    small, large : int
        The two QC-set sizes (256 x 256 pairs, hard links to 50 distinct ones).

    Returns
    -------
    list of Row
        Rows f: time per image, memory growth, -n 2, report size, report load time.
    """
    runs, sticks = {}, {}
    for n in (small, large):
        output = work / f"out_f{n}"
        runs[n] = measured(pytest_qc(*predictions_args(pool(work, n, SIDE, OBJECTS), output)), work)
        n_tests = sum(summary(output)["tests"].values())
        if n == small:
            yardstick(work, 2)  # warm-up: the test file's assertion-rewrite cache
        sticks[n] = yardstick(work, n_tests)
    qc = pool(work, large, SIDE, OBJECTS)
    parallel = measured(pytest_qc(*predictions_args(qc, work / "out_f_n2"), "-n", "2"), work)
    per_image = {n: runs[n].wall / n for n in runs}
    slower = per_image[large] / per_image[small]
    growth = runs[large].rss - runs[small].rss
    stick_growth = sticks[large][1] - sticks[small][1]
    growth_ratio = growth / stick_growth if stick_growth > 0 else float("inf")
    report = work / f"out_f{large}" / "report.html"
    size_mb = report.stat().st_size / 1e6
    seconds, load = chromium_seconds(report, work)
    return [
        Row(
            f"f. time per image, {large:,} vs {small:,} (256²)",
            f"{small:,} images",
            f"{1000 * per_image[large]:.1f} ms ({runs[large].wall:.0f} s)",
            f"{1000 * per_image[small]:.1f} ms ({runs[small].wall:.0f} s)",
            f"{slower:.2f}x",
            "<= 1.15",
            verdict(slower <= 1.15),
        ),
        Row(
            f"f. peak RSS growth, {small:,} -> {large:,}",
            "pytest-html yardstick",
            f"+{growth:.0f} MiB ({runs[small].rss:.0f}->{runs[large].rss:.0f})",
            f"+{stick_growth:.0f} MiB ({sticks[small][1]:.0f}->{sticks[large][1]:.0f})",
            f"{growth_ratio:.2f}x",
            "<= 1.25",
            verdict(growth_ratio <= 1.25),
        ),
        Row(
            f"f. pytest -n 2, {large:,} images",
            "-n 0",
            f"{parallel.wall:.0f} s, {parallel.rss:.0f} MiB",
            f"{runs[large].wall:.0f} s",
            f"{runs[large].wall / parallel.wall:.2f}x speed-up",
            "reported",
            verdict(None),
        ),
        Row(
            f"f. report.html, {large:,} images",
            "-",
            f"{size_mb:.1f} MB",
            "-",
            "-",
            "<= 30 MB",
            verdict(size_mb <= 30),
        ),
        Row(
            "f. headless Chromium loads it",
            "-",
            load,
            "-",
            "-",
            "< 10 s",
            verdict(None if load.startswith("skipped") else seconds is not None and seconds < 10),
        ),
    ]
