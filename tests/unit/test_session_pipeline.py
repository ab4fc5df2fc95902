"""With a model, QcRun measures each image on a second thread while the next is predicted.

The stand-in model (``needs_source_image`` like StarDist) returns ``make_qc``'s
predictions, so by hand image i has tp = 10 - dropped[i], fn = dropped[i], fp = 0.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
import tifffile

import segqc.pipeline.evaluate
from segqc.checks.loss.convergence import LossCurveSettings
from segqc.checks.loss.plugin import LossCurveRun
from segqc.data.pairing import QcPair
from segqc.predict.stardist import PredictionResult
from segqc.pipeline.evaluate import QcRun
from segqc.thresholds import bundled_thresholds_path, load_thresholds


class ModelStandIn:
    """Predicts from the source image like a model; logs which thread did what."""

    needs_source_image = True

    def __init__(self, folder: Path, log: list[str], *, interrupt_at: str | None = None):
        self.folder, self.log, self.interrupt_at = folder, log, interrupt_at

    def predict(self, pair: QcPair, image: np.ndarray | None) -> PredictionResult:
        assert image is not None
        self.log.append(f"predict {pair.name} on {threading.current_thread().name}")
        if pair.name == self.interrupt_at:
            raise KeyboardInterrupt
        labels = tifffile.imread(self.folder / pair.name)
        if pair.name == "img02.tif":  # a broken prediction: the wrong shape
            labels = labels[:10]
        return PredictionResult(labels=labels, n_tiles=(1, 1))

    def describe(self) -> dict:
        return {"kind": "model stand-in"}


def qc_run(qc, predictor, output: Path) -> QcRun:
    pairs = tuple(QcPair(p.name, qc.source / p.name, p) for p in sorted(qc.target.iterdir()))
    return QcRun(
        pairs=pairs,
        thresholds=load_thresholds(bundled_thresholds_path(), is_bundled_default=True),
        predictor=predictor,
        output_dir=output,
    )


@pytest.fixture
def measured_on(monkeypatch):
    """The thread each image's metrics were computed on."""
    threads: list[str] = []
    original = segqc.pipeline.evaluate.measure

    def measure(*args, **kwargs):
        threads.append(threading.current_thread().name)
        return original(*args, **kwargs)

    monkeypatch.setattr(segqc.pipeline.evaluate, "measure", measure)
    return threads


def test_pipelined_run_equals_one_image_at_a_time(make_qc, tmp_path, measured_on):
    dropped = (0, 3, 0, 1, 2)
    qc = make_qc(len(dropped), dropped=dropped)
    log: list[str] = []
    reported = []
    pipelined = qc_run(qc, ModelStandIn(qc.predictions, log), tmp_path / "a")
    pipelined.evaluate_all(on_image=lambda o, done, total: reported.append((o.pair.name, done)))

    assert set(measured_on) == {"segqc-measure_0"}  # 4 images; img02 failed before
    assert all(entry.endswith("on MainThread") for entry in log)
    names = [f"img{i:02d}.tif" for i in range(len(dropped))]
    assert reported == [(name, i + 1) for i, name in enumerate(names)]

    sequential = qc_run(qc, ModelStandIn(qc.predictions, []), tmp_path / "b")
    for pair in sequential.pairs:
        sequential.evaluate(pair)
    for one, other in zip(pipelined.outcomes, sequential.outcomes, strict=True):
        assert (one.pair.name, one.scores, one.error) == (
            other.pair.name,
            other.scores,
            other.error,
        )
        assert one.verdicts == other.verdicts and one.curve == other.curve
    by_name = {o.pair.name: o for o in pipelined.outcomes}
    assert "img02.tif: prediction shape (10, 128)" in by_name["img02.tif"].error
    assert [by_name[n].scores.matching.fn for n in names if n != "img02.tif"] == [0, 3, 1, 2]
    assert (tmp_path / "a" / "predictions" / "img04.tif").is_file()


def test_ctrl_c_while_predicting_keeps_the_images_already_predicted(make_qc, tmp_path):
    qc = make_qc(4, dropped=(1, 2, 0, 0))
    run = qc_run(qc, ModelStandIn(qc.predictions, [], interrupt_at="img02.tif"), tmp_path)
    with pytest.raises(KeyboardInterrupt):
        run.evaluate_all()
    # img01 was being measured when img02's prediction was interrupted: it is kept
    assert [(o.pair.name, o.scores.matching.fn) for o in run.outcomes] == [
        ("img00.tif", 1),
        ("img01.tif", 2),
    ]


