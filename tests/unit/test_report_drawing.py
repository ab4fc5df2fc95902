"""The error map's numpy drawing helpers, against the library functions they stand in for.

``inner_boundaries`` replaces ``skimage.segmentation.find_boundaries(mode="inner")`` and
``bright_hues`` replaces ``matplotlib.colors.hsv_to_rgb`` (v = 1) so that xdist workers
need neither import; both libraries are installed, so they are the references here.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from matplotlib.colors import hsv_to_rgb
from skimage.segmentation import find_boundaries

from segqc.report.panels import bright_hues, inner_boundaries


def test_inner_boundaries_by_hand():
    labels = np.zeros((5, 6), np.uint16)
    labels[1:4, 1:4] = 3  # a 3x3 square: all but its centre is boundary
    labels[0:5, 5] = 7  # a column on the image edge, beside background: all boundary
    expected = np.zeros_like(labels, bool)
    expected[1:4, 1:4] = True
    expected[2, 2] = False
    expected[:, 5] = True
    np.testing.assert_array_equal(inner_boundaries(labels), expected)


def test_touching_objects_both_get_an_edge_and_the_image_border_is_not_one():
    labels = np.ones((4, 4), np.int32)
    np.testing.assert_array_equal(inner_boundaries(labels), np.zeros((4, 4), bool))
    labels[:, 2:] = 2
    expected = np.zeros((4, 4), bool)
    expected[:, 1:3] = True
    np.testing.assert_array_equal(inner_boundaries(labels), expected)


@settings(max_examples=150, deadline=None)
@given(
    arrays(
        np.int64,
        st.one_of(
            st.tuples(st.integers(1, 12), st.integers(1, 12)),
            st.tuples(st.integers(1, 6), st.integers(1, 6), st.integers(1, 6)),
        ),
        elements=st.integers(0, 4),
    )
)
def test_inner_boundaries_equal_scikit_image(labels):
    np.testing.assert_array_equal(inner_boundaries(labels), find_boundaries(labels, mode="inner"))


@pytest.mark.parametrize("saturation", [0.0, 0.3, 0.65, 1.0])
def test_bright_hues_equal_matplotlib(saturation):
    hues = np.r_[np.linspace(0, 1, 7)[:-1], np.random.default_rng(0).random(500)]
    hsv = np.stack([hues, np.full_like(hues, saturation), np.ones_like(hues)], axis=-1)
    np.testing.assert_allclose(
        bright_hues(hues, saturation=saturation), hsv_to_rgb(hsv), atol=1e-12
    )
