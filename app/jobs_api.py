"""REST endpoints of the jobs: POST/GET /jobs, GET/DELETE /jobs/{id}, GET /jobs/{id}/result.

Bodies of POST /jobs, by ``kind``::

    {"kind": "quality", "s3_directory": "data", "night"?: "YYYY-MM-DD"}
    {"kind": "export", "s3_directory", "night"?, "subregion"?: {"x0", "y0", "x1", "y1"}}
    {"kind": "movie", "s3_directory", "night"?, "interval"?, "stretch"?, "cmap"?, "max_side"?}
    {"kind": "report", "dataset", "night"}

Handlers follow :class:`app.api.ApiHandler`: JSON answers, 400 on bad
parameters, 404 for an unknown job.
"""

from __future__ import annotations

import datetime as _dt
import mimetypes
from pathlib import Path
from typing import Annotated, Literal, Union

from pydantic import AfterValidator, Field, TypeAdapter

from app.api import ApiHandler, json_endpoint
from app.api_models import Name, Subregion, _Request
from components.errors import QuickAnalysisError

__all__ = [
    "JobRequest",
    "QualityJobRequest",
    "ExportJobRequest",
    "MovieJobRequest",
    "ReportJobRequest",
    "JobNotFound",
    "JobNotReady",
    "parse_job_request",
    "jobs_patterns",
    "JobsHandler",
    "JobHandler",
    "JobResultHandler",
]

#: The dashboard's intervals (components.views.display.INTERVALS), except "manual".
INTERVAL_NAMES = ("zscale", "minmax", "99.5", "99", "95")
#: The dashboard's stretches (components.views.display.STRETCHES).
STRETCH_NAMES = ("linear", "log", "sqrt", "asinh", "histeq")


class JobNotFound(QuickAnalysisError, LookupError):
    """No job has this id."""

    status = 404


class JobNotReady(QuickAnalysisError):
    """The job has no result (yet)."""

    status = 409


def _night(value: str) -> str:
    try:
        _dt.date.fromisoformat(value)
    except ValueError:
        raise ValueError("night must be a date YYYY-MM-DD") from None
    return value


def _cmap(value: str) -> str:
    from components.views.display import COLORMAPS

    if value not in COLORMAPS:
        raise ValueError(f"unknown colour map {value!r}; one of {', '.join(COLORMAPS)}")
    return value


Night = Annotated[str, Field(pattern=r"^\d{4}-\d{2}-\d{2}$", description="Observing night YYYY-MM-DD "
                             "(frames whose file time is between noon UTC that day and noon UTC the next)."),
                  AfterValidator(_night)]


class _FolderJob(_Request):
    s3_directory: Name = Field(description="Folder of the frames (one of QA_S3_DIRECTORIES).")
    night: Night | None = Field(default=None, description="Only the frames of this night.")


class QualityJobRequest(_FolderJob):
    """Measure every frame of a folder (or night) into the quality history."""

    kind: Literal["quality"]


class ExportJobRequest(_FolderJob):
    """The /statistics of a region (relative box) on every frame, as CSV."""

    kind: Literal["export"]
    subregion: Subregion | None = Field(default=None, description="Relative box; absent: the whole frame.")


class MovieJobRequest(_FolderJob):
    """An MP4 time-lapse of the folder (or night), one movie frame per image."""

    kind: Literal["movie"]
    interval: Literal[INTERVAL_NAMES] = Field(default="zscale", description="Display interval.")
    stretch: Literal[STRETCH_NAMES] = Field(default="linear", description="Stretch.")
    cmap: Annotated[str, AfterValidator(_cmap)] = Field(default="grey", description="Colour map (the dashboard's names).")
    max_side: int = Field(default=720, ge=64, le=2048, description="Longest side of the movie, in pixels.")


class ReportJobRequest(_Request):
    """Build the night report of a dataset."""

    kind: Literal["report"]
    dataset: Name = Field(description="Dataset (folder) of the report.")
    night: Night = Field(description="Observing night YYYY-MM-DD.")


JobRequest = Annotated[
    Union[QualityJobRequest, ExportJobRequest, MovieJobRequest, ReportJobRequest],
    Field(discriminator="kind"),
]
_adapter = TypeAdapter(JobRequest)


def parse_job_request(body: dict) -> QualityJobRequest | ExportJobRequest | MovieJobRequest | ReportJobRequest:
    """Validate a POST /jobs body (pydantic ValidationError -> 400)."""
    return _adapter.validate_python(body)


def _service():
    from app.jobs_service import get_jobs_service

    return get_jobs_service()


class JobsHandler(ApiHandler):
    """POST /jobs starts a job; GET /jobs lists them, newest first."""

    cors_methods = ("GET", "POST")

    @json_endpoint
    async def get(self) -> None:
        jobs = await self.compute(lambda: _service().list_jobs())
        self.send_json({"success": True, "jobs": jobs, "dashboard_url": _service().dashboard_link})

    @json_endpoint
    async def post(self) -> None:
        body = self.json_body()
        job = await self.compute(_service().submit, body)
        self.send_json({"success": True, "job": job})


class JobHandler(ApiHandler):
    """GET /jobs/{id}: the job's state and progress; DELETE cancels it."""

    cors_methods = ("GET", "DELETE")

    @json_endpoint
    async def get(self, job_id: str) -> None:
        job = await self.compute(_service().job, job_id)
        self.send_json({"success": True, "job": job})

    @json_endpoint
    async def delete(self, job_id: str) -> None:
        job = await self.compute(_service().cancel, job_id)
        self.send_json({"success": True, "job": job})


class JobResultHandler(ApiHandler):
    """GET /jobs/{id}/result: the result file (CSV, MP4, report)."""

    @json_endpoint
    async def get(self, job_id: str) -> None:
        path: Path = await self.compute(_service().result_path, job_id)
        data = await self.compute(path.read_bytes)
        media = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        if path.suffix == ".csv":
            media = "text/csv; charset=UTF-8"
        self.set_header("Content-Type", media)
        self.set_header("Content-Disposition", f'attachment; filename="{job_id}{"".join(path.suffixes)}"')
        self.finish(data)


def jobs_patterns() -> list[tuple]:
    """Tornado routes of the jobs endpoints."""
    return [
        (r"/jobs/?", JobsHandler),
        (r"/jobs/([0-9a-f]{1,64})/?", JobHandler),
        (r"/jobs/([0-9a-f]{1,64})/result/?", JobResultHandler),
    ]
