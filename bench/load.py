"""Load and soak the REST API: N concurrent clients of mixed requests against a real server.

Writes a 16 MP and a 61 MP synthetic uint16 frame into a temporary root,
starts ``python -m app.cli serve --root ... --no-demo`` as a subprocess on
127.0.0.1 and runs two phases, each against its own server:

``warm``
    The default cache (larger than both frames); both frames are decoded
    once before the clock starts, so every request is served from the cache.
``small-cache``
    ``QA_CACHE_BYTES`` smaller than the two frames together (by default 1.25 x
    the larger frame: one frame fits, both do not), so requests alternating
    between the frames evict each other's image and re-read and re-decode it.

Each client (a thread with its own HTTP session) loops until the phase's
deadline, sending one of, chosen at random: ``/statistics`` of a random box,
``/statistics`` of the whole frame, ``/lineprofile`` of a random line and
``/histogram-clipped`` of the whole frame or a random box, on either frame.
Every ``--sample`` seconds a row prints the interval's requests per second,
p50 / p95 latency and errors with the server's RSS (psutil); each phase ends
with per-request-kind p50 / p95 / p99, the error count and RSS at start, end,
minimum and maximum, and the RSS trend over the phase.

Run: ``.venv/bin/python bench/load.py [--clients 20] [--seconds 60 | --minutes 10]``;
``--minutes 60`` is the soak. Only 127.0.0.1 is contacted.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import psutil
import requests

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))

from components.core.synthetic import star_field, write_fits  # noqa: E402

__all__ = ["main"]

#: name -> (rows, columns) of the frames served.
FRAMES = {"frame16.fits": (3456, 4608), "frame61.fits": (6388, 9576)}
KINDS = ("statistics-box", "statistics-frame", "lineprofile", "histogram-clipped")
#: Seconds a single request may take before it counts as an error.
REQUEST_TIMEOUT = 120.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def random_box(rng: random.Random) -> dict:
    """A box of 1-50 % of each side, anywhere in the frame (fractions of width/height)."""
    width, height = rng.uniform(0.01, 0.5), rng.uniform(0.01, 0.5)
    x0, y0 = rng.uniform(0, 1 - width), rng.uniform(0, 1 - height)
    return {"x0": x0, "y0": y0, "x1": x0 + width, "y1": y0 + height}


def random_request(rng: random.Random, names: list[str]) -> tuple[str, str, dict]:
    """(kind, path, JSON body) of one random request."""
    kind = rng.choice(KINDS)
    body: dict = {"full_filename": rng.choice(names), "s3_directory": "data"}
    if kind == "statistics-box":
        body["subregion"] = random_box(rng)
        return kind, "/statistics", body
    if kind == "statistics-frame":
        return kind, "/statistics", body
    if kind == "lineprofile":
        body["start"] = {"x": rng.random(), "y": rng.random()}
        body["end"] = {"x": rng.random(), "y": rng.random()}
        return kind, "/lineprofile", body
    body["clip_percent"] = rng.choice([0.001, 0.01, 0.1])
    if rng.random() < 0.5:
        body["subregion"] = random_box(rng)
    return kind, "/histogram-clipped", body


@dataclass
class Record:
    """Outcomes collected by all clients (appends to lists are atomic under the GIL)."""

    finished: list = field(default_factory=list)  # (monotonic end time, kind, seconds, ok)
    errors: dict = field(default_factory=dict)  # message -> count
    lock: threading.Lock = field(default_factory=threading.Lock)

    def error(self, message: str) -> None:
        with self.lock:
            self.errors[message] = self.errors.get(message, 0) + 1


def client(url: str, names: list[str], deadline: float, seed: int, record: Record) -> None:
    rng = random.Random(seed)
    with requests.Session() as session:
        while time.monotonic() < deadline:  # bounded by the phase's deadline
            kind, path, body = random_request(rng, names)
            started = time.monotonic()
            ok = False
            try:
                response = session.post(url + path, json=body, timeout=REQUEST_TIMEOUT)
                response.content  # noqa: B018 - read the whole answer before stopping the clock
                ok = response.status_code == 200
                if not ok:
                    record.error(f"{path} {response.status_code}: {response.text[:160]}")
            except requests.RequestException as error:
                record.error(f"{path} {type(error).__name__}: {str(error)[:160]}")
            ended = time.monotonic()
            record.finished.append((ended, kind, ended - started, ok))


def percentiles(seconds: list[float]) -> tuple[float, float, float]:
    if not seconds:
        return (float("nan"),) * 3
    p50, p95, p99 = np.percentile(np.asarray(seconds) * 1e3, [50, 95, 99])
    return float(p50), float(p95), float(p99)


def rss_bytes(process: psutil.Process) -> int:
    """RSS of the server and any children it started."""
    total = process.memory_info().rss
    for child in process.children(recursive=True):
        try:
            total += child.memory_info().rss
        except psutil.Error:
            pass
    return total


def wait_for(url: str, process: subprocess.Popen, log_path: Path, timeout: float = 360.0) -> None:
    """Wait until /health answers and the server's warm-up thread (kernel compilation) is done.

    The warm-up compiles the dashboard's raster kernels too (about 100 s on the
    shared machine): it would compete with the measured requests for the CPU.
    """
    started = time.monotonic()
    deadline = started + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}; see {log_path}")
        try:
            requests.get(url + "/health", timeout=2)
            break
        except requests.RequestException:
            time.sleep(0.2)
    else:
        raise TimeoutError("server did not start")
    while time.monotonic() < deadline:
        if "warm-up done" in log_path.read_text(errors="replace"):
            print(f"server up and warmed up in {time.monotonic() - started:.0f} s", flush=True)
            return
        time.sleep(0.5)
    print("warning: no 'warm-up done' in the server log; the first figures may include compilation")


def start_server(root: Path, log_path: Path, cache_bytes: int | None) -> tuple[subprocess.Popen, str]:
    port = free_port()
    # The background quality service measures each new frame once: off, so that
    # the figures are those of the API requests alone.
    env = {**os.environ, "QA_QUALITY": "false"}
    if cache_bytes is not None:
        env["QA_CACHE_BYTES"] = str(cache_bytes)
    log = log_path.open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "serve", "--root", str(root),
         "--port", str(port), "--address", "127.0.0.1", "--no-demo"],
        cwd=PROJECT, stdout=log, stderr=subprocess.STDOUT, env=env,
    )
    log.close()  # the child holds its own descriptor
    return process, f"http://127.0.0.1:{port}"


def stop_server(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=20)


def run_phase(label: str, root: Path, workdir: Path, names: list[str], clients: int,
              seconds: float, sample: float, cache_bytes: int | None) -> dict:
    log_path = workdir / f"server-{label}.log"
    process, url = start_server(root, log_path, cache_bytes)
    try:
        wait_for(url, process, log_path)
        server = psutil.Process(process.pid)
        # Compile kernels and fill the cache: not what is measured.
        for name in names:
            for kind in KINDS:
                rng = random.Random(kind)
                while True:
                    drawn, path, body = random_request(rng, [name])
                    if drawn == kind:
                        break
                response = requests.post(url + path, json=body, timeout=REQUEST_TIMEOUT)
                if response.status_code != 200:
                    raise RuntimeError(f"warm-up {path} answered {response.status_code}: {response.text[:300]}")
        cache = "default" if cache_bytes is None else f"{cache_bytes / 2**20:.0f} MiB"
        print(f"\n=== phase {label}: {clients} clients, {seconds:.0f} s, QA_CACHE_BYTES {cache}, "
              f"server {url} (pid {process.pid})", flush=True)
        header = (f"{'elapsed s':>9} {'requests':>9} {'req/s':>7} {'p50 ms':>8} {'p95 ms':>8} "
                  f"{'errors':>7} {'RSS MiB':>8}")
        print(header + "\n" + "-" * len(header), flush=True)

        record = Record()
        start = time.monotonic()
        deadline = start + seconds
        threads = [
            threading.Thread(target=client, args=(url, names, deadline, index, record), daemon=True)
            for index in range(clients)
        ]
        rss = [(0.0, rss_bytes(server))]
        print(f"{0:>9.0f} {0:>9} {'':>7} {'':>8} {'':>8} {0:>7} {rss[0][1] / 2**20:>8.0f}", flush=True)
        for thread in threads:
            thread.start()
        seen = 0
        next_sample = start + sample
        while any(thread.is_alive() for thread in threads):
            time.sleep(max(0.0, min(next_sample, deadline + REQUEST_TIMEOUT) - time.monotonic()))
            now = time.monotonic()
            if now < next_sample and any(thread.is_alive() for thread in threads):
                continue
            interval = record.finished[seen:]
            seen += len(interval)
            latencies = [item[2] for item in interval if item[3]]
            errors = sum(1 for item in interval if not item[3])
            p50, p95, _ = percentiles(latencies)
            rss.append((now - start, rss_bytes(server)))
            elapsed = now - (next_sample - sample)
            print(f"{now - start:>9.0f} {len(interval):>9} {len(interval) / max(elapsed, 1e-9):>7.1f} "
                  f"{p50:>8.0f} {p95:>8.0f} {errors:>7} {rss[-1][1] / 2**20:>8.0f}", flush=True)
            next_sample += sample
            if now > deadline + REQUEST_TIMEOUT:
                break
        for thread in threads:
            thread.join(timeout=1)
        wall = time.monotonic() - start
        return summarize(label, record, rss, wall, process)
    finally:
        stop_server(process)


def summarize(label: str, record: Record, rss: list, wall: float, process: subprocess.Popen) -> dict:
    finished = list(record.finished)
    ok = [item for item in finished if item[3]]
    errors = len(finished) - len(ok)
    print(f"\n--- phase {label}: {len(finished)} requests in {wall:.0f} s = "
          f"{len(finished) / wall:.1f} req/s, {errors} errors")
    header = f"{'request':<18} {'count':>7} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'errors':>7}"
    print(header + "\n" + "-" * len(header))
    for kind in (*KINDS, "all"):
        rows = [item for item in finished if kind == "all" or item[1] == kind]
        p50, p95, p99 = percentiles([item[2] for item in rows if item[3]])
        print(f"{kind:<18} {len(rows):>7} {p50:>8.0f} {p95:>8.0f} {p99:>8.0f} "
              f"{sum(1 for item in rows if not item[3]):>7}")
    for message, count in sorted(record.errors.items(), key=lambda item: -item[1])[:10]:
        print(f"error x{count}: {message}")
    times = np.array([item[0] for item in rss])
    mib = np.array([item[1] for item in rss]) / 2**20
    # Trend over the second half of the phase: the first minutes include the
    # allocator and thread pools growing to their working size.
    half = times >= times[-1] / 2
    trend = ""
    if times[-1] >= 300 and half.sum() >= 3:  # shorter phases: too few samples for a trend
        slope = np.polyfit(times[half], mib[half], 1)[0] * 3600
        trend = f"; trend over the second half {slope:+.0f} MiB/hour"
    print(f"RSS MiB: start {mib[0]:.0f}, end {mib[-1]:.0f}, min {mib.min():.0f}, max {mib.max():.0f}{trend}")
    alive = process.poll() is None
    print(f"server still running at the end: {alive}", flush=True)
    p50, p95, p99 = percentiles([item[2] for item in ok])
    return {"label": label, "requests": len(finished), "rps": len(finished) / wall, "errors": errors,
            "p50": p50, "p95": p95, "p99": p99, "rss_start": mib[0], "rss_end": mib[-1]}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=20, help="concurrent clients (default 20)")
    duration = parser.add_mutually_exclusive_group()
    duration.add_argument("--seconds", type=float, help="length of the warm-cache phase")
    duration.add_argument("--minutes", type=float, help="length of the warm-cache phase (60: the soak)")
    parser.add_argument("--small-cache-seconds", type=float, default=None,
                        help="length of the small-cache phase (default: the warm phase's, at most 120 s; 0 skips it)")
    parser.add_argument("--small-cache-mb", type=float, default=None,
                        help="QA_CACHE_BYTES of the small-cache phase in MiB (default 1.25 x the larger frame)")
    parser.add_argument("--sample", type=float, default=10.0, help="seconds between RSS/latency rows")
    args = parser.parse_args(argv)
    seconds = args.seconds if args.seconds is not None else 60 * (args.minutes if args.minutes is not None else 1)
    if seconds <= 0 or args.clients < 1 or args.sample <= 0:
        parser.error("--seconds/--minutes, --clients and --sample must be positive")
    small_seconds = min(seconds, 120.0) if args.small_cache_seconds is None else args.small_cache_seconds

    print(f"bench/load.py started {time.strftime('%Y-%m-%d %H:%M:%S %Z')}; "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} "
          "(the machine is shared: figures are measured under contention)", flush=True)
    workdir = Path(tempfile.mkdtemp(prefix="qa-bench-load-"))
    root = workdir / "root"
    data = root / "data"
    data.mkdir(parents=True)
    try:
        started = time.perf_counter()
        frame_bytes = []
        for index, (name, shape) in enumerate(FRAMES.items()):
            frame = star_field(shape, n_stars=1000 + 1000 * index, seed=16 + index)
            write_fits(frame, data / name)
            frame_bytes.append(frame.data.nbytes)
            print(f"frame {name}: {shape[1]} x {shape[0]} {frame.data.dtype} "
                  f"({frame.data.size / 1e6:.1f} MP, {frame.data.nbytes / 2**20:.0f} MiB decoded)", flush=True)
            del frame
        # Old modification times: the local source lists fresh files only once they settle.
        for item in data.iterdir():
            os.utime(item, (time.time() - 60, time.time() - 60))
        print(f"frames written in {time.perf_counter() - started:.0f} s", flush=True)
        names = list(FRAMES)
        results = [run_phase("warm", root, workdir, names, args.clients, seconds, args.sample, None)]
        if small_seconds > 0:
            small = int(args.small_cache_mb * 2**20) if args.small_cache_mb else int(1.25 * max(frame_bytes))
            results.append(run_phase("small-cache", root, workdir, names, args.clients,
                                     small_seconds, args.sample, small))
        print("\n=== summary (ms over HTTP on 127.0.0.1; shared 2-CPU machine, contended)")
        for item in results:
            print(f"{item['label']:<12} {args.clients} clients: {item['rps']:.1f} req/s, p50 {item['p50']:.0f}, "
                  f"p95 {item['p95']:.0f}, p99 {item['p99']:.0f} ms, {item['errors']} errors, "
                  f"RSS {item['rss_start']:.0f} -> {item['rss_end']:.0f} MiB")
        print(f"finished {time.strftime('%Y-%m-%d %H:%M:%S %Z')}", flush=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
