"""The REST API over real HTTP, against a real server reading a local folder.

Expected values come from ``components.core`` applied to the very arrays the
frames were written from, so these tests check the wiring (request parsing,
frame lookup, cache, JSON) rather than re-testing the numerics.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import requests
from astropy.io import fits

from app.api_models import (
    ErrorResponse,
    HeaderResponse,
    HealthResponse,
    HistogramResponse,
    ImageResponse,
    ImagesResponse,
    LineProfileRequest,
    LineProfileResponse,
    StatisticsRequest,
    StatisticsResponse,
)
from components.core import histogram_clipped, line_profile, statistics, subregion
from conftest import PROJECT, ServerProcess, free_port, wait_for_http

STAT_FIELDS = ["median", "mean", "mode", "min", "max", "std", "median_abs_deviation"]


# ------------------------------------------------------------------ helpers shared by the API tests


@contextlib.contextmanager
def running_server(tmp_path_factory, root: Path, env: dict | None = None):
    """A ``python -m app.cli serve`` process on a free port, for a whole test module.

    Mirrors conftest's ``start_server`` (same command and readiness check), but
    module-scoped: one server start serves dozens of requests.
    """
    port = free_port()
    log = tmp_path_factory.mktemp("server") / "server.log"
    command = [
        sys.executable, "-m", "app.cli", "serve", "--root", str(root), "--port", str(port),
        "--address", "127.0.0.1", "--no-demo",
    ]
    process = subprocess.Popen(
        command, cwd=PROJECT, env={**os.environ, **(env or {})},
        stdout=log.open("w"), stderr=subprocess.STDOUT,
    )
    server = ServerProcess(root, port, process, log)
    try:
        try:
            wait_for_http(server.url + "/health", process)
        except Exception as error:
            raise RuntimeError(f"{error}\n--- server log ---\n{log.read_text()}") from error
        yield server
    finally:
        server.stop()


def _no_constant(name):
    raise AssertionError(f"{name} in JSON")


def strict_json(response: requests.Response):
    """The JSON of ``response``, refusing NaN/Infinity, which browsers cannot parse."""
    assert response.headers["Content-Type"].startswith("application/json"), response.headers
    return json.loads(response.text, parse_constant=_no_constant)


def write_fits(path: Path, data: np.ndarray, **cards) -> Path:
    """A FITS file written with astropy directly (independent of the code under test)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    header = fits.Header()
    for key, value in cards.items():
        header[key] = value
    header.add_comment("written by the API tests")
    header.add_history("created")
    fits.PrimaryHDU(data, header=header).writeto(path, overwrite=True)
    return path


def ramp() -> np.ndarray:
    """uint16, 60 x 80, pixel (row, col) = 80 * row + col."""
    return np.arange(60 * 80, dtype=np.uint16).reshape(60, 80)


def noisy() -> np.ndarray:
    """uint16 sky with a few bright pixels."""
    rng = np.random.default_rng(7)
    data = rng.normal(1000, 30, size=(50, 70)).astype(np.uint16)
    data[10, 10] = 60000
    data[40, 60] = 50000
    return data


def with_nans() -> np.ndarray:
    """float32 with one NaN column and one inf pixel."""
    rng = np.random.default_rng(3)
    data = rng.normal(0.0, 1.0, size=(40, 50)).astype(np.float32)
    data[:, 25] = np.nan
    data[5, 5] = np.inf
    return data


def expected_profile(data, start, end) -> list:
    values = line_profile(data, start, end).values
    return [float(v) if math.isfinite(v) else None for v in values]


def assert_close(got: dict, expected: dict, keys) -> None:
    for key in keys:
        if expected[key] is None:
            assert got[key] is None, key
        else:
            assert got[key] == pytest.approx(expected[key], rel=1e-9, abs=1e-9), key


# ------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def local_root(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("api-local")
    root = base / "root"
    data = root / "data"
    write_fits(data / "ramp.fits", ramp(), OBJECT="RAMP", EXPTIME=1.5, FLAG=True)
    write_fits(data / "noisy.fits", noisy(), OBJECT="NOISY")
    write_fits(data / "nan.fits", with_nans(), OBJECT="NANS")
    write_fits(data / "sub" / "nested.fits", ramp()[::2, ::2].copy())
    write_fits(data / "cached.fits", noisy(), OBJECT="CACHED")
    write_fits(root / "info-images" / "info.fits", noisy())
    write_fits(root / "secret.fits", noisy())  # inside the root, outside every folder
    write_fits(base / "outside.fits", noisy())  # outside the root altogether
    (data / "junk.fits").write_bytes(b"this is not a FITS file\n" * 200)
    (data / "empty.fits").write_bytes(b"")
    (data / "folder.fits").mkdir()
    try:
        (data / "escape.fits").symlink_to(base / "outside.fits")
    except OSError:
        pass
    # Known modification times for /images ordering: ramp newest, then noisy, then nan.
    for offset, name in enumerate(["ramp.fits", "noisy.fits", "nan.fits"]):
        os.utime(data / name, (1_700_000_000 - offset * 100, 1_700_000_000 - offset * 100))
    return root


