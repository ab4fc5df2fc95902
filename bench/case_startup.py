"""Case d: what installing segqc costs a project that never uses it."""

from __future__ import annotations

import statistics
from pathlib import Path

from harness import PYTHON, Row, measured, verdict

TARGET_S = 0.10


def plugin_cost_row(work: Path, pairs: int) -> Row:
    """Time one plain test with segqc loaded and with ``-p no:segqc``, in alternating pairs.

    Both sides load every other installed plugin (pytest-html, xdist, …) the same way,
    except hypothesis's, turned off in both (~1-3 s of start-up here, which would drown
    the difference). One warm-up run of each side first writes the bytecode caches.

    Parameters
    ----------
    work : Path
        The bench's work folder.
    pairs : int
        The number of pairs; their order alternates, so drifts in load hit both sides.

    Returns
    -------
    Row
        Row d: the median of the pairwise differences.
    """
    project = work / "unrelated"
    project.mkdir()
    (project / "pytest.ini").write_text("[pytest]\n")  # its own rootdir, no config above
    (project / "test_one.py").write_text("def test_one():\n    assert True\n")
    base = [PYTHON, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:hypothesispytest"]
    sides = {"with": base, "without": [*base, "-p", "no:segqc"]}
    for command in sides.values():
        measured(command, project, accept=(0,))
    walls: dict[str, list[float]] = {"with": [], "without": []}
    for k in range(pairs):
        for side in ("with", "without") if k % 2 == 0 else ("without", "with"):
            walls[side].append(measured(sides[side], project, accept=(0,)).wall)
    cost = statistics.median(a - b for a, b in zip(walls["with"], walls["without"], strict=True))
    return Row(
        f"d. plugin cost, 1 plain test ({pairs} pairs; no:hypothesispytest both)",
        "-p no:segqc",
        f"{statistics.median(walls['with']):.2f} s",
        f"{statistics.median(walls['without']):.2f} s",
        f"{cost:+.3f} s",
        f"<= {TARGET_S:.2f} s",
        verdict(cost <= TARGET_S),
    )
