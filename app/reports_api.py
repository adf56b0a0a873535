"""Routes of night reports, alarms and the live event stream.

* ``GET /alarms`` (``?state=raised|cleared``, ``?dataset=``): alarms, newest first (JSON);
* ``GET /reports``, ``/reports/recent``, ``/reports/recent-with-alarms``,
  ``/reports/recent-without-alarms``: HTML pages, or ``{"reports": [...]}`` with ``?format=json``;
* ``GET /reports/<dataset>/<night>/[file]``: a report folder's files (only its
  own, plain names: nothing outside the folder is ever served);
* ``GET /events``: a server-sent event stream of the bus's ``frame``,
  ``quality``, ``alarm`` and ``report`` events (``?topics=`` narrows it), with
  a keep-alive comment every :data:`KEEP_ALIVE` seconds (``?keepalive=`` 1-300).
"""

from __future__ import annotations

import datetime as _dt
import logging
import re
from pathlib import Path

import tornado.ioloop
import tornado.iostream
import tornado.queues
import tornado.util
import tornado.web

from app.api import ApiHandler, dumps, json_endpoint
from app.settings import get_settings
from components.errors import ImageNotFound, InvalidRequest
from components.events import bus
from components.reports.alarms import iso
from components.reports.repository import RECENT, VIEWS, list_reports, render_index, select

__all__ = ["reports_patterns", "AlarmsHandler", "ReportsHandler", "ReportFileHandler", "EventsHandler",
           "KEEP_ALIVE", "EVENT_TOPICS"]

log = logging.getLogger("quickanalysis.reports")

#: Seconds between two keep-alive comments of /events.
KEEP_ALIVE = 15.0
#: Topics /events relays.
EVENT_TOPICS = ("frame", "quality", "alarm", "report")
#: Events held for a slow /events client before the oldest are dropped.
QUEUE_SIZE = 1000

_FILE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*\.(png|json|html)$")
_TYPES = {"png": "image/png", "json": "application/json; charset=UTF-8", "html": "text/html; charset=UTF-8"}


def _alarm_json(alarm: dict) -> dict:
    return {
        "id": alarm["id"], "dataset": alarm["dataset"], "name": alarm["name"], "metric": alarm["metric"],
        "state": alarm["state"], "frames": alarm["frames"], "raised": iso(alarm["raised"]),
        "cleared": iso(alarm["cleared"]),
    }


class AlarmsHandler(ApiHandler):
    """GET /alarms."""

    @json_endpoint
    async def get(self) -> None:
        from app.reports_service import get_alarm_store

        query = self.query()
        state = query.get("state")
        if state not in (None, "raised", "cleared"):
            raise InvalidRequest(f"state must be raised or cleared, got {state!r}")
        alarms = await self.compute(get_alarm_store().alarms, state, query.get("dataset"))
        self.send_json({"alarms": [_alarm_json(alarm) for alarm in alarms]})


class ReportsHandler(ApiHandler):
    """GET /reports[/recent|/recent-with-alarms|/recent-without-alarms] (HTML, or JSON with ?format=json)."""

    @json_endpoint
    async def get(self, view: str | None = None) -> None:
        view = (view or "").strip("/")
        if view not in VIEWS:
            raise ImageNotFound(f"no report view {view!r}")
        query = self.query()
        fmt = query.get("format", "html")
        if fmt not in ("html", "json"):
            raise InvalidRequest(f"format must be html or json, got {fmt!r}")
        try:
            limit = int(query.get("limit", RECENT))
        except ValueError:
            raise InvalidRequest(f"limit must be an integer, got {query.get('limit')!r}") from None
        if not 1 <= limit <= 10_000:
            raise InvalidRequest("limit must be between 1 and 10000")
        settings = get_settings()
        reports = await self.compute(list_reports, settings.reports_path())
        chosen = select(reports, view, limit)
        if fmt == "json":
            self.send_json({"reports": [
                {k: r[k] for k in ("dataset", "night", "alarms", "url", "frames")} for r in chosen
            ]})
            return
        self.set_header("Content-Type", "text/html; charset=UTF-8")
        self.finish(render_index(VIEWS[view], chosen))


