"""/histogram-clipped against the original service's algorithm, re-implemented here in numpy.

The reference below is written from LCOGT/quickanalysis (``quickanalysis/analysis/
histogram.py`` and the ``/histogram-clipped`` route of ``application.py``), step by
step with numpy itself: percentiles by ``numpy.percentile``, whole-width bins from
the lower percentile, counts by ``numpy.histogram`` (whose last bin is closed) and
``stats`` of every pixel of the frame or sub-region. It is independent of
``components.core``: edges and counts must agree exactly, to the last bit.
"""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
import requests
from astropy.io import fits

from components.core import histogram_clipped


def original_histogram(pixels: np.ndarray, clip_percent: float | None):
    """(counts, edges) as the original service computes them (NaN-free pixels).

    The original tries bin widths 1 to 19 only and fails above (UnboundLocalError);
    the same rule continues here with wider bins.
    """
    low_val, high_val = np.min(pixels), np.max(pixels)
    if clip_percent is not None:
        clip_percent *= 100
        low_val = np.percentile(pixels, clip_percent)
        high_val = np.percentile(pixels, 100 - clip_percent)
    for bin_size in itertools.count(1):
        num_bins = divmod(high_val - low_val, bin_size)[0] + 1
        if num_bins < 5000:
            break
    edges = np.arange(low_val, low_val + (num_bins * bin_size) + 1, bin_size)
    return np.histogram(pixels, bins=edges)


def original_stats(pixels: np.ndarray) -> dict:
    """The original's histogram.stats: of all the pixels (scipy's mode: smallest on ties)."""
    values, counts = np.unique(pixels, return_counts=True)
    return {
        "median": float(np.median(pixels)), "mean": float(np.mean(pixels)),
        "mode": values[np.argmax(counts)].item(), "min": pixels.min().item(), "max": pixels.max().item(),
    }


def original_subregion(pixels: np.ndarray, x0, y0, x1, y1) -> np.ndarray:
    """The original's get_subregion_rect (without its max(y1, y1) typo)."""
    height, width = pixels.shape
    rows = slice(int(np.rint(min(y0, y1) * height)), int(np.rint(max(y0, y1) * height)))
    cols = slice(int(np.rint(min(x0, x1) * width)), int(np.rint(max(x0, x1) * width)))
    return pixels[rows, cols]


def wide_range_frame() -> np.ndarray:
    """uint16, 300 x 400: sky near 1000, a gradient to 60000, saturated stars at 65535.

    The clipped range needs whole bins wider than 1, and many pixels sit exactly
    on the values the original's last edge falls on.
    """
    rng = np.random.default_rng(11)
    sky = rng.normal(1000, 40, size=(300, 400))
    gradient = np.linspace(0, 59000, 400)[None, :] * (rng.random((300, 1)) < 0.3)
    data = np.clip(sky + gradient, 0, 65535).astype(np.uint16)
    data[rng.integers(0, 300, 200), rng.integers(0, 400, 200)] = 65535
    return data


def integer_frames():
    rng = np.random.default_rng(5)
    yield "wide uint16", wide_range_frame()
    yield "int16 negative", rng.integers(-20000, 20000, size=(120, 90)).astype(np.int16)
    yield "int32 beyond 19-wide bins", rng.integers(-50000, 250000, size=(100, 100)).astype(np.int32)
    yield "poisson uint16", rng.poisson(400, size=(200, 150)).astype(np.uint16)
    yield "one row", rng.integers(0, 30000, size=(1, 500)).astype(np.uint16)


CLIPS = [0.001, 0.0001, 0.01, 0.05, 0.25, 0.0]


@pytest.mark.parametrize("clip", CLIPS)
@pytest.mark.parametrize("name, pixels", list(integer_frames()), ids=lambda v: v if isinstance(v, str) else "")
def test_integer_frames_match_the_original_exactly(name, pixels, clip):
    result = histogram_clipped(pixels, clip)
    counts, edges = original_histogram(pixels, clip)
    assert result["edges"] == edges.tolist()
    assert result["counts"] == counts.tolist()
    assert len(result["counts"]) < 5000
    expected = original_stats(pixels)
    assert result["stats"] == pytest.approx(expected, rel=1e-12)


