"""The REST API reading an S3 bucket: a real server, a real moto_server, real HTTP.

The server gets the same settings a deployment would (QA_S3_BUCKET,
QA_S3_ENDPOINT_URL, QA_S3_REGION, QA_S3_PREFIX and AWS credentials), and the
same requests as the local-folder tests must give the same answers.
"""

from __future__ import annotations

import base64
import io

import boto3
import numpy as np
import pytest
import requests
from astropy.io import fits

from app.api_models import (
    HeaderResponse,
    HistogramResponse,
    ImagesResponse,
    LineProfileResponse,
    StatisticsResponse,
)
from components.core import histogram_clipped, statistics, subregion
from test_api import (
    STAT_FIELDS,
    _png,
    assert_close,
    expected_profile,
    noisy,
    ramp,
    running_server,
    strict_json,
    with_nans,
)

pytestmark = pytest.mark.s3

BUCKET = "qa-api-test"
PREFIX = "site-a/"
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def fits_bytes(data: np.ndarray, **cards) -> bytes:
    header = fits.Header()
    for key, value in cards.items():
        header[key] = value
    buffer = io.BytesIO()
    fits.PrimaryHDU(data, header=header).writeto(buffer)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def bucket(moto_server):
    client = boto3.client(
        "s3", endpoint_url=moto_server, region_name="us-east-1",
        aws_access_key_id="testing", aws_secret_access_key="testing",
    )
    client.create_bucket(Bucket=BUCKET)
    objects = {
        "data/ramp.fits": fits_bytes(ramp(), OBJECT="RAMP"),
        "data/noisy.fits": fits_bytes(noisy(), OBJECT="NOISY"),
        "data/nan.fits": fits_bytes(with_nans()),
        "data/sub/nested.fits": fits_bytes(ramp()[::2, ::2].copy()),
        "data/junk.fits": b"not a FITS file\n" * 100,
        "allsky/sky.fits": fits_bytes(noisy()),
        "secret.fits": fits_bytes(noisy()),
    }
    for key, body in objects.items():
        client.put_object(Bucket=BUCKET, Key=PREFIX + key, Body=body)
    # Outside the prefix: no request may reach it.
    client.put_object(Bucket=BUCKET, Key="other-site/data/ramp.fits", Body=fits_bytes(ramp()))
    return client


@pytest.fixture(scope="module")
def url(tmp_path_factory, moto_server, bucket):
    env = {
        **CREDENTIALS,
        "QA_S3_BUCKET": BUCKET,
        "QA_S3_ENDPOINT_URL": moto_server,
        "QA_S3_REGION": "us-east-1",
        "QA_S3_PREFIX": PREFIX,
    }
    root = tmp_path_factory.mktemp("s3-root")  # empty: every frame must come from the bucket
    with running_server(tmp_path_factory, root, env=env) as server:
        yield server.url


def frame(name="ramp.fits", directory="data", **extra):
    return {"full_filename": name, "s3_directory": directory, **extra}


def post(url, path, body):
    return requests.post(url + path, json=body, timeout=60)


def test_lineprofile_from_s3(url):
    body = frame(start={"x": 0.05, "y": 0.9}, end={"x": 0.95, "y": 0.1}, site="tst")
    response = post(url, "/lineprofile", body)
    assert response.status_code == 200, response.text
    result = strict_json(response)
    LineProfileResponse.model_validate(result)
    assert result["data"] == pytest.approx(expected_profile(ramp(), (0.05, 0.9), (0.95, 0.1)))
    assert result["start"] == [0.05, 0.9] and result["end"] == [0.95, 0.1]
    nan = strict_json(post(url, "/lineprofile", frame("nan.fits", start={"x": 0, "y": 0.5}, end={"x": 1, "y": 0.5})))
    assert None in nan["data"]


def test_statistics_from_s3(url):
    region = {"x0": 0.8, "y0": 0.7, "x1": 0.1, "y1": 0.2, "shape": "rect"}
    body = frame("noisy.fits", subregion=region)
    response = post(url, "/statistics", body)
    assert response.status_code == 200, response.text
    result = strict_json(response)
    StatisticsResponse.model_validate(result)
    assert result["params"] == body
    assert_close(result["stats"], statistics(subregion(noisy(), 0.1, 0.2, 0.8, 0.7)), STAT_FIELDS)
    nested = strict_json(post(url, "/statistics", frame("sub/nested.fits")))
    assert_close(nested["stats"], statistics(ramp()[::2, ::2]), STAT_FIELDS)


def test_histogram_from_s3(url):
    for clip in (0.001, None, 0.1):
        result = strict_json(post(url, "/histogram-clipped", frame("noisy.fits", clip_percent=clip)))
        HistogramResponse.model_validate(result)
        expected = histogram_clipped(noisy(), clip)
        assert result["histogram"]["counts"] == expected["counts"]
        assert result["histogram"]["edges"] == pytest.approx(expected["edges"])
    default = strict_json(post(url, "/histogram-clipped", frame("nan.fits")))
    assert default["histogram"]["counts"] == histogram_clipped(with_nans(), 0.001)["counts"]


