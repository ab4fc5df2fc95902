"""Bad images, one at a time (issue 16): which pixels of a TIFF are judged, links to
nothing, label images with extra axes or in pieces, sources the model cannot see.

Expected values are built by hand: the arrays written are compared with what is read
back, and piece counts are those of the drawings below. No TensorFlow, no pytester.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from segqc.checks.accuracy import IOU_GRID
from segqc.data.axes import ImageInputError, check_source_layout, tiff_axes
from segqc.data.images import ImageReadError, read_tiff
from segqc.data.pairing import QcPair
from segqc.pipeline.evaluate import (
    EvaluationSettings,
    evaluate_image,
    is_warning_note,
    split_labels_note,
)
from segqc.pipeline.outcome import ImageOutcome
from segqc.predict.folder import PredictionsFolder
from segqc.predict.stardist import prepare_input
from segqc.testing import SegQcWarning, assert_image
from segqc.thresholds import Thresholds
from tests.helpers import disks, image_from

SETTINGS = EvaluationSettings(iou_threshold=0.5, curve_thresholds=IOU_GRID)


def _image(shape: tuple[int, ...] = (64, 128), seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 4000, size=shape).astype(np.uint16)


# --- which image of a TIFF is read --------------------------------------------------------


@pytest.mark.parametrize(
    "writer",
    [
        pytest.param(lambda p, a: tifffile.imwrite(p, a[0]), id="one-image"),
        pytest.param(lambda p, a: tifffile.imwrite(p, a, imagej=True), id="imagej-stack"),
        pytest.param(
            lambda p, a: tifffile.imwrite(p, a, metadata=None, photometric="minisblack"),
            id="pages-no-metadata",
        ),
        pytest.param(
            lambda p, a: Image.fromarray(a[0]).save(
                p, save_all=True, append_images=[Image.fromarray(x) for x in a[1:]]
            ),
            id="pillow-multipage",
        ),
    ],
)
def test_one_series_files_read_as_before(tmp_path: Path, writer) -> None:
    stack = np.stack([_image(seed=i) for i in range(3)])  # 3 planes: a Z stack
    path = tmp_path / "a.tif"
    writer(path, stack)
    with tifffile.TiffFile(path) as tif:
        assert len(tif.series) == 1
    np.testing.assert_array_equal(read_tiff(path), tifffile.imread(path))
    np.testing.assert_array_equal(read_tiff(path), stack if read_tiff(path).ndim == 3 else stack[0])


@pytest.mark.parametrize("thumbnail_first", [True, False])
def test_a_thumbnail_is_never_what_is_read(tmp_path: Path, thumbnail_first: bool) -> None:
    image, thumbnail = _image(), _image((8, 8), seed=1)
    path = tmp_path / "a.tif"
    for i, array in enumerate((thumbnail, image) if thumbnail_first else (image, thumbnail)):
        tifffile.imwrite(path, array, append=i > 0)
    np.testing.assert_array_equal(read_tiff(path), image)


def test_a_stack_after_a_thumbnail_page_is_read_whole(tmp_path: Path) -> None:
    # Pillow writes pages without metadata: tifffile groups the 3 equal pages as one series
    stack = np.stack([_image(seed=i).astype(np.uint8) for i in range(3)])
    pages = [Image.fromarray(np.zeros((8, 8), np.uint8))] + [Image.fromarray(p) for p in stack]
    pages[0].save(tmp_path / "a.tif", save_all=True, append_images=pages[1:])
    np.testing.assert_array_equal(read_tiff(tmp_path / "a.tif"), stack)


def test_a_pyramid_is_read_at_full_resolution(tmp_path: Path) -> None:
    image = _image((128, 256))
    with tifffile.TiffWriter(tmp_path / "a.ome.tif", ome=True) as tif:
        tif.write(image, subifds=2)
        tif.write(image[::2, ::2], subfiletype=1)
        tif.write(image[::4, ::4], subfiletype=1)
    np.testing.assert_array_equal(read_tiff(tmp_path / "a.ome.tif"), image)


def test_the_axes_are_those_of_the_image_not_of_its_thumbnail(tmp_path: Path) -> None:
    path = tmp_path / "a.ome.tif"
    with tifffile.TiffWriter(path, ome=True) as tif:
        tif.write(_image((8, 8)), metadata={"axes": "YX"})
        tif.write(np.stack([_image(), _image(seed=1)]), metadata={"axes": "CYX"})
    assert tiff_axes(path) == "CYX"


@pytest.mark.parametrize(
    "shapes",
    [[(64, 128)] * 3, [(64, 128), (128, 64)], [(8, 8), (64, 128), (64, 128)]],
    ids=["planes-as-images", "same-size-other-shape", "thumbnail-and-two-positions"],
)
def test_several_images_of_the_largest_size_are_refused(
    tmp_path: Path, shapes: list[tuple[int, int]]
) -> None:
    path = tmp_path / "a.tif"
    for i, shape in enumerate(shapes):
        tifffile.imwrite(path, _image(shape, seed=i), append=i > 0)
    listed = ", ".join(str(s) for s in shapes)
    ties = sum(s[0] * s[1] == 64 * 128 for s in shapes)
    with pytest.raises(ImageReadError) as raised:
        read_tiff(path)
    assert str(raised.value) == (
        f"{path}: holds {len(shapes)} images (TIFF series of shapes {listed}) and {ties} of "
        "them share the largest size, so segqc cannot tell which one is the QC image; save "
        "one image (or one stack) per file"
    )


# --- links to nothing ---------------------------------------------------------------------


def test_a_link_to_nothing_names_the_link_and_its_target(tmp_path: Path) -> None:
    link, gone = tmp_path / "a.tif", tmp_path / "moved" / "a.tif"
    link.symlink_to(gone)
    with pytest.raises(ImageReadError) as raised:
        read_tiff(link)
    assert str(raised.value) == (
        f"{link}: broken link to {gone}: no such file; fix the link or put the file in its place"
    )


def test_a_relative_or_chained_link_also_names_where_it_leads(tmp_path: Path) -> None:
    (tmp_path / "links").mkdir()
    relative = tmp_path / "links" / "a.tif"
    relative.symlink_to(os.path.join("..", "moved", "a.tif"))
    chained = tmp_path / "b.tif"
    chained.symlink_to(relative)
    end = os.path.realpath(tmp_path / "moved" / "a.tif")
    for link, target in ((relative, "../moved/a.tif"), (chained, str(relative))):
        with pytest.raises(ImageReadError) as raised:
            read_tiff(link)
        assert str(raised.value) == (
            f"{link}: broken link to {target} (which leads to {end}): no such file; fix the "
            "link or put the file in its place"
        )


def test_a_link_loop_is_named_as_such(tmp_path: Path) -> None:
    link = tmp_path / "a.tif"
    link.symlink_to("a.tif")
    with pytest.raises(ImageReadError, match="symbolic link loop"):
        read_tiff(link)


# --- the source image of --predictions, checked from its header ---------------------------


def test_a_source_that_does_not_fit_its_ground_truth_is_named(tmp_path: Path) -> None:
    path = tmp_path / "a.tif"
    tifffile.imwrite(path, np.zeros((3, 2, 64, 128), np.uint16))
    with pytest.raises(ImageInputError) as raised:
        check_source_layout(path, spatial_shape=(64, 128))
    assert str(raised.value) == (
        f"{path}: source image shape (3, 2, 64, 128) and ground truth shape (64, 128) differ; "
        "the source must have the ground truth's YX size, with at most one channel axis"
    )


@pytest.mark.parametrize("shape", [(64, 128), (64, 128, 3), (2, 64, 128)], ids=str)
def test_sources_that_fit_pass_the_header_check(tmp_path: Path, shape) -> None:
    tifffile.imwrite(tmp_path / "a.tif", np.zeros(shape, np.uint16))
    check_source_layout(tmp_path / "a.tif", spatial_shape=(64, 128))


def test_the_header_check_reads_no_pixels(tmp_path: Path) -> None:
    # the pixel data cut off: the header is intact, the pixels are not there to read
    path = tmp_path / "a.tif"
    tifffile.imwrite(path, _image((512, 512)))
    path.write_bytes(path.read_bytes()[:4096])
    with pytest.raises(ImageReadError):
        read_tiff(path)
    check_source_layout(path, spatial_shape=(512, 512))


def test_a_misfit_source_fails_its_image_in_predictions_mode(make_qc) -> None:
    qc = make_qc(1)
    tifffile.imwrite(qc.source / "img00.tif", np.zeros((3, 2, 64, 128), np.uint16))
    pair = QcPair("img00.tif", qc.source / "img00.tif", qc.target / "img00.tif")
    folder = PredictionsFolder(qc.predictions, {"img00.tif": qc.predictions / "img00.tif"})
    outcome = evaluate_image(pair, predictor=folder, settings=SETTINGS)
    assert outcome.error is not None
    assert outcome.error.startswith(f"{qc.source / 'img00.tif'}: source image shape (3, 2, 64")


# --- label images with extra axes ---------------------------------------------------------


def _outcome(qc, target: np.ndarray, prediction: np.ndarray) -> ImageOutcome:
    tifffile.imwrite(qc.target / "img00.tif", target)
    tifffile.imwrite(qc.predictions / "img00.tif", prediction)
    pair = QcPair("img00.tif", None, qc.target / "img00.tif")
    folder = PredictionsFolder(qc.predictions, {"img00.tif": qc.predictions / "img00.tif"})
    return evaluate_image(pair, predictor=folder, settings=SETTINGS)


def test_a_4d_label_image_fails_naming_its_shape(make_qc) -> None:
    qc = make_qc(1)
    labels = disks((64, 128), 10)[np.newaxis, np.newaxis]
    outcome = _outcome(qc, labels, labels)
    assert outcome.error == (
        f"{qc.target / 'img00.tif'}: ground truth has 4 dimensions (shape (1, 1, 64, 128)); "
        "segqc takes 2D (YX) or 3D (ZYX) label images: save it without its axes of size 1"
    )


def test_a_one_plane_3d_label_image_is_still_measured(make_qc) -> None:
    qc = make_qc(1)
    labels = disks((64, 128), 10)[np.newaxis]
    outcome = _outcome(qc, labels, labels)
    assert outcome.error is None
    assert (outcome.scores.matching.tp, outcome.scores.matching.n_true) == (10, 10)


# --- labels in pieces ---------------------------------------------------------------------


def test_a_semantic_mask_is_one_label_in_many_pieces() -> None:
    semantic = (disks((64, 128), 10) > 0).astype(np.uint8)
    assert split_labels_note(semantic, "p.tif", "prediction") == (
        "p.tif: prediction label 1 has 10 separate pieces: is this an instance label image? "
        "Each object needs its own label"
    )


def test_a_stray_pixel_of_one_object_is_no_alarm() -> None:
    labels = disks((64, 128), 10)
    labels[60, 120] = 3  # far from disk 3: label 3 has 2 pieces
    assert split_labels_note(labels, "t.tif", "ground truth") is None


def test_objects_touching_at_a_corner_are_one_piece() -> None:
    # label 1: three squares meeting corner to corner (8-connected: one piece)
    labels = np.zeros((12, 12), np.uint16)
    labels[0:3, 0:3] = labels[3:6, 3:6] = labels[6:9, 6:9] = 1
    assert split_labels_note(labels, "p.tif", "prediction") is None
    labels[10:12, 10:12] = 1  # a fourth square, apart: 2 pieces, one label of one
    assert split_labels_note(labels, "p.tif", "prediction") is not None


def test_3d_objects_touching_at_a_corner_are_one_piece() -> None:
    labels = np.zeros((6, 6, 6), np.uint16)
    labels[0:2, 0:2, 0:2] = labels[2:4, 2:4, 2:4] = labels[4:6, 4:6, 4:6] = 7  # 26-connected
    assert split_labels_note(labels, "p.tif", "prediction") is None
    labels[0, 5, 5] = 7  # now 2 pieces: the only label, so more than half are split
    assert split_labels_note(labels, "p.tif", "prediction") == (
        "p.tif: prediction label 7 has 2 separate pieces: is this an instance label image? "
        "Each object needs its own label"
    )


def test_labels_numbered_again_in_each_tile_are_flagged() -> None:
    # two tiles side by side, each labelled 1..10: every label is in 2 pieces
    tile = disks((64, 128), 10)
    labels = np.concatenate([tile, tile], axis=1)
    assert split_labels_note(labels, "p.tif", "prediction") == (
        "p.tif: prediction label 1 has 2 separate pieces (10 of 10 labels are in several "
        "pieces): is this an instance label image? Each object needs its own label"
    )


def test_a_few_objects_in_two_pieces_are_no_alarm() -> None:
    labels = disks((64, 128), 10)
    for label, (y, x) in zip((2, 5, 8), ((60, 2), (60, 60), (60, 120)), strict=True):
        labels[y, x] = label  # 3 of 10 labels have a stray pixel
    assert split_labels_note(labels, "t.tif", "ground truth") is None


def test_a_semantic_prediction_gets_a_note_and_a_binary_one_does_not(make_qc) -> None:
    qc = make_qc(1)
    truth = tifffile.imread(qc.target / "img00.tif")
    semantic = _outcome(qc, truth, (truth > 0).astype(np.uint16))
    note = (
        f"{qc.predictions / 'img00.tif'}: prediction label 1 has 10 separate pieces: is this "
        "an instance label image? Each object needs its own label"
    )
    assert semantic.notes == (note,)
    assert semantic.scores is not None  # measured all the same
    binary = _outcome(qc, truth, truth > 0)  # a bool mask: taken as components, no alarm
    assert not any(is_warning_note(n) for n in binary.notes) and len(binary.notes) == 1


def test_a_split_labels_note_warns_on_the_image_test_and_other_notes_do_not(make_qc) -> None:
    pair = QcPair("img00.tif", None, Path("t/img00.tif"))
    qc = make_qc(1)
    scores = _outcome(qc, *(2 * [tifffile.imread(qc.target / "img00.tif")])).scores
    split = "p.tif: prediction label 1 has 10 separate pieces: is this an instance label image?"
    binary = "p.tif: binary prediction mask; objects taken as its connected components"
    with pytest.warns(SegQcWarning) as caught:
        assert_image(ImageOutcome(pair, scores=scores, notes=(binary, split)), Thresholds())
    assert [str(w.message) for w in caught] == [split]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert_image(ImageOutcome(pair, scores=scores, notes=(binary,)), Thresholds())


# --- source values the model cannot see ---------------------------------------------------


@pytest.mark.parametrize(
    ("scale", "problem"),
    [
        (1e300, "overflow float32 when normalised for the model"),
        (1e-50, "are all the same once normalised in float32"),
    ],
)
def test_values_float32_cannot_hold_are_refused(scale: float, problem: str) -> None:
    image = image_from(disks((64, 128), 10)).astype(np.float64) * scale
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # one line of ours, not numpy's RuntimeWarnings
        with pytest.raises(ImageInputError) as raised:
            prepare_input(image, n_dim=2, n_channel_in=1)
    assert str(raised.value) == (
        f"image values (from {image.min():.4g} to {image.max():.4g}, dtype float64) {problem}; "
        "rescale the image (e.g. save it as float32 or uint16)"
    )


def test_float64_values_within_float32_range_are_normalised_as_before() -> None:
    from csbdeep.utils import normalize

    image = image_from(disks((64, 128), 10)).astype(np.float64) * 1e30
    expected = normalize(image, 1, 99.8, axis=(0, 1)).astype(np.float32)
    np.testing.assert_array_equal(prepare_input(image, n_dim=2, n_channel_in=1), expected)
