"""Benchmark the REST API on a 61-megapixel frame, over HTTP, against a real server.

Starts ``python -m app.cli serve`` on a free port with a temporary root,
writes a 9576 x 6388 uint16 synthetic frame into its ``data/`` folder (as
plain FITS, RICE-compressed ``.fits.fz`` and Photon Ranch's ``.fits.bz2``) and
times, for each endpoint, the first request (read + decode + compute) and
repeated requests (served from the decoded-image cache: no second read or
decode). While each first request runs, /health is polled to show that the
decode happens off the IOLoop (the dashboard's websocket stays responsive).

``--render`` times instead the /lineprofiledisplay picture alone, in this
process (no server): wall and CPU time of ``render_line_profile_png`` on a
cached (already decoded) frame of 61, 16, 1.6 and 0.005 MP, and the PNG's size.
CPU time is the figure to read on a shared machine: wall time there measures
the other processes as much as this one.

Run: ``.venv/bin/python bench/api.py [--repeats N] [--formats fits,fz,bz2] [--render]``
"""

from __future__ import annotations

import argparse
import bz2
import os
import shutil
import socket
import statistics as pystats
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))

from components.core.synthetic import star_field, write_fits  # noqa: E402

__all__ = ["main"]

SHAPE = (6388, 9576)  # rows x columns: 61 MP
LINE = {"start": {"x": 0.05, "y": 0.1}, "end": {"x": 0.95, "y": 0.9}}
SUBREGION = {"x0": 0.25, "y0": 0.25, "x1": 0.75, "y1": 0.75}

