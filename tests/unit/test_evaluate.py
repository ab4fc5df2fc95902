"""evaluate_image: one QC image read, predicted (or read from a folder) and measured.

QC data from ``make_qc``: every image has 10 equal, disjoint disks, and the prediction
of image i drops ``dropped[i]`` of them, so by hand image i has tp = 10 - d, fn = d,
fp = 0, precision = 1, recall = (10 - d) / 10, f1 = 2 tp / (2 tp + d), and (equal
areas) pixel IoU = (10 - d) / 10. Kept disks are predicted exactly: every matched IoU
is 1, so tp is the same at every threshold of the accuracy curve.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile

from segqc.checks.accuracy import IOU_GRID
from segqc.data.pairing import QcPair
from segqc.pipeline.evaluate import EvaluationSettings, MeasuredImage, evaluate_image
from segqc.predict import PredictionResult
from segqc.predict.folder import PredictionsFolder
from tests.helpers import QcFolders

SETTINGS = EvaluationSettings(iou_threshold=0.5, curve_thresholds=IOU_GRID)


def pairs_of(qc: QcFolders, *, with_source: bool = True) -> list[QcPair]:
    return [
        QcPair(p.name, qc.source / p.name if with_source else None, p)
        for p in sorted(qc.target.iterdir())
    ]


def folder_of(qc: QcFolders) -> PredictionsFolder:
    return PredictionsFolder(qc.predictions, {p.name: p for p in qc.predictions.iterdir()})


class ModelStandIn:
    """Predicts from the source image like a model: returns make_qc's prediction files.

    ``fail_with`` is raised for the image named ``fail_at``.
    """

    needs_source_image = True

    def __init__(self, folder: Path, *, fail_at: str = "", fail_with: BaseException | None = None):
        self.folder, self.fail_at, self.fail_with = folder, fail_at, fail_with
        self.images: dict[str, np.ndarray] = {}

    def predict(self, pair: QcPair, image: np.ndarray | None) -> PredictionResult:
        assert image is not None
        self.images[pair.name] = image
        if pair.name == self.fail_at and self.fail_with is not None:
            raise self.fail_with
        return PredictionResult(labels=tifffile.imread(self.folder / pair.name), n_tiles=(1, 2))

    def describe(self) -> dict:
        return {"kind": "model stand-in"}


def test_predictions_folder_scores_by_hand(make_qc):
    dropped = (0, 3, 1)
    qc = make_qc(3, dropped=dropped)
    for pair, d in zip(pairs_of(qc, with_source=False), dropped, strict=True):
        outcome = evaluate_image(pair, predictor=folder_of(qc), settings=SETTINGS)
        assert outcome.error is None and outcome.evaluated and outcome.notes == ()
        m = outcome.scores.matching
        tp = 10 - d
        assert (m.tp, m.fn, m.fp, m.n_true, m.n_pred) == (tp, d, 0, 10, tp)
        assert (m.precision, m.recall) == (1.0, pytest.approx(tp / 10))
        assert m.f1 == pytest.approx(2 * tp / (2 * tp + d))
        assert m.mean_matched_score == pytest.approx(1.0)
        assert outcome.scores.values()["pixel_iou"] == pytest.approx(tp / 10)
        assert outcome.prediction_file == qc.predictions / pair.name
        assert (outcome.n_tiles, outcome.cached, outcome.area_bins) == (None, False, None)
        assert [s.iou_threshold for s in outcome.curve] == list(IOU_GRID)
        assert [s.tp for s in outcome.curve] == [tp] * len(IOU_GRID)


def test_size_bins_count_ground_truth_objects_by_area(make_qc):
    # disks of radius 6 have between 50 and 200 pixels: every object is "medium"
    qc = make_qc(1, dropped=(4,))
    settings = EvaluationSettings(0.5, IOU_GRID, size_bin_edges=(50.0, 200.0))
    (pair,) = pairs_of(qc)
    bins = evaluate_image(pair, predictor=folder_of(qc), settings=settings).area_bins
    assert bins is not None and bins.edges == (50.0, 200.0)
    assert (bins.n_true, bins.tp) == ((0, 10, 0), (0, 6, 0))
    assert bins.iou_sum == pytest.approx((0.0, 6.0, 0.0))


def test_the_arrays_are_handed_over_while_in_memory(make_qc):
    qc = make_qc(1, dropped=(2,))
    (pair,) = pairs_of(qc)
    seen: list[MeasuredImage] = []
    outcome = evaluate_image(
        pair, predictor=folder_of(qc), settings=SETTINGS, on_measured=seen.append
    )
    (measured,) = seen
    np.testing.assert_array_equal(measured.target, tifffile.imread(pair.target))
    np.testing.assert_array_equal(measured.predicted, tifffile.imread(qc.predictions / pair.name))
    assert measured.source is None and not measured.predicted_here  # read from a folder
    assert measured.scores is outcome.scores and measured.iou_threshold == 0.5
    assert sorted(measured.matches.true_labels.tolist()) == list(range(1, 9))
    assert measured.matches.ious.tolist() == [1.0] * 8


def test_a_model_predicts_from_the_source_image(make_qc):
    qc = make_qc(2, dropped=(0, 5))
    model = ModelStandIn(qc.predictions)
    seen: list[MeasuredImage] = []
    outcomes = [
        evaluate_image(pair, predictor=model, settings=SETTINGS, on_measured=seen.append)
        for pair in pairs_of(qc)
    ]
    assert [o.scores.matching.fn for o in outcomes] == [0, 5]
    assert [o.n_tiles for o in outcomes] == [(1, 2), (1, 2)]
    assert [o.prediction_file for o in outcomes] == [None, None]  # nothing written here
    for pair, measured in zip(pairs_of(qc), seen, strict=True):
        np.testing.assert_array_equal(model.images[pair.name], tifffile.imread(pair.source))
        assert measured.source is model.images[pair.name] and measured.predicted_here


@pytest.mark.parametrize(
    ("exception", "reason"),
    [
        (RuntimeError("CUDA out of memory\nmore detail"), "RuntimeError: CUDA out of memory"),
        (ValueError(), "ValueError: no message"),
        (KeyError("img01.tif"), "KeyError: 'img01.tif'"),
        (ZeroDivisionError("division by zero"), "ZeroDivisionError: division by zero"),
    ],
)
def test_any_exception_from_the_predictor_fails_only_that_image(make_qc, exception, reason):
    qc = make_qc(3)
    model = ModelStandIn(qc.predictions, fail_at="img01.tif", fail_with=exception)
    outcomes = [evaluate_image(pair, predictor=model, settings=SETTINGS) for pair in pairs_of(qc)]
    assert [o.evaluated for o in outcomes] == [True, False, True]
    assert outcomes[1].error == f"{qc.source / 'img01.tif'}: prediction failed ({reason})"
    assert outcomes[1].curve is None and outcomes[1].scores is None


def test_running_out_of_memory_while_predicting_says_so(make_qc):
    qc = make_qc(1)
    model = ModelStandIn(qc.predictions, fail_at="img00.tif", fail_with=MemoryError())
    outcome = evaluate_image(pairs_of(qc)[0], predictor=model, settings=SETTINGS)
    assert outcome.error == f"{qc.source / 'img00.tif'}: not enough memory to predict this image"


def test_ctrl_c_is_not_an_image_error(make_qc):
    qc = make_qc(1)
    model = ModelStandIn(qc.predictions, fail_at="img00.tif", fail_with=KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        evaluate_image(pairs_of(qc)[0], predictor=model, settings=SETTINGS)


def test_a_prediction_of_another_shape_fails_naming_both_shapes(make_qc):
    qc = make_qc(2)
    tifffile.imwrite(qc.predictions / "img01.tif", tifffile.imread(qc.target / "img01.tif")[:10])
    outcomes = [evaluate_image(p, predictor=folder_of(qc), settings=SETTINGS) for p in pairs_of(qc)]
    assert outcomes[0].evaluated
    assert outcomes[1].error == (
        "img01.tif: prediction shape (10, 128) and ground truth shape (64, 128) differ"
    )


def test_a_source_image_of_another_shape_fails_before_predicting(make_qc):
    qc = make_qc(1)
    tifffile.imwrite(qc.source / "img00.tif", np.zeros((32, 128), np.uint16))
    model = ModelStandIn(qc.predictions)
    outcome = evaluate_image(pairs_of(qc)[0], predictor=model, settings=SETTINGS)
    assert outcome.error == (
        "img00.tif: source image shape (32, 128) and ground truth shape (64, 128) differ"
    )
    assert model.images == {}


def test_a_model_without_source_image_has_nothing_to_predict_from(make_qc):
    qc = make_qc(1)
    pair = pairs_of(qc, with_source=False)[0]
    outcome = evaluate_image(pair, predictor=ModelStandIn(qc.predictions), settings=SETTINGS)
    assert outcome.error == "img00.tif: no source image to predict from"


def test_a_damaged_prediction_file_is_named(make_qc):
    qc = make_qc(1)
    (qc.predictions / "img00.tif").write_bytes(b"")
    outcome = evaluate_image(pairs_of(qc)[0], predictor=folder_of(qc), settings=SETTINGS)
    assert outcome.error == (
        f"{qc.predictions / 'img00.tif'}: the file is empty (0 bytes); export it again"
    )


def test_a_float_ground_truth_is_refused_naming_the_file(make_qc):
    qc = make_qc(1)
    tifffile.imwrite(qc.target / "img00.tif", np.zeros((64, 128), np.float32))
    outcome = evaluate_image(pairs_of(qc)[0], predictor=folder_of(qc), settings=SETTINGS)
    assert outcome.error.startswith(f"{qc.target / 'img00.tif'}: ground truth has float dtype")
    assert "\n" not in outcome.error


def test_a_binary_mask_is_taken_as_its_connected_components_with_a_note(make_qc):
    # the 10 disks are disjoint, so the mask's components are exactly the 10 objects
    qc = make_qc(1, dropped=(3,))
    path = qc.predictions / "img00.tif"
    tifffile.imwrite(path, tifffile.imread(path) > 0)
    outcome = evaluate_image(pairs_of(qc)[0], predictor=folder_of(qc), settings=SETTINGS)
    assert (outcome.scores.matching.tp, outcome.scores.matching.fn) == (7, 3)
    assert outcome.notes == (
        f"{path}: binary prediction mask; objects taken as its connected components "
        "(touching objects merge — save a label image to avoid this)",
    )


def test_a_failure_while_storing_fails_only_that_image(make_qc):
    qc = make_qc(2)

    def full_disk(measured: MeasuredImage) -> None:
        if measured.pair.name == "img00.tif":
            raise OSError(28, "No space left on device")

    outcomes = [
        evaluate_image(p, predictor=folder_of(qc), settings=SETTINGS, on_measured=full_disk)
        for p in pairs_of(qc)
    ]
    assert outcomes[0].error == (
        "img00.tif: store or draw failed (OSError: [Errno 28] No space left on device)"
    )
    assert outcomes[1].evaluated
