"""The loss-curve QC tests as a user runs them (no TensorFlow: --predictions mode, or a
--model folder whose images are never predicted because only the loss tests are run).

A run of the loss tests alone evaluates no image, so it writes no output (summary.json,
metrics.csv, report.html, loss_curve.png): a finished run's outputs stay as they were.
Its verdicts reach CI through the exit code, the terminal and the JUnit XML.
"""

import json
import shutil
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from tests.helpers import DEMO2D, assert_no_traceback
from tests.unit.loss_logs import write_csv, write_events

LOSS_TESTS = ("--pyargs", "segqc.qc_tests.test_loss_curve")
CSV = ("Quality Control", "training_evaluation.csv")


def overfitting_columns():
    """val_loss falls to 0.5 at epoch 20, stays there to 24, rises 20% to 0.6 by epoch 34."""
    epochs = np.arange(1, 41)
    val = np.interp(epochs, [1, 20, 24, 34, 40], [1.0, 0.5, 0.5, 0.6, 0.6])
    return {"loss": 1.0 - 0.01 * epochs, "val_loss": val, "learning rate": np.full(40, 1e-3)}


def run_predictions(pytester, make_qc, *args):
    qc = make_qc(1, root=pytester.path / "qc")
    return pytester.runpytest(
        *LOSS_TESTS, f"--predictions={qc.predictions}", f"--qc-target={qc.target}",
        "-rs", *args,
    )  # fmt: skip


def fake_model(folder):
    """A model folder segqc accepts at configure time; its weights are never loaded here.

    The weights file is no real HDF5 file: it could not be loaded, and the loss tests
    alone predict no image ("0 of 1 QC images evaluated"), so they never try.
    """
    folder.mkdir(parents=True)
    (folder / "config.json").write_text('{"n_dim": 2, "n_channel_in": 1}')
    # an HDF5 signature passes the configure-time check; the weights are never loaded
    (folder / "weights_best.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(504))
    return folder


def run_model(pytester, make_qc, model, *args):
    qc = make_qc(1, root=pytester.path / "qc")
    return pytester.runpytest(
        *LOSS_TESTS, f"--model={model}", f"--qc-source={qc.source}",
        f"--qc-target={qc.target}", "-rs", *args,
    )  # fmt: skip


def junit_properties(path):
    """``{test name: {property: value}}`` from a JUnit XML file."""
    return {
        case.get("name"): {p.get("name"): p.get("value") for p in case.iter("property")}
        for case in ET.parse(path).iter("testcase")
    }


def output_files(output):
    """The files under the output folder, relative to it, with their bytes."""
    if not output.is_dir():
        return {}
    return {
        str(path.relative_to(output)): path.read_bytes()
        for path in sorted(output.rglob("*"))
        if path.is_file()
    }


def test_overfitting_history_fails_with_diagnosis_and_action(pytester, make_qc):
    log = write_csv(pytester.path / "history.csv", overfitting_columns())
    junit = pytester.path / "junit.xml"
    result = run_predictions(
        pytester, make_qc, f"--training-log={log}", "-v", f"--junitxml={junit}"
    )
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    # converged warns: smoothed val_loss rose 0.54 -> 0.6 (11%) over the last 10 epochs
    result.assert_outcomes(passed=4, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*::test_finite PASSED*",
            "*::test_overfitting FAILED*",
            "*overfitting: val_loss rose 20% above its minimum (epoch 20) while loss fell 24%;"
            " use the epoch-20 weights (weights_best.h5), add training data, or augment*",
        ]
    )
    assert_no_traceback(result)

    cases = junit_properties(junit)
    properties = cases["test_overfitting"]
    assert properties["outcome"] == "fail"
    assert cases["test_converged"]["outcome"] == "warn"  # a SegQcWarning, not a failure
    assert properties["best_epoch"] == "20"
    assert float(properties["rise"]) == pytest.approx(0.2)


def test_summary_json_records_the_loss_curve(pytester, make_qc):
    log = write_csv(pytester.path / "history.csv", overfitting_columns())
    qc = make_qc(1, root=pytester.path / "qc")
    result = pytester.runpytest(
        "--pyargs", "segqc.qc_tests", f"--predictions={qc.predictions}",
        f"--qc-target={qc.target}", f"--training-log={log}",
    )  # fmt: skip
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    output = pytester.path / "qc-output"
    summary = json.loads((output / "summary.json").read_text())
    loss = summary["loss_curve"]
    assert (loss["status"], loss["format"], loss["n_epochs"]) == ("found", "csv", 40)
    assert loss["source"] == str(log)
    assert loss["figure"] == str(output / "loss_curve.png")
    assert (output / "loss_curve.png").read_bytes()[:4] == b"\x89PNG"
    checks = {c["check"]: c for c in loss["checks"]}
    assert list(checks) == ["finite", "learning", "converged", "overfitting", "generalisation_gap"]
    assert checks["overfitting"]["outcome"] == "fail"
    assert checks["overfitting"]["key"] == "loss_curve.overfitting"
    assert checks["overfitting"]["values"]["best_epoch"] == 20
    assert checks["converged"]["outcome"] == "warn"
    result.stdout.fnmatch_lines(["*FAIL loss_curve::overfitting: val_loss rose 20%*"])


