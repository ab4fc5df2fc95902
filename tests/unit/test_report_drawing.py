"""The report's image panels (segqc.report.panels.draw_visual), read back pixel by pixel.

Error map colours are checked against their definition, not against segqc's code:
matched objects in matplotlib's cividis colour of their IoU, missed ground-truth objects
(false negatives) in Okabe & Ito's vermillion, spurious predictions (false positives) in
their sky blue, on a flat grey background.
"""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
import tifffile
from matplotlib import colormaps
from PIL import Image

from segqc.metrics.matching import matched_pairs
from segqc.report.panels import (
    MAX_SIDE,
    ImageVisual,
    Panel,
    draw_from_files,
    draw_visual,
    iou_legend,
    load_visual,
    save_visual,
    visual_document,
    visual_from,
)

VERMILLION = (0xD5, 0x5E, 0x00)
SKY_BLUE = (0x56, 0xB4, 0xE9)


def cividis(iou: float) -> tuple[int, ...]:
    return tuple(int(v) for v in colormaps["cividis"](iou, bytes=True)[:3])


def pixels(panel: Panel) -> np.ndarray:
    """The RGB pixels of a panel's data URI."""
    data = base64.b64decode(panel.data_uri.split(",", 1)[1])
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def four_objects() -> tuple[np.ndarray, np.ndarray]:
    """A matched exactly (IoU 1), B matched at IoU 64/80 = 0.8, C missed, D spurious."""
    target = np.zeros((40, 40), np.uint16)
    predicted = np.zeros_like(target)
    target[4:12, 4:12] = 1  # A
    predicted[4:12, 4:12] = 7
    target[4:12, 20:30] = 2  # B, 8 x 10
    predicted[4:12, 22:30] = 8  # 8 x 8 inside it
    target[24:32, 4:12] = 3  # C: no prediction
    predicted[24:32, 24:32] = 9  # D: no ground truth
    return target, predicted


def draw(target, predicted, source=None) -> ImageVisual:
    pairs = matched_pairs(target, predicted, iou_threshold=0.5)
    return draw_visual(target, predicted, source, pairs, iou_threshold=0.5)


def along(colour: np.ndarray, towards: tuple[int, ...], background: np.ndarray) -> float:
    """Cosine between (colour - background) and (towards - background): 1 when ``colour``
    is ``towards`` laid over the background with some opacity."""
    a = colour.astype(float) - background
    b = np.asarray(towards, float) - background
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_error_map_colours_matches_by_iou_and_marks_misses_and_spurious_objects():
    target, predicted = four_objects()
    visual = draw(target, predicted)
    assert [p.caption for p in visual.panels] == [
        "ground truth", "prediction", "error map (IoU ≥ 0.5)",
    ]  # fmt: skip
    error = pixels(visual.panels[2])
    assert error.shape == (40, 40, 3)
    outside = error[(target == 0) & (predicted == 0)]
    background = outside[0].astype(float)
    assert (outside == outside[0]).all() and len(set(outside[0])) == 1  # flat grey
    # outlines: the predicted partner of a match in its IoU's colour, errors in theirs
    assert tuple(error[4, 8]) == cividis(1.0)  # top edge of A's prediction
    assert tuple(error[4, 25]) == cividis(0.8)  # top edge of B's prediction
    assert tuple(error[24, 8]) == VERMILLION  # top edge of C, missed
    assert tuple(error[24, 28]) == SKY_BLUE  # top edge of D, spurious
    # fills: each object's colour laid over the background
    assert along(error[8, 8], cividis(1.0), background) > 0.999
    assert along(error[8, 25], cividis(0.8), background) > 0.999
    assert along(error[8, 20], cividis(0.8), background) > 0.999  # B's unmatched strip
    assert along(error[28, 8], VERMILLION, background) > 0.999
    assert along(error[28, 28], SKY_BLUE, background) > 0.999
    assert tuple(error[8, 8]) != tuple(error[8, 25])


def test_ground_truth_and_prediction_panels_give_each_object_its_own_colour():
    target, predicted = four_objects()
    truth = pixels(draw(target, predicted).panels[0])
    assert (truth[target == 0] == 0).all()  # background black
    colours = {label: tuple(truth[target == label][0]) for label in (1, 2, 3)}
    for label, colour in colours.items():
        assert (truth[target == label] == colour).all() and colour != (0, 0, 0)
    assert len(set(colours.values())) == 3