# (label, method, path, body or query without the frame's name)
REQUESTS = [
    ("/statistics (whole frame)", "post", "/statistics", {}),
    ("/statistics (subregion 1/4)", "post", "/statistics", {"subregion": SUBREGION}),
    ("/histogram-clipped (0.001)", "post", "/histogram-clipped", {"clip_percent": 0.001}),
    ("/lineprofile (diagonal)", "post", "/lineprofile", LINE),
    ("/lineprofiledisplay (png)", "get", "/lineprofiledisplay",
     {"x0": 0.05, "y0": 0.1, "x1": 0.95, "y1": 0.9, "format": "png"}),
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def send(url: str, method: str, path: str, name: str, extra: dict) -> requests.Response:
    if method == "post":
        body = {"full_filename": name, "s3_directory": "data", **extra}
        response = requests.post(url + path, json=body, timeout=300)
    else:
        query = {"filename": name, "s3_directory": "data", **extra}
        response = requests.get(url + path, params=query, timeout=300)
    if response.status_code != 200:
        raise RuntimeError(f"{path} answered {response.status_code}: {response.text[:300]}")
    return response


#: Bytes of the last answer to each path (the PNG's size matters as much as its time).
ANSWER_BYTES: dict[str, int] = {}


def timed(*args) -> float:
    started = time.perf_counter()
    response = send(*args)
    ANSWER_BYTES[args[2]] = len(response.content)
    return time.perf_counter() - started


def health_during(url: str, work) -> tuple[float, float, int]:
    """Run ``work()`` while polling /health; return (work seconds, worst /health latency, polls)."""
    done = threading.Event()
    latencies: list[float] = []

    def poll():
        while not done.is_set():
            started = time.perf_counter()
            requests.get(url + "/health", timeout=60)
            latencies.append(time.perf_counter() - started)
            time.sleep(0.02)

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    try:
        seconds = work()
    finally:
        done.set()
        poller.join()
    return seconds, max(latencies, default=0.0), len(latencies)


def wait_for(url: str, process: subprocess.Popen, timeout: float = 600.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            requests.get(url + "/health", timeout=2)
            return
        except requests.RequestException:
            time.sleep(0.2)
    raise TimeoutError("server did not start")


def wait_for_warm_up(log_path: Path, timeout: float = 180.0) -> None:
    """Wait for the server's warm-up thread (kernel compilation) to finish: it competes for the CPU."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if "warm-up done" in log_path.read_text(errors="replace"):
            return
        time.sleep(0.2)
    print("warning: no 'warm-up done' in the server log; timings may include compilation")


def render_bench(repeats: int) -> None:
    """Time the /lineprofiledisplay picture in-process on cached frames of several sizes."""
    from app.profile_png import render_line_profile_png

    shapes = {"61 MP": SHAPE, "16 MP": (3456, 4608), "1.6 MP": (1024, 1536), "0.005 MP": (60, 80)}
    header = (f"{'frame':<9} {'first wall':>10} {'first CPU':>10} {'repeat wall (median)':>21} "
              f"{'repeat CPU (median)':>20} {'PNG KB':>7}")
    print("render_line_profile_png in-process, times in ms\n" + header + "\n" + "-" * len(header))
    for label, shape in shapes.items():
        data = star_field(shape, n_stars=max(3, int(3000 * shape[0] * shape[1] / 61e6)), seed=7).data
        data.setflags(write=False)  # as the frame store hands frames out
        walls, cpus = [], []
        for _ in range(repeats + 1):
            wall, cpu = time.perf_counter(), time.process_time()
            png = render_line_profile_png(data, (0.05, 0.1), (0.95, 0.9), "data/frame.fits")
            walls.append(time.perf_counter() - wall)
            cpus.append(time.process_time() - cpu)
        print(f"{label:<9} {walls[0] * 1e3:>10.0f} {cpus[0] * 1e3:>10.0f} "
              f"{pystats.median(walls[1:]) * 1e3:>21.1f} {pystats.median(cpus[1:]) * 1e3:>20.1f} "
              f"{len(png) / 1e3:>7.0f}", flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="repeated requests per endpoint")
    parser.add_argument(
        "--formats", default="fits,fz,bz2",
        help="comma-separated file formats to time: fits (plain), fz (RICE tiles), bz2 (whole file)",
    )
    parser.add_argument("--render", action="store_true",
                        help="time the /lineprofiledisplay picture in-process instead (no server)")
    args = parser.parse_args(argv)
    if args.render:
        render_bench(args.repeats)
        return
    formats = [item.strip() for item in args.formats.split(",") if item.strip()]
    unknown = set(formats) - {"fits", "fz", "bz2"}
    if unknown:
        parser.error(f"unknown formats: {', '.join(sorted(unknown))}")

    workdir = Path(tempfile.mkdtemp(prefix="qa-bench-api-"))
    data = workdir / "root" / "data"
    data.mkdir(parents=True)
    started = time.perf_counter()
    frame = star_field(SHAPE, n_stars=3000, seed=61)
    plain = write_fits(frame, workdir / "frame61.fits")
    files = {}
    if "fits" in formats:
        files["fits"] = plain
    if "fz" in formats:
        files["fz"] = write_fits(frame, workdir / "frame61.fits.fz", compress=True)
    if "bz2" in formats:
        files["bz2"] = workdir / "frame61.fits.bz2"
        files["bz2"].write_bytes(bz2.compress(plain.read_bytes(), 9))
    print(f"frame: {SHAPE[1]} x {SHAPE[0]} {frame.data.dtype} ({frame.data.size / 1e6:.1f} MP); "
          + ", ".join(f"{kind} {path.stat().st_size / 1e6:.0f} MB" for kind, path in files.items())
          + f"; written in {time.perf_counter() - started:.1f} s")
    # One name per format and request kind, so every first request pays its own
    # read and decode (the cache is keyed by name); hard links avoid copies.
    names: dict[str, list[str]] = {}
    for kind, path in files.items():
        names[kind] = []
        for index in range(len(REQUESTS)):
            alias = data / path.name.replace("frame61", f"frame61-{index}")
            try:
                os.link(path, alias)
            except OSError:
                shutil.copy(path, alias)
            names[kind].append(alias.name)
    small = star_field((256, 384), n_stars=20, seed=1)
    write_fits(small, data / "warmup.fits")
    # Old modification times: the local source lists fresh files only once they settle.
    for item in data.iterdir():
        os.utime(item, (time.time() - 60, time.time() - 60))

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = workdir / "server.log"
    log = log_path.open("w")
    # The background quality service would decode the frames before the first
    # request does (and compete for the CPU): off, so "first" means cold.
    env = {**os.environ, "QA_QUALITY": "false"}
    process = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "serve", "--root", str(workdir / "root"),
         "--port", str(port), "--address", "127.0.0.1", "--no-demo"],
        cwd=PROJECT, stdout=log, stderr=subprocess.STDOUT, env=env,
    )
    try:
        wait_for(url, process)
        wait_for_warm_up(log_path)
        # Compile kernels and import lazily imported modules on a small frame: not what is measured.
        for _, method, route, extra in REQUESTS:
            send(url, method, route, "warmup.fits", extra)

        print(f"server {url}, {args.repeats} repeats per endpoint; times in ms over HTTP")
        header = (f"{'format':<6} {'request':<30} {'first':>9} {'repeat (median)':>16} "
                  f"{'repeat (min)':>13} {'/health worst during first':>27} {'answer KB':>10}")
        print("\n" + header + "\n" + "-" * len(header))
        for kind in files:
            for (label, method, route, extra), name in zip(REQUESTS, names[kind]):
                first, worst_health, polls = health_during(
                    url, lambda: timed(url, method, route, name, extra)
                )
                repeats = [timed(url, method, route, name, extra) for _ in range(args.repeats)]
                print(f"{kind:<6} {label:<30} {first * 1e3:>9.0f} {pystats.median(repeats) * 1e3:>16.1f} "
                      f"{min(repeats) * 1e3:>13.1f} {worst_health * 1e3:>20.1f} ({polls:>3} polls)"
                      f" {ANSWER_BYTES[route] / 1e3:>10.0f}",
                      flush=True)
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
