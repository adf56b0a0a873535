"""Nights, alarm rules (live and replayed), their SQLite states across a restart, and report folders."""

import json
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from astropy.io import fits
from PIL import Image as PILImage

from components.reports.alarms import AlarmEngine, AlarmStore, replay
from components.reports.config import parse_config
from components.reports.night import night_bounds, night_of, night_of_header, parse_night
from components.reports.report import build_report, write_report
from components.reports.repository import list_reports, select

CONFIG = parse_config('''
[[dataset]]
name = "sim"
directory = "data"
plots = ["fwhm_arcsec", "star_count"]
[[dataset.alarm]]
name = "bad-seeing"
metric = "fwhm_arcsec"
above = 3.0
consecutive = 3
[[dataset.alarm]]
name = "clouds"
metric = "star_count"
below = 10
consecutive = 2
[[dataset.alarm]]
name = "no-frames"
idle_minutes = 20
''')
SIM = CONFIG.dataset[0]
START = datetime(2026, 11, 30, 1, 0, tzinfo=timezone.utc).timestamp()


def utc(*args):
    return datetime(*args, tzinfo=timezone.utc).timestamp()


def test_night_is_the_date_twelve_hours_earlier():
    assert night_of(utc(2026, 11, 30, 11, 59)) == "2026-11-29"
    assert night_of(utc(2026, 11, 30, 12, 0)) == "2026-11-30"
    # In the dataset's zone: 05:00 UTC is 21:00 the evening before in Los Angeles.
    assert night_of(utc(2026, 12, 1, 5, 0), ZoneInfo("America/Los_Angeles")) == "2026-11-30"
    assert night_of(utc(2026, 12, 1, 5, 0)) == "2026-11-30"
    start, end = night_bounds("2026-11-29")
    assert start == utc(2026, 11, 29, 12) and end == utc(2026, 11, 30, 12)
    with pytest.raises(ValueError):
        parse_night("2026-13-01")


def test_night_of_a_header_prefers_day_obs():
    header = fits.Header({"DATE-OBS": "2026-11-30T03:00:00"})
    assert night_of_header(header) == "2026-11-29"
    header["DAY-OBS"] = "20261128"
    assert night_of_header(header) == "2026-11-28"
    assert night_of_header(fits.Header()) is None


def rows_of(fwhm, stars, step=300.0):
    return [
        {"key": f"data/f{i:03d}.fits", "version": "v", "directory": "data", "observed": START + i * step,
         "fwhm_arcsec": f, "star_count": s}
        for i, (f, s) in enumerate(zip(fwhm, stars))
    ]


FWHM = [1.5, 1.6, 3.5, 3.6, 3.7, 3.4, 1.5, 1.5, None, None, 1.6, 1.4]
STARS = [80, 82, 70, 75, 71, 73, 79, 80, 2, 3, 78, 81]


def test_replay_raises_after_consecutive_frames_and_clears_when_back():
    alarms = replay(list(SIM.alarm), rows_of(FWHM, STARS))
    seeing, clouds = alarms
    assert seeing["name"] == "bad-seeing" and seeing["frames"] == [f"data/f{i:03d}.fits" for i in (2, 3, 4, 5)]
    assert seeing["raised"] == "2026-11-30T01:20:00Z" and seeing["cleared"] == "2026-11-30T01:30:00Z"
    assert clouds["frames"] == ["data/f008.fits", "data/f009.fits"]
    assert clouds["raised"] == "2026-11-30T01:45:00Z" and clouds["cleared"] == "2026-11-30T01:50:00Z"
    # Two bad frames only: no alarm; a gap of 25 minutes: the idle rule.
    assert replay(list(SIM.alarm), rows_of([3.5, 3.5, 1.0], [50] * 3)) == []
    gap = rows_of([1.0, 1.0], [50, 50], step=25 * 60)
    (idle,) = replay(list(SIM.alarm), gap)
    assert idle["name"] == "no-frames" and idle["frames"] == ["data/f000.fits"]