def test_input_panel_only_with_a_source_image():
    target, predicted = four_objects()
    source = (100 + 400 * (target > 0)).astype(np.uint16)
    with_source = draw(target, predicted, source)
    assert with_source.panels[0].caption == "input (percentiles 1–99.8)"
    assert with_source.panels[0].data_uri.startswith("data:image/jpeg;base64,")
    assert with_source.note is None
    grey = pixels(with_source.panels[0])[..., 0].astype(int)
    assert grey[8, 8] > 200 and grey[36, 36] < 50  # nuclei bright, background dark
    without = draw(target, predicted)
    assert len(without.panels) == 3
    assert without.note == "no source image (--predictions without --qc-source)"


def test_a_large_image_is_shown_downscaled():
    target = np.zeros((400, 800), np.uint16)
    target[100:300, 100:700] = 1
    visual = draw(target, target, np.ones((400, 800, 2), np.float32))  # 2 channels
    assert visual.note == "shown at 1/3 of its 800×400 px"
    for panel in visual.panels:
        assert pixels(panel).shape[:2] == (134, 267) and max(pixels(panel).shape) <= MAX_SIDE


def test_a_stack_shows_its_middle_plane_its_projection_and_its_xz_plane():
    # 5 x 4 x 6 stack: object 1 fills z = 2 (the middle plane), object 2 is one voxel at
    # (z=0, y=2, x=3), on the middle y row (4 // 2 = 2)
    stack = np.zeros((5, 4, 6), np.uint16)
    stack[2] = 1
    stack[0, 2, 3] = 2
    visual = draw(stack, stack)
    assert visual.note == (
        "middle plane z = 2 of 5; no source image (--predictions without --qc-source)"
    )
    captions = [p.caption for p in visual.panels]
    assert captions[3:] == [
        "ground truth, max projection along z",
        "prediction, max projection along z",
        "ground truth, xz plane (middle y)",
        "prediction, xz plane (middle y)",
    ]
    middle = pixels(visual.panels[0])
    assert middle.shape == (4, 6, 3) and (middle != 0).any(axis=-1).all()
    projection = pixels(visual.panels[3])
    assert projection.shape == (4, 6, 3) and (projection != 0).any(axis=-1).all()
    assert tuple(projection[2, 3]) != tuple(projection[0, 0])  # object 2 is on top
    xz = pixels(visual.panels[5])
    expected = np.zeros((5, 6), bool)
    expected[2] = True
    expected[0, 3] = True
    np.testing.assert_array_equal((xz != 0).any(axis=-1), expected)
    assert tuple(xz[0, 3]) == tuple(projection[2, 3]) != tuple(xz[2, 0])


def test_panels_drawn_from_files_equal_those_drawn_at_evaluation(tmp_path):
    target, predicted = four_objects()
    source = np.random.default_rng(0).integers(0, 1000, target.shape).astype(np.uint16)
    files = {}
    for name, array in (("target", target), ("prediction", predicted), ("source", source)):
        files[name] = tmp_path / f"{name}.tif"
        tifffile.imwrite(files[name], array)
    from_files = draw_from_files(
        files["target"], files["prediction"], files["source"], iou_threshold=0.5
    )
    assert from_files == draw(target, predicted, source)
    assert len(from_files.panels) == 4


def test_files_that_cannot_be_read_give_a_note_instead_of_panels(tmp_path):
    target, _ = four_objects()
    tifffile.imwrite(tmp_path / "target.tif", target)
    (tmp_path / "prediction.tif").write_bytes(b"")
    visual = draw_from_files(
        tmp_path / "target.tif", tmp_path / "prediction.tif", None, iou_threshold=0.5
    )
    assert visual.panels == ()
    assert visual.note == (
        f"cannot draw this image: {tmp_path / 'prediction.tif'}: the file is empty (0 bytes); "
        "export it again"
    )


def test_panels_survive_their_document_and_file(tmp_path):
    visual = draw(*four_objects())
    assert visual_from(visual_document(visual)) == visual
    assert load_visual(save_visual(visual, tmp_path / "v.json")) == visual
    with pytest.raises((KeyError, TypeError, ValueError)):
        visual_from({"panels": 3})


def test_the_legend_runs_through_cividis():
    legend = iou_legend(11)
    assert len(legend) == 11
    assert legend[0] == "#{:02x}{:02x}{:02x}".format(*cividis(0.0))
    assert legend[-1] == "#{:02x}{:02x}{:02x}".format(*cividis(1.0))
