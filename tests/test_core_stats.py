"""components.core.stats: statistics and clipped histograms against numpy/scipy."""

import math

import numpy as np
import pytest
import scipy.stats
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from numpy.testing import assert_allclose

from components.core import histogram_clipped, statistics
from components.core.stats import MAX_BINS, STAT_KEYS
from components.errors import InvalidRequest


def reference(array):
    """The straightforward numpy/scipy computation over the finite pixels."""
    finite = np.asarray(array, dtype=np.float64)
    finite = finite[np.isfinite(finite)]
    return {
        "mean": finite.mean(),
        "median": np.median(finite),
        "min": finite.min(),
        "max": finite.max(),
        "std": finite.std(),
        "median_abs_deviation": scipy.stats.median_abs_deviation(finite),
        "count": finite.size,
    }


def assert_matches_reference(result, array, rtol=1e-9):
    for key, value in reference(array).items():
        assert_allclose(result[key], value, rtol=rtol, atol=1e-9, err_msg=key)


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.uint16, np.int16, np.int32, np.uint32, np.int64])
def test_integer_statistics_match_numpy(dtype):
    rng = np.random.default_rng(42)
    array = rng.integers(0, 120, size=(97, 131)).astype(dtype)
    result = statistics(array)
    assert_matches_reference(result, array)
    assert result["mode"] == scipy.stats.mode(array, axis=None).mode
    assert result["nonfinite"] == 0


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_float_statistics_match_numpy(dtype):
    rng = np.random.default_rng(7)
    array = rng.normal(1000, 25, size=(211, 157)).astype(dtype)
    assert_matches_reference(statistics(array), array)


def test_result_is_plain_python_numbers_with_every_key():
    for array in (np.arange(10, dtype=np.uint16), np.linspace(0, 1, 10, dtype=np.float32)):
        result = statistics(array)
        assert tuple(result) == STAT_KEYS
        for value in result.values():
            assert type(value) in (int, float)


def test_integer_mode_is_smallest_on_ties():
    assert statistics(np.array([5, 5, 3, 3, 9], dtype=np.int16))["mode"] == 3


def test_integer_median_of_even_count_averages_the_middle_pair():
    assert statistics(np.array([1, 2, 3, 10], dtype=np.uint16))["median"] == 2.5


def test_float_mode_finds_the_peak_of_the_distribution():
    rng = np.random.default_rng(3)
    array = np.concatenate([rng.normal(50, 1, 20000), rng.normal(200, 20, 5000)])
    assert statistics(array)["mode"] == pytest.approx(50, abs=1.0)


def test_nan_and_inf_pixels_are_ignored_and_counted():
    rng = np.random.default_rng(5)
    array = rng.normal(10, 2, size=(50, 50)).astype(np.float32)
    array[3, :7] = np.nan
    array[4, 0] = np.inf
    array[4, 1] = -np.inf
    result = statistics(array)
    assert result["nonfinite"] == 9
    assert result["count"] == 2500 - 9
    assert_matches_reference(result, array)
    assert all(math.isfinite(v) for v in result.values())


def test_all_nan_gives_none_values():
    result = statistics(np.full((4, 4), np.nan))
    assert result["count"] == 0 and result["nonfinite"] == 16
    assert all(result[key] is None for key in STAT_KEYS[:7])


def test_empty_array():
    result = statistics(np.zeros((0, 5), dtype=np.uint16))
    assert result["count"] == 0 and result["mean"] is None
    assert histogram_clipped(np.zeros((0, 5)), None)["counts"] == []


def test_one_by_one():
    for dtype in (np.uint16, np.float32):
        result = statistics(np.array([[7]], dtype=dtype))
        assert (result["min"], result["max"], result["median"], result["mode"]) == (7, 7, 7, 7)
        assert result["std"] == 0 and result["median_abs_deviation"] == 0 and result["count"] == 1


def test_constant_float_frame():
    result = statistics(np.full((30, 30), -0.25, dtype=np.float32))
    assert result["median"] == result["mode"] == result["min"] == -0.25
    assert result["std"] == 0


