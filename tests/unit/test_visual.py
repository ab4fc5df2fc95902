"""segqc.visual.project_stack on stacks whose views are known by construction."""

import numpy as np
import pytest

from segqc.visual import project_stack


def test_views_of_a_stack():
    # 5 x 4 x 6 stack; object 1 fills z = 2 (the middle slice), object 2 is a single
    # voxel at (z=0, y=2, x=3), i.e. on the middle y-row (4 // 2 = 2) and the middle
    # x-column (6 // 2 = 3).
    stack = np.zeros((5, 4, 6), np.uint16)
    stack[2] = 1
    stack[0, 2, 3] = 2
    views = project_stack(stack)
    assert list(views) == ["xy", "xz", "yz", "max"]
    assert views["xy"].shape == (4, 6) and (views["xy"] == 1).all()
    assert views["xz"].shape == (5, 6) and views["yz"].shape == (5, 4)
    expected_xz = np.zeros((5, 6), np.uint16)
    expected_xz[2] = 1
    expected_xz[0, 3] = 2
    np.testing.assert_array_equal(views["xz"], expected_xz)
    expected_yz = np.zeros((5, 4), np.uint16)
    expected_yz[2] = 1
    expected_yz[0, 2] = 2
    np.testing.assert_array_equal(views["yz"], expected_yz)
    expected_max = np.ones((4, 6), np.uint16)
    expected_max[2, 3] = 2
    np.testing.assert_array_equal(views["max"], expected_max)


def test_channels_are_carried_along():
    stack = np.arange(3 * 4 * 5 * 2).reshape(3, 4, 5, 2)
    views = project_stack(stack, channel_axis=True)
    assert views["xy"].shape == (4, 5, 2) and views["yz"].shape == (3, 4, 2)
    np.testing.assert_array_equal(views["max"], stack[2])  # values grow with z


def test_a_2d_image_is_its_own_view():
    image = np.eye(3)
    assert list(project_stack(image)) == ["xy"]
    assert project_stack(image)["xy"] is image


@pytest.mark.parametrize("shape", [(4,), (2, 2, 2, 2), (0, 3, 3)])
def test_bad_shapes_are_refused(shape):
    with pytest.raises(ValueError, match="must be a non-empty"):
        project_stack(np.zeros(shape))
