"""Every error the server answers outside the dashboard page is JSON, like the API's own (real HTTP)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import requests
from astropy.io import fits


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("json-errors") / "root"
    (root / "data").mkdir(parents=True)
    fits.PrimaryHDU(np.arange(100, dtype=np.uint16).reshape(10, 10)).writeto(root / "data" / "a.fits")
    return root


def assert_json_error(response: requests.Response, status: int) -> dict:
    assert response.status_code == status, (response.request.method, response.url, response.text[:200])
    assert response.headers["Content-Type"].startswith("application/json"), response.headers
    body = json.loads(response.text)
    assert body["success"] is False and body["message"], body
    return body


UNKNOWN = ["/nope", "/nope/deeper", "/health/x", "/docs/x", "/panel-preview", "/api"]


def test_errors_are_json_everywhere_but_the_page_works(start_server, root):
    server = start_server(root, env={"QA_QUALITY": "0"})
    for path in UNKNOWN:
        for method in ("GET", "POST", "PUT", "DELETE"):
            body = assert_json_error(requests.request(method, server.url + path, timeout=90), 404)
            assert path in body["message"]
    # A missing static file (Bokeh's static route exists: other methods get its 405).
    assert_json_error(requests.get(server.url + "/static/nope.js", timeout=90), 404)
    # Known paths, wrong method: 405, from the API's handlers and from Panel's/Bokeh's own.
    for method, path in [("PUT", "/health"), ("DELETE", "/statistics"), ("POST", "/"),
                         ("POST", "/static/js/bokeh.min.js"), ("PATCH", "/images")]:
        assert_json_error(requests.request(method, server.url + path, timeout=90), 405)
    # Bokeh's routes refusing a request: JSON too.
    assert_json_error(requests.get(server.url + "/ws", timeout=90), 400)
    assert_json_error(requests.get(server.url + "/autoload.js", timeout=90), 400)
    # ... while the page, its static files and the API answer as before.
    page = requests.get(server.url + "/", timeout=120)
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    script = requests.get(server.url + "/static/js/bokeh.min.js", timeout=90)
    assert script.status_code == 200 and "javascript" in script.headers["Content-Type"]
    docs = requests.get(server.url + "/docs", timeout=90)
    assert docs.status_code == 200 and docs.headers["Content-Type"].startswith("text/html")
    assert requests.get(server.url + "/health", timeout=90).json() == {"success": True, "status": "ok"}


def test_unknown_path_carries_cors_headers(start_server, root):
    server = start_server(root, env={"QA_QUALITY": "0"})
    response = requests.get(server.url + "/nope", headers={"Origin": "https://photonranch.org"}, timeout=90)
    assert_json_error(response, 404)
    assert response.headers["Access-Control-Allow-Origin"] == "*"
