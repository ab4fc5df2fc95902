"""A finished run's outputs are never lost or mixed, and a gate never passes unchecked.

* a run that evaluates no image (--collect-only, -k selecting none) leaves a finished
  run's report.html, summary.json and metrics.csv as they were;
* predictions/ holds only this run's images;
* a second run on a folder in use stops at once, naming the folder and the other run;
* SIGTERM (CI time-outs) ends the run as Ctrl-C does: an interrupted summary, what was
  evaluated, no temporary folders;
* --qc-output inside an input folder is refused;
* image tests that passed while their results never reached the outputs fail the run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import checkout_pythonpath, write_qc

QC = ("--pyargs", "segqc.qc_tests")
OUTPUTS = ("report.html", "summary.json", "metrics.csv")

#: A stand-in model for --model, through segqc's hook: it labels the bright disks of
#: write_qc's source images, so it predicts each image perfectly and needs no TensorFlow.
THRESHOLDING_MODEL = """
import numpy as np
from scipy import ndimage
from segqc.predict import PredictionResult

class Thresholding:
    needs_source_image = True

    def predict(self, pair, image):
        {on_predict}
        labels, _ = ndimage.label(np.asarray(image) > 300)
        return PredictionResult(labels=labels.astype(np.int32))

    def describe(self):
        return {{"kind": "thresholding stand-in"}}

def pytest_segqc_make_predictor(config, model_dir):
    return Thresholding()
