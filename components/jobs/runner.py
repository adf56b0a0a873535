"""The job runner: takes pending jobs one at a time and runs their tasks on Dask.

Frame jobs (quality, export, movie) become one task per frame, submitted with
``client.map`` and collected with :func:`distributed.as_completed`, so the
progress written to the job record (and published as ``job`` events) is the
real count of frames finished. A report job is a single call made in the
runner's thread. Cancelling a job cancels its futures.
"""

from __future__ import annotations

import csv
import io
import logging
import shutil
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable

from components.events import bus
from components.jobs import tasks
from components.jobs.records import FINISHED, JobRecords, public_view

__all__ = ["JobRunner", "night_window", "frames_of", "MOVIE_FPS", "EXPORT_COLUMNS"]

log = logging.getLogger("quickanalysis.jobs")

#: Frames per second of the time-lapse movies (one frame per image).
MOVIE_FPS = 5
#: Columns of the export CSV: the frame's key, then the /statistics keys.
EXPORT_COLUMNS = ("key", *tasks.STAT_FIELDS, "error")
# Seconds between two looks for work when nothing wakes the runner.
_IDLE = 1.0


def night_window(night: str) -> tuple[datetime, datetime]:
    """The observing night ``YYYY-MM-DD``: noon UTC of that date to noon UTC the next day."""
    day = datetime.strptime(night, "%Y-%m-%d").replace(tzinfo=timezone.utc)
    start = day + timedelta(hours=12)
    return start, start + timedelta(days=1)


def frames_of(store, directory: str, night: str | None = None) -> list:
    """Frames of ``directory`` (and below), oldest first; only those of ``night`` if given."""
    frames = list(store.list_frames(directory))
    if night:
        start, end = night_window(night)
        frames = [f for f in frames if start <= f.modified.astimezone(timezone.utc) < end]
    frames.sort(key=lambda f: (f.modified, f.key))
    return frames


class _Cancelled(Exception):
    pass


