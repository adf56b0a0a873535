"""Jobs for heavy work (quality of a whole night, movies, exports, reports), run on Dask.

:mod:`~components.jobs.records` keeps the job table in SQLite,
:mod:`~components.jobs.tasks` holds the functions that run on the workers,
:mod:`~components.jobs.runner` submits them and records the progress.
"""

from components.jobs.records import FINISHED, KINDS, STATES, JobRecords, public_view
from components.jobs.runner import JobRunner, frames_of, night_window
from components.jobs.tasks import source_spec

__all__ = [
    "FINISHED", "KINDS", "STATES", "JobRecords", "public_view",
    "JobRunner", "frames_of", "night_window", "source_spec",
]