def test_lineprofiledisplay_from_s3(url):
    query = {"filename": "ramp.fits", "s3_directory": "data", "x0": 0, "y0": 0, "x1": 1, "y1": 1}
    result = strict_json(requests.get(url + "/lineprofiledisplay", params=query, timeout=60))
    _png(base64.b64decode(result["image"].split(",", 1)[1]))
    raw = requests.get(url + "/lineprofiledisplay", params={**query, "format": "png"}, timeout=60)
    assert raw.headers["Content-Type"] == "image/png"
    _png(raw.content)


def test_images_from_s3(url):
    result = strict_json(requests.get(url + "/images", params={"s3_directory": "data"}, timeout=30))
    ImagesResponse.model_validate(result)
    names = {item["full_filename"] for item in result["images"]}
    assert {"ramp.fits", "noisy.fits", "nan.fits", "sub/nested.fits"} <= names
    modified = [item["modified"] for item in result["images"]]
    assert modified == sorted(modified, reverse=True)
    allsky = strict_json(requests.get(url + "/images", params={"s3_directory": "allsky"}, timeout=30))
    assert [item["full_filename"] for item in allsky["images"]] == ["sky.fits"]


def test_header_from_s3(url):
    response = requests.get(url + "/header", params={"full_filename": "ramp.fits", "s3_directory": "data"}, timeout=30)
    assert response.status_code == 200, response.text
    result = strict_json(response)
    HeaderResponse.model_validate(result)
    assert result["header"]["OBJECT"] == "RAMP"
    assert result["shape"] == [60, 80]


def test_errors_from_s3(url):
    missing = post(url, "/statistics", frame("missing.fits"))
    assert missing.status_code == 404
    assert strict_json(missing) == {"success": False, "message": "Image does not exist: data/missing.fits."}
    # ramp.fits exists under another prefix and in data/, but not in allsky/ of this prefix.
    elsewhere = post(url, "/histogram-clipped", frame("ramp.fits", "allsky"))
    assert elsewhere.status_code == 404
    assert strict_json(elsewhere)["message"] == "Image does not exist: allsky/ramp.fits."
    header = requests.get(url + "/header", params={"full_filename": "gone.fits", "s3_directory": "data"}, timeout=30)
    assert header.status_code == 404
    for body, words in [
        (frame("junk.fits"), []),
        (frame("../secret.fits"), ["leaves"]),
        (frame("../../other-site/data/ramp.fits"), ["leaves"]),
        (frame("ramp.fits", "private"), ["s3_directory"]),
        (frame("noisy.fits", subregion={"x0": 0.2, "y0": 0.2, "x1": 0.2, "y1": 0.9}), ["zero area"]),
        (frame("noisy.fits", clip_percent=0.5), ["clip_percent"]),
    ]:
        response = post(url, "/histogram-clipped", body)
        assert response.status_code == 400, (body, response.text)
        message = strict_json(response)["message"]
        assert all(word in message for word in words), message
    line = post(url, "/lineprofile", frame(start={"x": 0, "y": 0}, end={"x": 1, "y": 2}))
    assert line.status_code == 400 and "end.y" in strict_json(line)["message"]


def test_repeat_requests_agree(url):
    # The second answer comes from the decoded-image cache; it must be identical.
    first = strict_json(post(url, "/statistics", frame("noisy.fits")))
    second = strict_json(post(url, "/statistics", frame("noisy.fits")))
    assert first == second


def test_storage_failures_are_json(tmp_path_factory, moto_server):
    """A missing bucket and an unreachable endpoint are reported, as JSON, never as a 500."""
    from conftest import free_port

    root = tmp_path_factory.mktemp("s3-broken")
    missing_bucket = {**CREDENTIALS, "QA_S3_BUCKET": "no-such-bucket", "QA_S3_ENDPOINT_URL": moto_server,
                      "QA_S3_REGION": "us-east-1", "QA_QUALITY": "false"}
    with running_server(tmp_path_factory, root, env=missing_bucket) as server:
        listing = requests.get(server.url + "/images", params={"s3_directory": "data"}, timeout=30)
        assert listing.status_code == 404
        assert "no-such-bucket" in strict_json(listing)["message"]
        response = post(server.url, "/statistics", frame("ramp.fits"))
        assert response.status_code == 404
        assert strict_json(response)["message"] == "Image does not exist: data/ramp.fits."
    # Nothing listens on this port: S3 is down, which is neither the client's fault nor a bug.
    unreachable = {**missing_bucket, "QA_S3_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}"}
    with running_server(tmp_path_factory, root, env=unreachable) as server:
        for response in (
            post(server.url, "/statistics", frame("ramp.fits")),
            requests.get(server.url + "/images", timeout=30),
        ):
            assert response.status_code == 502, response.text
            assert strict_json(response)["message"].startswith("storage error: ")
        assert requests.get(server.url + "/health", timeout=10).status_code == 200
