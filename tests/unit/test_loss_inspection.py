"""A session's loss-curve inspection: the history found once, checked, drawn once.

The figure itself is tested in test_loss_history.py; here drawing is replaced by a
stand-in that records its calls, so these tests need no matplotlib.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import segqc.checks.loss.figure
from segqc.checks.loss.inspection import FIGURE_NAME, LossInspection
from segqc.data.writing import OutputError
from segqc.thresholds.loss import LossCurveSettings
from tests.unit.loss_logs import write_csv

EPOCHS = 30
LOSS = [1 / (e + 1) for e in range(EPOCHS)]
VAL = [1.2 / (e + 1) for e in range(EPOCHS)]


def model_with_history(tmp_path: Path) -> Path:
    model = tmp_path / "model"
    write_csv(
        model / "Quality Control" / "training_evaluation.csv", {"loss": LOSS, "val_loss": VAL}
    )
    return model


@pytest.fixture
def drawn(monkeypatch) -> list[Path]:
    """Where the figure was drawn, once per call (a stand-in writes a stub PNG)."""
    calls: list[Path] = []

    def draw(history, path: Path) -> Path:
        calls.append(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"\x89PNG stand-in")
        return path

    monkeypatch.setattr(segqc.checks.loss.figure, "plot_loss_curves", draw)
    return calls


def test_history_is_checked_without_drawing_and_drawn_once(tmp_path, drawn):
    out = tmp_path / "out"
    inspection = LossInspection(
        LossCurveSettings(), output_dir=out, model_dir=model_with_history(tmp_path)
    )
    # 1/(e+1) falls 20% over the last 10 epochs: still improving; val/loss = 1.2 everywhere
    assert {name: v.outcome for name, v in inspection.verdicts.items()} == {
        "finite": "pass",
        "learning": "pass",
        "converged": "warn",
        "overfitting": "pass",
        "generalisation_gap": "pass",
    }
    assert drawn == []  # checking the history does not draw it
    inspection.draw_figure()
    inspection.draw_figure()
    assert drawn == [out / FIGURE_NAME]
    record = inspection.summary()
    assert record["status"] == "found" and record["n_epochs"] == EPOCHS
    assert record["final_val_loss"] == pytest.approx(1.2 / EPOCHS)
    assert record["figure"] == str(out / FIGURE_NAME) and record["figure_error"] is None
    assert [c["check"] for c in record["checks"]] == list(inspection.verdicts)


def test_a_figure_that_cannot_be_drawn_is_an_error_in_the_summary(tmp_path, monkeypatch):
    def broken(history, path):
        raise ValueError("no renderer")

    monkeypatch.setattr(segqc.checks.loss.figure, "plot_loss_curves", broken)
    out = tmp_path / "out"
    inspection = LossInspection(
        LossCurveSettings(), output_dir=out, model_dir=model_with_history(tmp_path)
    )
    inspection.draw_figure()
    record = inspection.summary()
    assert record["figure"] is None
    assert record["figure_error"] == (
        f"{out / FIGURE_NAME}: the loss figure could not be drawn (ValueError: no renderer)"
    )
    assert record["checks"][0]["outcome"] == "pass"  # the verdicts do not depend on it


def test_a_figure_that_cannot_be_written_keeps_the_writers_message(tmp_path, monkeypatch):
    def unwritable(history, path):
        raise OutputError(f"{path}: permission denied; choose another --qc-output")

    monkeypatch.setattr(segqc.checks.loss.figure, "plot_loss_curves", unwritable)
    out = tmp_path / "out"
    inspection = LossInspection(
        LossCurveSettings(), output_dir=out, model_dir=model_with_history(tmp_path)
    )
    inspection.draw_figure()
    assert inspection.summary()["figure_error"] == (
        f"{out / FIGURE_NAME}: permission denied; choose another --qc-output"
    )


def test_training_log_is_read_instead_of_the_model_folder(tmp_path, drawn):
    log = write_csv(tmp_path / "log.csv", {"loss": [1.0, 0.5, 0.4]})
    inspection = LossInspection(
        LossCurveSettings(), output_dir=tmp_path / "out", model_dir=model_with_history(tmp_path),
        training_log=log,
    )  # fmt: skip
    record = inspection.summary()
    assert record["source"] == str(log) and record["n_epochs"] == 3
    assert record["has_val_loss"] is False and record["looked"] == [str(log)]


def test_a_model_without_history_says_where_it_looked_and_draws_nothing(tmp_path, drawn):
    model = tmp_path / "model"
    model.mkdir()
    inspection = LossInspection(LossCurveSettings(), output_dir=tmp_path / "out", model_dir=model)
    assert inspection.verdicts == {}
    inspection.draw_figure()
    assert drawn == []
    record = inspection.summary()
    assert record["status"] == "missing" and record["error"] is None
    assert record["looked"] == [
        str(model / "Quality Control" / "training_evaluation.csv"),
        f"TensorBoard event files in {model / 'logs' / 'train'}",
    ]
    assert "which is not a failure" in inspection.missing_reason()
    assert "loss_curve.required: true" in inspection.missing_reason()


def test_predictions_mode_asks_for_a_training_log(tmp_path):
    inspection = LossInspection(LossCurveSettings(), output_dir=tmp_path / "out")
    assert inspection.history is None and inspection.summary()["looked"] == []
    assert inspection.missing_reason().startswith(
        "loss curve: --predictions mode has no model folder to read a training history from"
    )


def test_a_broken_history_is_an_error_naming_the_file(tmp_path):
    model = tmp_path / "model"
    csv = model / "Quality Control" / "training_evaluation.csv"
    csv.parent.mkdir(parents=True)
    csv.write_text("loss,val_loss\n1.0,0.9\n0.8,abc\n", encoding="utf-8")
    inspection = LossInspection(LossCurveSettings(), output_dir=tmp_path / "out", model_dir=model)
    record = inspection.summary()
    assert record["status"] == "error"
    assert record["error"].startswith(str(csv)) and "not a number: 'abc'" in record["error"]
    assert inspection.missing_reason() == record["error"]
