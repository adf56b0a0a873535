"""The jobs service of a server process: the Dask client, the job table and the runner.

The Dask client is made in a background thread, so the server answers at once.
The embedded default, a ``LocalCluster`` of ``QA_DASK_WORKERS`` worker
processes, is started when the first job needs it: an idle scheduler and its
workers cost a few percent of a core for ever (heartbeats, work stealing,
memory monitors), which a server nobody asks for a job must not pay. With
``QA_DASK_SCHEDULER`` the client connects to that existing scheduler a few
seconds after start-up (and keeps trying while it is unreachable; jobs wait,
pending). Jobs run one at a time in the runner's
thread; their tasks run on the workers.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from pathlib import Path

from app.settings import Settings, get_settings
from components.errors import InvalidRequest
from components.jobs import JobRecords, JobRunner, public_view, source_spec

__all__ = ["JobsService", "get_jobs_service", "current_jobs_service", "stop_jobs_service", "report_builder"]

log = logging.getLogger("quickanalysis.jobs")

# Seconds between two attempts to reach an unreachable scheduler.
_RETRY = 3.0
# Seconds after start-up before the client connects to a QA_DASK_SCHEDULER without a
# job asking for it: importing distributed must not slow the server's first answers.
_CONNECT_AFTER = 10.0


def report_builder():
    """Build a night report as a job: through the server's reports service (issue 10).

    The report lands in the report repository (``/reports/<dataset>/<night>/``),
    is mailed and published like a scheduled one; the job's result is its index.html.
    None when no ``QA_REPORTS_CONFIG`` is set (a report job then fails, saying so).
    """

    def build(dataset: str, night: str, **_ignored) -> Path:
        from app.reports_service import get_reports_service
        from components.reports.report import report_folder

        service = get_reports_service()
        if service is None:
            raise RuntimeError("reports are not configured (QA_REPORTS_CONFIG is unset)")
        config = service.config.get(dataset)
        if config is None:
            raise RuntimeError(f"no dataset {dataset!r} in QA_REPORTS_CONFIG")
        service.build(config, night)
        return report_folder(service.settings.reports_path(), config.name, night) / "index.html"

    return build


def _dashboard_address(settings: Settings) -> str:
    # The Dask dashboard listens where the server does (8787, or a free port if taken).
    host = settings.address if settings.address not in ("localhost", "") else "127.0.0.1"
    return f"{host}:8787"


class JobsService:
    """Jobs of one server process.

    Parameters
    ----------
    settings : Settings
        Where frames are (handed to the workers), the history, the Dask settings.
    store : FrameStore
        The server's store (lists the frames of a job).
    history : QualityHistory
        The quality history quality jobs write into.
    """

    def __init__(self, settings: Settings, store, history):
        self.settings = settings
        self.store = store
        jobs_dir = settings.jobs_path()
        self.records = JobRecords(jobs_dir / "jobs.sqlite3")
        spec = source_spec(
            root=settings.root, bucket=settings.s3_bucket, prefix=settings.s3_prefix,
            region=settings.s3_region, endpoint_url=settings.s3_endpoint_url,
            directories=settings.s3_directories,
        )
        options = {
            "thresholds": dataclasses.asdict(settings.thresholds()),
            "saturation": settings.saturation_level,
            "pixel_scale": settings.pixel_scale,
        }
        self.runner = JobRunner(
            self.records, store, history, spec, options, jobs_dir / "results",
            client=self.client, report_builder=report_builder(),
        )
        self._client = None
        self._cluster = None
        self.dashboard_link: str | None = None
        self._stop = threading.Event()
        self._wanted = threading.Event()
        self._connector: threading.Thread | None = None

    # ---------------------------------------------------------------- life

    def start(self) -> None:
        """Start the runner and, in the background, the Dask client."""
        if self._connector is None:
            self.runner.start()
            self._connector = threading.Thread(target=self._connect, name="dask-connect", daemon=True)
            self._connector.start()

    def stop(self) -> None:
        self._stop.set()
        self._wanted.set()
        self.runner.stop()
        for closable in (self._client, self._cluster):
            if closable is not None:
                try:
                    closable.close()
                except Exception:
                    log.debug("closing %r failed", closable, exc_info=True)

    def client(self):
        """The Dask client once connected, else None (asking starts the connection now)."""
        if self._client is None:
            self._wanted.set()
        return self._client

    def _connect(self) -> None:
        # The local cluster only for a job; an external scheduler at once (it costs us nothing).
        self._wanted.wait(_CONNECT_AFTER if self.settings.dask_scheduler else None)
        if self._stop.is_set():
            return
        from distributed import Client, LocalCluster

        settings = self.settings
        while not self._stop.is_set():
            try:
                if settings.dask_scheduler:
                    client = Client(settings.dask_scheduler, timeout="10s", set_as_default=False)
                else:
                    self._cluster = LocalCluster(
                        n_workers=settings.dask_workers, processes=True, threads_per_worker=1,
                        dashboard_address=_dashboard_address(settings), silence_logs=logging.WARNING,
                    )
                    client = Client(self._cluster, set_as_default=False)
            except Exception as error:  # unreachable scheduler: jobs wait, pending
                log.warning("Dask scheduler %s unreachable (%s); retrying in %.0f s",
                            settings.dask_scheduler or "(local cluster)", error, _RETRY)
                self._stop.wait(_RETRY)
                continue
            try:
                self.dashboard_link = client.dashboard_link or None
            except Exception:  # a scheduler started with --no-dashboard has none
                self.dashboard_link = None
            self._client = client
            log.info("jobs run on Dask %s (dashboard %s)", client.scheduler.address, self.dashboard_link)
            self.runner.wake()
            return

    # ---------------------------------------------------------------- jobs

    def submit(self, body: dict) -> dict:
        """Validate a POST /jobs body and queue the job; returns its public view."""
        from app.jobs_api import parse_job_request

        request = parse_job_request(body)
        params = request.model_dump(exclude={"kind"}, exclude_none=True)
        if request.kind == "report":
            if self.runner.report_builder is None:
                raise InvalidRequest("reports are not available")
        else:
            directory = params["s3_directory"]
            if directory not in self.store.allowed_directories:
                raise InvalidRequest(
                    f"s3_directory must be one of {', '.join(self.store.allowed_directories)} (got {directory!r})"
                )
        record = self.records.create(request.kind, params)
        self.runner._publish(record)
        self.runner.wake()
        return public_view(record)

    def list_jobs(self) -> list[dict]:
        return [public_view(record) for record in self.records.all()]

    def job(self, job_id: str) -> dict:
        return public_view(self._record(job_id))

    def cancel(self, job_id: str) -> dict:
        self._record(job_id)
        return public_view(self.runner.cancel(job_id))

    def result_path(self, job_id: str) -> Path:
        from app.jobs_api import JobNotReady

        record = self._record(job_id)
        if record["state"] != "complete" or not record["result_path"]:
            raise JobNotReady(f"job {job_id} has no result (state {record['state']})")
        path = Path(record["result_path"])
        if not path.is_file():
            raise JobNotReady(f"the result of job {job_id} is gone ({path.name})")
        return path

    def _record(self, job_id: str) -> dict:
        from app.jobs_api import JobNotFound

        record = self.records.get(job_id)
        if record is None:
            raise JobNotFound(f"no job {job_id}")
        return record


_lock = threading.Lock()
_service: JobsService | None = None


def get_jobs_service() -> JobsService:
    """The jobs service of this process (started on first use)."""
    global _service
    with _lock:
        if _service is None:
            from app.state import get_quality_service, get_store

            history = get_quality_service().history
            _service = JobsService(get_settings(), get_store(), history)
            _service.start()
        return _service


def current_jobs_service() -> JobsService | None:
    """The jobs service if the process started one (the server does), else None."""
    with _lock:
        return _service


def stop_jobs_service() -> None:
    global _service
    with _lock:
        if _service is not None:
            _service.stop()
        _service = None
