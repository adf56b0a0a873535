"""Alarm rules evaluated on each newly measured frame, with their states kept in SQLite.

A metric rule is *raised* when ``consecutive`` frames in a row break it (the
alarm names those frames, and every further breaking frame); one frame back
within the limit *clears* it. An idle rule (``idle_minutes``) is raised when no
frame arrives for that long during the night and cleared by the next frame.

:class:`AlarmStore` keeps every alarm (one row per raise, with its clearing)
and the streaks in progress in the quality history's SQLite file, so a
restarted server goes on where it stopped. :class:`AlarmEngine` applies the
rules live; :func:`replay` recomputes a night's alarms from its history rows
(what a report lists).
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

from components.reports.config import AlarmRule, DatasetConfig

__all__ = ["AlarmStore", "AlarmEngine", "replay", "iso"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS alarm (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    dataset TEXT NOT NULL,
    name TEXT NOT NULL,
    metric TEXT,
    state TEXT NOT NULL,
    frames TEXT NOT NULL,
    raised REAL NOT NULL,
    cleared REAL,
    updated REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS alarm_state ON alarm (state, dataset, name);
CREATE TABLE IF NOT EXISTS alarm_streak (
    dataset TEXT NOT NULL,
    name TEXT NOT NULL,
    frames TEXT NOT NULL,
    last_observed REAL,
    PRIMARY KEY (dataset, name)
);
CREATE TABLE IF NOT EXISTS frame_night (
    key TEXT NOT NULL,
    version TEXT NOT NULL,
    night TEXT NOT NULL,
    PRIMARY KEY (key, version)
);
"""


def iso(epoch: float | None) -> str | None:
    """ISO 8601 UTC of epoch seconds (None stays None)."""
    if epoch is None:
        return None
    return datetime.fromtimestamp(float(epoch), timezone.utc).isoformat().replace("+00:00", "Z")


