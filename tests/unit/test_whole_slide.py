"""Whole-slide-sized images: counted a chunk at a time, with the counts of the whole.

The big case (one 16,384² pair, its peak memory) is in bench/run.py; here small
images are cut into tiny chunks, which must not change a single count.
"""

from __future__ import annotations

import numpy as np
import pytest

from segqc.metrics.matching import label_overlaps
from segqc.metrics.pixel import foreground_overlap
from segqc.metrics.scores import measure, pool
from tests.helpers import disks

FIELDS = ("n_true", "n_pred", "true_index", "pred_index", "scores", "intersections",
          "area_true", "area_pred", "true_values", "pred_values")  # fmt: skip


def random_labels(shape, n, seed, *, offset=0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, n + 1, shape)
    return np.where(labels > 0, labels + offset, 0).astype(np.int64)


@pytest.mark.parametrize(
    ("y_true", "y_pred"),
    [
        (random_labels((37, 23), 40, 0), random_labels((37, 23), 40, 1)),
        # label values far above the pixel count: relabelled by sorting, not a table
        (random_labels((30, 20), 25, 2, offset=10**9), random_labels((30, 20), 25, 3)),
        # more object pairs than the dense table holds: counted pair by pair
        (np.arange(1, 2601).reshape(52, 50), np.arange(1, 2601)[::-1].reshape(52, 50)),
        (random_labels((4, 9, 11), 12, 4), random_labels((4, 9, 11), 12, 5)),
    ],
    ids=["dense", "large-values", "sparse", "3d"],
)
@pytest.mark.parametrize("chunk_pixels", [1, 23 * 3 + 1, 10**9])
def test_counting_in_chunks_gives_the_counts_of_the_whole_image(y_true, y_pred, chunk_pixels):
    whole = label_overlaps(y_true, y_pred, chunk_pixels=10**9)
    chunked = label_overlaps(y_true, y_pred, chunk_pixels=chunk_pixels)
    for name in FIELDS:
        expected, found = getattr(whole, name), getattr(chunked, name)
        assert np.array_equal(np.asarray(found), np.asarray(expected)), name
    fg_whole = foreground_overlap(y_true, y_pred, chunk_pixels=10**9)
    assert foreground_overlap(y_true, y_pred, chunk_pixels=chunk_pixels) == fg_whole


def tiled(quadrants: list[np.ndarray]) -> np.ndarray:
    """Four label images side by side (2 x 2), each quadrant's labels made distinct."""
    shifted = [np.where(q > 0, q + 100 * i, 0) for i, q in enumerate(quadrants)]
    return np.block([[shifted[0], shifted[1]], [shifted[2], shifted[3]]])


def test_a_pair_counts_as_its_four_quadrants_when_no_object_crosses_them():
    """Pooled counts over the quadrants equal the whole image's (objects stay inside)."""
    truths = [disks((64, 128), 10) for _ in range(4)]  # 10 disks well inside each
    predictions = [np.roll(t, 1, axis=1) for t in truths]  # each disk moved by a pixel
    predictions[2][predictions[2] == 5] = 0  # one object missed
    whole = measure(tiled(truths), tiled(predictions))
    parts = pool([measure(t, p) for t, p in zip(truths, predictions, strict=True)])
    assert (whole.matching.n_true, whole.matching.tp, whole.matching.fn) == (40, 39, 1)
    for name in ("tp", "fp", "fn", "n_true", "n_pred"):
        assert getattr(whole.matching, name) == getattr(parts.matching, name), name
    assert whole.matching.sum_matched_score == pytest.approx(parts.matching.sum_matched_score)
    assert whole.foreground == parts.foreground
    assert (whole.aji.intersection, whole.aji.union) == (parts.aji.intersection, parts.aji.union)