def test_loss_only_run_leaves_a_finished_runs_outputs_as_they_were(pytester, make_qc):
    """A full run writes the outputs; the loss tests run alone afterwards on another
    history judge that history, but change none of the files the full run wrote."""
    overfitting = write_csv(pytester.path / "overfitting.csv", overfitting_columns())
    columns = overfitting_columns()
    columns["val_loss"] = columns["loss"] + 0.1  # falls with the training loss
    healthy = write_csv(pytester.path / "healthy.csv", columns)
    qc = make_qc(1, root=pytester.path / "qc")
    options = (f"--predictions={qc.predictions}", f"--qc-target={qc.target}")
    full = pytester.runpytest(
        "--pyargs", "segqc.qc_tests", *options, f"--training-log={overfitting}"
    )
    assert full.ret == pytest.ExitCode.TESTS_FAILED
    output = pytester.path / "qc-output"
    before = output_files(output)
    assert {"summary.json", "metrics.csv", "report.html", "loss_curve.png"} <= set(before)

    junit = pytester.path / "junit.xml"
    result = pytester.runpytest(*LOSS_TESTS, *options, f"--training-log={healthy}",
                                f"--junitxml={junit}")  # fmt: skip
    assert result.ret == pytest.ExitCode.OK
    result.assert_outcomes(passed=5)
    outcomes = {name: p["outcome"] for name, p in junit_properties(junit).items()}
    assert len(outcomes) == 5 and "fail" not in outcomes.values()
    assert outcomes["test_overfitting"] == "pass"  # this history, not the full run's
    result.stdout.fnmatch_lines(
        [f"0 of 1 QC images evaluated (no image test ran); {output} left as it was"]
    )
    assert output_files(output) == before
    assert json.loads(before["summary.json"])["loss_curve"]["source"] == str(overfitting)


@pytest.mark.parametrize("overfits", [False, True])
def test_loss_only_run_judges_the_history_without_images(pytester, make_qc, overfits):
    """Only the loss tests run (their module): no image is predicted (the model's weights
    are never loaded) and no output is written, yet the loss verdicts reach CI through
    the exit code, the terminal and the JUnit XML."""
    model = fake_model(pytester.path / "model")
    columns = overfitting_columns()
    if not overfits:
        columns["val_loss"] = columns["loss"] + 0.1  # falls with the training loss
    write_csv(model.joinpath(*CSV), columns)
    junit = pytester.path / "junit.xml"
    result = run_model(pytester, make_qc, model, f"--junitxml={junit}")
    assert_no_traceback(result)
    outcomes = {name: p["outcome"] for name, p in junit_properties(junit).items()}
    assert len(outcomes) == 5
    output = pytester.path / "qc-output"
    if overfits:
        assert result.ret == pytest.ExitCode.TESTS_FAILED
        result.assert_outcomes(passed=4, failed=1)
        assert outcomes["test_overfitting"] == "fail"
        result.stdout.fnmatch_lines(["*overfitting: val_loss rose 20% above its minimum*"])
    else:
        assert result.ret == pytest.ExitCode.OK
        result.assert_outcomes(passed=5)
        assert "fail" not in outcomes.values()
    result.stdout.fnmatch_lines(
        [f"0 of 1 QC images evaluated (no image test ran); {output} left as it was"]
    )
    for name in ("summary.json", "metrics.csv", "report.html", "loss_curve.png"):
        assert not (output / name).exists(), name


def test_a_run_that_runs_no_qc_test_writes_no_summary(pytester, make_qc):
    model = fake_model(pytester.path / "model")
    write_csv(model.joinpath(*CSV), overfitting_columns())
    run_model(pytester, make_qc, model, "--collect-only")
    run_model(pytester, make_qc, model, "-k", "no_such_test")
    assert not (pytester.path / "qc-output" / "summary.json").exists()


