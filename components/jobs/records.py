"""Job records: one row per job in an embedded SQLite file beside the quality history.

A job is ``pending`` until the runner takes it, ``running`` while its tasks
run, then ``complete``, ``failed`` or ``cancelled``. Progress (frames done of
total) is written as each task's result arrives; the ETA is derived from the
rate measured since the job started. A server that restarts finds its
pending jobs and re-queues those it was running (:meth:`JobRecords.requeue`).
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import uuid
from pathlib import Path

__all__ = ["JobRecords", "STATES", "FINISHED", "KINDS", "public_view"]

#: Every state a job can be in.
STATES = ("pending", "running", "complete", "failed", "cancelled")
#: States a job never leaves.
FINISHED = ("complete", "failed", "cancelled")
#: Kinds of job.
KINDS = ("quality", "report", "movie", "export")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    params TEXT NOT NULL,
    state TEXT NOT NULL,
    done INTEGER NOT NULL DEFAULT 0,
    total INTEGER,
    workers TEXT NOT NULL DEFAULT '[]',
    result_path TEXT,
    error TEXT,
    created REAL NOT NULL,
    started REAL,
    finished REAL,
    updated REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS jobs_created ON jobs (created);
"""

_COLUMNS = ("kind", "params", "state", "done", "total", "workers", "result_path", "error",
            "created", "started", "finished", "updated", "attempts")


def _percent(record: dict) -> float | None:
    total, done = record["total"], record["done"]
    if record["state"] == "complete":
        return 100.0
    if not total:
        return 0.0 if total == 0 or record["state"] == "pending" else None
    return round(100.0 * min(done, total) / total, 2)


def _eta(record: dict, now: float) -> float | None:
    # The measured rate since the job started: frames done / seconds running.
    if record["state"] != "running" or not record["total"] or not record["started"]:
        return None
    done, total = record["done"], record["total"]
    elapsed = now - record["started"]
    if done <= 0 or elapsed <= 0:
        return None
    return round(max(0.0, (total - done) * elapsed / done), 1)


def public_view(record: dict, now: float | None = None) -> dict:
    """The JSON shape of a job in API answers and ``job`` events."""
    now = time.time() if now is None else now
    view = {
        "id": record["id"],
        "kind": record["kind"],
        "params": record["params"],
        "state": record["state"],
        "done": record["done"],
        "total": record["total"],
        "percent": _percent(record),
        "eta_seconds": _eta(record, now),
        "workers": record["workers"],
        "result_url": f"/jobs/{record['id']}/result" if record["state"] == "complete" and record["result_path"] else None,
        "error": record["error"],
        "created": record["created"],
        "started": record["started"],
        "finished": record["finished"],
    }
    if record["state"] == "running" and record["started"]:
        view["elapsed_seconds"] = round(now - record["started"], 1)
    return view


class JobRecords:
    """The job table.

    Parameters
    ----------
    path : path-like
        The SQLite file (its folder is created if needed).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> records = JobRecords(pathlib.Path(tempfile.mkdtemp()) / "jobs.sqlite3")
    >>> job = records.create("quality", {"s3_directory": "data"})
    >>> job["state"], job["done"]
    ('pending', 0)
    >>> records.update(job["id"], state="running", total=4, started=100.0)["total"]
    4
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._connection = sqlite3.connect(self.path, check_same_thread=False, timeout=10)
        with self._lock, self._connection:
            self._connection.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._connection.close()

    def create(self, kind: str, params: dict) -> dict:
        """A new pending job."""
        if kind not in KINDS:
            raise ValueError(f"unknown job kind {kind!r}")
        job_id = uuid.uuid4().hex[:12]
        now = time.time()
        with self._lock, self._connection:
            self._connection.execute(
                "INSERT INTO jobs (id, kind, params, state, created, updated) VALUES (?, ?, ?, 'pending', ?, ?)",
                [job_id, kind, json.dumps(params), now, now],
            )
        return self.get(job_id)

    def get(self, job_id: str) -> dict | None:
        found = self._select("SELECT * FROM jobs WHERE id = ?", [job_id])
        return found[0] if found else None

    def all(self, limit: int = 200) -> list[dict]:
        """Jobs, newest first."""
        return self._select("SELECT * FROM jobs ORDER BY created DESC, rowid DESC LIMIT ?", [limit])

    def next_pending(self) -> dict | None:
        """The oldest pending job."""
        found = self._select(
            "SELECT * FROM jobs WHERE state = 'pending' ORDER BY created, rowid LIMIT 1", []
        )
        return found[0] if found else None

    def update(self, job_id: str, **fields) -> dict | None:
        """Set ``fields`` (columns of the table) of a job; returns the record."""
        unknown = set(fields) - set(_COLUMNS)
        if unknown:
            raise ValueError(f"unknown job fields {sorted(unknown)}")
        if "state" in fields and fields["state"] not in STATES:
            raise ValueError(f"unknown job state {fields['state']!r}")
        for name in ("params", "workers"):
            if name in fields:
                fields[name] = json.dumps(fields[name])
        fields["updated"] = time.time()
        names = list(fields)
        with self._lock, self._connection:
            self._connection.execute(
                f"UPDATE jobs SET {', '.join(f'{name} = ?' for name in names)} WHERE id = ?",
                [fields[name] for name in names] + [job_id],
            )
        return self.get(job_id)

    def finish_unless_finished(self, job_id: str, state: str, **fields) -> dict | None:
        """Move a job to a final ``state`` (with ``fields``, in one write) unless it is in one already."""
        unknown = set(fields) - set(_COLUMNS)
        if unknown:
            raise ValueError(f"unknown job fields {sorted(unknown)}")
        now = time.time()
        fields = {**fields, "state": state, "finished": now, "updated": now}
        names = list(fields)
        with self._lock, self._connection:
            self._connection.execute(
                f"UPDATE jobs SET {', '.join(f'{name} = ?' for name in names)} WHERE id = ? "
                f"AND state NOT IN ({', '.join('?' * len(FINISHED))})",
                [fields[name] for name in names] + [job_id, *FINISHED],
            )
        return self.get(job_id)

    def claim(self, job_id: str) -> dict | None:
        """Move a pending job to running (None if it is no longer pending: cancelled meanwhile)."""
        now = time.time()
        with self._lock, self._connection:
            changed = self._connection.execute(
                "UPDATE jobs SET state = 'running', done = 0, started = ?, updated = ?, "
                "attempts = attempts + 1 WHERE id = ? AND state = 'pending'",
                [now, now, job_id],
            ).rowcount
        return self.get(job_id) if changed else None

    def requeue(self) -> list[str]:
        """After a restart: jobs left running are pending again (their progress restarts)."""
        with self._lock, self._connection:
            ids = [row[0] for row in self._connection.execute("SELECT id FROM jobs WHERE state = 'running'")]
            self._connection.execute(
                "UPDATE jobs SET state = 'pending', done = 0, started = NULL, updated = ? WHERE state = 'running'",
                [time.time()],
            )
        return ids

    def _select(self, query: str, arguments: list) -> list[dict]:
        with self._lock:
            cursor = self._connection.execute(query, arguments)
            names = [column[0] for column in cursor.description]
            records = [dict(zip(names, row)) for row in cursor]
        for record in records:
            record["params"] = json.loads(record["params"])
            record["workers"] = json.loads(record["workers"])
        return records
