"""Helpers of the jobs tests: a real Dask scheduler and two workers on 127.0.0.1, frames, polling."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest
import requests

from components.core.synthetic import star_field, write_fits
from conftest import PROJECT, free_port

__all__ = ["DaskCluster", "dask_cluster", "write_frames", "wait_for_job", "poll_job", "NIGHT"]

#: Night of the test frames: their file times fall between noon UTC of this date and the next noon.
NIGHT = "2026-11-20"
_NIGHT_START = datetime(2026, 11, 20, 20, 0, tzinfo=timezone.utc).timestamp()


class DaskCluster:
    """A ``dask scheduler`` and ``dask worker`` subprocesses."""

    def __init__(self, address: str, workers: list[str], processes: list[subprocess.Popen]):
        self.address, self.workers, self.processes = address, workers, processes

    def stop(self) -> None:
        for process in reversed(self.processes):
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()


def _dask_command() -> str:
    return str(Path(sys.executable).with_name("dask"))


def start_cluster(log_dir: Path, n_workers: int = 2) -> DaskCluster:
    """A scheduler on a free port of 127.0.0.1 and ``n_workers`` workers of one thread each."""
    from distributed import Client

    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    # The workers import the project's tasks (components.jobs.tasks).
    env = {**os.environ, "PYTHONPATH": str(PROJECT)}
    processes = [subprocess.Popen(
        [_dask_command(), "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
        cwd=PROJECT, env=env, stdout=(log_dir / "scheduler.log").open("w"), stderr=subprocess.STDOUT,
    )]
    for index in range(n_workers):
        processes.append(subprocess.Popen(
            [_dask_command(), "worker", address, "--nworkers", "1", "--nthreads", "1", "--no-dashboard",
             "--host", "127.0.0.1", "--name", f"qa-worker-{index}"],
            cwd=PROJECT, env=env, stdout=(log_dir / f"worker-{index}.log").open("w"), stderr=subprocess.STDOUT,
        ))
    cluster = DaskCluster(address, [], processes)
    try:
        with Client(address, timeout="60s") as client:
            client.wait_for_workers(n_workers, timeout=120)
            cluster.workers = sorted(client.scheduler_info()["workers"])
    except Exception:
        cluster.stop()
        raise
    return cluster


@pytest.fixture(scope="session")
def dask_cluster(tmp_path_factory):
    """A real scheduler and two workers (``--nworkers 1 --nthreads 1``) on 127.0.0.1."""
    cluster = start_cluster(tmp_path_factory.mktemp("dask"))
    yield cluster
    cluster.stop()


def write_frames(folder: Path, count: int, shape=(256, 256), stars: int = 10, first: float = _NIGHT_START,
                 step: float = 60.0) -> list[str]:
    """``count`` synthetic frames, one file time ``step`` s apart from ``first``; their names, oldest first."""
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for index in range(count):
        name = f"frame-{index:03d}.fits"
        path = write_fits(star_field(shape, n_stars=stars, seed=100 + index), folder / name)
        os.utime(path, (first + step * index, first + step * index))
        names.append(name)
    return names


def poll_job(url: str, job_id: str) -> dict:
    response = requests.get(f"{url}/jobs/{job_id}", timeout=30)
    assert response.status_code == 200, response.text
    return response.json()["job"]


def wait_for_job(url: str, job_id: str, timeout: float = 240.0, states=("complete", "failed", "cancelled"),
                 every: float = 0.02) -> tuple[dict, list[dict]]:
    """Poll GET /jobs/{id} until the job reaches one of ``states``; the final job and every poll."""
    seen = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = poll_job(url, job_id)
        seen.append(job)
        if job["state"] in states:
            return job, seen
        time.sleep(every)
    raise TimeoutError(f"job {job_id} still {seen[-1]['state']} after {timeout} s: {seen[-1]}")