class ReportFileHandler(ApiHandler):
    """GET /reports/<dataset>/<night>/[file]: one file of a report folder."""

    @json_endpoint
    async def get(self, dataset: str, night: str, name: str | None = None) -> None:
        name = name or "index.html"
        if not _FILE.match(name):
            raise ImageNotFound(f"no file {name!r} in a report")
        root = get_settings().reports_path().resolve()
        folder = (root / dataset / night).resolve()
        path = (folder / name).resolve()
        # The route's patterns already refuse separators and dots; resolve() also
        # refuses a symlink leading out of the reports folder.
        if path.parent != folder or folder.parent.parent != root or not path.is_file():
            raise ImageNotFound(f"no report file {dataset}/{night}/{name}")
        content = await self.compute(Path.read_bytes, path)
        self.set_header("Content-Type", _TYPES[name.rpartition(".")[2]])
        self.set_header("Cache-Control", "no-cache")
        self.finish(content)


class EventsHandler(ApiHandler):
    """GET /events: the event bus as a server-sent event stream."""

    def initialize(self) -> None:
        self._closed = False
        self._queue: tornado.queues.Queue | None = None

    async def get(self) -> None:
        wanted = self.get_query_argument("topics", ",".join(EVENT_TOPICS))
        topics = {t.strip() for t in wanted.split(",") if t.strip()}
        unknown = topics - set(EVENT_TOPICS)
        if unknown or not topics:
            self.fail(InvalidRequest(f"topics must be among {', '.join(EVENT_TOPICS)}, got {wanted!r}"))
            return
        try:
            keep_alive = float(self.get_query_argument("keepalive", str(KEEP_ALIVE)))
        except ValueError:
            keep_alive = float("nan")
        if not 1.0 <= keep_alive <= 300.0:  # also refuses NaN
            self.fail(InvalidRequest("keepalive must be between 1 and 300 seconds"))
            return
        self.set_header("Content-Type", "text/event-stream; charset=UTF-8")
        self.set_header("Cache-Control", "no-cache")
        self.set_header("X-Accel-Buffering", "no")  # proxies must not hold the stream back
        loop = tornado.ioloop.IOLoop.current()
        queue = self._queue = tornado.queues.Queue(maxsize=QUEUE_SIZE)

        def enqueue(event):
            try:
                queue.put_nowait(event)
            except tornado.queues.QueueFull:
                log.warning("an /events client is too slow: event %s dropped", event.id)

        def on_event(event):
            # Bus callbacks run in the publisher's thread; tornado queues are not thread-safe.
            if event.topic in topics and not self._closed:
                loop.add_callback(enqueue, event)

        unsubscribe = bus().subscribe(on_event)
        try:
            self.write("retry: 3000\n: connected\n\n")
            await self.flush()
            while not self._closed:
                try:
                    event = await queue.get(timeout=_dt.timedelta(seconds=keep_alive))
                except tornado.util.TimeoutError:
                    self.write(": keep-alive\n\n")
                else:
                    if event is None:
                        break
                    self.write(f"id: {event.id}\nevent: {event.topic}\ndata: {dumps(event.data)}\n\n")
                await self.flush()
        except tornado.iostream.StreamClosedError:
            pass
        finally:
            unsubscribe()

    def on_connection_close(self) -> None:
        self._closed = True
        if self._queue is not None:
            try:
                self._queue.put_nowait(None)  # wake the loop so it unsubscribes now
            except tornado.queues.QueueFull:
                pass


def reports_patterns() -> list[tuple]:
    """Tornado routes of reports, alarms and /events."""
    return [
        (r"/alarms/?", AlarmsHandler),
        (r"/events/?", EventsHandler),
        (r"/reports/?", ReportsHandler),
        (r"/reports/(recent|recent-with-alarms|recent-without-alarms)/?", ReportsHandler),
        (r"/reports/([a-z0-9_-]+)/(\d{4}-\d{2}-\d{2})/?", ReportFileHandler),
        (r"/reports/([a-z0-9_-]+)/(\d{4}-\d{2}-\d{2})/([A-Za-z0-9_][A-Za-z0-9_.-]*)", ReportFileHandler),
    ]
