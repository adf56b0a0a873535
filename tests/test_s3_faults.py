"""The S3 store going away mid-session and coming back: a real moto_server, stopped and restarted.

The store is a dedicated ``moto_server`` subprocess (not the session-wide one
other tests share), stopped and started again on the same port. moto keeps
its objects in memory, so a restarted store is refilled with the same
objects, as a real store would still hold them.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import subprocess
import sys
from pathlib import Path

import boto3
import numpy as np
import pytest
import requests
from astropy.io import fits

from components.events import bus
from components.errors import ImageNotFound
from components.sources.s3 import S3Source, is_unreachable
from conftest import PROJECT, ServerProcess, free_port, wait_for_http

pytestmark = pytest.mark.s3

BUCKET = "qa-faults"
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def fits_bytes(data: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    fits.PrimaryHDU(data).writeto(buffer)
    return buffer.getvalue()


RAMP = np.arange(60 * 80, dtype=np.uint16).reshape(60, 80)
OBJECTS = {"data/ramp.fits": fits_bytes(RAMP), "data/half.fits": fits_bytes(RAMP[:, :40].copy())}


class Moto:
    """A moto_server on a fixed port that can be stopped and started again."""

    def __init__(self):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        executable = shutil.which("moto_server") or str(Path(sys.executable).with_name("moto_server"))
        self.process = subprocess.Popen(
            [executable, "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        wait_for_http(self.url, self.process, timeout=60)
        client = boto3.client("s3", endpoint_url=self.url, region_name="us-east-1",
                              aws_access_key_id="testing", aws_secret_access_key="testing")
        client.create_bucket(Bucket=BUCKET)
        for key, body in OBJECTS.items():
            client.put_object(Bucket=BUCKET, Key=key, Body=body)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=15)
        self.process = None


@contextlib.contextmanager
def api_server(root: Path, env: dict, log: Path):
    """``python -m app.cli serve`` as conftest's start_server runs it, with a start-up allowance
    for a heavily shared machine (importing Panel alone took minutes there)."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "serve", "--root", str(root), "--port", str(port),
         "--address", "127.0.0.1", "--no-demo"],
        cwd=PROJECT, env={**os.environ, **env}, stdout=log.open("w"), stderr=subprocess.STDOUT,
    )
    server = ServerProcess(root, port, process, log)
    try:
        try:
            wait_for_http(server.url + "/health", process, timeout=600)
        except Exception as error:
            raise RuntimeError(f"{error}\n--- server log ---\n{log.read_text()}") from error
        yield server
    finally:
        server.stop()


@pytest.fixture
def moto():
    store = Moto()
    store.start()
    try:
        yield store
    finally:
        store.stop()


def strict_json(response: requests.Response) -> dict:
    assert response.headers["Content-Type"].startswith("application/json"), response.headers
    return response.json()


def ask(url: str) -> dict[str, requests.Response]:
    """One request to each endpoint that reads the store."""
    frame = {"full_filename": "ramp.fits", "s3_directory": "data"}
    timeout = 60  # a dead store must answer well within this (short timeouts, one retry)
    return {
        "statistics": requests.post(url + "/statistics", json=frame, timeout=timeout),
        "lineprofile": requests.post(
            url + "/lineprofile", json={**frame, "start": {"x": 0, "y": 0}, "end": {"x": 1, "y": 1}},
            timeout=timeout,
        ),
        "images": requests.get(url + "/images", params={"s3_directory": "data"}, timeout=timeout),
        "header": requests.get(url + "/header", params=frame, timeout=timeout),
        "lineprofiledisplay": requests.get(
            url + "/lineprofiledisplay",
            params={"filename": "ramp.fits", "s3_directory": "data", "x0": 0, "y0": 0, "x1": 1, "y1": 1},
            timeout=timeout,
        ),
    }


def assert_healthy(url: str, expected_stats: dict | None = None) -> dict:
    answers = ask(url)
    for name, response in answers.items():
        assert response.status_code == 200, (name, response.text)
    listed = {item["full_filename"] for item in strict_json(answers["images"])["images"]}
    assert listed == {"ramp.fits", "half.fits"}
    stats = strict_json(answers["statistics"])["stats"]
    assert stats["max"] == float(RAMP.max()) and stats["min"] == 0.0
    if expected_stats is not None:
        assert stats == expected_stats
    return stats


def assert_unreachable(url: str) -> None:
    for name, response in ask(url).items():
        assert response.status_code == 502, (name, response.status_code, response.text[:300])
        body = strict_json(response)
        assert body["success"] is False
        assert body["message"].startswith("storage error: "), body["message"]
    # The server itself still answers.
    assert requests.get(url + "/health", timeout=10).status_code == 200


def test_api_answers_502_while_the_store_is_down_and_recovers(moto, tmp_path):
    env = {**CREDENTIALS, "QA_S3_BUCKET": BUCKET, "QA_S3_ENDPOINT_URL": moto.url,
           "QA_S3_REGION": "us-east-1", "QA_QUALITY": "false"}
    (tmp_path / "root").mkdir()
    with api_server(tmp_path / "root", env, tmp_path / "server.log") as server:
        stats = assert_healthy(server.url)
        for _ in range(2):  # twice: recovering once does not leave the client broken for the next outage
            moto.stop()
            assert_unreachable(server.url)
            moto.start()  # the same port, as a restarted store comes back at its address
            assert_healthy(server.url, stats)


def test_source_publishes_storage_events_on_failure_and_recovery(moto):
    events = []
    unsubscribe = bus().subscribe(events.append, "storage")
    try:
        source = S3Source(BUCKET, region="us-east-1", endpoint_url=moto.url)
        assert source.info("data/ramp.fits").size == len(OBJECTS["data/ramp.fits"])
        with pytest.raises(ImageNotFound):  # the store answered "no": still reachable
            source.info("data/absent.fits")
        assert events == [] and source.reachable is True

        moto.stop()
        for call in (lambda: source.info("data/ramp.fits"), lambda: source.read("data/ramp.fits"),
                     lambda: source.list_frames("data")):
            with pytest.raises(Exception) as failure:
                call()
            assert is_unreachable(failure.value), repr(failure.value)
        assert [event.data["state"] for event in events] == ["unreachable"]  # once, not per call
        assert source.reachable is False
        assert BUCKET in events[0].data["message"]

        moto.start()
        assert source.read("data/ramp.fits") == OBJECTS["data/ramp.fits"]
        assert [frame.key for frame in source.list_frames("data")] != []
        assert [event.data["state"] for event in events] == ["unreachable", "reachable"]
        assert source.reachable is True
    finally:
        unsubscribe()