@pytest.fixture(scope="module")
def server(tmp_path_factory, local_root):
    with running_server(tmp_path_factory, local_root) as process:
        yield process


@pytest.fixture(scope="module")
def url(server) -> str:
    return server.url


def post(url: str, path: str, body) -> requests.Response:
    return requests.post(url + path, json=body, timeout=60)


def frame(name: str = "ramp.fits", directory: str = "data", **extra) -> dict:
    return {"full_filename": name, "s3_directory": directory, **extra}


# ------------------------------------------------------------------ success shapes


def test_health(url):
    response = requests.get(url + "/health", timeout=10)
    assert response.status_code == 200
    body = strict_json(response)
    assert body == {"success": True, "status": "ok"}
    HealthResponse.model_validate(body)


def test_lineprofile_shape_and_values(url):
    body = frame(start={"x": 0, "y": 0}, end={"x": 1, "y": 0})
    response = post(url, "/lineprofile", body)
    assert response.status_code == 200, response.text
    result = strict_json(response)
    LineProfileResponse.model_validate(result)
    assert set(result) == {"success", "data", "start", "end"}
    assert result["success"] is True
    assert result["start"] == [0, 0] and result["end"] == [1, 0]
    # The top row of the ramp: one sample per pixel, exactly the pixel values.
    assert result["data"] == [float(v) for v in ramp()[0]]


def test_lineprofile_diagonal_matches_core(url):
    start, end = (0.1, 0.9), (0.8, 0.05)
    body = frame(start={"x": start[0], "y": start[1]}, end={"x": end[0], "y": end[1]})
    result = strict_json(post(url, "/lineprofile", body))
    assert result["data"] == pytest.approx(expected_profile(ramp(), start, end))
    assert result["start"] == list(start) and result["end"] == list(end)


def test_lineprofile_nan_becomes_null(url):
    body = frame("nan.fits", start={"x": 0, "y": 0.5}, end={"x": 1, "y": 0.5})
    response = post(url, "/lineprofile", body)
    assert response.status_code == 200
    assert "NaN" not in response.text and "Infinity" not in response.text
    result = strict_json(response)
    expected = expected_profile(with_nans(), (0, 0.5), (1, 0.5))
    assert None in expected
    assert [v is None for v in result["data"]] == [v is None for v in expected]
    assert [v for v in result["data"] if v is not None] == pytest.approx(
        [v for v in expected if v is not None]
    )


def test_statistics_whole_frame(url):
    body = frame("noisy.fits", site="tst")  # unknown field, sent by the real client
    response = post(url, "/statistics", body)
    assert response.status_code == 200, response.text
    result = strict_json(response)
    StatisticsResponse.model_validate(result)
    assert set(result) == {"success", "stats", "params"}
    assert set(result["stats"]) == set(STAT_FIELDS)
    assert result["params"] == body
    expected = statistics(noisy())
    assert_close(result["stats"], expected, STAT_FIELDS)
    assert result["stats"]["median"] == float(np.median(noisy()))
    assert result["stats"]["max"] == 60000


def test_statistics_subregion_corners_in_any_order(url):
    ordered = {"x0": 0.2, "y0": 0.1, "x1": 0.7, "y1": 0.6, "shape": "rect"}
    swapped = {"x0": 0.7, "y0": 0.6, "x1": 0.2, "y1": 0.1, "shape": "rect"}
    first = strict_json(post(url, "/statistics", frame("noisy.fits", subregion=ordered)))
    second = strict_json(post(url, "/statistics", frame("noisy.fits", subregion=swapped)))
    assert first["stats"] == second["stats"]
    expected = statistics(subregion(noisy(), 0.2, 0.1, 0.7, 0.6))
    assert_close(first["stats"], expected, STAT_FIELDS)
    assert second["params"]["subregion"] == swapped


def test_statistics_null_subregion_is_whole_frame(url):
    result = strict_json(post(url, "/statistics", frame("ramp.fits", subregion=None)))
    assert_close(result["stats"], statistics(ramp()), STAT_FIELDS)


def test_statistics_float_frame_with_nan_and_inf(url):
    response = post(url, "/statistics", frame("nan.fits"))
    assert response.status_code == 200
    result = strict_json(response)
    assert_close(result["stats"], statistics(with_nans()), STAT_FIELDS)


