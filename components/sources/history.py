"""The session's quality history: one row per frame version in an embedded SQLite file.

The database lives in the session's folder (``<root>/.quickanalysis/quality.sqlite3``
by default), so a restarted server keeps the night's history. It is the only
file QuickAnalysis writes, and it is never an image.
"""

from __future__ import annotations

import json
import math
import sqlite3
import threading
import time
from pathlib import Path
from typing import Iterable

__all__ = ["QualityHistory", "METRICS"]

#: The numeric metrics recorded per frame (columns of the table).
METRICS = (
    "background",
    "background_rms",
    "saturated_fraction",
    "star_count",
    "fwhm_px",
    "fwhm_arcsec",
    "hfr_px",
    "elongation",
    "pixel_scale",
    # Focuser position (FOCPOS or QA_FOCUS_KEYWORD) of the frame, for focus curves.
    "focus",
    # RA/Dec (degrees) of the frame's centre from its WCS, for the pointing drift.
    "center_ra",
    "center_dec",
)

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS frame_quality (
    key TEXT NOT NULL,
    version TEXT NOT NULL,
    directory TEXT NOT NULL,
    name TEXT NOT NULL,
    observed REAL NOT NULL,
    recorded REAL NOT NULL,
    {", ".join(f"{name} REAL" for name in METRICS)},
    verdicts TEXT,
    error TEXT,
    PRIMARY KEY (key, version)
);
CREATE INDEX IF NOT EXISTS frame_quality_observed ON frame_quality (observed);
"""


def _finite_or_none(value):
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


class QualityHistory:
    """Quality metrics of every frame seen, kept in SQLite.

    Parameters
    ----------
    path : path-like
        The database file; its folder is created if needed.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> history = QualityHistory(pathlib.Path(tempfile.mkdtemp()) / "q.sqlite3")
    >>> history.record("data/a.fits", "v1", 1.7e9, {"fwhm_px": 3.1, "star_count": 12})
    >>> history.rows()[0]["fwhm_px"]
    3.1
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._connection = sqlite3.connect(self.path, check_same_thread=False, timeout=10)
        with self._lock, self._connection:
            self._connection.executescript(_SCHEMA)
            # A database made before a metric existed gains its column (empty for old rows).
            present = {row[1] for row in self._connection.execute("PRAGMA table_info(frame_quality)")}
            for metric in METRICS:
                if metric not in present:
                    self._connection.execute(f"ALTER TABLE frame_quality ADD COLUMN {metric} REAL")

    def close(self) -> None:
        with self._lock:
            self._connection.close()

    def record(
        self,
        key: str,
        version: str,
        observed: float,
        metrics: dict | None = None,
        error: str | None = None,
    ) -> None:
        """Store the metrics (or the error) of one version of a frame."""
        metrics = metrics or {}
        directory, _, name = key.rpartition("/")
        values = [_finite_or_none(metrics.get(metric)) for metric in METRICS]
        verdicts = json.dumps(metrics.get("verdicts")) if metrics.get("verdicts") else None
        with self._lock, self._connection:
            self._connection.execute(
                f"INSERT OR REPLACE INTO frame_quality (key, version, directory, name, observed, recorded, "
                f"{', '.join(METRICS)}, verdicts, error) VALUES ({', '.join('?' * (8 + len(METRICS)))})",
                [key, version, directory, name, float(observed), time.time(), *values, verdicts, error],
            )

    def seen(self) -> set[tuple[str, str]]:
        """(key, version) of every recorded frame."""
        with self._lock:
            return set(self._connection.execute("SELECT key, version FROM frame_quality"))

    def rows(self, directory: str | None = None) -> list[dict]:
        """Recorded frames in observing order; only those under ``directory`` if given."""
        query = "SELECT * FROM frame_quality"
        arguments: list = []
        if directory:
            query += " WHERE directory = ? OR directory LIKE ?"
            arguments = [directory, directory.rstrip("/") + "/%"]
        return self._select(query + " ORDER BY observed, key", arguments)

    def latest(self, key: str) -> dict | None:
        """The most recently recorded row of ``key``, or None."""
        found = self._select(
            "SELECT * FROM frame_quality WHERE key = ? ORDER BY recorded DESC LIMIT 1", [key]
        )
        return found[0] if found else None

    def _select(self, query: str, arguments: list) -> list[dict]:
        with self._lock:
            cursor = self._connection.execute(query, arguments)
            names = [column[0] for column in cursor.description]
            records = [dict(zip(names, row)) for row in cursor]
        for record in records:
            record["verdicts"] = json.loads(record["verdicts"]) if record["verdicts"] else None
            if record["star_count"] is not None:
                record["star_count"] = int(record["star_count"])
        return records

    @staticmethod
    def columns() -> Iterable[str]:
        return ("key", "version", "directory", "name", "observed", "recorded", *METRICS, "verdicts", "error")
