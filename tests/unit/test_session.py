"""QcSession: each image evaluated once, on demand, and what a model predicts kept on disk.

The session is built directly (open_session needs a pytest config; the plugin's tests in
tests/integration cover it). The stand-in model returns ``make_qc``'s predictions, so
by hand image i has tp = 10 - dropped[i], fn = dropped[i], fp = 0.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile

from segqc.data.pairing import QcPair
from segqc.outputs.folder import OutputFolder
from segqc.predict import PredictionResult
from segqc.session import QcSession
from segqc.settings import Settings
from segqc.thresholds import bundled_thresholds_path, load_thresholds


class ModelStandIn:
    """Predicts from the source image like a model; counts its predictions."""

    needs_source_image = True

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.predicted: list[str] = []

    def predict(self, pair: QcPair, image: np.ndarray | None) -> PredictionResult:
        assert image is not None
        self.predicted.append(pair.name)
        labels = tifffile.imread(self.folder / pair.name)
        if pair.name == "img02.tif":  # a broken prediction: the wrong shape
            labels = labels[:10]
        return PredictionResult(labels=labels.astype(np.int32), n_tiles=(1, 1))

    def describe(self) -> dict:
        return {"kind": "model stand-in"}


@pytest.fixture
def session(make_qc, tmp_path):
    qc = make_qc(4, dropped=(0, 3, 0, 2), root=tmp_path / "qc")
    pairs = tuple(QcPair(p.name, qc.source / p.name, p) for p in sorted(qc.target.iterdir()))
    output = OutputFolder(tmp_path / "out")
    session = QcSession(
        settings=Settings(output=tmp_path / "out"),
        loaded=load_thresholds(bundled_thresholds_path(), is_bundled_default=True),
        pairs=pairs,
        ignored=(),
        predictor=ModelStandIn(qc.predictions),
        model_folder=None,
        baseline=None,
        robustness=None,
        role="single",
        output=output,
    )
    yield session
    session.close()


def test_every_image_is_evaluated_once_in_qc_order(session):
    reported = []
    first = session.outcome(session.pairs[1])  # a per-image test may ask first
    outcomes = session.evaluate_all(lambda o, done, total: reported.append((o.pair.name, done)))
    assert reported == [("img00.tif", 2), ("img02.tif", 3), ("img03.tif", 4)]
    assert session.predictor.predicted == ["img01.tif", "img00.tif", "img02.tif", "img03.tif"]
    assert [o.pair.name for o in outcomes] == ["img00.tif", "img01.tif", "img02.tif", "img03.tif"]
    assert session.outcome(session.pairs[1]) is first and session.complete
    assert [o.scores.matching.fn if o.scores else None for o in outcomes] == [0, 3, None, 2]
    assert outcomes[2].error == (
        "img02.tif: prediction shape (10, 128) and ground truth shape (64, 128) differ"
    )
    assert session.predictor.predicted.count("img01.tif") == 1


def test_predictions_are_written_to_the_output_folder(session, tmp_path):
    outcomes = session.evaluate_all()
    folder = tmp_path / "out" / "predictions"
    assert sorted(p.name for p in folder.iterdir()) == ["img00.tif", "img01.tif", "img03.tif"]
    assert outcomes[1].prediction_file == folder / "img01.tif"
    np.testing.assert_array_equal(
        tifffile.imread(folder / "img01.tif"),
        tifffile.imread(tmp_path / "qc/predictions/img01.tif"),
    )


def test_dataset_and_accuracy_pool_the_evaluated_images(session):
    session.evaluate_all()
    dataset = session.dataset()
    # img02 failed: 3 images, 30 objects, 5 dropped
    assert dataset.n_images == 3
    assert (dataset.pooled.matching.tp, dataset.pooled.matching.fn) == (25, 5)
    assert dataset.mean["recall"] == pytest.approx((1 + 0.7 + 0.8) / 3)
    curve = session.accuracy()
    assert curve.images == ("img00.tif", "img01.tif", "img03.tif")
    assert {s.tp for s in curve.pooled} == {25}  # every kept disk is exact
