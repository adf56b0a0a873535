"""Property-based requests: whatever a client sends, the API never answers 500 or invalid JSON.

Hypothesis builds request bodies from the real field names with values that
are sometimes right, sometimes out of range and sometimes of the wrong type,
plus unknown fields, raw bytes and arbitrary query strings, and sends them
over HTTP to one running server.
"""

from __future__ import annotations

import json

import pytest
import requests
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from app.api_models import (
    ErrorResponse,
    HeaderResponse,
    HistogramResponse,
    ImageResponse,
    ImagesResponse,
    LineProfileResponse,
    StatisticsResponse,
)
from test_api import noisy, ramp, running_server, with_nans, write_fits

SUCCESS_MODELS = {
    "/lineprofile": LineProfileResponse,
    "/statistics": StatisticsResponse,
    "/histogram-clipped": HistogramResponse,
    "/lineprofiledisplay": ImageResponse,
    "/images": ImagesResponse,
    "/header": HeaderResponse,
}

# A modest number of examples per test (about 95 in all) keeps the module fast.
PROFILE = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def url(tmp_path_factory):
    root = tmp_path_factory.mktemp("api-properties")
    write_fits(root / "data" / "ramp.fits", ramp())
    write_fits(root / "data" / "noisy.fits", noisy())
    write_fits(root / "data" / "nan.fits", with_nans())
    write_fits(root / "data" / "sub" / "nested.fits", ramp()[:3, :2].copy())
    write_fits(root / "data" / "pixel.fits", ramp()[:1, :1].copy())  # a 1 x 1 frame
    write_fits(root / "secret.fits", noisy())
    (root / "data" / "junk.fits").write_bytes(b"junk" * 100)
    (root / "data" / "folder.fits").mkdir()
    with running_server(tmp_path_factory, root) as server:
        yield server.url


# ------------------------------------------------------------------ strategies

text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=20)
json_scalars = st.none() | st.booleans() | st.integers(-(10**20), 10**20) | st.floats(
    allow_nan=False, allow_infinity=False
) | text
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(text, children, max_size=3),
    max_leaves=8,
)
names = st.sampled_from(
    ["ramp.fits", "noisy.fits", "nan.fits", "sub/nested.fits", "pixel.fits", "junk.fits",
     "missing.fits", "folder.fits", "../secret.fits", "sub/../ramp.fits", "/etc/passwd",
     ".hidden.fits", "a\\b.fits", " ", "ramp.fits/"]
) | text | json_values
directories = st.sampled_from(["data", "info-images", "allsky", "private", "..", "data/sub", ""]) | text | json_values
coordinates = (
    st.floats(-0.5, 1.5) | st.sampled_from([0, 1, 0.5, 0.0, 1.0]) | st.floats(0, 1)
    | json_values | st.sampled_from(["0.5", "1e-3", "nan", "inf", True])
)
points = st.fixed_dictionaries({}, optional={"x": coordinates, "y": coordinates}) | json_values
subregions = st.none() | st.fixed_dictionaries(
    {}, optional={"x0": coordinates, "y0": coordinates, "x1": coordinates, "y1": coordinates,
                  "shape": st.sampled_from(["rect", "circle"]) | json_values}
) | json_values
clips = st.none() | st.floats(-0.1, 0.6) | st.sampled_from([0, 0.001, 0.25, 0.4999, 0.5]) | json_values

post_bodies = st.fixed_dictionaries(
    {},
    optional={
        "full_filename": names,
        "filename": names,
        "s3_directory": directories,
        "start": points,
        "end": points,
        "subregion": subregions,
        "clip_percent": clips,
        "x0": coordinates, "y0": coordinates, "x1": coordinates, "y1": coordinates,
        "site": json_values,
        "format": st.sampled_from(["json", "png", "gif"]) | json_values,
    },
)


