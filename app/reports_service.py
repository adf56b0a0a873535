"""Night reports and alarms of the server process, wired to the event bus.

* ``quality`` events (a frame just measured) are checked against the rules of
  the frame's dataset (:class:`~components.reports.alarms.AlarmEngine`); each
  raise or clear is published as an ``alarm`` event and a raise is mailed
  (at most once per rule per 30 minutes).
* ``frame`` events tell when a dataset last received a frame: idle alarms and
  the end of the night (``idle_minutes`` after the night's last frame).
* A scheduler thread builds reports on each dataset's cron ``schedule`` (in its
  time zone) and at the end of the night, publishes a ``report`` event and
  mails the recipients.

``quickanalysis report`` builds one report now with :func:`build_now`.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime
from pathlib import Path

from croniter import croniter

from app.settings import Settings, get_settings
from components.events import Event, bus
from components.reports.alarms import AlarmEngine, AlarmStore, replay
from components.reports.config import DatasetConfig, ReportsConfig, load_config
from components.reports.mail import Mailer, MailSettings, RateLimit, alarm_mail, report_mail
from components.reports.night import night_bounds, night_of, night_of_header
from components.reports.report import build_report, report_folder, write_report

__all__ = ["ReportsService", "build_now", "night_rows", "get_alarm_store", "start_reports_service",
           "get_reports_service", "ALARM_MAIL_WINDOW"]

log = logging.getLogger("quickanalysis.reports")

#: Seconds between two mails of one alarm rule.
ALARM_MAIL_WINDOW = 30 * 60

_lock = threading.Lock()
_alarm_store: AlarmStore | None = None
_service: "ReportsService | None" = None


def get_alarm_store(settings: Settings | None = None) -> AlarmStore:
    """The alarm states of this process (tables in the quality history's SQLite file)."""
    global _alarm_store
    with _lock:
        if _alarm_store is None:
            _alarm_store = AlarmStore((settings or get_settings()).history_path())
        return _alarm_store


def night_rows(history, alarm_store: AlarmStore, dataset: DatasetConfig, night: str) -> list[dict]:
    """The measured frames of ``dataset`` in ``night`` (latest version of each key), observing order."""
    nights = alarm_store.nights()
    start, end = night_bounds(night, dataset.zone)
    latest: dict[str, dict] = {}
    for row in history.rows(dataset.directory):
        if row.get("error") or not dataset.holds(row["directory"]):
            continue
        recorded = nights.get((row["key"], row["version"]))
        in_night = recorded == night if recorded else start <= float(row["observed"]) < end
        if in_night and (row["key"] not in latest or row["recorded"] > latest[row["key"]]["recorded"]):
            latest[row["key"]] = row
    return sorted(latest.values(), key=lambda row: (float(row["observed"]), row["key"]))


def _mailer(settings: Settings) -> Mailer | None:
    if not settings.smtp_host:
        return None
    return Mailer(MailSettings(
        host=settings.smtp_host, port=settings.smtp_port, sender=settings.smtp_from,
        starttls=settings.smtp_starttls, user=settings.smtp_user, password=settings.smtp_password,
    ))


def _build(settings: Settings, history, alarm_store: AlarmStore, store, dataset: DatasetConfig, night: str,
           mailer: Mailer | None) -> dict:
    rows = night_rows(history, alarm_store, dataset, night)
    alarms = replay(list(dataset.alarm), rows)
    base = settings.base_url()
    url = f"{base}/reports/{dataset.name}/{night}/"
    recent = f"{base}/reports/recent-with-alarms"

    def frame_data(key):
        return store.load(key).data if store is not None else None

    report, files = build_report(
        dataset.name, night, rows, alarms, list(dataset.plots), thumbnail=frame_data, dashboard_url=base,
        links={"dashboard": base + "/", "every report": f"{base}/reports", "recent with alarms": recent},
    )
    folder = write_report(report_folder(settings.reports_path(), dataset.name, night), files)
    log.info("report of %s night %s: %d frames, %d alarms in %s", dataset.name, night, len(rows),
             len(alarms), folder)
    if mailer is not None and dataset.recipients:
        subject, body = report_mail(report, url, recent)
        mailer.send(list(dataset.recipients), subject, body)
    bus().publish("report", {"dataset": dataset.name, "night": night, "alarms": len(alarms), "url": url})
    return report


def build_now(settings: Settings, dataset_name: str, night: str, mail: bool = False) -> tuple[dict, Path]:
    """Build one report from the recorded history (the ``quickanalysis report`` command)."""
    from components.sources import store_from_settings
    from components.sources.history import QualityHistory

    if settings.reports_config is None:
        raise ValueError("QA_REPORTS_CONFIG is not set: no dataset is configured")
    config = load_config(settings.reports_config)
    dataset = config.get(dataset_name)
    if dataset is None:
        known = ", ".join(d.name for d in config.dataset) or "none"
        raise ValueError(f"no dataset {dataset_name!r} in {settings.reports_config} (datasets: {known})")
    history = QualityHistory(settings.history_path())
    alarm_store = AlarmStore(settings.history_path())
    mailer = _mailer(settings) if mail else None
    try:
        report = _build(settings, history, alarm_store, store_from_settings(settings), dataset, night, mailer)
    finally:
        if mailer is not None:
            mailer.stop(timeout=60)
        history.close()
        alarm_store.close()
    return report, report_folder(settings.reports_path(), dataset.name, night)


class ReportsService:
    """Alarms, idle tracking and scheduled reports of one server process.

    Parameters
    ----------
    settings : Settings
    config : ReportsConfig
        The datasets.
    history : QualityHistory
        The quality history (shared with the quality service).
    store : FrameStore or None
        For the report's thumbnails.
    """

    def __init__(self, settings: Settings, config: ReportsConfig, history, store=None,
                 alarm_store: AlarmStore | None = None):
        self.settings, self.config, self.history, self.store = settings, config, history, store
        self.alarm_store = alarm_store or get_alarm_store(settings)
        self.engine = AlarmEngine(self.alarm_store)
        self.mailer = _mailer(settings)
        self.mail_limit = RateLimit(ALARM_MAIL_WINDOW)
        self._state_lock = threading.Lock()
        self._last_frame: dict[str, tuple[float, str]] = {}
        self._night_open: dict[str, str] = {}  # dataset -> night whose end-of-night report is due
        self._next_run: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._build_lock = threading.Lock()
        self._unsubscribe = []

    # ------------------------------------------------------------ lifecycle

    def start(self) -> "ReportsService":
        now = time.time()
        for dataset in self.config.dataset:
            if dataset.schedule:
                self._next_run[dataset.name] = self._cron_next(dataset, now)
        self._unsubscribe = [bus().subscribe(self._on_quality, "quality"), bus().subscribe(self._on_frame, "frame")]
        self._thread = threading.Thread(target=self._run, name="reports", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        if self.mailer is not None:
            self.mailer.stop()

    @staticmethod
    def _cron_next(dataset: DatasetConfig, now: float) -> float:
        local = datetime.fromtimestamp(now, dataset.zone)
        return croniter(dataset.schedule, local).get_next(datetime).timestamp()

    # ------------------------------------------------------------ events

    def _publish_alarms(self, events: list[dict]) -> None:
        base = self.settings.base_url()
        for event in events:
            bus().publish("alarm", event)
            if event["state"] != "raised" or self.mailer is None:
                continue
            dataset = self.config.get(event["dataset"])
            if dataset is None or not dataset.recipients:
                continue
            if self.mail_limit.allow((event["dataset"], event["name"])):
                subject, body = alarm_mail(event, base, f"{base}/alarms?state=raised")
                self.mailer.send(list(dataset.recipients), subject, body)

    def _night_of_row(self, dataset: DatasetConfig, row: dict) -> str:
        night = None
        if self.store is not None:
            try:  # the frame was just decoded for its measurement: its header is in the cache
                night = night_of_header(self.store.load(row["key"]).header, dataset.zone)
            except Exception:
                night = None
        return night or night_of(float(row["observed"]), dataset.zone)

    def _on_quality(self, event: Event) -> None:
        row = event.data
        if row.get("error") or "key" not in row:
            return
        directory = row.get("directory", row["key"].rpartition("/")[0])
        for dataset in self.config.for_directory(directory):
            night = self._night_of_row(dataset, row)
            self.alarm_store.set_night(row["key"], row.get("version", ""), night)
            with self._state_lock:
                if dataset.end_of_night:
                    self._night_open[dataset.name] = night
                self._last_frame.setdefault(dataset.name, (time.time(), row["key"]))
            self._publish_alarms(self.engine.check(dataset, row))

    def _on_frame(self, event: Event) -> None:
        data = event.data
        if data.get("event") == "removed" or "key" not in data:
            return
        directory = data.get("directory", data["key"].rpartition("/")[0])
        now = time.time()
        for dataset in self.config.for_directory(directory):
            with self._state_lock:
                self._last_frame[dataset.name] = (now, data["key"])
            self._publish_alarms(self.engine.frame_arrived(dataset, now))

    # ------------------------------------------------------------ schedule

    def build(self, dataset: DatasetConfig, night: str) -> dict:
        """Build (or rebuild) the report of a night, mail it and publish it."""
        with self._build_lock:
            return _build(self.settings, self.history, self.alarm_store, self.store, dataset, night, self.mailer)

    def tick(self, now: float | None = None) -> None:
        """One look at schedules, ends of night and idle rules."""
        now = time.time() if now is None else now
        for dataset in self.config.dataset:
            with self._state_lock:
                last = self._last_frame.get(dataset.name)
                open_night = self._night_open.get(dataset.name)
            if dataset.schedule and now >= self._next_run.get(dataset.name, float("inf")):
                self._next_run[dataset.name] = self._cron_next(dataset, now)
                night = night_of(now, dataset.zone)
                if night_rows(self.history, self.alarm_store, dataset, night):
                    self._safely(dataset, night)
            if open_night and last is not None and now - last[0] >= dataset.idle_minutes * 60:
                with self._state_lock:
                    if self._night_open.get(dataset.name) == open_night:
                        del self._night_open[dataset.name]
                self._safely(dataset, open_night)
            night_over = dataset.end_of_night and dataset.name not in self._night_open
            self._publish_alarms(self.engine.check_idle(
                dataset, last[0] if last else None, last[1] if last else None, now, night_over=night_over))

    def _safely(self, dataset: DatasetConfig, night: str) -> None:
        try:
            self.build(dataset, night)
        except Exception:  # a failed report must not end the scheduler
            log.exception("report of %s night %s failed", dataset.name, night)

    def _run(self) -> None:
        while not self._stop.wait(self.settings.reports_interval):
            try:
                self.tick()
            except Exception:
                log.exception("reports scheduler failed")


def start_reports_service(settings: Settings | None = None) -> ReportsService | None:
    """Start the process's reports service when ``QA_REPORTS_CONFIG`` is set (raises ConfigError)."""
    global _service
    settings = settings or get_settings()
    from components.views import alarms as alarm_views

    alarm_views.configure(source=lambda: get_alarm_store(settings).alarms("raised"),
                          origins=settings.postmessage_origins)
    if settings.reports_config is None:
        return None
    config = load_config(settings.reports_config)
    from app.state import get_quality_service, get_store

    with _lock:
        if _service is not None:
            return _service
    quality = get_quality_service()
    service = ReportsService(settings, config, quality.history, get_store()).start()
    with _lock:
        _service = service
    return service


def get_reports_service() -> ReportsService | None:
    return _service
