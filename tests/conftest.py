"""Fixtures shared by every test module: real data, free ports, servers."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

PROJECT = Path(__file__).resolve().parents[1]
SHARED_DATA = PROJECT.parent / "shared" / "data"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_http(url: str, process: subprocess.Popen | None = None, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode} before answering {url}")
        try:
            requests.get(url, timeout=2)
            return
        except requests.RequestException:
            time.sleep(0.2)
    raise TimeoutError(f"nothing answered {url} within {timeout} s")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data: real frames from real observatories (skipped when absent)."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"{SHARED_DATA} is absent")
    return SHARED_DATA


@pytest.fixture(scope="session")
def moto_server():
    """A real S3-compatible server (moto_server) on 127.0.0.1; yields its endpoint URL."""
    executable = shutil.which("moto_server") or str(Path(sys.executable).with_name("moto_server"))
    port = free_port()
    process = subprocess.Popen(
        [executable, "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(url, process, timeout=30)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture(scope="session", autouse=True)
def _s3_credentials():
    # boto3 needs credentials even for moto; never real ones in tests.
    for name, value in (
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_DEFAULT_REGION", "us-east-1"),
    ):
        os.environ.setdefault(name, value)
    yield


class ServerProcess:
    """A ``quickanalysis serve`` process started for a test."""

    def __init__(self, root: Path, port: int, process: subprocess.Popen, log: Path):
        self.root, self.port, self.process, self.log = root, port, process, log
        self.url = f"http://127.0.0.1:{port}"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()


@pytest.fixture
def start_server(tmp_path_factory):
    """Factory: ``start_server(root, demo=False, env={...}, args=[...]) -> ServerProcess``.

    Runs the real CLI in a subprocess on a free port and waits for /health.
    """
    started: list[ServerProcess] = []

    def start(root: Path, demo: bool = False, env: dict | None = None, args: list[str] | None = None):
        port = free_port()
        log = tmp_path_factory.mktemp("server") / "server.log"
        environment = {**os.environ, **(env or {})}
        command = [
            sys.executable, "-m", "app.cli", "serve",
            "--root", str(root), "--port", str(port), "--address", "127.0.0.1",
            "--demo" if demo else "--no-demo", *(args or []),
        ]
        process = subprocess.Popen(
            command, cwd=PROJECT, env=environment, stdout=log.open("w"), stderr=subprocess.STDOUT
        )
        server = ServerProcess(root, port, process, log)
        started.append(server)
        try:
            wait_for_http(server.url + "/health", process)
        except Exception as error:
            server.stop()
            raise RuntimeError(f"{error}\n--- server log ---\n{log.read_text()}") from error
        return server

    yield start
    for server in started:
        server.stop()