def test_statistics_in_a_subfolder(url):
    result = strict_json(post(url, "/statistics", frame("sub/nested.fits")))
    assert_close(result["stats"], statistics(ramp()[::2, ::2]), STAT_FIELDS)


def test_histogram_default_clip(url):
    body = frame("noisy.fits")
    response = post(url, "/histogram-clipped", body)
    assert response.status_code == 200, response.text
    result = strict_json(response)
    HistogramResponse.model_validate(result)
    assert set(result) == {"success", "histogram", "params"}
    assert set(result["histogram"]) == {"edges", "counts", "stats"}
    assert set(result["histogram"]["stats"]) == {"median", "mean", "mode", "min", "max"}
    assert result["params"] == body
    expected = histogram_clipped(noisy(), 0.001)
    assert result["histogram"]["edges"] == pytest.approx(expected["edges"])
    assert result["histogram"]["counts"] == expected["counts"]
    assert len(result["histogram"]["counts"]) == len(result["histogram"]["edges"]) - 1
    # Clipping 0.1% at each end drops the two bright pixels from the histogram;
    # the stats describe every pixel, as the original's do.
    assert result["histogram"]["edges"][-1] < 50000
    assert result["histogram"]["stats"]["max"] == 60000


def test_histogram_explicit_clip_and_null(url):
    explicit = strict_json(post(url, "/histogram-clipped", frame("noisy.fits", clip_percent=0.001)))
    default = strict_json(post(url, "/histogram-clipped", frame("noisy.fits")))
    assert explicit["histogram"] == default["histogram"]
    unclipped = strict_json(post(url, "/histogram-clipped", frame("noisy.fits", clip_percent=None)))
    expected = histogram_clipped(noisy(), None)
    assert unclipped["histogram"]["counts"] == expected["counts"]
    assert unclipped["histogram"]["stats"]["max"] == 60000
    assert unclipped["params"]["clip_percent"] is None
    wide = strict_json(post(url, "/histogram-clipped", frame("noisy.fits", clip_percent=0.25)))
    assert sum(wide["histogram"]["counts"]) < sum(unclipped["histogram"]["counts"])


def test_histogram_subregion_and_float_frame(url):
    region = {"x0": 0.9, "y0": 0.9, "x1": 0.1, "y1": 0.1}
    result = strict_json(post(url, "/histogram-clipped", frame("nan.fits", subregion=region)))
    expected = histogram_clipped(subregion(with_nans(), 0.1, 0.1, 0.9, 0.9), 0.001)
    assert result["histogram"]["counts"] == expected["counts"]
    assert result["histogram"]["edges"] == pytest.approx(expected["edges"])
    assert_close(result["histogram"]["stats"], expected["stats"], ["median", "mean", "mode", "min", "max"])


def _png(data: bytes):
    from PIL import Image

    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


LINE_QUERY = {"filename": "ramp.fits", "s3_directory": "data", "x0": 0.1, "y0": 0.2, "x1": 0.9, "y1": 0.8}


def test_lineprofiledisplay_get_json(url):
    response = requests.get(url + "/lineprofiledisplay", params=LINE_QUERY, timeout=60)
    assert response.status_code == 200, response.text
    result = strict_json(response)
    ImageResponse.model_validate(result)
    assert set(result) == {"success", "image"}
    prefix = "data:image/png;base64,"
    assert result["image"].startswith(prefix)
    image = _png(base64.b64decode(result["image"][len(prefix):]))
    assert image.width > 300 and image.height > 300


def test_lineprofiledisplay_raw_png(url):
    raw = requests.get(url + "/lineprofiledisplay", params={**LINE_QUERY, "format": "png"}, timeout=60)
    assert raw.status_code == 200
    assert raw.headers["Content-Type"] == "image/png"
    _png(raw.content)
    accept = requests.get(
        url + "/lineprofiledisplay", params=LINE_QUERY, headers={"Accept": "image/png"}, timeout=60
    )
    assert accept.headers["Content-Type"] == "image/png"
    _png(accept.content)
    # A browser's <img> asks for image/*; a JSON client for application/json.
    browser = requests.get(
        url + "/lineprofiledisplay", params=LINE_QUERY,
        headers={"Accept": "image/avif,image/webp,image/*,*/*;q=0.8"}, timeout=60,
    )
    assert browser.headers["Content-Type"] == "image/png"
    client = requests.get(
        url + "/lineprofiledisplay", params=LINE_QUERY,
        headers={"Accept": "application/json, image/png;q=0.5"}, timeout=60,
    )
    assert strict_json(client)["success"] is True