def test_nan_history_fails_finite(pytester, make_qc):
    columns = overfitting_columns()
    columns["loss"][29:] = np.nan
    log = write_csv(pytester.path / "history.csv", columns)
    result = run_predictions(pytester, make_qc, f"--training-log={log}")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(failed=1, skipped=4)
    result.stdout.fnmatch_lines(
        ["*finite: loss is NaN from epoch 30 (11 of 40 epochs not finite)*"]
    )


def test_model_folder_without_history_skips_saying_where_it_looked(pytester, make_qc):
    model = fake_model(pytester.path / "pretrained")
    result = run_model(pytester, make_qc, model)
    assert result.ret == pytest.ExitCode.OK
    result.assert_outcomes(skipped=5)
    result.stdout.fnmatch_lines(
        [f"*no training history found (looked for {model / 'Quality Control'}*"
         f"and TensorBoard event files in {model / 'logs' / 'train'})*not a failure*"]
    )  # fmt: skip
    assert not (pytester.path / "qc-output" / "loss_curve.png").exists()


def test_required_history_fails_when_missing(pytester, make_qc, thresholds_file):
    model = fake_model(pytester.path / "pretrained")
    limits = thresholds_file("loss_curve:\n  required: true\n")
    result = run_model(pytester, make_qc, model, f"--thresholds={limits}")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(failed=5)
    result.stdout.fnmatch_lines(["*no training history found*(*loss_curve.required: true)"])


def test_model_folder_tensorboard_logs_are_read(pytester, make_qc):
    model = fake_model(pytester.path / "model")
    columns = overfitting_columns()
    write_events(model / "logs" / "train", {"epoch_loss": columns["loss"]})
    write_events(model / "logs" / "validation", {"epoch_loss": columns["val_loss"]})
    result = run_model(pytester, make_qc, model, "-k", "overfitting")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*val_loss rose 20% above its minimum (epoch 20)*"])


def test_predictions_mode_skips_without_training_log(pytester, make_qc):
    result = run_predictions(pytester, make_qc)
    assert result.ret == pytest.ExitCode.OK
    result.assert_outcomes(skipped=5)
    result.stdout.fnmatch_lines(["*--predictions mode has no model folder*--training-log PATH*"])


def test_unreadable_history_fails_naming_the_file(pytester, make_qc):
    log = pytester.path / "history.csv"
    log.write_text("epoch,lr\n0,0.001\n")
    result = run_predictions(pytester, make_qc, f"--training-log={log}")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(failed=5)
    result.stdout.fnmatch_lines([f"*{log}: no 'loss' column (columns: epoch, lr)*"])
    assert_no_traceback(result)


def test_missing_training_log_is_a_usage_error(pytester, make_qc):
    result = run_predictions(pytester, make_qc, "--training-log", "nowhere.csv")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--training-log */nowhere.csv: no such file or folder*"])
    assert_no_traceback(result)


@pytest.mark.skipif(not DEMO2D.is_dir(), reason="demo fixtures not generated yet")
def test_demo_model_history_from_csv_then_from_tensorboard(pytester, make_qc):
    model = pytester.path / "demo2d"
    shutil.copytree(DEMO2D, model)
    assert model.joinpath(*CSV).is_file() and (model / "logs" / "train").is_dir()
    junit = pytester.path / "junit.xml"
    from_csv = run_model(pytester, make_qc, model, "-v", f"--junitxml={junit}")
    csv_properties = junit_properties(junit)
    model.joinpath(*CSV).unlink()
    from_logs = run_model(pytester, make_qc, model, "-v", f"--junitxml={junit}")
    logs_properties = junit_properties(junit)
    for result in (from_csv, from_logs):
        # a well-trained demo: finite, learned, no overfitting, a modest gap; 'converged'
        # passes or only warns
        result.assert_outcomes(passed=5)
        assert_no_traceback(result)
    assert csv_properties["test_overfitting"]["history"] == str(model.joinpath(*CSV))
    assert logs_properties["test_overfitting"]["history"] == str(model / "logs")
    # the CSV and the event files hold the same per-epoch numbers, so the same verdicts
    for test, properties in csv_properties.items():
        assert logs_properties[test]["outcome"] == properties["outcome"]
        for key in ("drop", "rise", "ratio", "best_epoch"):
            if key in properties:
                assert float(logs_properties[test][key]) == pytest.approx(float(properties[key]))


def test_bad_loss_curve_section_is_a_usage_error(pytester, make_qc, thresholds_file):
    limits = thresholds_file("loss_curve:\n  learning: {min_drop: 2}\n")
    result = run_predictions(pytester, make_qc, f"--thresholds={limits}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*loss_curve.learning.min_drop: Input should be less than*"])
    assert_no_traceback(result)