class AlarmStore:
    """Alarms and streaks in SQLite (the quality history's file, or any path).

    Parameters
    ----------
    path : path-like
        The database file (created if needed).
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, timeout=10)
        with self._lock, self._db:
            self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # ------------------------------------------------------------ alarms

    def alarms(self, state: str | None = None, dataset: str | None = None, since: float | None = None,
               until: float | None = None) -> list[dict]:
        """Alarms, newest first; only ``state`` ("raised"/"cleared"), ``dataset``, raised in [since, until)."""
        query, arguments = "SELECT * FROM alarm WHERE 1=1", []
        for column, value, op in (("state", state, "="), ("dataset", dataset, "="),
                                  ("raised", since, ">="), ("raised", until, "<")):
            if value is not None:
                query += f" AND {column} {op} ?"
                arguments.append(value)
        with self._lock:
            cursor = self._db.execute(query + " ORDER BY raised DESC, id DESC", arguments)
            names = [column[0] for column in cursor.description]
            rows = [dict(zip(names, row)) for row in cursor]
        for row in rows:
            row["frames"] = json.loads(row["frames"])
        return rows

    def open_alarm(self, dataset: str, name: str) -> dict | None:
        found = [a for a in self.alarms("raised", dataset) if a["name"] == name]
        return found[0] if found else None

    def raise_alarm(self, dataset: str, name: str, metric: str | None, frames: list[str], when: float) -> dict:
        with self._lock, self._db:
            cursor = self._db.execute(
                "INSERT INTO alarm (dataset, name, metric, state, frames, raised, cleared, updated) "
                "VALUES (?, ?, ?, 'raised', ?, ?, NULL, ?)",
                [dataset, name, metric, json.dumps(frames), when, time.time()],
            )
            alarm_id = cursor.lastrowid
        return self._get(alarm_id)

    def extend(self, alarm_id: int, frames: list[str]) -> None:
        with self._lock, self._db:
            self._db.execute("UPDATE alarm SET frames = ?, updated = ? WHERE id = ?",
                             [json.dumps(frames), time.time(), alarm_id])

    def clear(self, alarm_id: int, when: float) -> dict:
        with self._lock, self._db:
            self._db.execute("UPDATE alarm SET state = 'cleared', cleared = ?, updated = ? WHERE id = ?",
                             [when, time.time(), alarm_id])
        return self._get(alarm_id)

    def _get(self, alarm_id: int) -> dict:
        with self._lock:
            cursor = self._db.execute("SELECT * FROM alarm WHERE id = ?", [alarm_id])
            names = [column[0] for column in cursor.description]
            row = dict(zip(names, cursor.fetchone()))
        row["frames"] = json.loads(row["frames"])
        return row

    # ------------------------------------------------------------ streaks

    def streak(self, dataset: str, name: str) -> tuple[list[str], float | None]:
        with self._lock:
            found = self._db.execute(
                "SELECT frames, last_observed FROM alarm_streak WHERE dataset = ? AND name = ?", [dataset, name]
            ).fetchone()
        return (json.loads(found[0]), found[1]) if found else ([], None)

    def set_streak(self, dataset: str, name: str, frames: list[str], last_observed: float | None) -> None:
        with self._lock, self._db:
            self._db.execute(
                "INSERT OR REPLACE INTO alarm_streak (dataset, name, frames, last_observed) VALUES (?, ?, ?, ?)",
                [dataset, name, json.dumps(frames), last_observed],
            )

    # ------------------------------------------------------------ nights

    def set_night(self, key: str, version: str, night: str) -> None:
        with self._lock, self._db:
            self._db.execute("INSERT OR REPLACE INTO frame_night (key, version, night) VALUES (?, ?, ?)",
                             [key, version, night])

    def nights(self) -> dict[tuple[str, str], str]:
        """The night recorded for each (key, version) (from DAY-OBS or DATE-OBS of its header)."""
        with self._lock:
            return {(k, v): n for k, v, n in self._db.execute("SELECT key, version, night FROM frame_night")}


def _event(alarm: dict, now: float | None = None) -> dict:
    """The ``alarm`` bus event of a stored alarm."""
    return {
        "dataset": alarm["dataset"], "name": alarm["name"], "state": alarm["state"],
        "metric": alarm["metric"], "frames": list(alarm["frames"]), "time": iso(now or time.time()),
        "raised": iso(alarm["raised"]), "cleared": iso(alarm["cleared"]), "id": alarm["id"],
    }


class AlarmEngine:
    """Applies datasets' rules to newly measured frames and to silences; returns ``alarm`` events.

    Frames are taken in the order they are measured; one observed before the
    last frame a rule saw (a backlog measured newest first) is left to the
    night's report, which replays the history in observing order.
    """

    def __init__(self, store: AlarmStore):
        self.store = store
        self._lock = threading.Lock()

    def check(self, dataset: DatasetConfig, row: dict) -> list[dict]:
        """Evaluate the metric rules of ``dataset`` on a history row; the raised/cleared events."""
        events = []
        observed = float(row["observed"])
        with self._lock:
            for rule in dataset.alarm:
                if rule.idle:
                    continue
                streak, last = self.store.streak(dataset.name, rule.name)
                if last is not None and observed < last:
                    continue
                broken = rule.violated(row.get(rule.metric))
                if broken is None:
                    continue  # no value for this metric (no stars...): neither breaks nor clears
                alarm = self.store.open_alarm(dataset.name, rule.name)
                if broken:
                    streak = [*streak, row["key"]]
                    if alarm is not None:
                        self.store.extend(alarm["id"], [*alarm["frames"], row["key"]])
                    elif len(streak) >= rule.consecutive:
                        events.append(_event(self.store.raise_alarm(dataset.name, rule.name, rule.metric,
                                                                    streak, observed)))
                else:
                    streak = []
                    if alarm is not None:
                        events.append(_event(self.store.clear(alarm["id"], observed)))
                self.store.set_streak(dataset.name, rule.name, streak, observed)
        return events

    def check_idle(self, dataset: DatasetConfig, last_frame: float | None, last_key: str | None,
                   now: float, night_over: bool = False) -> list[dict]:
        """Raise the idle rules whose silence since ``last_frame`` (epoch s) is long enough.

        Nothing is raised before the night's first frame or once the night is over.
        """
        if last_frame is None or night_over:
            return []
        events = []
        with self._lock:
            for rule in dataset.alarm:
                if not rule.idle or now - last_frame < rule.idle_minutes * 60:
                    continue
                if self.store.open_alarm(dataset.name, rule.name) is None:
                    frames = [last_key] if last_key else []
                    events.append(_event(self.store.raise_alarm(
                        dataset.name, rule.name, None, frames, last_frame + rule.idle_minutes * 60), now))
        return events

    def frame_arrived(self, dataset: DatasetConfig, now: float) -> list[dict]:
        """A new frame clears the dataset's raised idle alarms."""
        events = []
        with self._lock:
            for rule in dataset.alarm:
                if rule.idle:
                    alarm = self.store.open_alarm(dataset.name, rule.name)
                    if alarm is not None:
                        events.append(_event(self.store.clear(alarm["id"], now), now))
        return events


def replay(rules: list[AlarmRule], rows: list[dict]) -> list[dict]:
    """The alarms a night's rows (observing order) raise: ``[{"name", "metric", "raised", "cleared", "frames"}]``.

    ``raised``/``cleared`` are ISO times (the frame completing the streak, the
    frame back within the limit); an idle rule is raised by each gap between two
    frames longer than its ``idle_minutes``.
    """
    rows = sorted(rows, key=lambda row: (float(row["observed"]), row["key"]))
    found = []
    for rule in rules:
        if rule.idle:
            for before, after in zip(rows, rows[1:]):
                gap = float(after["observed"]) - float(before["observed"])
                if gap >= rule.idle_minutes * 60:
                    found.append({
                        "name": rule.name, "metric": None,
                        "raised": iso(float(before["observed"]) + rule.idle_minutes * 60),
                        "cleared": iso(after["observed"]), "frames": [before["key"]],
                    })
            continue
        streak: list[dict] = []
        current = None
        for row in rows:
            broken = rule.violated(row.get(rule.metric))
            if broken is None:
                continue
            if broken:
                streak.append(row)
                if current is not None:
                    current["frames"].append(row["key"])
                elif len(streak) >= rule.consecutive:
                    current = {"name": rule.name, "metric": rule.metric, "raised": iso(row["observed"]),
                               "cleared": None, "frames": [r["key"] for r in streak]}
                    found.append(current)
            else:
                streak = []
                if current is not None:
                    current["cleared"] = iso(row["observed"])
                    current = None
    found.sort(key=lambda alarm: alarm["raised"])
    return found