def test_big_endian_input():
    rng = np.random.default_rng(9)
    array = rng.integers(0, 5000, size=(40, 40)).astype(">u2")
    assert statistics(array) == statistics(array.astype("<u2"))
    floats = array.astype(">f4")
    assert statistics(floats) == statistics(floats.astype("<f4"))


def test_non_contiguous_subregion_view():
    rng = np.random.default_rng(11)
    frame = rng.integers(0, 1000, size=(100, 100)).astype(np.uint16)
    view = frame[10:60:3, 5:90:2]
    assert_matches_reference(statistics(view), view)


def test_wide_integer_range_falls_back_exactly():
    rng = np.random.default_rng(12)
    array = rng.integers(-(2**40), 2**40, size=(30, 30), dtype=np.int64)
    assert_matches_reference(statistics(array), array)


def test_bool_data():
    result = statistics(np.array([True, False, True]))
    assert result["mean"] == pytest.approx(2 / 3) and result["mode"] == 1


_shapes = hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=40)
_arrays = st.one_of(
    hnp.arrays(np.uint16, _shapes),
    hnp.arrays(np.int32, _shapes, elements=st.integers(-(10**6), 10**6)),
    hnp.arrays(np.float32, _shapes, elements=st.floats(-1e6, 1e6, width=32)),
    hnp.arrays(np.float64, _shapes, elements=st.floats(-1e6, 1e6)),
)


@settings(max_examples=60, deadline=None)
@given(_arrays)
def test_statistics_match_numpy_on_arbitrary_arrays(array):
    result = statistics(array)
    assert_matches_reference(result, array, rtol=1e-6)


# --- histogram_clipped ----------------------------------------------------


def test_integer_histogram_has_integer_aligned_unit_bins():
    array = np.array([0, 1, 1, 2, 2, 2, 7], dtype=np.uint16)
    histogram = histogram_clipped(array, None)
    assert histogram["edges"] == list(range(0, 9))
    assert histogram["counts"] == [1, 2, 3, 0, 0, 0, 0, 1]
    assert histogram["stats"] == {"median": 2.0, "mean": 15 / 7, "mode": 2, "min": 0, "max": 7}


def test_integer_histogram_counts_match_numpy():
    rng = np.random.default_rng(2)
    array = rng.poisson(300, size=(200, 200)).astype(np.uint16)
    histogram = histogram_clipped(array, None)
    counts, _ = np.histogram(array, bins=np.array(histogram["edges"]))
    assert histogram["counts"] == counts.tolist()


def test_int32_range_0_to_200000_gets_fewer_than_5000_integer_bins():
    array = np.array([0, 5, 100000, 200000], dtype=np.int32)
    histogram = histogram_clipped(array, None)
    edges = np.array(histogram["edges"])
    widths = np.diff(edges)
    assert len(histogram["counts"]) == len(edges) - 1 < MAX_BINS
    assert (widths == widths[0]).all() and widths[0] == math.ceil(200001 / (MAX_BINS - 1))
    assert edges[0] == 0 and edges[-1] > 200000
    assert sum(histogram["counts"]) == 4


def test_float_histogram_negative_to_160():
    rng = np.random.default_rng(4)
    array = rng.uniform(-0.03, 160, size=(300, 300)).astype(np.float32)
    histogram = histogram_clipped(array, None)
    assert len(histogram["counts"]) == len(histogram["edges"]) - 1 <= MAX_BINS
    # A range over 100 values: the original's whole-width bins from the minimum.
    assert histogram["edges"][0] == array.min()
    assert np.diff(histogram["edges"]) == pytest.approx(1.0)
    assert histogram["edges"][-2] <= array.max() < histogram["edges"][-1]
    assert sum(histogram["counts"]) == array.size
    counts, _ = np.histogram(array, bins=np.array(histogram["edges"]))
    assert histogram["counts"] == counts.tolist()