"""


def model_conftest(pytester: pytest.Pytester, on_predict: str = "pass") -> Path:
    pytester.makeconftest(THRESHOLDING_MODEL.format(on_predict=on_predict))
    model = pytester.mkdir("model")
    return model


def model_args(model: Path, qc) -> tuple[str, ...]:
    return (*QC, f"--model={model}", f"--qc-source={qc.source}", f"--qc-target={qc.target}")


def snapshot(folder: Path) -> dict[str, bytes]:
    return {name: (folder / name).read_bytes() for name in OUTPUTS}


def test_runs_that_evaluate_no_image_leave_a_finished_runs_outputs(pytester):
    qc = write_qc(pytester.path / "qc", 3, dropped=(0, 4, 0))
    args = (*QC, f"--predictions={qc.predictions}", f"--qc-target={qc.target}")
    assert pytester.runpytest(*args).ret == pytest.ExitCode.OK
    out = pytester.path / "qc-output"
    before = snapshot(out)
    collected = pytester.runpytest(*args, "--collect-only")
    assert collected.ret == pytest.ExitCode.OK
    assert snapshot(out) == before
    none = pytester.runpytest(*args, "-k", "no_such_test")
    assert none.ret == pytest.ExitCode.NO_TESTS_COLLECTED
    assert snapshot(out) == before


def test_predictions_hold_only_this_runs_images(pytester):
    model = model_conftest(pytester)
    ten = write_qc(pytester.path / "ten", 10)
    assert pytester.runpytest(*model_args(model, ten)).ret == pytest.ExitCode.OK
    predictions = pytester.path / "qc-output" / "predictions"
    assert len(list(predictions.iterdir())) == 10
    two = write_qc(pytester.path / "two", 2)
    assert pytester.runpytest(*model_args(model, two)).ret == pytest.ExitCode.OK
    assert sorted(p.name for p in predictions.iterdir()) == ["img00.tif", "img01.tif"]
    summary = json.loads((pytester.path / "qc-output" / "summary.json").read_text())
    assert [Path(i["prediction_file"]).name for i in summary["images"]] == sorted(
        p.name for p in predictions.iterdir()
    )


def run_in_background(cwd: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": checkout_pythonpath()},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def wait_for(path: Path, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 120
    while not path.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"the first run did not get going:\n{process.communicate()[0]}")
        time.sleep(0.1)


def test_a_second_run_on_a_folder_in_use_stops_at_once(pytester):
    model = model_conftest(
        pytester,
        on_predict=(
            "import pathlib, time\n"
            "        pathlib.Path('started').touch()\n"
            "        while not pathlib.Path('go').exists(): time.sleep(0.05)"
        ),
    )
    qc = write_qc(pytester.path / "qc", 2)
    first = run_in_background(pytester.path, *model_args(model, qc))
    try:
        wait_for(pytester.path / "started", first)
        second = pytester.runpytest(*QC, f"--predictions={qc.predictions}",
                                    f"--qc-target={qc.target}")  # fmt: skip
        assert second.ret == pytest.ExitCode.USAGE_ERROR
        second.stderr.fnmatch_lines(
            [f"ERROR: segqc: {pytester.path / 'qc-output'}: output folder is in use by another "
             f"segqc run (pid {first.pid} on *, started *); wait for it to finish, or choose "
             "another --qc-output"]
        )  # fmt: skip
    finally:
        (pytester.path / "go").touch()
        output, _ = first.communicate(timeout=300)
    assert first.returncode == 0, output
    summary = json.loads((pytester.path / "qc-output" / "summary.json").read_text())
    assert summary["status"] == "passed" and len(summary["images"]) == 2


def test_sigterm_ends_the_run_as_an_interruption_with_its_outputs(pytester):
    model = model_conftest(
        pytester,
        on_predict=(
            "import os, signal\n"
            "        if pair.name == 'img02.tif': os.kill(os.getpid(), signal.SIGTERM)"
        ),
    )
    qc = write_qc(pytester.path / "qc", 4)
    run = run_in_background(pytester.path, *model_args(model, qc))
    output, _ = run.communicate(timeout=300)
    assert run.returncode == pytest.ExitCode.INTERRUPTED, output
    out = pytester.path / "qc-output"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "interrupted" and summary["complete"] is False
    assert [i["name"] for i in summary["images"]] == ["img00.tif", "img01.tif"]
    rows = (out / "metrics.csv").read_text().splitlines()
    assert [row.split(",")[0] for row in rows[1:]] == ["img00.tif", "img01.tif"]
    assert 'data-status="interrupted"' in (out / "report.html").read_text(encoding="utf-8")
    assert not [p.name for p in out.iterdir() if p.name.startswith(".segqc-tmp")]


@pytest.mark.parametrize("role", ["source", "target", "predictions"])
def test_an_output_folder_inside_an_input_folder_is_refused(pytester, role):
    qc = write_qc(pytester.path / "qc", 1)
    inside = getattr(qc, role) / "out"
    args = [*QC, f"--qc-target={qc.target}", f"--qc-output={inside}"]
    args += [f"--predictions={qc.predictions}", f"--qc-source={qc.source}"]
    result = pytester.runpytest(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [f"ERROR: segqc: --qc-output {inside} is inside the --*{getattr(qc, role)}; segqc "
         "would write among your inputs — choose an output folder outside it"]
    )  # fmt: skip
    assert not inside.exists()


def test_image_tests_that_passed_without_their_results_reaching_the_outputs_fail(
    pytester, worker_path
):
    """Whatever loses them (here a plugin that drops what workers send), passed image
    tests with no outcome in metrics.csv are an error, never a green gate."""
    pytester.makeconftest(
        "import pytest\n"
        "@pytest.hookimpl(tryfirst=True)\n"
        "def pytest_runtest_logreport(report):\n"
        "    for name in ('segqc_findings', 'segqc_outcomes'):\n"
        "        if hasattr(report, name):\n"
        "            delattr(report, name)\n"
    )
    qc = write_qc(pytester.path / "qc", 3)
    result = pytester.runpytest(
        *QC, "-n", "1", f"--predictions={qc.predictions}", f"--qc-target={qc.target}"
    )
    output = result.stdout.str() + result.stderr.str()
    assert result.ret == pytest.ExitCode.TESTS_FAILED, output
    assert "3 image test(s) passed but their results never reached" in output
    assert "0 of 3 QC images reached the outputs" in output
