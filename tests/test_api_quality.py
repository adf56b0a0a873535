"""POST /quality and GET /session/quality over real HTTP, with the background worker on."""

from __future__ import annotations

import csv
import io
import time

import pytest
import requests

from app.api_models import ErrorResponse, QualityResponse, SessionQualityResponse
from components.core.synthetic import star_field, write_fits
from test_api import running_server, strict_json


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("quality-root")
    (root / "data").mkdir()
    write_fits(star_field(shape=(400, 600), n_stars=80, fwhm=3.0, seed=1,
                          date_obs="2026-11-20T21:00:00"), root / "data" / "sharp.fits")
    write_fits(star_field(shape=(400, 600), n_stars=80, fwhm=6.0, seed=2,
                          date_obs="2026-11-20T21:10:00"), root / "data" / "soft.fits.fz", compress=True)
    with running_server(tmp_path_factory, root) as server:
        yield server


def post(server, body):
    return requests.post(server.url + "/quality", json=body, timeout=60)


def test_quality_of_a_frame(server):
    response = post(server, {"full_filename": "sharp.fits", "s3_directory": "data", "site": "tst"})
    assert response.status_code == 200
    body = strict_json(response)
    QualityResponse.model_validate(body)
    metrics = body["quality"]
    assert metrics["fwhm_px"] == pytest.approx(3.0, rel=0.05)
    assert metrics["fwhm_arcsec"] == pytest.approx(1.5, rel=0.05)
    assert metrics["star_count"] > 40 and len(metrics["stars"]["x"]) == metrics["star_count"]
    assert metrics["verdicts"]["fwhm"] == "ok"
    assert body["params"]["site"] == "tst"


def test_quality_of_a_subregion_keeps_frame_pixels(server):
    whole = strict_json(post(server, {"full_filename": "sharp.fits", "s3_directory": "data"}))["quality"]
    body = {"full_filename": "sharp.fits", "s3_directory": "data",
            "subregion": {"x0": 1, "y0": 1, "x1": 0.5, "y1": 0, "shape": "rect"}}
    part = strict_json(post(server, body))["quality"]
    assert 0 < part["star_count"] < whole["star_count"]
    assert min(part["stars"]["x"]) >= 299


@pytest.mark.parametrize(
    "body, status, message",
    [
        ({"full_filename": "nope.fits", "s3_directory": "data"}, 404, "Image does not exist: data/nope.fits."),
        ({"full_filename": "sharp.fits", "s3_directory": "secret"}, 400, "s3_directory"),
        ({"full_filename": "../sharp.fits", "s3_directory": "data"}, 400, ""),
        ({"full_filename": "sharp.fits", "s3_directory": "data",
          "subregion": {"x0": 0.2, "y0": 0, "x1": 0.2, "y1": 1}}, 400, "zero area"),
        ({"s3_directory": "data"}, 400, "full_filename"),
    ],
)
def test_quality_errors(server, body, status, message):
    response = post(server, body)
    assert response.status_code == status
    error = strict_json(response)
    ErrorResponse.model_validate(error)
    assert message in error["message"]


def recorded(server, **params):
    deadline = time.monotonic() + 60
    while True:
        response = requests.get(server.url + "/session/quality", params=params, timeout=30)
        frames = strict_json(response)["frames"]
        if len(frames) >= 2 or time.monotonic() > deadline:
            return response, frames
        time.sleep(0.3)


def test_session_quality_records_every_frame_in_observing_order(server):
    response, frames = recorded(server)
    SessionQualityResponse.model_validate(strict_json(response))
    assert [f["full_filename"] for f in frames] == ["sharp.fits", "soft.fits.fz"]
    assert all(f["s3_directory"] == "data" for f in frames)
    assert frames[0]["observed"].startswith("2026-11-20T21:00:00")
    assert frames[0]["fwhm_px"] == pytest.approx(3.0, rel=0.05)
    assert frames[1]["fwhm_px"] == pytest.approx(6.0, rel=0.05)
    assert frames[1]["verdicts"]["fwhm"] in ("warn", "bad")
    assert strict_json(requests.get(server.url + "/session/quality?s3_directory=allsky", timeout=30))["frames"] == []


def test_session_quality_as_csv(server):
    recorded(server)
    response = requests.get(server.url + "/session/quality?format=csv", timeout=30)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert [row["full_filename"] for row in rows] == ["sharp.fits", "soft.fits.fz"]
    assert float(rows[0]["fwhm_px"]) == pytest.approx(3.0, rel=0.05)
    assert rows[1]["verdict_fwhm"] in ("warn", "bad")


def test_session_quality_rejects_an_unknown_format(server):
    response = requests.get(server.url + "/session/quality?format=xml", timeout=30)
    assert response.status_code == 400
    assert "format" in strict_json(response)["message"]


def test_openapi_documents_the_quality_endpoints(server):
    paths = requests.get(server.url + "/openapi.json", timeout=30).json()["paths"]
    assert "post" in paths["/quality"] and "get" in paths["/session/quality"]
