"""Inputs as users have them: channel order, RGB(A), TIFF axes metadata (no TensorFlow).

Expected arrays are built independently with numpy indexing on the original data; the
expected normalisation is csbdeep's ``normalize`` applied to a hand-made channel-last
array.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
from csbdeep.utils import normalize

from segqc.data.axes import ImageInputError, fit_to_model, read_source_image, to_channel_last
from segqc.predict.model_folder import ModelFolder
from segqc.predict.stardist import prepare_input


def _channels(n: int, shape: tuple[int, ...] = (6, 8), seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 1000, size=shape).astype(np.uint16) for _ in range(n)]


def _expected(channel_last: np.ndarray, n_dim: int) -> np.ndarray:
    return normalize(channel_last, 1, 99.8, axis=tuple(range(n_dim))).astype(np.float32)


def test_rgb_is_three_channels():
    r, g, b = _channels(3)
    rgb = np.stack([r, g, b], axis=-1)
    out = prepare_input(rgb, n_dim=2, n_channel_in=3)
    assert out.shape == (6, 8, 3) and out.dtype == np.float32
    np.testing.assert_array_equal(out, _expected(rgb, 2))


def test_rgba_alpha_is_dropped_for_a_three_channel_model():
    r, g, b = _channels(3)
    alpha = np.full_like(r, 255)
    out = prepare_input(np.stack([r, g, b, alpha], axis=-1), n_dim=2, n_channel_in=3)
    np.testing.assert_array_equal(out, _expected(np.stack([r, g, b], axis=-1), 2))


def test_channel_first_with_axes_is_moved_last():
    a, b = _channels(2)
    out = prepare_input(np.stack([a, b]), n_dim=2, n_channel_in=2, axes="CYX")
    np.testing.assert_array_equal(out, _expected(np.stack([a, b], axis=-1), 2))


def test_imagej_zcyx_hyperstack_for_a_3d_model():
    a, b = _channels(2, shape=(3, 6, 8))
    zcyx = np.stack([a, b], axis=1)  # (Z, C, Y, X)
    out = prepare_input(zcyx, n_dim=3, n_channel_in=2, axes="ZCYX")
    assert out.shape == (3, 6, 8, 2)
    np.testing.assert_array_equal(out, _expected(np.stack([a, b], axis=-1), 3))


def test_singleton_channel_is_squeezed_for_a_one_channel_model():
    (a,) = _channels(1)
    out = prepare_input(a[..., None], n_dim=2, n_channel_in=1)
    np.testing.assert_array_equal(out, _expected(a, 2))


@pytest.mark.parametrize(
    ("image_shape", "axes", "n_dim", "n_channel_in", "message"),
    [
        ((6, 8), None, 2, 2, "image has 1 channel (axes YX, shape (6, 8)) but the model "
         "expects 2 (n_channel_in in config.json)"),
        ((6, 8, 3), None, 2, 1, "image has 3 channels * but the model expects 1 *"),
        ((4, 6, 8), "ZYX", 2, 1, "image is 3D (axes ZYX, shape (4, 6, 8)) but the model is "
         "a StarDist2D model (n_dim 2 in config.json); give it 2D images"),
        ((6, 8), None, 3, 1, "image is 2D (axes YX, *) but the model is a StarDist3D model*"),
        ((2, 6, 8), "TYX", 2, 1, "image has a time axis with 2 time points*"),
        ((4, 5, 6, 8), None, 2, 1, "image has shape (4, 5, 6, 8), which a StarDist2D model "
         "cannot take*"),
    ],
    ids=["1ch-for-2ch", "3ch-for-1ch", "3d-for-2d", "2d-for-3d", "time", "4d-for-2d"],
)  # fmt: skip
def test_mismatch_is_a_clear_error(image_shape, axes, n_dim, n_channel_in, message):
    import fnmatch

    with pytest.raises(ImageInputError) as info:
        prepare_input(np.ones(image_shape, np.uint16), n_dim=n_dim, n_channel_in=n_channel_in,
                      axes=axes)  # fmt: skip
    assert fnmatch.fnmatch(str(info.value), message), str(info.value)


@pytest.mark.parametrize(
    ("shape", "spatial", "expected_axes", "moved_from"),
    [
        ((6, 8), (6, 8), "YX", None),
        ((6, 8, 2), (6, 8), "YXC", None),
        ((2, 6, 8), (6, 8), "YXC", 0),
        ((3, 6, 8), (3, 6, 8), "ZYX", None),
        ((3, 2, 6, 8), (3, 6, 8), "ZYXC", 1),
        ((2, 3, 6, 8), (3, 6, 8), "ZYXC", 0),
        ((5, 5), (6, 8), None, None),
    ],
)
def test_layout_from_shapes_without_metadata(shape, spatial, expected_axes, moved_from):
    image = np.arange(np.prod(shape)).reshape(shape)
    out, axes = to_channel_last(image, axes=None, spatial_shape=spatial)
    assert axes == expected_axes
    expected = image if moved_from is None else np.moveaxis(image, moved_from, -1)
    np.testing.assert_array_equal(out, expected)


def _folder(n_dim: int, n_channel_in: int, tmp_path: Path) -> ModelFolder:
    config = {"n_dim": n_dim, "n_channel_in": n_channel_in}
    return ModelFolder(tmp_path, n_dim, n_channel_in, config, tmp_path / "w.h5", None)


def test_read_source_uses_imagej_axes(tmp_path):
    a, b = _channels(2)
    path = tmp_path / "cyx.tif"
    tifffile.imwrite(path, np.stack([a, b]), imagej=True, metadata={"axes": "CYX"})
    out = read_source_image(path, spatial_shape=(6, 8), model=_folder(2, 2, tmp_path))
    np.testing.assert_array_equal(out, np.stack([a, b], axis=-1))


def test_read_source_ignores_metadata_that_contradicts_the_ground_truth(tmp_path):
    # tifffile writes a plain ImageJ stack as channels ("CYX"); the 3D ground truth
    # shows it is a ZYX stack.
    (stack,) = _channels(1, shape=(4, 6, 8))
    path = tmp_path / "zyx.tif"
    tifffile.imwrite(path, stack, imagej=True)
    assert tifffile.TiffFile(path).series[0].axes == "CYX"
    out = read_source_image(path, spatial_shape=(4, 6, 8), model=_folder(3, 1, tmp_path))
    np.testing.assert_array_equal(out, stack)


def test_read_source_rgba_tiff_for_an_rgb_model(tmp_path):
    rgba = np.stack([*_channels(3), np.full((6, 8), 255, np.uint16)], axis=-1).astype(np.uint8)
    path = tmp_path / "rgba.tif"
    tifffile.imwrite(path, rgba, photometric="rgb", extrasamples=["unassalpha"])
    out = read_source_image(path, spatial_shape=(6, 8), model=_folder(2, 3, tmp_path))
    np.testing.assert_array_equal(out, rgba[..., :3])


def test_read_source_names_the_file_on_a_channel_mismatch(tmp_path):
    path = tmp_path / "gray.tif"
    tifffile.imwrite(path, _channels(1)[0])
    with pytest.raises(ImageInputError, match=r"gray\.tif: image has 1 channel .* expects 2"):
        read_source_image(path, spatial_shape=(6, 8), model=_folder(2, 2, tmp_path))


def test_fit_to_model_infers_layout_from_the_model():
    image = np.zeros((3, 6, 8), np.uint8)
    assert fit_to_model(image, None, n_dim=3, n_channel_in=1).shape == (3, 6, 8)
    assert fit_to_model(image, None, n_dim=2, n_channel_in=8).shape == (3, 6, 8)


def test_a_leading_axis_is_channels_only_if_the_model_takes_that_many():
    stack = np.zeros((5, 6, 8), np.uint16)
    _, axes = to_channel_last(stack, axes=None, spatial_shape=(6, 8), n_channels=1)
    assert axes is None  # 5 z-slices with a 2D mask: the caller reports both shapes
    _, axes = to_channel_last(stack[:3], axes=None, spatial_shape=(6, 8), n_channels=3)
    assert axes == "YXC"
    _, axes = to_channel_last(stack[:4], axes=None, spatial_shape=(6, 8), n_channels=3)
    assert axes == "YXC"  # RGBA, first