def test_lineprofiledisplay_post_json(url):
    response = post(url, "/lineprofiledisplay", {**LINE_QUERY, "site": "tst"})
    assert response.status_code == 200, response.text
    assert strict_json(response)["image"].startswith("data:image/png;base64,")
    # full_filename is accepted in place of filename; format=png in the body.
    body = {**LINE_QUERY, "format": "png"}
    body["full_filename"] = body.pop("filename")
    raw = post(url, "/lineprofiledisplay", body)
    assert raw.headers["Content-Type"] == "image/png"
    _png(raw.content)


def test_lineprofiledisplay_float_frame_with_nans(url):
    query = {**LINE_QUERY, "filename": "nan.fits", "format": "png"}
    response = requests.get(url + "/lineprofiledisplay", params=query, timeout=60)
    assert response.status_code == 200, response.text
    _png(response.content)


def test_images_newest_first(url, local_root):
    response = requests.get(url + "/images", params={"s3_directory": "data"}, timeout=10)
    assert response.status_code == 200, response.text
    result = strict_json(response)
    ImagesResponse.model_validate(result)
    names = [item["full_filename"] for item in result["images"]]
    assert {"ramp.fits", "noisy.fits", "nan.fits", "sub/nested.fits"} <= set(names)
    dated = [n for n in names if n in ("ramp.fits", "noisy.fits", "nan.fits")]
    assert dated == ["ramp.fits", "noisy.fits", "nan.fits"]
    assert names.index("nan.fits") > names.index("cached.fits")  # the 2023 frames are oldest
    modified = [item["modified"] for item in result["images"]]
    assert modified == sorted(modified, reverse=True)
    item = result["images"][names.index("ramp.fits")]
    assert item["s3_directory"] == "data"
    assert item["size"] == (local_root / "data" / "ramp.fits").stat().st_size
    assert item["modified"].startswith("2023-11-14T22:13:20")
    # Every listed name works as full_filename.
    check = post(url, "/statistics", frame("sub/nested.fits"))
    assert check.status_code == 200


def test_images_limit_and_all_folders(url):
    limited = strict_json(requests.get(url + "/images", params={"s3_directory": "data", "limit": 2}, timeout=10))
    assert len(limited["images"]) == 2
    everything = strict_json(requests.get(url + "/images", timeout=10))
    folders = {item["s3_directory"] for item in everything["images"]}
    assert folders == {"data", "info-images"}
    empty = strict_json(requests.get(url + "/images", params={"s3_directory": "allsky"}, timeout=10))
    assert empty == {"success": True, "images": []}


def test_header(url):
    response = requests.get(url + "/header", params={"full_filename": "ramp.fits", "s3_directory": "data"}, timeout=10)
    assert response.status_code == 200, response.text
    result = strict_json(response)
    HeaderResponse.model_validate(result)
    assert result["header"]["OBJECT"] == "RAMP"
    assert result["header"]["EXPTIME"] == 1.5
    assert result["header"]["FLAG"] is True
    assert result["header"]["NAXIS1"] == 80 and result["header"]["NAXIS2"] == 60
    assert result["header"]["COMMENT"][-1] == "written by the API tests"
    assert result["header"]["HISTORY"] == ["created"]
    assert result["shape"] == [60, 80]
    assert result["hdu"] == 0
    keywords = [card["keyword"] for card in result["cards"]]
    assert keywords[0] == "SIMPLE" and "OBJECT" in keywords


def test_trailing_slash_and_form_body(url):
    response = requests.post(url + "/statistics/", json=frame("noisy.fits"), timeout=30)
    assert response.status_code == 200
    # The original's docs show `curl -F 'data={...}'`.
    form = requests.post(url + "/statistics", files={"data": (None, json.dumps(frame("noisy.fits")))}, timeout=30)
    assert form.status_code == 200, form.text
    assert strict_json(form)["stats"] == strict_json(response)["stats"]


def test_repeat_request_is_served_from_the_cache(url, local_root):
    """A repeat must not read or decode the file again: garbage in it goes unnoticed.

    The file is overwritten with junk of the same size and its modification
    time restored, so its version (mtime and size) is unchanged: a second read
    would fail to decode, a cache hit answers as before.
    """
    path = local_root / "data" / "cached.fits"
    first = post(url, "/statistics", frame("cached.fits"))
    assert first.status_code == 200
    status = path.stat()
    path.write_bytes(b"X" * status.st_size)
    os.utime(path, ns=(status.st_atime_ns, status.st_mtime_ns))
    again = post(url, "/statistics", frame("cached.fits"))
    assert again.status_code == 200, again.text
    assert strict_json(again)["stats"] == strict_json(first)["stats"]
    histogram = post(url, "/histogram-clipped", frame("cached.fits"))
    assert histogram.status_code == 200
    profile = post(url, "/lineprofile", frame("cached.fits", start={"x": 0, "y": 0}, end={"x": 1, "y": 1}))
    assert profile.status_code == 200


