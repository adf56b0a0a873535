"""Quality of tiny, one-row, one-column, 1x1 and all-NaN frames: measured or null, never a 500.

The core is called on read-only arrays, as the frame cache hands them out
(the 1 x 500 frame once answered "buffer source array is read-only").
"""

from __future__ import annotations

import numpy as np
import pytest
import requests
from astropy.io import fits

from app.api_models import QualityResponse
from components.core.quality import quality
from test_api import strict_json

rng = np.random.default_rng(21)

#: name -> (pixels, whether a sky level can be measured)
EDGE_FRAMES = {
    "row_float32": (rng.normal(1000, 10, (1, 500)).astype(np.float32), True),
    "row_uint16": (rng.integers(900, 1100, (1, 500)).astype(np.uint16), True),
    "column_float32": (rng.normal(1000, 10, (500, 1)).astype(np.float32), True),
    "tiny_3x3": (rng.normal(100, 5, (3, 3)).astype(np.float32), True),
    "one_pixel_float32": (np.full((1, 1), 7.0, np.float32), False),
    "one_pixel_uint16": (np.full((1, 1), 7, np.uint16), False),
    "all_nan": (np.full((40, 40), np.nan, np.float32), False),
    "all_nan_1x1": (np.full((1, 1), np.nan, np.float32), False),
    "mostly_nan": (np.where(rng.random((64, 64)) < 0.9, np.nan, 1000.0).astype(np.float32), False),
    "constant_float32": (np.full((50, 50), 5.0, np.float32), True),
}


def read_only(array: np.ndarray) -> np.ndarray:
    array = array.copy()
    array.setflags(write=False)
    return array


def check_edge_result(result: dict, measurable: bool, nan_only: bool) -> None:
    if measurable:
        assert result["background"] is not None and np.isfinite(result["background"])
        assert result["background_rms"] is not None and result["star_count"] == 0
    else:
        assert result["background"] is None and result["background_rms"] is None
        assert result["star_count"] is None and result["verdicts"]["star_count"] == "unknown"
    assert result["fwhm_px"] is None and result["hfr_px"] is None and result["elongation"] is None
    assert result["verdicts"]["fwhm"] == "unknown"
    if nan_only:
        assert result["saturated_fraction"] is None


@pytest.mark.parametrize("name", list(EDGE_FRAMES))
def test_core_measures_or_gives_null(name):
    pixels, measurable = EDGE_FRAMES[name]
    result = quality(read_only(pixels))
    check_edge_result(result, measurable, nan_only=not np.isfinite(pixels).any())


def test_core_sky_level_of_a_single_row_is_the_rows():
    pixels, _ = EDGE_FRAMES["row_float32"]
    result = quality(read_only(pixels))
    assert result["background"] == pytest.approx(1000, abs=5)
    assert result["background_rms"] == pytest.approx(10, rel=0.3)


def test_core_never_writes_to_the_callers_array():
    pixels = rng.normal(1000, 10, (64, 64)).astype(np.float32)
    before = pixels.copy()
    quality(pixels)
    assert np.array_equal(pixels, before)


def test_core_refuses_empty_and_non_2d_frames():
    from components.errors import InvalidRequest

    for pixels in (np.zeros((0, 5), np.float32), np.zeros(5, np.float32)):
        with pytest.raises(InvalidRequest):
            quality(pixels)


# ------------------------------------------------------------------ over HTTP


@pytest.fixture(scope="module")
def edge_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("quality-edges") / "root"
    (root / "data").mkdir(parents=True)
    for name, (pixels, _) in EDGE_FRAMES.items():
        fits.PrimaryHDU(pixels).writeto(root / "data" / f"{name}.fits")
    return root


def test_http_quality_of_edge_frames(start_server, edge_root):
    server = start_server(edge_root, env={"QA_QUALITY": "0"})
    for name, (pixels, measurable) in EDGE_FRAMES.items():
        body = {"full_filename": f"{name}.fits", "s3_directory": "data"}
        # Twice: the second answer comes from the cache's read-only array.
        for _ in range(2):
            response = requests.post(server.url + "/quality", json=body, timeout=60)
            assert response.status_code == 200, (name, response.text)
            payload = strict_json(response)
            QualityResponse.model_validate(payload)
            check_edge_result(payload["quality"], measurable, nan_only=not np.isfinite(pixels).any())


def test_http_quality_of_a_one_pixel_subregion(start_server, edge_root):
    server = start_server(edge_root, env={"QA_QUALITY": "0"})
    body = {"full_filename": "row_float32.fits", "s3_directory": "data",
            "subregion": {"x0": 0.5, "y0": 0, "x1": 0.501, "y1": 1}}
    response = requests.post(server.url + "/quality", json=body, timeout=60)
    assert response.status_code == 200, response.text
    check_edge_result(strict_json(response)["quality"], measurable=False, nan_only=False)
