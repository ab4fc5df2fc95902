"""The 13-metric table: pixel IoU by hand, pooling and image means against stardist.

``stardist.matching.matching_dataset`` is the independent reference for pooling
(``by_image=False``) and for the mean of the ratios (``by_image=True``).
"""

import numpy as np
import pytest
from stardist.matching import matching_dataset

from segqc.metrics.catalogue import METRIC_KEYS
from segqc.metrics.pixel import foreground_overlap
from segqc.metrics.scores import image_mean, measure, metric_columns, pool

RATIOS = ("precision", "recall", "accuracy", "f1", "mean_true_score", "mean_matched_score",
          "panoptic_quality")  # fmt: skip
COUNTS = ("tp", "fp", "fn", "n_true", "n_pred")


def test_pixel_iou_by_hand():
    truth = np.zeros((4, 4), np.uint8)
    truth[0:2, 0:2] = 1  # 4 pixels
    pred = np.zeros((4, 4), np.uint8)
    pred[1:3, 1:3] = 7  # 4 pixels, 1 shared with truth
    overlap = foreground_overlap(truth, pred)
    assert (overlap.intersection, overlap.union) == (1, 7)
    assert overlap.iou == pytest.approx(1 / 7)


def test_pixel_iou_ignores_label_identity_and_handles_empty_masks():
    truth = np.array([[1, 2], [0, 0]])
    assert foreground_overlap(truth, np.array([[5, 5], [0, 0]])).iou == 1.0
    assert foreground_overlap(truth, np.zeros_like(truth)).iou == 0.0
    assert foreground_overlap(np.zeros((2, 2)), np.zeros((2, 2))).iou == 1.0


def random_pair(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    truth = np.zeros((48, 48), np.int32)
    for label in range(1, rng.integers(0, 12)):
        y, x = rng.integers(0, 40, size=2)
        truth[y : y + rng.integers(3, 9), x : x + rng.integers(3, 9)] = label
    pred = np.roll(truth, shift=tuple(rng.integers(-2, 3, size=2)), axis=(0, 1))
    pred[rng.random(pred.shape) < 0.05] = 0
    return truth, pred


@pytest.mark.parametrize("seed", range(5))
def test_pooling_and_image_mean_match_stardist_matching_dataset(seed):
    rng = np.random.default_rng(seed)
    pairs = [random_pair(rng) for _ in range(6)]
    scores = [measure(t, p, iou_threshold=0.5) for t, p in pairs]
    truths, preds = zip(*pairs, strict=True)

    pooled = pool(scores).values()
    reference = matching_dataset(truths, preds, thresh=0.5, by_image=False, show_progress=False)
    for key in COUNTS:
        assert pooled[key] == getattr(reference, key)
    for key in RATIOS:
        assert pooled[key] == pytest.approx(getattr(reference, key), abs=1e-6)

    mean = image_mean(scores)
    by_image = matching_dataset(truths, preds, thresh=0.5, by_image=True, show_progress=False)
    for key in RATIOS:
        assert mean[key] == pytest.approx(getattr(by_image, key), abs=1e-6)
    for key in COUNTS:  # stardist sums counts over images; segqc averages them
        assert mean[key] == pytest.approx(getattr(by_image, key) / len(pairs))


def test_pooled_pixel_iou_sums_pixels_over_images():
    a = measure(np.ones((2, 2), np.uint8), np.ones((2, 2), np.uint8))  # 4 / 4
    b = measure(np.ones((2, 3), np.uint8), np.zeros((2, 3), np.uint8))  # 0 / 6
    assert pool([a, b]).values()["pixel_iou"] == pytest.approx(4 / 10)
    assert image_mean([a, b])["pixel_iou"] == pytest.approx(0.5)


def test_metric_columns_hold_every_metric_of_every_image_in_order():
    rng = np.random.default_rng(7)
    scores = [measure(*random_pair(rng), iou_threshold=0.5) for _ in range(4)]
    columns = metric_columns(scores)
    assert columns.shape == (len(METRIC_KEYS), 4)
    assert columns.dtype == np.float64
    for index, image in enumerate(scores):
        values = image.values()
        assert [columns[k, index] for k in range(len(METRIC_KEYS))] == [
            float(values[key]) for key in METRIC_KEYS
        ]
    # each image weighs the same: the plain mean of the image's own values
    mean = image_mean(scores)
    for key in METRIC_KEYS:
        assert mean[key] == float(np.mean([image.values()[key] for image in scores]))
