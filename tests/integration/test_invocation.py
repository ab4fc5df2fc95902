"""``pytest --model DIR`` as users type it: the space form, the ``=`` form, the command.

A user's project has its own ``[tool.pytest.ini_options]`` (an output folder) and its
own thresholds.yaml (a strict per-image f1 limit); the QC data lies elsewhere, given
with absolute paths, as in a CI job. pytest chooses its rootdir from test paths before
segqc's options exist, so the space form would move it away from the project.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import checkout_pythonpath, write_qc

QC = ("--pyargs", "segqc.qc_tests")
STRICT = "per_image:\n  f1: {min: 0.9}\n"  # img01 misses 4 of 10 disks: f1 = 0.75


@pytest.fixture
def project(pytester: pytest.Pytester, tmp_path_factory: pytest.TempPathFactory):
    """The user's project (pytester.path) and QC data outside it."""
    pytester.makepyprojecttoml('[tool.pytest.ini_options]\nqc_output = "gate"\n')
    (pytester.path / "thresholds.yaml").write_text(STRICT)
    data = write_qc(tmp_path_factory.mktemp("data"), 3, dropped=(0, 4, 0))
    return pytester.path, data


def thresholds_used(folder: Path) -> str:
    return json.loads((folder / "summary.json").read_text())["thresholds"]["path"]


def test_space_form_that_would_move_the_rootdir_stops_and_says_how(pytester, project):
    root, data = project
    result = pytester.runpytest(
        *QC, "--predictions", str(data.predictions), "--qc-target", str(data.target)
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            f"ERROR: segqc: pytest read --predictions {data.predictions}, --qc-target "
            f"{data.target} as test paths and chose the rootdir * (no ini file), not {root} "
            f"({root / 'pyproject.toml'}), so other limits and other tests than you meant "
            f"would run; write --predictions={data.predictions} --qc-target={data.target} "
            "(with '='), or run the same options with the segqc command"
        ]
    )
    assert not (root / "gate").exists() and not (root / "qc-output").exists()


def test_equals_form_uses_the_projects_ini_and_thresholds(pytester, project):
    root, data = project
    result = pytester.runpytest(
        *QC, f"--predictions={data.predictions}", f"--qc-target={data.target}"
    )
    assert result.ret == pytest.ExitCode.TESTS_FAILED  # the project's strict limit
    result.stdout.fnmatch_lines(["*img01.tif: f1 = 0.75 < min 0.9*per_image.f1.min*"])
    assert thresholds_used(root / "gate") == str(root / "thresholds.yaml")


def test_space_form_that_keeps_the_rootdir_works_as_the_equals_form(pytester, project):
    root, _ = project
    inside = write_qc(root / "qc", 3, dropped=(0, 4, 0))
    spaced = pytester.runpytest(*QC, "--predictions", "qc/predictions", "--qc-target", "qc/target")
    assert spaced.ret == pytest.ExitCode.TESTS_FAILED
    spaced_summary = json.loads((root / "gate" / "summary.json").read_text())
    joined = pytester.runpytest(
        *QC, f"--predictions={inside.predictions}", f"--qc-target={inside.target}"
    )
    assert joined.ret == spaced.ret
    joined_summary = json.loads((root / "gate" / "summary.json").read_text())
    assert spaced_summary["thresholds"] == joined_summary["thresholds"]
    assert spaced_summary["limits"] == joined_summary["limits"]
    assert spaced_summary["tests"] == joined_summary["tests"]


def test_segqc_command_runs_the_suite_with_the_projects_settings(pytester, project):
    root, data = project
    result = subprocess.run(
        [sys.executable, "-m", "segqc.cli", f"--predictions={data.predictions}",
         f"--qc-target={data.target}", "-p", "no:cacheprovider"],
        cwd=root,
        env={**os.environ, "PYTHONPATH": checkout_pythonpath()},
        capture_output=True,
        text=True,
        timeout=300,
    )  # fmt: skip
    assert result.returncode == pytest.ExitCode.TESTS_FAILED, result.stdout + result.stderr
    assert "img01.tif: f1 = 0.75 < min 0.9" in result.stdout
    assert "warning" not in result.stdout.lower().split("segqc =")[0]
    assert thresholds_used(root / "gate") == str(root / "thresholds.yaml")