def test_live_alarms_survive_a_restart(tmp_path):
    path = tmp_path / "quality.sqlite3"
    rows = rows_of(FWHM, STARS)
    store = AlarmStore(path)
    engine = AlarmEngine(store)
    events = [event for row in rows[:4] for event in engine.check(SIM, row)]
    assert events == []  # two bad frames so far
    store.close()
    # The server restarts between the second and the third bad frame.
    store = AlarmStore(path)
    engine = AlarmEngine(store)
    (raised,) = engine.check(SIM, rows[4])
    assert raised["state"] == "raised" and raised["name"] == "bad-seeing"
    assert raised["frames"] == ["data/f002.fits", "data/f003.fits", "data/f004.fits"]
    assert [a["name"] for a in store.alarms("raised")] == ["bad-seeing"]
    store.close()
    store = AlarmStore(path)
    engine = AlarmEngine(store)
    assert engine.check(SIM, rows[5]) == []  # still raised: one more frame on it
    assert store.alarms("raised")[0]["frames"][-1] == "data/f005.fits"
    (cleared,) = engine.check(SIM, rows[6])
    assert cleared["state"] == "cleared" and store.alarms("raised") == []
    assert store.alarms("cleared")[0]["cleared"] == rows[6]["observed"]
    # A frame older than the last one checked (a backlog) is left to the report.
    assert engine.check(SIM, {**rows[2], "key": "data/old.fits"}) == []


def test_idle_alarm_raised_by_silence_and_cleared_by_a_frame(tmp_path):
    engine = AlarmEngine(AlarmStore(tmp_path / "q.sqlite3"))
    assert engine.check_idle(SIM, None, None, START) == []  # no frame tonight yet
    assert engine.check_idle(SIM, START, "data/a.fits", START + 19 * 60) == []
    (raised,) = engine.check_idle(SIM, START, "data/a.fits", START + 21 * 60)
    assert raised["name"] == "no-frames" and raised["frames"] == ["data/a.fits"]
    assert engine.check_idle(SIM, START, "data/a.fits", START + 40 * 60) == []  # raised once
    assert engine.check_idle(SIM, START, "data/a.fits", START + 90 * 60, night_over=True) == []
    (cleared,) = engine.frame_arrived(SIM, START + 41 * 60)
    assert cleared["state"] == "cleared"


def test_report_folder_files_equal_the_history(tmp_path):
    rows = rows_of(FWHM, STARS)
    alarms = replay(list(SIM.alarm), rows)
    frame = np.random.default_rng(1).normal(100, 5, (300, 400)).astype(np.float32)
    report, files = build_report("sim", "2026-11-29", rows, alarms, list(SIM.plots),
                                 thumbnail=lambda key: frame, dashboard_url="http://qa.example")
    folder = write_report(tmp_path / "reports" / "sim" / "2026-11-29", files)
    assert sorted(p.name for p in folder.iterdir()) == [
        "fwhm_arcsec.json", "fwhm_arcsec.png", "index.html", "report.json", "star_count.json", "star_count.png"]
    for plot in SIM.plots:
        assert PILImage.open(folder / f"{plot}.png").convert("RGB").size[0] > 100
        data = json.loads((folder / f"{plot}.json").read_text())
        assert data["y"] == [row[plot] for row in rows] and data["frames"] == [row["key"] for row in rows]
        assert data["tag"] == plot and data["description"] and data["x"][0] == "2026-11-30T01:00:00Z"
    summary = json.loads((folder / "report.json").read_text())
    assert summary == report and summary["frames"] == 12
    assert [a["name"] for a in summary["alarms"]] == ["bad-seeing", "clouds"]
    assert summary["metrics"]["star_count"]["median"] == float(np.median(STARS))
    page = (folder / "index.html").read_text()
    assert "http://qa.example/?image=data/f008.fits" in page and page.count("data:image/png;base64,") == 14
    listed = list_reports(tmp_path / "reports", "http://qa.example")
    assert listed == [{"dataset": "sim", "night": "2026-11-29", "alarms": 2, "frames": 12,
                       "url": "http://qa.example/reports/sim/2026-11-29/"}]
    assert select(listed, "recent-with-alarms") == listed and select(listed, "recent-without-alarms") == []
