"""GET /session/focus over real HTTP: a synthetic focus run measured by the background worker."""

from __future__ import annotations

import time

import numpy as np
import pytest
import requests

from app.sky_models import FocusResponse
from components.core.focus import hyperbola
from components.core.synthetic import star_field, write_fits
from test_api import running_server, strict_json

TRUTH = 5150.0
POSITIONS = np.arange(4550, 5800, 150)  # nine frames through focus


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("focus-root")
    (root / "data").mkdir()
    (root / "allsky").mkdir()
    for i, position in enumerate(POSITIONS):
        fwhm = float(hyperbola(position, 2.8, 0.01, TRUTH))
        frame = star_field(shape=(320, 320), n_stars=50, fwhm=fwhm, seed=40 + i,
                           date_obs=f"2026-11-20T21:{i:02d}:00")
        frame.header["FOCPOS"] = int(position)
        write_fits(frame, root / "data" / f"focus-{i}.fits")
    write_fits(star_field(shape=(200, 200), n_stars=30, seed=3, date_obs="2026-11-20T22:00:00"),
               root / "allsky" / "nofocus.fits")
    with running_server(tmp_path_factory, root) as server:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            frames = requests.get(server.url + "/session/quality", timeout=30).json()["frames"]
            if len(frames) == len(POSITIONS) + 1:
                break
            time.sleep(0.5)
        yield server


def focus(server, **params):
    return requests.get(server.url + "/session/focus", params=params, timeout=30)


def test_focus_curve_of_the_session_finds_the_best_focus(server):
    response = focus(server, s3_directory="data")
    assert response.status_code == 200
    body = strict_json(response)
    FocusResponse.model_validate(body)
    assert [p["focus"] for p in body["points"]] == [float(p) for p in POSITIONS]
    assert [p["key"] for p in body["points"]] == [f"data/focus-{i}.fits" for i in range(len(POSITIONS))]
    assert all(p["fwhm_px"] > 2 for p in body["points"])
    fit = body["fit"]
    assert fit["best_focus"] == pytest.approx(TRUTH, rel=0.02)
    assert 0 < fit["best_focus_error"] < 100
    assert fit["fwhm_min_px"] == pytest.approx(2.8, rel=0.1)
    # Every frame of the session: the frame without FOCPOS adds no point.
    assert len(strict_json(focus(server))["points"]) == len(POSITIONS)


def test_too_few_points_give_a_null_fit(server):
    body = strict_json(focus(server, s3_directory="data", last=3))
    assert [p["key"] for p in body["points"]] == [f"data/focus-{i}.fits" for i in (6, 7, 8)]
    assert body["fit"] is None
    assert strict_json(focus(server, s3_directory="allsky")) == {"success": True, "points": [], "fit": None}


@pytest.mark.parametrize("params", [{"last": "0"}, {"last": "many"}, {"last": "nan"}, {"s3_directory": ""}])
def test_bad_queries_are_400_json(server, params):
    response = focus(server, **params)
    assert response.status_code == 400
    body = strict_json(response)
    assert body["success"] is False and body["message"]


def test_openapi_documents_the_focus_endpoint(server):
    paths = strict_json(requests.get(server.url + "/openapi.json", timeout=30))["paths"]
    names = [p["name"] for p in paths["/session/focus"]["get"]["parameters"]]
    assert names == ["s3_directory", "last"]
