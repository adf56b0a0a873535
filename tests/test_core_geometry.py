"""components.core.geometry: line profiles and sub-regions."""

import math

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from components.core import line_profile, relative_to_pixel, subregion
from components.errors import InvalidRequest


@pytest.fixture
def x_gradient():
    # The original service's test image: 4 rows of np.linspace(0, 3, 7).
    return np.tile(np.linspace(0, 3, 7), (4, 1))


@pytest.fixture
def y_gradient():
    return np.tile(np.linspace(0, 3, 7), (4, 1)).T


def test_original_service_x_gradient_line_along_x0_sums_to_zero(x_gradient):
    profile = line_profile(x_gradient, (0, 0), (0, 1))
    assert profile.values.sum() == 0
    assert len(profile) == 4


def test_original_service_y_gradient_line_along_y0_sums_to_zero(y_gradient):
    profile = line_profile(y_gradient, (0, 0), (1, 0))
    assert profile.values.sum() == 0
    assert len(profile) == 4


def test_line_along_gradient_reads_the_gradient(x_gradient):
    profile = line_profile(x_gradient, (0, 0.5), (1, 0.5))
    assert_allclose(profile.values, np.linspace(0, 3, 7))
    assert_allclose(profile.distance, np.arange(7))
    assert_allclose(profile.x, np.arange(7))
    assert_allclose(profile.y, 1.5)


def test_sample_count_is_ceil_of_length_plus_one():
    image = np.zeros((101, 201))
    profile = line_profile(image, (0, 0), (1, 1))
    length = math.hypot(200, 100)
    assert len(profile) == math.ceil(length) + 1
    assert profile.distance[-1] == pytest.approx(length)
    assert (profile.x[0], profile.y[0]) == (0, 0)
    assert (profile.x[-1], profile.y[-1]) == (200, 100)


def test_zero_length_line_has_one_sample():
    image = np.arange(12.0).reshape(3, 4)
    profile = line_profile(image, (1, 1), (1, 1))
    assert len(profile) == 1
    assert profile.values[0] == 11.0


def test_bilinear_interpolation_returns_floats_not_image_dtype():
    image = np.array([[0, 1], [2, 3]], dtype=np.uint8)
    profile = line_profile(image, (0, 0), (1, 1))
    assert profile.values.dtype == np.float64
    # Samples at (0,0), (0.5,0.5), (1,1): the middle one averages all four.
    assert_allclose(profile.values, [0, 1.5, 3])


def test_y_zero_is_the_top_row():
    image = np.zeros((5, 5))
    image[0] = 7
    assert_allclose(line_profile(image, (0, 0), (1, 0)).values, 7)
    assert_allclose(line_profile(image, (0, 1), (1, 1)).values, 0)


def test_width_averages_parallel_lines():
    rng = np.random.default_rng(0)
    image = rng.normal(size=(50, 60))
    wide = line_profile(image, (0, 0.5), (1, 0.5), width=3)
    rows = [line_profile(image, (0, r / 49), (1, r / 49)).values for r in (23.5, 24.5, 25.5)]
    assert_allclose(wide.values, np.mean(rows, axis=0))


def test_width_on_a_constant_image_is_exact():
    image = np.full((20, 20), 4.25, dtype=np.float32)
    assert_allclose(line_profile(image, (0.1, 0.2), (0.9, 0.7), width=5).values, 4.25)


def test_big_endian_image_gives_same_profile():
    rng = np.random.default_rng(1)
    image = rng.normal(size=(30, 40)).astype(">f4")
    native = image.astype("<f4")
    assert_allclose(
        line_profile(image, (0.1, 0.1), (0.9, 0.8)).values,
        line_profile(native, (0.1, 0.1), (0.9, 0.8)).values,
    )


def test_nan_pixel_reaches_only_its_neighbouring_samples():
    image = np.ones((3, 11))
    image[1, 5] = np.nan
    values = line_profile(image, (0, 0.5), (1, 0.5)).values
    assert np.isnan(values[5])
    assert np.isfinite(np.delete(values, 5)).all()


def test_one_by_one_image():
    profile = line_profile(np.array([[3.0]]), (0, 0), (1, 1))
    assert len(profile) == 1 and profile.values[0] == 3.0


@pytest.mark.parametrize(
    "start", [(-0.1, 0), (0, 1.01), (math.nan, 0.5), (math.inf, 0), ("a", 0), (0.5,), None]
)
def test_bad_points_are_refused(start):
    with pytest.raises(InvalidRequest):
        line_profile(np.zeros((4, 4)), start, (1, 1))


def test_bad_width_and_bad_image_are_refused():
    with pytest.raises(InvalidRequest):
        line_profile(np.zeros((4, 4)), (0, 0), (1, 1), width=0)
    with pytest.raises(InvalidRequest):
        line_profile(np.zeros(4), (0, 0), (1, 1))
    with pytest.raises(InvalidRequest):
        line_profile(np.zeros((0, 4)), (0, 0), (1, 1))


def test_relative_to_pixel():
    assert relative_to_pixel((0, 0), (4, 7)) == (0, 0)
    assert relative_to_pixel((1, 1), (4, 7)) == (6, 3)


def test_subregion_rows_and_columns_follow_rint():
    image = np.arange(100).reshape(10, 10)
    box = subregion(image, 0.12, 0.26, 0.58, 0.71)
    assert_array_equal(box, image[3:7, 1:6])


def test_subregion_corners_in_any_order():
    image = np.arange(100).reshape(10, 10)
    expected = subregion(image, 0.1, 0.2, 0.5, 0.9)
    for corners in [(0.5, 0.9, 0.1, 0.2), (0.1, 0.9, 0.5, 0.2), (0.5, 0.2, 0.1, 0.9)]:
        assert_array_equal(subregion(image, *corners), expected)


def test_subregion_is_a_view():
    image = np.zeros((10, 10))
    assert np.shares_memory(subregion(image, 0, 0, 0.5, 0.5), image)


def test_tiny_subregion_covers_one_pixel_each_way():
    image = np.arange(100).reshape(10, 10)
    assert subregion(image, 0.50, 0.50, 0.51, 0.51).shape == (1, 1)
    assert subregion(image, 0.99, 0.99, 1.0, 1.0).shape == (1, 1)
    assert subregion(image, 0, 0, 0.01, 0.01).shape == (1, 1)


def test_whole_frame_subregion():
    image = np.arange(12).reshape(3, 4)
    assert_array_equal(subregion(image, 0, 0, 1, 1), image)


@pytest.mark.parametrize("corners", [(0.2, 0.1, 0.2, 0.9), (0.1, 0.3, 0.9, 0.3), (0.5, 0.5, 0.5, 0.5)])
def test_zero_area_subregion_is_a_clear_error(corners):
    with pytest.raises(InvalidRequest, match="zero area"):
        subregion(np.zeros((10, 10)), *corners)


def test_subregion_outside_unit_square_is_refused():
    with pytest.raises(InvalidRequest):
        subregion(np.zeros((10, 10)), 0, 0, 1.5, 1)
