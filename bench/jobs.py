"""A quality job over synthetic 4096 x 4096 frames: the server process alone, then Dask.

Run: ``python bench/jobs.py [--frames 100] [--distinct 10] [--workers 1 2]``.

The same frames (``--distinct`` different ones written once, the rest hard
links to them under other names, so every frame is read and decoded again)
are measured three ways, in one run:

* **in process**: one after the other in this process, as the server's own
  quality service would (no Dask);
* **LocalCluster of W workers** (W from ``--workers``): a ``quality`` job
  through :class:`components.jobs.JobRunner`, one task per frame, collected
  with ``as_completed``, every result recorded in a quality history.

Workers are warmed up first (imports, numba kernels from the cache), and the
in-process path too, so each figure is the steady rate. Prints frames per
second, the speed-up over the in-process rate, and what N machines would
give by the same measure.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from components.core.synthetic import star_field, write_fits  # noqa: E402
from components.jobs import JobRecords, JobRunner, source_spec  # noqa: E402
from components.jobs import tasks  # noqa: E402
from components.sources import FrameStore, ImageCache, LocalSource  # noqa: E402
from components.sources.history import QualityHistory  # noqa: E402

SHAPE = (4096, 4096)


def make_frames(root: Path, count: int, distinct: int) -> list[str]:
    folder = root / "data"
    folder.mkdir(parents=True)
    originals = []
    for index in range(distinct):
        path = folder / f"orig-{index:03d}.fits"
        write_fits(star_field(SHAPE, n_stars=300, seed=index), path)
        originals.append(path)
    keys = []
    for index in range(count):
        path = folder / f"frame-{index:03d}.fits"
        os.link(originals[index % distinct], path)
        keys.append(f"data/{path.name}")
    for path in originals:  # only the frame-* names are measured
        path.rename(root / path.name)
    return keys


def in_process(spec: dict, keys: list[str]) -> float:
    tasks.measure_quality(keys[0], spec, {})  # warm-up (imports, numba), not counted
    tasks._stores.clear()  # the warm-up's decode must not be cached for the run
    start = time.perf_counter()
    for key in keys:
        result = tasks.measure_quality(key, spec, {})
        assert "metrics" in result, result
    return time.perf_counter() - start


def on_cluster(root: Path, spec: dict, keys: list[str], workers: int) -> tuple[float, list[str]]:
    from distributed import Client, LocalCluster

    run_dir = root / f".run-{workers}"
    with LocalCluster(n_workers=workers, processes=True, threads_per_worker=1, dashboard_address=None,
                      silence_logs=logging.ERROR) as cluster, Client(cluster, set_as_default=False) as client:
        # Warm every worker on a frame outside the measured set.
        warm = root / "data-warm"
        warm.mkdir(exist_ok=True)
        first = root / "orig-000.fits"
        for index in range(workers):
            target = warm / f"warm-{index}.fits"
            if not target.exists():
                os.link(first, target)
        client.gather(client.map(tasks.measure_quality, [f"data-warm/warm-{i}.fits" for i in range(workers)],
                                 [spec] * workers, [{}] * workers, pure=False))
        records = JobRecords(run_dir / "jobs.sqlite3")
        history = QualityHistory(run_dir / "quality.sqlite3")
        store = FrameStore(LocalSource(root, settle=0), ImageCache(10**8))
        runner = JobRunner(records, store, history, spec, {"thresholds": {}}, run_dir / "results", lambda: client)
        job = records.create("quality", {"s3_directory": "data"})
        start = time.perf_counter()
        runner.start()
        while records.get(job["id"])["state"] not in ("complete", "failed", "cancelled"):
            time.sleep(0.05)
        elapsed = time.perf_counter() - start
        final = records.get(job["id"])
        runner.stop()
        assert final["state"] == "complete" and final["done"] == len(keys), final
        assert len(history.rows("data")) == len(keys)
        return elapsed, final["workers"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--distinct", type=int, default=10)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="qa-bench-jobs-"))
    load_before = os.getloadavg()[0]
    try:
        print(f"writing {args.frames} frames of {SHAPE[0]} x {SHAPE[1]} uint16 ({args.distinct} distinct) ...",
              flush=True)
        keys = make_frames(root, args.frames, min(args.distinct, args.frames))
        spec = source_spec(root)
        rows = []
        seconds = in_process(spec, keys)
        rows.append(("in the server process (no Dask)", seconds, []))
        print(f"  in process: {seconds:.1f} s", flush=True)
        for workers in args.workers:
            seconds, used = on_cluster(root, spec, keys, workers)
            rows.append((f"LocalCluster, {workers} worker{'s' if workers > 1 else ''}", seconds, used))
            print(f"  {workers} worker(s): {seconds:.1f} s on {len(used)} worker(s)", flush=True)
        base = len(keys) / rows[0][1]
        print()
        print(f"quality job over {len(keys)} frames of {SHAPE[0]} x {SHAPE[1]} on {os.cpu_count()} cores "
              f"(load average {load_before:.2f} before the run, {os.getloadavg()[0]:.2f} after: "
              "above ~0.5 means other work shared the cores)")
        print(f"{'engine':36s} {'seconds':>8s} {'frames/s':>9s} {'speed-up':>9s}")
        for name, seconds, _ in rows:
            rate = len(keys) / seconds
            print(f"{name:36s} {seconds:8.1f} {rate:9.3f} {rate / base:8.2f}x")
        best_name, best_seconds, _ = rows[-1]
        per_machine = len(keys) / best_seconds
        print()
        print(f"By the same measure, N machines like this one (each running {args.workers[-1]} workers on a "
              f"scheduler shared through QA_DASK_SCHEDULER, frames on S3 or a shared folder) would give about "
              f"N x {per_machine:.3f} frames/s while the source keeps up:")
        for machines in (1, 2, 4, 8, 16):
            rate = machines * per_machine
            print(f"  N = {machines:2d}: {rate:7.2f} frames/s, {len(keys) / rate:7.1f} s for these {len(keys)} frames, "
                  f"{1000 / rate / 60:6.1f} min for a 1000-frame night")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