def likely_valid(path: str):
    """Bodies that are usually valid, so the success paths are exercised as well."""
    base = {"full_filename": st.sampled_from(["ramp.fits", "noisy.fits", "nan.fits", "pixel.fits", "sub/nested.fits", "missing.fits"]),
            "s3_directory": st.just("data")}
    unit = st.floats(0, 1)
    if path == "/lineprofiledisplay":
        return st.fixed_dictionaries(
            {"filename": base["full_filename"], "s3_directory": base["s3_directory"],
             "x0": unit, "y0": unit, "x1": unit, "y1": unit},
            optional={"format": st.sampled_from(["json", "png"])},
        )
    if path == "/lineprofile":
        point = st.fixed_dictionaries({"x": unit, "y": unit})
        return st.fixed_dictionaries({**base, "start": point, "end": point})
    region = st.none() | st.fixed_dictionaries({"x0": unit, "y0": unit, "x1": unit, "y1": unit})
    return st.fixed_dictionaries({**base, "subregion": region}, optional={"clip_percent": clips})


def check(response: requests.Response, path: str, sent=None) -> None:
    """The invariants every answer keeps."""
    # Shown by --hypothesis-show-statistics: proves successes are exercised too.
    event(f"{path} -> {response.status_code}")
    assert response.status_code in (200, 400, 404), (response.status_code, response.text[:500])
    if response.headers["Content-Type"] == "image/png":
        assert response.status_code == 200 and response.content[:4] == b"\x89PNG"
        return
    assert response.headers["Content-Type"].startswith("application/json")

    def refuse(name):
        raise AssertionError(f"{name} in JSON")

    body = json.loads(response.text, parse_constant=refuse)
    assert body["success"] is (response.status_code == 200)
    if response.status_code == 200:
        SUCCESS_MODELS[path].model_validate(body)
        if sent is not None and "params" in body:
            assert body["params"] == sent
    else:
        ErrorResponse.model_validate(body)
        assert body["message"]
        if response.status_code == 404:
            assert body["message"].startswith("Image does not exist: ")


# ------------------------------------------------------------------ properties

post_paths = st.sampled_from(["/lineprofile", "/statistics", "/histogram-clipped"])


@PROFILE
@given(path=post_paths, data=st.data())
def test_post_bodies_never_fail(url, path, data):
    body = data.draw(post_bodies | likely_valid(path) | json_values, label="body")
    response = requests.post(url + path, json=body, timeout=60)
    check(response, path, body)


@settings(max_examples=20, deadline=None)
@given(path=post_paths, raw=st.binary(max_size=200) | text.map(str.encode))
def test_raw_bodies_never_fail(url, path, raw):
    response = requests.post(url + path, data=raw, headers={"Content-Type": "application/json"}, timeout=60)
    check(response, path)
    assert response.status_code in (200, 400, 404)


query_values = text | st.sampled_from(["0", "1", "0.5", "data", "ramp.fits", "-1", "nan", "png", "json"])
query_keys = st.sampled_from(
    ["filename", "full_filename", "s3_directory", "x0", "y0", "x1", "y1", "format", "limit", "site"]
) | text


@PROFILE
@given(
    path=st.sampled_from(["/lineprofiledisplay", "/header", "/images"]),
    query=st.dictionaries(query_keys, query_values, max_size=8),
    good=st.booleans(),
)
def test_get_queries_never_fail(url, path, query, good):
    if good:
        # Start from a valid query so that partial corruption reaches deeper code.
        base = {"/lineprofiledisplay": {"filename": "noisy.fits", "s3_directory": "data",
                                        "x0": "0.1", "y0": "0.2", "x1": "0.9", "y1": "0.7"},
                "/header": {"full_filename": "nan.fits", "s3_directory": "data"},
                "/images": {"s3_directory": "data"}}[path]
        query = {**base, **dict(list(query.items())[:2])}
    response = requests.get(url + path, params=query, timeout=60)
    check(response, path)


@settings(max_examples=25, deadline=None)
@given(body=post_bodies | likely_valid("/lineprofiledisplay"), accept=st.sampled_from(
    ["application/json", "image/png", "*/*", "image/*;q=0.2, application/json;q=0.1", "garbage;q=x"]
))
def test_lineprofiledisplay_posts_never_fail(url, body, accept):
    response = requests.post(url + "/lineprofiledisplay", json=body, headers={"Accept": accept}, timeout=60)
    check(response, "/lineprofiledisplay")