def test_clip_percent_uses_the_percentiles():
    rng = np.random.default_rng(6)
    array = rng.normal(0, 1, size=(300, 300))
    histogram = histogram_clipped(array, 0.01)
    low, high = np.percentile(array, [1, 99])
    assert histogram["edges"][0] == pytest.approx(low, rel=1e-12)
    assert histogram["edges"][-1] == pytest.approx(high, rel=1e-12)
    inside = array[(array >= low) & (array <= high)]
    assert sum(histogram["counts"]) == inside.size
    clipped = histogram["clipped_stats"]
    assert_allclose(
        [clipped["median"], clipped["mean"], clipped["min"], clipped["max"]],
        [np.median(inside), inside.mean(), inside.min(), inside.max()],
    )
    # The stats describe every pixel: the clip only limits the histogram.
    stats = histogram["stats"]
    assert_allclose(
        [stats["median"], stats["mean"], stats["min"], stats["max"]],
        [np.median(array), array.mean(), array.min(), array.max()],
    )


def test_integer_clip_edges_start_at_the_percentile():
    rng = np.random.default_rng(8)
    array = rng.integers(0, 1000, size=(100, 100)).astype(np.uint16)
    histogram = histogram_clipped(array, 0.05)
    low, high = np.percentile(array, [5, 95])
    assert histogram["edges"][0] == low
    assert histogram["edges"][-2] <= high < histogram["edges"][-1]


def test_default_clip_is_one_per_mille():
    rng = np.random.default_rng(10)
    array = rng.normal(size=(100, 100))
    assert histogram_clipped(array) == histogram_clipped(array, 0.001)


def test_constant_frames():
    for array in (np.full((8, 8), 3, dtype=np.uint16), np.full((8, 8), 2.5)):
        histogram = histogram_clipped(array, 0.001)
        assert sum(histogram["counts"]) == 64 and len(histogram["counts"]) == 1
        assert histogram["stats"]["median"] == histogram["stats"]["min"] == array[0, 0]


def test_histogram_ignores_nan():
    array = np.array([[1.0, np.nan], [2.0, 3.0]])
    histogram = histogram_clipped(array, None)
    assert sum(histogram["counts"]) == 3
    assert all(math.isfinite(v) for v in histogram["edges"])


@pytest.mark.parametrize("clip", [-0.1, 0.5, 0.7, "x", math.nan])
def test_bad_clip_percent_is_refused(clip):
    with pytest.raises(InvalidRequest, match="clip_percent"):
        histogram_clipped(np.zeros((3, 3)), clip)


@settings(max_examples=40, deadline=None)
@given(
    hnp.arrays(
        dtype=st.sampled_from([np.uint16, np.int16, np.float32]),
        shape=hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=30),
    ),
    st.sampled_from([None, 0.0, 0.001, 0.1, 0.49]),
)
def test_histogram_is_always_well_formed(array, clip):
    histogram = histogram_clipped(array, clip)
    finite = np.isfinite(array.astype(np.float64)).sum()
    if finite == 0:
        assert histogram["counts"] == []
        return
    assert len(histogram["counts"]) == len(histogram["edges"]) - 1 < MAX_BINS
    # A clipped range may hold no pixel (the original's bins); an unclipped one always does.
    assert 0 <= sum(histogram["counts"]) <= finite
    if not clip:
        assert sum(histogram["counts"]) == finite
    assert all(math.isfinite(v) for v in histogram["edges"])
    assert all(math.isfinite(v) for v in histogram["stats"].values())
    assert np.all(np.diff(histogram["edges"]) > 0)


def test_integer_clip_between_two_values_gives_the_originals_empty_bin():
    # The 49th and 51st percentiles of [0, 0, 3, 3] (1.41, 1.59) fall between
    # the pixels: the original's one bin [1.41, 2.41] counts none of them.
    histogram = histogram_clipped(np.array([[0, 0, 3, 3]], dtype=np.uint16), 0.49)
    assert histogram["edges"] == pytest.approx([1.41, 2.41]) and histogram["counts"] == [0]
    assert histogram["stats"] == {"median": 1.5, "mean": 1.5, "mode": 0, "min": 0, "max": 3}
    assert set(histogram["clipped_stats"].values()) == {None}


def test_narrow_float_clip_between_two_values_keeps_the_bracketing_pixels():
    histogram = histogram_clipped(np.array([[0, 0, 3, 3]], dtype=np.float32), 0.49)
    assert sum(histogram["counts"]) == 4
    assert histogram["clipped_stats"]["min"] == 0 and histogram["clipped_stats"]["max"] == 3
    assert histogram["stats"]["median"] == 1.5
