"""Block-wise prediction with the demo model: same objects as one piece, layout recorded.

Small images and blocks forced through thresholds.yaml keep these fast; the large cases
(8192², 16384²) are in bench/bench_blocks.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tifffile
from skimage.measure import regionprops
from stardist.big import Block
from stardist.matching import matching

from segqc.predict.model_folder import inspect_model_folder
from segqc.predict.stardist import (
    BlockPolicy,
    PredictionParameters,
    StarDistPredictor,
    resolve_parameters,
)
from segqc.thresholds import load_thresholds
from tests.helpers import DEMO2D, QC2D

QC = ("--pyargs", "segqc.qc_tests")
DSB = "dsb2018_r000_c336.tif"  # real nuclei the demo model segments well


def mirror_tiled(array: np.ndarray, shape: tuple[int, int], *, labels: bool = False) -> np.ndarray:
    """``array`` mirrored into a 2x2 tile, repeated to ``shape``; labels stay unique per copy."""
    if labels:
        # Each mirrored copy of a label image gets its own labels (+ k * max).
        array = array.astype(np.uint32)
        flips = [array, array[:, ::-1], array[::-1], array[::-1, ::-1]]
        offset = int(array.max())
        a, b, c, d = (np.where(f > 0, f + k * offset, 0) for k, f in enumerate(flips))
        tile = np.block([[a, b], [c, d]])
    else:
        tile = np.block([[array, array[:, ::-1]], [array[::-1], array[::-1, ::-1]]])
    reps = (shape[0] // tile.shape[0] + 1, shape[1] // tile.shape[1] + 1)
    if not labels:
        return np.tile(tile, reps)[: shape[0], : shape[1]]
    offset = int(tile.max())
    copies = [
        [np.where(tile > 0, tile + (r * reps[1] + col) * offset, 0) for col in range(reps[1])]
        for r in range(reps[0])
    ]
    return np.vstack([np.hstack(row) for row in copies])[: shape[0], : shape[1]]


def seams(layout: dict, size: int, axis: int) -> list[int]:
    """Where the kept (write) regions of neighbouring blocks start and end along ``axis``."""
    blocks = Block.cover(size, layout["block_size"][axis], layout["min_overlap"][axis],
                         layout["context"][axis], 8, verbose=False)  # fmt: skip
    edges = {b.slice_write.start for b in blocks} | {b.slice_write.stop for b in blocks}
    return sorted(edges - {0, size})


def test_blocks_find_the_same_objects_as_one_piece_away_from_block_borders(
    tensorflow_ready, thresholds_file
):
    image = mirror_tiled(tifffile.imread(QC2D / "source" / DSB), (768, 768))
    folder = inspect_model_folder(DEMO2D)
    settings = load_thresholds(thresholds_file(
        "prediction:\n  block_above: 512\n  block_size: 512\n  block_min_overlap: 64\n"
    )).thresholds.prediction  # fmt: skip
    blockwise = StarDistPredictor(folder, resolve_parameters(folder, settings), device="cpu")
    p = blockwise.parameters
    one_piece = StarDistPredictor(
        folder,
        PredictionParameters(p.prob_thresh, p.nms_thresh, p.source, BlockPolicy(above=None)),
        device="cpu",
    )

    whole = one_piece.predict(None, image)  # type: ignore[arg-type]
    blocks = blockwise.predict(None, image)  # type: ignore[arg-type]

    assert whole.blocks is None
    layout = blocks.blocks
    assert layout is not None
    assert layout["n_blocks"] == 4 and layout["blocks_per_axis"] == [2, 2]
    assert layout["block_size"] == [512, 512] and layout["min_overlap"] == [64, 64]
    # The context is the model's receptive field, as StarDist computes it, on the grid.
    blockwise.load()
    receptive = blockwise._model._axes_tile_overlap("YX")
    assert all(c >= r and c % 8 == 0 for c, r in zip(layout["context"], receptive, strict=True))
    assert blocks.labels.shape == whole.labels.shape == image.shape

    # Objects farther than the context from every seam between blocks: the same at IoU 0.9.
    margin = max(layout["context"])
    cuts = [seams(layout, n, axis) for axis, n in enumerate(image.shape)]

    def interior(labels: np.ndarray) -> np.ndarray:
        kept = np.zeros_like(labels)
        for region in regionprops(labels):
            box = region.bbox
            if all(
                box[axis] - cut > margin or cut - box[axis + 2] > margin
                for axis in (0, 1)
                for cut in cuts[axis]
            ):
                kept[labels == region.label] = region.label
        return kept

    inner_whole, inner_blocks = interior(whole.labels), interior(blocks.labels)
    stats = matching(inner_whole, inner_blocks, thresh=0.9)
    assert stats.n_true >= 50  # enough objects for the comparison to mean something
    assert stats.tp == stats.n_true == stats.n_pred, stats
    # Across the whole image, seams included, block-wise loses or adds (almost) nothing.
    overall = matching(whole.labels, blocks.labels, thresh=0.5)
    assert overall.f1 >= 0.98, overall


def _qc_folders(root: Path, shape: tuple[int, int]) -> tuple[Path, Path]:
    source, target = root / "source", root / "target"
    source.mkdir(parents=True)
    target.mkdir()
    image = mirror_tiled(tifffile.imread(QC2D / "source" / DSB), shape)
    truth = mirror_tiled(tifffile.imread(QC2D / "target" / DSB), shape, labels=True)
    tifffile.imwrite(source / "big.tif", image)
    tifffile.imwrite(target / "big.tif", truth)
    tifffile.imwrite(source / "small.tif", tifffile.imread(QC2D / "source" / DSB))
    tifffile.imwrite(target / "small.tif", tifffile.imread(QC2D / "target" / DSB))
    return source, target


def test_model_run_records_the_block_layout_in_summary_json(tensorflow_ready, pytester):
    source, target = _qc_folders(pytester.path / "qc", (384, 384))
    limits = pytester.path / "limits.yaml"
    limits.write_text(
        "matching:\n  iou_threshold: 0.5\n"
        "prediction:\n  block_above: 256\n  block_size: 256\n  block_min_overlap: 32\n"
    )

    def run() -> dict:
        result = pytester.runpytest(
            *QC, f"--model={DEMO2D}", f"--qc-source={source}", f"--qc-target={target}",
            f"--thresholds={limits}", "--device", "cpu",
        )  # fmt: skip
        assert result.ret == pytest.ExitCode.OK, result.stdout.str()[-3000:]
        summary = json.loads((pytester.path / "qc-output" / "summary.json").read_text())
        assert summary["predictor"]["blocks"] == {
            "block_above": 256, "block_size": 256, "block_min_overlap": 32,
        }  # fmt: skip
        return {image["name"]: image for image in summary["images"]}

    images = run()
    big, small = images["big.tif"], images["small.tif"]
    assert "blocks" not in small  # 168 x 176: one piece
    layout = big["blocks"]
    assert layout["axes"] == "YX"
    assert layout["block_size"] == [256, 256] and layout["min_overlap"] == [32, 32]
    # 256 - 32 - 2 x 48 = 128 apart: blocks at 0 and 128 cover 384 in each axis.
    assert layout["context"] == [48, 48]
    assert layout["blocks_per_axis"] == [2, 2] and layout["n_blocks"] == 4
    assert "longer than prediction.block_above (256 pixels)" in layout["reason"]
    assert not big["cached"]
    # The metrics of the stitched prediction are stardist.matching's.
    predicted = tifffile.imread(big["prediction_file"])
    truth = tifffile.imread(target / "big.tif")
    assert big["metrics"]["f1"] == pytest.approx(matching(truth, predicted, thresh=0.5).f1)

    again = run()["big.tif"]  # from the cache: the layout comes back with the labels
    assert again["cached"] and again["blocks"] == layout