# ------------------------------------------------------------------ OpenAPI and docs


def test_openapi_document(url):
    response = requests.get(url + "/openapi.json", timeout=10)
    assert response.status_code == 200
    document = strict_json(response)
    assert document["openapi"].startswith("3.1")
    paths = document["paths"]
    for path, method in [
        ("/lineprofile", "post"), ("/statistics", "post"), ("/histogram-clipped", "post"),
        ("/lineprofiledisplay", "get"), ("/lineprofiledisplay", "post"), ("/images", "get"),
        ("/header", "get"), ("/health", "get"),
    ]:
        assert "200" in paths[path][method]["responses"], (path, method)
    schemas = document["components"]["schemas"]
    # The published schemas are the handlers' own models.
    for model in (LineProfileRequest, StatisticsRequest):
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        schema.pop("$defs", None)
        assert schemas[model.__name__] == schema
    point = schemas["Point"]["properties"]["x"]
    assert point["minimum"] == 0 and point["maximum"] == 1
    clip = schemas["HistogramRequest"]["properties"]["clip_percent"]
    assert clip["default"] == 0.001
    assert {"minimum": 0.0, "exclusiveMaximum": 0.5, "type": "number"}.items() <= clip["anyOf"][0].items()
    names = [p["name"] for p in paths["/lineprofiledisplay"]["get"]["parameters"]]
    assert names[:6] == ["filename", "s3_directory", "x0", "y0", "x1", "y1"]
    # Every reference resolves.
    text = json.dumps(document)
    for ref in set(part.split('"')[0] for part in text.split('"$ref": "')[1:]):
        assert ref.rsplit("/", 1)[-1] in schemas, ref


def test_docs_page_is_self_contained(url):
    response = requests.get(url + "/docs", timeout=10)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/html")
    page = response.text
    for path in ["/lineprofile", "/statistics", "/histogram-clipped", "/lineprofiledisplay", "/images", "/header", "/health"]:
        assert f"<code>{path}</code>" in page
    assert "curl" in page and "clip_percent" in page
    lowered = page.lower()
    assert "<script" not in lowered
    assert "src=" not in lowered
    assert 'href="http' not in lowered and "@import" not in lowered and "url(" not in lowered
    assert "default-src 'none'" in response.headers["Content-Security-Policy"]


# ------------------------------------------------------------------ CORS


def test_cors_default_allows_any_origin(url):
    origin = {"Origin": "https://www.photonranch.org"}
    response = requests.post(url + "/statistics", json=frame("noisy.fits"), headers=origin, timeout=30)
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    error = requests.post(url + "/statistics", data=b"{", headers=origin, timeout=30)
    assert error.status_code == 400
    assert error.headers["Access-Control-Allow-Origin"] == "*"
    missing = requests.post(url + "/statistics", json=frame("nope.fits"), headers=origin, timeout=30)
    assert missing.status_code == 404
    assert missing.headers["Access-Control-Allow-Origin"] == "*"