class JobRunner:
    """Runs the jobs of a :class:`JobRecords` table, oldest pending first, in one thread.

    Parameters
    ----------
    records : JobRecords
        The job table.
    store : FrameStore
        The server's store (lists frames; workers read them through ``spec``).
    history : QualityHistory
        Where quality jobs record each frame.
    spec : dict
        Source settings handed to the workers (:func:`components.jobs.tasks.source_spec`).
    quality_options : dict
        ``thresholds`` (fields of QualityThresholds), ``saturation``, ``pixel_scale``.
    results_dir : path-like
        Where results (CSV, MP4, reports) are written.
    client : callable
        Returns the Dask ``Client`` once connected, or None while it is not.
    report_builder : callable, optional
        ``build_report(dataset=, night=, store=, history=, output_dir=)``; None when
        reports are not available.
    """

    def __init__(
        self,
        records: JobRecords,
        store,
        history,
        spec: dict,
        quality_options: dict,
        results_dir: str | Path,
        client: Callable,
        report_builder: Callable | None = None,
    ):
        self.records, self.store, self.history = records, store, history
        self.spec, self.quality_options = spec, quality_options
        self.results_dir = Path(results_dir)
        self._client = client
        self.report_builder = report_builder
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._current: str | None = None
        self._futures: list = []
        self._cancel: set[str] = set()

    # ---------------------------------------------------------------- control

    def start(self) -> None:
        """Re-queue the jobs a previous server left running, then run jobs until stopped."""
        requeued = self.records.requeue()
        if requeued:
            log.info("re-queued jobs left running: %s", ", ".join(requeued))
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="jobs", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        with self._lock:
            futures = list(self._futures)
        self._cancel_futures(futures)
        if self._thread is not None:
            self._thread.join(timeout=10)

    def wake(self) -> None:
        """A job was submitted: look now."""
        self._wake.set()

    def cancel(self, job_id: str, wait: float = 10.0) -> dict | None:
        """Cancel a job: a pending one at once, a running one as soon as its futures are cancelled."""
        record = self.records.get(job_id)
        if record is None or record["state"] in FINISHED:
            return record
        if record["state"] == "pending":
            record = self.records.finish_unless_finished(job_id, "cancelled")
            if record["state"] == "cancelled":
                self._publish(record)
                return record
        with self._lock:
            self._cancel.add(job_id)
            futures = list(self._futures) if self._current == job_id else []
        self._cancel_futures(futures)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            record = self.records.get(job_id)
            if record["state"] in FINISHED:
                break
            time.sleep(0.05)
        return record

    # ---------------------------------------------------------------- loop

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                job = self.records.next_pending()
                client = None
                if job is not None and job["kind"] != "report":
                    client = self._client()
                    if client is None:  # not connected yet: the job stays pending
                        job = None
                if job is None:
                    self._wake.wait(_IDLE)
                    self._wake.clear()
                    continue
                self._run_job(job, client)
            except Exception:  # one broken job must not end the runner
                log.exception("job runner loop failed")
                self._stop.wait(_IDLE)

    def _run_job(self, job: dict, client) -> None:
        job = self.records.claim(job["id"])
        if job is None:  # cancelled between the look and the claim
            return
        job_id = job["id"]
        with self._lock:
            self._current, self._futures = job_id, []
        log.info("job %s (%s) started: %s", job_id, job["kind"], job["params"])
        self._publish(job)
        try:
            if job["kind"] == "report":
                result_path = self._report(job)
            else:
                result_path = self._frame_job(job, client)
        except _Cancelled:
            record = self.records.finish_unless_finished(job_id, "cancelled")
            log.info("job %s cancelled", job_id)
        except Exception as error:  # the job's own failure: recorded, not raised
            if self._stop.is_set():
                # The server is stopping: leave it running, it is re-queued at the next start.
                return
            log.exception("job %s failed", job_id)
            record = self.records.finish_unless_finished(
                job_id, "failed", error=f"{type(error).__name__}: {error}"
            )
        else:
            record = self.records.finish_unless_finished(
                job_id, "complete", result_path=str(result_path) if result_path else None,
            )
            log.info("job %s complete", job_id)
        finally:
            with self._lock:
                self._current, self._futures = None, []
                self._cancel.discard(job_id)
        self._publish(record)

    # ---------------------------------------------------------------- kinds

    def _frame_job(self, job: dict, client) -> Path | None:
        params, kind = job["params"], job["kind"]
        frames = frames_of(self.store, params["s3_directory"], params.get("night"))
        keys = [frame.key for frame in frames]
        self._progress(job["id"], total=len(keys), done=0)
        if kind == "quality":
            function, argument = tasks.measure_quality, self.quality_options
        elif kind == "export":
            region = params.get("subregion")
            function = tasks.frame_statistics
            argument = None if region is None else tuple(region[c] for c in ("x0", "y0", "x1", "y1"))
        elif kind == "movie":
            function = tasks.render_frame
            argument = {name: params[name] for name in ("interval", "stretch", "cmap", "max_side") if name in params}
        else:
            raise ValueError(f"unknown job kind {kind!r}")
        staging = self.results_dir / f"{job['id']}.parts"
        handle = {"quality": self._quality_result, "export": None, "movie": None}[kind]
        collected: dict[str, dict] = {}
        if kind == "movie":
            shutil.rmtree(staging, ignore_errors=True)
            staging.mkdir(parents=True)

        def keep(result: dict) -> None:
            if kind == "movie" and "png" in result:
                # Each PNG goes to disk as it comes: a long night never sits in memory.
                path = staging / f"{len(collected):06d}.png"
                path.write_bytes(result.pop("png"))
                result["path"] = str(path)
            collected[result["key"]] = result
            if handle is not None:
                handle(result)

        self._map(job, client, function, keys, argument, keep)
        if kind == "export":
            return self._write_csv(job, keys, collected)
        if kind == "movie":
            try:
                return self._write_movie(job, collected)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
        return None

    def _map(self, job: dict, client, function, keys: list[str], argument, keep: Callable) -> None:
        from distributed import as_completed

        job_id = job["id"]
        if not keys:
            return
        names = [f"qa-{job['kind']}-{job_id}-{job['attempts']}-{i}" for i in range(len(keys))]
        count = len(keys)
        # Keys, spec and options travel to the workers; the frames never do.
        futures = client.map(function, keys, [self.spec] * count, [argument] * count, key=names)
        with self._lock:
            self._futures = futures
            cancelled = job_id in self._cancel
        if cancelled:
            self._cancel_futures(futures)
        done, workers = 0, set(job["workers"])
        try:
            # The client is not the process default (set_as_default=False): name its loop.
            for future in as_completed(futures, loop=client.loop):
                if self._cancelled(job_id):
                    raise _Cancelled()
                if future.status == "cancelled":
                    # Not the user's cancel: the server is stopping (the job is re-queued at the
                    # next start) or the cluster dropped the task; either way the job is not done.
                    raise RuntimeError(f"a task of the job was cancelled by the cluster ({future.key})")
                result = future.result()
                keep(result)
                done += 1
                fields = {"done": done}
                if result.get("worker") and result["worker"] not in workers:
                    workers.add(result["worker"])
                    fields["workers"] = sorted(workers)
                self._progress(job_id, **fields)
            if self._cancelled(job_id):
                raise _Cancelled()
        except BaseException:
            self._cancel_futures(futures)
            raise

    def _quality_result(self, result: dict) -> None:
        key, version = result["key"], result["version"]
        if "metrics" in result:
            self.history.record(key, version, result["observed"], result["metrics"])
        else:
            self.history.record(key, version, result["observed"], error=result.get("error"))
        row = self.history.latest(key)
        if row is not None:
            bus().publish("quality", row)

    def _write_csv(self, job: dict, keys: list[str], collected: dict) -> Path:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(EXPORT_COLUMNS)
        for key in keys:  # observing order (file time), as the frames were listed
            result = collected.get(key, {})
            stats = result.get("stats") or {}
            writer.writerow([key, *("" if stats.get(n) is None else repr(stats[n]) for n in tasks.STAT_FIELDS),
                             result.get("error") or ""])
        path = self.results_dir / f"{job['id']}.csv"
        self._write_atomically(path, out.getvalue().encode("utf-8"))
        return path

    def _write_movie(self, job: dict, collected: dict) -> Path:
        import imageio_ffmpeg
        import numpy as np
        from PIL import Image as PILImage, ImageOps

        ordered = sorted((r for r in collected.values() if "path" in r), key=lambda r: (r["observed"], r["key"]))
        if not ordered:
            raise ValueError("no frame of the folder could be rendered")
        # Every movie frame has the size of the first, rounded up to whole 16-pixel
        # blocks as the H.264 encoder wants; other sizes are letterboxed into it.
        width = -(-ordered[0]["width"] // 16) * 16
        height = -(-ordered[0]["height"] // 16) * 16
        path = self.results_dir / f"{job['id']}.mp4"
        partial = path.with_suffix(".mp4.part")
        writer = imageio_ffmpeg.write_frames(
            str(partial), (width, height), fps=MOVIE_FPS, codec="libx264", macro_block_size=16,
            ffmpeg_log_level="error", output_params=["-f", "mp4"],
        )
        writer.send(None)
        try:
            for result in ordered:
                if self._cancelled(job["id"]):
                    raise _Cancelled()
                with PILImage.open(result["path"]) as picture:
                    frame = ImageOps.pad(picture.convert("RGB"), (width, height), color=(0, 0, 0))
                writer.send(np.ascontiguousarray(np.asarray(frame, dtype=np.uint8)))
        finally:
            writer.close()
        partial.replace(path)
        return path

    def _report(self, job: dict) -> Path | None:
        if self.report_builder is None:
            raise RuntimeError("reports are not available")
        params = job["params"]
        self._progress(job["id"], total=1, done=0)
        output = self.results_dir / job["id"]
        output.mkdir(parents=True, exist_ok=True)
        result = self.report_builder(
            dataset=params["dataset"], night=params["night"], store=self.store,
            history=self.history, output_dir=output,
        )
        self._progress(job["id"], done=1)
        if isinstance(result, dict):
            result = result.get("path")
        return Path(result) if result else None

    # ---------------------------------------------------------------- helpers

    def _write_atomically(self, path: Path, data: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(path.suffix + ".part")
        partial.write_bytes(data)
        partial.replace(path)

    def _cancelled(self, job_id: str) -> bool:
        with self._lock:
            return job_id in self._cancel

    def _cancel_futures(self, futures: list) -> None:
        if not futures:
            return
        try:
            futures[0].client.cancel(futures)
        except Exception:  # the client may be closing with the server
            log.debug("cancelling futures failed", exc_info=True)

    def _progress(self, job_id: str, **fields) -> None:
        self._publish(self.records.update(job_id, **fields))

    def _publish(self, record: dict | None) -> None:
        if record is None:
            return
        view = public_view(record)
        bus().publish("job", {name: view[name] for name in
                              ("id", "kind", "state", "done", "total", "percent", "eta_seconds")})

