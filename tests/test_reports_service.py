"""The reports service in-process: cron schedules in the dataset's zone, the end of the night, idle alarms."""

from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import pytest

from app.reports_service import ReportsService
from app.settings import Settings
from components.events import Event, bus
from components.reports.alarms import AlarmStore
from components.reports.config import parse_config
from components.sources.history import QualityHistory

CONFIG = parse_config('''
[[dataset]]
name = "sim"
directory = "data"
plots = ["fwhm_arcsec"]
schedule = "0 8 * * *"
timezone = "America/Santiago"
idle_minutes = 30
[[dataset.alarm]]
name = "no-frames"
idle_minutes = 20
''')


@pytest.fixture
def service(tmp_path):
    settings = Settings(root=tmp_path, quality=False, demo=False)
    history = QualityHistory(settings.history_path())
    service = ReportsService(settings, CONFIG, history, store=None, alarm_store=AlarmStore(settings.history_path()))
    seen = []
    unsubscribe = bus().subscribe(lambda event: seen.append((event.topic, event.data)))
    yield service, history, seen, settings
    unsubscribe()
    service.stop()


def test_schedule_end_of_night_and_idle_alarm(service):
    service, history, seen, settings = service
    zone = ZoneInfo("America/Santiago")
    observed = datetime(2026, 11, 30, 1, 0, tzinfo=timezone.utc).timestamp()  # 22:00 the 29th in Santiago
    history.record("data/a.fits", "v", observed, {"fwhm_arcsec": 1.2, "star_count": 40})
    service.start()
    row = history.latest("data/a.fits")
    service._on_frame(Event("frame", {"event": "added", "key": "data/a.fits", "directory": "data"}))
    service._on_quality(Event("quality", row))
    last = service._last_frame["sim"][0]

    service.tick(last + 19 * 60)
    assert [d for t, d in seen if t in ("alarm", "report")] == []
    service.tick(last + 21 * 60)  # no frame for 20 minutes: the idle alarm
    (alarm,) = [d for t, d in seen if t == "alarm"]
    assert (alarm["name"], alarm["state"], alarm["frames"]) == ("no-frames", "raised", ["data/a.fits"])
    service.tick(last + 31 * 60)  # 30 minutes: the night is over, its report is built
    (report,) = [d for t, d in seen if t == "report"]
    assert report["dataset"] == "sim" and report["night"] == "2026-11-29" and report["alarms"] == 0
    assert (settings.reports_path() / "sim" / "2026-11-29" / "report.json").is_file()
    service.tick(last + 40 * 60)
    assert len([d for t, d in seen if t in ("alarm", "report")]) == 2  # nothing more once the night is over
    # The next frame clears the idle alarm.
    service._on_frame(Event("frame", {"event": "added", "key": "data/b.fits", "directory": "data"}))
    assert [d["state"] for t, d in seen if t == "alarm"] == ["raised", "cleared"]

    # The cron schedule at 08:00 in Santiago reports the night just ended.
    service._next_run["sim"] = service._cron_next(CONFIG.dataset[0],
                                                  datetime(2026, 11, 30, 7, 0, tzinfo=zone).timestamp())
    assert datetime.fromtimestamp(service._next_run["sim"], zone) == datetime(2026, 11, 30, 8, 0, tzinfo=zone)
    seen.clear()
    service.tick(datetime(2026, 11, 30, 8, 0, 5, tzinfo=zone).timestamp())
    assert [(t, d["night"]) for t, d in seen if t == "report"] == [("report", "2026-11-29")]
    assert datetime.fromtimestamp(service._next_run["sim"], zone) == datetime(2026, 12, 1, 8, 0, tzinfo=zone)