def test_top_edge_pixels_are_counted():
    # clip 0.25 of 0..9 repeated: percentiles 2.25 and 6.75, edges 2.25 .. 7.25;
    # pixels equal to 7.25 cannot exist, so take a case where the top edge is whole.
    pixels = np.repeat(np.arange(11, dtype=np.uint16), 10).reshape(10, 11)
    result = histogram_clipped(pixels, 0.2)
    counts, edges = original_histogram(pixels, 0.2)
    assert edges[-1] == int(edges[-1])  # a whole top edge, holding pixels
    assert result["counts"][-1] == counts[-1] == np.count_nonzero(
        (pixels >= edges[-2]) & (pixels <= edges[-1])
    )
    assert result["edges"] == edges.tolist()


def test_no_bin_above_the_originals_range():
    pixels = wide_range_frame()
    result = histogram_clipped(pixels, 0.001)
    _, edges = original_histogram(pixels, 0.001)
    assert len(result["edges"]) == len(edges) and result["edges"][-1] == edges[-1]


def test_float_frames_of_a_wide_range_match_the_original():
    rng = np.random.default_rng(9)
    pixels = rng.normal(3000, 800, size=(150, 200)).astype(np.float32)
    for clip in (0.001, 0.05, None):
        result = histogram_clipped(pixels, clip)
        counts, edges = original_histogram(pixels, clip)
        assert result["edges"] == edges.tolist()
        assert result["counts"] == counts.tolist()
        assert result["stats"]["median"] == float(np.median(pixels))
        assert result["stats"]["mean"] == pytest.approx(float(np.mean(pixels, dtype=np.float64)), rel=1e-9)


def test_clipped_stats_describe_the_counted_pixels():
    pixels = wide_range_frame()
    result = histogram_clipped(pixels, 0.01)
    edges = result["edges"]
    inside = pixels[(pixels >= edges[0]) & (pixels <= edges[-1])]
    assert inside.size == sum(result["counts"])
    clipped = result["clipped_stats"]
    assert clipped["min"] == inside.min() and clipped["max"] == inside.max()
    assert clipped["median"] == np.median(inside)
    assert clipped["mean"] == pytest.approx(inside.mean(), rel=1e-12)


# ------------------------------------------------------------------ over HTTP


@pytest.fixture(scope="module")
def frames(tmp_path_factory):
    root = tmp_path_factory.mktemp("histogram-compat") / "root"
    (root / "data").mkdir(parents=True)
    data = wide_range_frame()
    fits.PrimaryHDU(data).writeto(root / "data" / "wide.fits")
    return root, data


def _post(server, body):
    response = requests.post(server.url + "/histogram-clipped", data=json.dumps(body), timeout=60)
    assert response.status_code == 200, response.text
    return response.json()["histogram"]


@pytest.mark.parametrize("subregion", [None, {"x0": 0.1, "y0": 0.65, "x1": 0.77, "y1": 0.2}])
def test_api_matches_the_original_on_a_wide_range_frame_and_a_subregion(start_server, frames, subregion):
    root, data = frames
    server = start_server(root, env={"QA_QUALITY": "0"})
    pixels = data if subregion is None else original_subregion(data, **subregion)
    for clip in (0.001, 0.02):
        body = {"full_filename": "wide.fits", "s3_directory": "data", "clip_percent": clip}
        if subregion is not None:
            body["subregion"] = subregion
        histogram = _post(server, body)
        counts, edges = original_histogram(pixels, clip)
        assert histogram["edges"] == edges.tolist()
        assert histogram["counts"] == counts.tolist()
        assert set(histogram) == {"edges", "counts", "stats"}
        assert histogram["stats"] == pytest.approx(original_stats(pixels), rel=1e-12)