@pytest.mark.parametrize("path", ["/lineprofile", "/statistics", "/histogram-clipped", "/lineprofiledisplay", "/images", "/header", "/health"])
def test_cors_preflight(url, path):
    response = requests.options(
        url + path,
        headers={
            "Origin": "https://www.photonranch.org",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
        timeout=10,
    )
    assert response.status_code == 204
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert "OPTIONS" in response.headers["Access-Control-Allow-Methods"]
    assert "content-type" in response.headers["Access-Control-Allow-Headers"].lower()


def test_cors_origins_from_settings(tmp_path_factory, local_root):
    allowed = "https://www.photonranch.org"
    with running_server(tmp_path_factory, local_root, env={"QA_CORS_ORIGINS": f"{allowed},https://other.example"}) as srv:
        good = requests.post(srv.url + "/statistics", json=frame("noisy.fits"), headers={"Origin": allowed}, timeout=30)
        assert good.headers["Access-Control-Allow-Origin"] == allowed
        assert "Origin" in good.headers.get("Vary", "")
        bad = requests.post(srv.url + "/statistics", json=frame("noisy.fits"), headers={"Origin": "https://evil.example"}, timeout=30)
        assert bad.status_code == 200
        assert "Access-Control-Allow-Origin" not in bad.headers
        preflight = requests.options(
            srv.url + "/lineprofile",
            headers={"Origin": allowed, "Access-Control-Request-Method": "POST"},
            timeout=10,
        )
        assert preflight.status_code == 204
        assert preflight.headers["Access-Control-Allow-Origin"] == allowed


# ------------------------------------------------------------------ errors

GOOD_LINE = frame(start={"x": 0.1, "y": 0.1}, end={"x": 0.9, "y": 0.9})

# (path, body, status, words the message must contain)
POST_ERRORS = [
    # invalid JSON and non-object bodies
    ("/lineprofile", b"{not json", 400, ["invalid JSON"]),
    ("/statistics", b"", 400, ["empty"]),
    ("/statistics", b"[1, 2]", 400, ["JSON object"]),
    ("/statistics", b'"data"', 400, ["JSON object"]),
    ("/histogram-clipped", b'{"full_filename": "noisy.fits", "s3_directory": "data", "clip_percent": NaN}', 400, ["NaN"]),
    ("/histogram-clipped", b'{"full_filename": "noisy.fits", "s3_directory": "data", "clip_percent": 1e999}', 400, ["out of range"]),
    ("/statistics", b"\xff\xfe\x00garbage", 400, ["invalid JSON"]),
    ("/statistics", b"[" * 5000 + b"]" * 5000, 400, ["JSON"]),
    # missing fields
    ("/lineprofile", {"s3_directory": "data", "start": {"x": 0, "y": 0}, "end": {"x": 1, "y": 1}}, 400, ["full_filename"]),
    ("/lineprofile", {**frame(), "start": {"x": 0, "y": 0}}, 400, ["end"]),
    ("/lineprofile", {**frame(), "start": {"x": 0}, "end": {"x": 1, "y": 1}}, 400, ["start.y"]),
    ("/statistics", {"full_filename": "noisy.fits"}, 400, ["s3_directory"]),
    ("/histogram-clipped", {"s3_directory": "data"}, 400, ["full_filename"]),
    ("/statistics", frame("noisy.fits", subregion={"x0": 0, "y0": 0, "x1": 1}), 400, ["subregion.y1"]),
    # non-numeric fields
    ("/lineprofile", {**frame(), "start": {"x": "left", "y": 0}, "end": {"x": 1, "y": 1}}, 400, ["start.x"]),
    ("/lineprofile", {**frame(), "start": {"x": True, "y": 0}, "end": {"x": 1, "y": 1}}, 400, ["start.x"]),
    ("/lineprofile", {**frame(), "start": [0, 0], "end": {"x": 1, "y": 1}}, 400, ["start"]),
    ("/statistics", frame("noisy.fits", subregion={"x0": None, "y0": 0, "x1": 1, "y1": 1}), 400, ["subregion.x0"]),
    ("/histogram-clipped", frame("noisy.fits", clip_percent="lots"), 400, ["clip_percent"]),
    ("/statistics", {"full_filename": 42, "s3_directory": "data"}, 400, ["full_filename"]),
    # coordinates outside [0, 1]
    ("/lineprofile", {**frame(), "start": {"x": -0.1, "y": 0}, "end": {"x": 1, "y": 1}}, 400, ["start.x"]),
    ("/lineprofile", {**frame(), "start": {"x": 0, "y": 0}, "end": {"x": 1, "y": 1.5}}, 400, ["end.y"]),
    ("/statistics", frame("noisy.fits", subregion={"x0": 0, "y0": 0, "x1": 2, "y1": 1}), 400, ["subregion.x1"]),
    ("/histogram-clipped", frame("noisy.fits", subregion={"x0": 0, "y0": -1, "x1": 1, "y1": 1}), 400, ["subregion.y0"]),
    # zero-area subregion
    ("/statistics", frame("noisy.fits", subregion={"x0": 0.5, "y0": 0, "x1": 0.5, "y1": 1}), 400, ["zero area"]),
    ("/histogram-clipped", frame("noisy.fits", subregion={"x0": 0, "y0": 0.3, "x1": 1, "y1": 0.3}), 400, ["zero area"]),
    # clip_percent outside [0, 0.5)
    ("/histogram-clipped", frame("noisy.fits", clip_percent=0.5), 400, ["clip_percent"]),
    ("/histogram-clipped", frame("noisy.fits", clip_percent=-0.01), 400, ["clip_percent"]),
    ("/histogram-clipped", frame("noisy.fits", clip_percent=7), 400, ["clip_percent"]),
    # unknown s3_directory
    ("/statistics", frame("noisy.fits", "private"), 400, ["s3_directory"]),
    ("/lineprofile", {**GOOD_LINE, "s3_directory": "../data"}, 400, ["s3_directory"]),
    ("/histogram-clipped", frame("noisy.fits", ""), 400, ["s3_directory"]),
    # keys that try to leave their folder
    ("/statistics", frame("../secret.fits"), 400, ["../secret.fits"]),
    ("/statistics", frame("sub/../../secret.fits"), 400, ["leaves"]),
    ("/lineprofile", {**GOOD_LINE, "full_filename": "/etc/passwd"}, 400, ["absolute"]),
    ("/histogram-clipped", frame("..\\secret.fits"), 400, ["backslash"]),
    ("/statistics", frame("noisy.fits\u0000.png"), 400, ["full_filename"]),
    ("/statistics", frame(""), 400, ["full_filename"]),
    # files that are not images
    ("/statistics", frame("junk.fits"), 400, []),
    ("/histogram-clipped", frame("empty.fits"), 400, []),
    ("/lineprofile", {**GOOD_LINE, "full_filename": "junk.fits"}, 400, []),
]


@pytest.mark.parametrize("path, body, status, words", POST_ERRORS)
def test_post_errors(url, path, body, status, words):
    if isinstance(body, bytes):
        response = requests.post(url + path, data=body, headers={"Content-Type": "application/json"}, timeout=30)
    else:
        response = post(url, path, body)
    assert response.status_code == status, response.text
    result = strict_json(response)
    ErrorResponse.model_validate(result)
    assert set(result) == {"success", "message"} and result["success"] is False
    assert result["message"]
    for word in words:
        assert word in result["message"], result["message"]


@pytest.mark.parametrize(
    "path, body",
    [
        ("/lineprofile", {**GOOD_LINE, "full_filename": "missing.fits"}),
        ("/statistics", frame("missing.fits")),
        ("/histogram-clipped", frame("missing.fits", clip_percent=None)),
        ("/statistics", frame("sub/missing.fits.fz")),
        ("/statistics", frame("ramp.fits", "info-images")),
        ("/lineprofiledisplay", {**LINE_QUERY, "filename": "missing.fits"}),
    ],
)
def test_missing_frame_is_404(url, path, body):
    response = post(url, path, body)
    assert response.status_code == 404, response.text
    name = body.get("full_filename", body.get("filename"))
    assert strict_json(response) == {
        "success": False,
        "message": f"Image does not exist: {body['s3_directory']}/{name}.",
    }


def test_missing_frame_get_endpoints_are_404(url):
    for path, params in [
        ("/header", {"full_filename": "missing.fits", "s3_directory": "data"}),
        ("/lineprofiledisplay", {**LINE_QUERY, "filename": "missing.fits"}),
    ]:
        response = requests.get(url + path, params=params, timeout=10)
        assert response.status_code == 404, (path, response.text)
        assert strict_json(response)["message"] == "Image does not exist: data/missing.fits."


def test_symlink_out_of_the_root_is_refused(url, local_root):
    if not (local_root / "data" / "escape.fits").is_symlink():
        pytest.skip("no symlinks on this file system")
    response = post(url, "/statistics", frame("escape.fits"))
    assert response.status_code == 400, response.text
    assert strict_json(response)["success"] is False


def test_folder_named_like_a_frame_is_not_a_500(url):
    response = post(url, "/statistics", frame("folder.fits"))
    assert response.status_code in (400, 404), response.text
    assert strict_json(response)["success"] is False


# (path, query, status, words)
GET_ERRORS = [
    ("/lineprofiledisplay", {k: v for k, v in LINE_QUERY.items() if k != "x1"}, 400, ["x1"]),
    ("/lineprofiledisplay", {**LINE_QUERY, "y0": "top"}, 400, ["y0"]),
    ("/lineprofiledisplay", {**LINE_QUERY, "x0": "1.01"}, 400, ["x0"]),
    ("/lineprofiledisplay", {**LINE_QUERY, "x0": "nan"}, 400, ["x0"]),
    ("/lineprofiledisplay", {**LINE_QUERY, "format": "gif"}, 400, ["format"]),
    ("/lineprofiledisplay", {**LINE_QUERY, "s3_directory": "nowhere"}, 400, ["s3_directory"]),
    ("/lineprofiledisplay", {**LINE_QUERY, "filename": "../../secret.fits"}, 400, ["leaves"]),
    ("/lineprofiledisplay", {**LINE_QUERY, "filename": "junk.fits"}, 400, []),
    ("/header", {"full_filename": "ramp.fits"}, 400, ["s3_directory"]),
    ("/header", {"full_filename": "junk.fits", "s3_directory": "data"}, 400, []),
    ("/header", {"full_filename": "../secret.fits", "s3_directory": "data"}, 400, ["leaves"]),
    ("/header", {"full_filename": "ramp.fits", "s3_directory": "etc"}, 400, ["s3_directory"]),
    ("/images", {"s3_directory": "etc"}, 400, ["s3_directory"]),
    ("/images", {"s3_directory": "data", "limit": "many"}, 400, ["limit"]),
    ("/images", {"s3_directory": "data", "limit": "0"}, 400, ["limit"]),
]


@pytest.mark.parametrize("path, query, status, words", GET_ERRORS)
def test_get_errors(url, path, query, status, words):
    response = requests.get(url + path, params=query, timeout=30)
    assert response.status_code == status, response.text
    result = strict_json(response)
    assert result["success"] is False and result["message"]
    for word in words:
        assert word in result["message"], result["message"]


def test_invalid_utf8_in_query_is_400(url):
    response = requests.get(url + "/header?full_filename=%ff%fe&s3_directory=data", timeout=10)
    assert response.status_code == 400
    assert strict_json(response)["success"] is False


def test_unsupported_method_answers_json(url):
    response = requests.get(url + "/statistics", timeout=10)
    assert response.status_code == 405
    assert strict_json(response)["success"] is False
    response = requests.delete(url + "/health", timeout=10)
    assert response.status_code == 405
    assert strict_json(response)["success"] is False


# ------------------------------------------------------------------ real frames


@pytest.fixture(scope="module")
def real_root(tmp_path_factory, shared_data) -> Path:
    # Copied (not linked) into a temporary root: a link out of the root is refused.
    root = tmp_path_factory.mktemp("api-real")
    (root / "data").mkdir()
    for path in shared_data.iterdir():
        if path.name != "README.md":
            shutil.copy(path, root / "data" / path.name)
    return root


def test_real_frames(tmp_path_factory, real_root):
    names = sorted(p.name for p in (real_root / "data").iterdir())
    with running_server(tmp_path_factory, real_root) as srv:
        listed = strict_json(requests.get(srv.url + "/images", params={"s3_directory": "data"}, timeout=30))
        assert sorted(item["full_filename"] for item in listed["images"]) == names
        for name in names:
            body = frame(name, subregion={"x0": 0.1, "y0": 0.1, "x1": 0.9, "y1": 0.9})
            for path in ("/statistics", "/histogram-clipped"):
                response = post(srv.url, path, body)
                assert response.status_code == 200, (name, path, response.text)
                strict_json(response)
            line = post(srv.url, "/lineprofile", frame(name, start={"x": 0, "y": 0}, end={"x": 1, "y": 1}))
            assert line.status_code == 200, (name, line.text)
            header = requests.get(srv.url + "/header", params={"full_filename": name, "s3_directory": "data"}, timeout=30)
            assert header.status_code == 200, (name, header.text)
            HeaderResponse.model_validate(strict_json(header))
        compressed = strict_json(requests.get(
            srv.url + "/header",
            params={"full_filename": "cpt1m013-ak06-20210504-0092-g00.fits.fz", "s3_directory": "data"},
            timeout=30,
        ))
        assert compressed["hdu"] == 1 and compressed["shape"] == [1100, 1375]
        horse = strict_json(post(srv.url, "/statistics", frame("HorseHead.fits")))
        expected = statistics(fits.getdata(real_root / "data" / "HorseHead.fits"))
        assert_close(horse["stats"], expected, STAT_FIELDS)
        picture = requests.get(
            srv.url + "/lineprofiledisplay",
            params={"filename": "thar5s.fit", "s3_directory": "data", "x0": 0, "y0": 0.5, "x1": 1, "y1": 0.5, "format": "png"},
            timeout=60,
        )
        assert picture.status_code == 200
        _png(picture.content)


# ------------------------------------------------------------------ a bug


def test_a_bug_answers_500_as_json(caplog):
    """No client request can trigger a bug on purpose, so a handler with one is served in-process."""
    import asyncio
    import threading

    import tornado.web

    from app.api import ApiHandler, json_endpoint

    class Buggy(ApiHandler):
        @json_endpoint
        async def get(self):
            raise RuntimeError("boom")

        @json_endpoint
        async def post(self):
            await self.compute(lambda: 1 / 0)

    port = free_port()
    ready, loop_box = threading.Event(), {}

    def serve():
        async def main():
            server = tornado.web.Application([(r"/bug", Buggy)]).listen(port, address="127.0.0.1")
            loop_box["loop"], loop_box["stop"] = asyncio.get_running_loop(), asyncio.Event()
            ready.set()
            await loop_box["stop"].wait()
            server.stop()

        asyncio.run(main())

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    assert ready.wait(10)
    try:
        with caplog.at_level("ERROR", logger="quickanalysis.api"):
            response = requests.get(f"http://127.0.0.1:{port}/bug", timeout=10)
            assert response.status_code == 500
            assert strict_json(response) == {"success": False, "message": "internal error: RuntimeError: boom"}
            response = requests.post(f"http://127.0.0.1:{port}/bug", timeout=10)
            assert response.status_code == 500
            assert strict_json(response)["message"].startswith("internal error: ZeroDivisionError")
        # The traceback is logged for whoever fixes the bug.
        assert any(record.exc_info for record in caplog.records)
    finally:
        loop_box["loop"].call_soon_threadsafe(loop_box["stop"].set)
        thread.join(10)