def test_background_work_runs_beside_the_predictions(make_qc, tmp_path):
    qc = make_qc(3)
    log: list[str] = []
    run = qc_run(qc, ModelStandIn(qc.predictions, log), tmp_path)

    def job():
        log.append(f"job on {threading.current_thread().name}")

    run.evaluate_all(background=[job])
    job_at = log.index("job on segqc-measure_0")
    assert log[job_at - 1] == "predict img00.tif on MainThread"  # once the model has loaded


def test_without_a_model_background_work_is_left_to_the_caller(make_qc, tmp_path):
    from segqc.predict.stardist import PredictionsFolder

    qc = make_qc(3)
    files = {p.name: p for p in qc.predictions.iterdir()}
    ran = []
    run = qc_run(qc, PredictionsFolder(qc.predictions, files), tmp_path)
    run.evaluate_all(background=[lambda: ran.append(1)])
    assert ran == [] and len(run.outcomes) == 3


def test_loss_figure_is_drawn_once_whoever_asks(tmp_path, monkeypatch):
    import segqc.checks.loss.figure

    history = tmp_path / "model" / "Quality Control" / "training_evaluation.csv"
    history.parent.mkdir(parents=True)
    history.write_text(
        "loss,val_loss,learning rate\n"
        + "".join(f"{1 / (e + 1):.4f},{1.2 / (e + 1):.4f},0.0003\n" for e in range(30))
    )
    drawn = []
    original = segqc.checks.loss.figure.plot_loss_curves

    def counting(*args, **kwargs):
        drawn.append(threading.current_thread().name)
        return original(*args, **kwargs)

    monkeypatch.setattr(segqc.checks.loss.figure, "plot_loss_curves", counting)
    run = LossCurveRun(
        LossCurveSettings(), output_dir=tmp_path / "out", model_dir=history.parents[1]
    )
    run.draw_figure()
    assert drawn == []  # the history was not read yet: nothing to draw
    assert run.verdicts["finite"].outcome == "pass"
    assert drawn == []  # reading it and checking it does not draw
    worker = threading.Thread(target=run.draw_figure, name="drawer")
    worker.start()
    worker.join()
    run.draw_figure()
    record = run.summary()
    assert drawn == ["drawer"]
    assert record["figure"] == str(tmp_path / "out" / "loss_curve.png")
    assert (tmp_path / "out" / "loss_curve.png").read_bytes()[:4] == b"\x89PNG"


def test_a_loss_figure_that_cannot_be_drawn_is_an_error_in_the_summary(tmp_path, monkeypatch):
    import segqc.checks.loss.figure

    history = tmp_path / "model" / "Quality Control" / "training_evaluation.csv"
    history.parent.mkdir(parents=True)
    history.write_text("loss,val_loss\n1.0,1.1\n0.5,0.6\n0.4,0.5\n")

    def broken(*args, **kwargs):
        raise ValueError("no renderer")

    monkeypatch.setattr(segqc.checks.loss.figure, "plot_loss_curves", broken)
    run = LossCurveRun(
        LossCurveSettings(), output_dir=tmp_path / "out", model_dir=history.parents[1]
    )
    record = run.summary()
    assert record["figure"] is None
    assert record["figure_error"].endswith("could not be drawn (ValueError: no renderer)")


def test_a_bug_while_measuring_surfaces_and_keeps_earlier_images(make_qc, tmp_path, monkeypatch):
    qc = make_qc(4)
    original = segqc.pipeline.evaluate.measure

    def buggy(target, predicted, **kwargs):
        if buggy.calls == 1:  # the second image measured
            buggy.calls += 1
            raise RuntimeError("a bug in segqc")
        buggy.calls += 1
        return original(target, predicted, **kwargs)

    buggy.calls = 0
    monkeypatch.setattr(segqc.pipeline.evaluate, "measure", buggy)
    run = qc_run(qc, ModelStandIn(qc.predictions, []), tmp_path)
    with pytest.raises(RuntimeError, match="a bug in segqc"):
        run.evaluate_all()
    assert [o.pair.name for o in run.outcomes] == ["img00.tif"]
