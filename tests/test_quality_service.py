"""Quality measured in the background and recorded in SQLite."""

import time

import pytest

from app.quality_service import QualityService
from components.core.synthetic import star_field, write_fits
from components.sources import FrameStore, ImageCache, LocalSource
from components.sources.history import METRICS, QualityHistory


@pytest.fixture
def session(tmp_path):
    (tmp_path / "data").mkdir()
    store = FrameStore(LocalSource(tmp_path, settle=0), ImageCache(10**9))
    return tmp_path, store


def write(root, name, **kwargs):
    frame = star_field(shape=(300, 400), n_stars=40, seed=len(name), **kwargs)
    return write_fits(frame, root / "data" / name)


def test_history_survives_a_restart(tmp_path):
    path = tmp_path / "db" / "q.sqlite3"
    history = QualityHistory(path)
    history.record("data/a.fits", "1-10", 100.0, {"fwhm_px": 3.0, "star_count": 7, "verdicts": {"fwhm": "ok"}})
    history.record("data/b.fits", "1-10", 50.0, error="not an image")
    history.close()
    reopened = QualityHistory(path)
    rows = reopened.rows()
    assert [row["key"] for row in rows] == ["data/b.fits", "data/a.fits"]
    assert rows[1]["fwhm_px"] == 3.0 and rows[1]["star_count"] == 7 and rows[1]["verdicts"] == {"fwhm": "ok"}
    assert rows[0]["error"] == "not an image" and rows[0]["fwhm_px"] is None
    assert reopened.seen() == {("data/a.fits", "1-10"), ("data/b.fits", "1-10")}
    assert reopened.latest("data/a.fits")["star_count"] == 7
    assert reopened.rows("data") == rows and reopened.rows("allsky") == []


def test_nan_metrics_are_stored_as_null(tmp_path):
    history = QualityHistory(tmp_path / "q.sqlite3")
    history.record("a.fits", "v", 1.0, {"fwhm_px": float("nan"), "elongation": float("inf")})
    row = history.rows()[0]
    assert row["fwhm_px"] is None and row["elongation"] is None


def test_background_worker_records_each_new_frame_once(session):
    root, store = session
    history = QualityHistory(root / ".quickanalysis" / "q.sqlite3")
    service = QualityService(store, history, interval=0.1)
    write(root, "one.fits", fwhm=3.0, date_obs="2026-11-20T22:00:00")
    service.start()
    try:
        deadline = time.monotonic() + 30
        while len(history.rows()) < 1 and time.monotonic() < deadline:
            time.sleep(0.1)
        write(root, "two.fits", fwhm=5.0, date_obs="2026-11-20T22:05:00")
        while len(history.rows()) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.5)
    finally:
        service.stop()
    rows = history.rows()
    assert [row["name"] for row in rows] == ["one.fits", "two.fits"]
    assert rows[0]["fwhm_px"] == pytest.approx(3.0, rel=0.05)
    assert rows[1]["fwhm_px"] == pytest.approx(5.0, rel=0.05)
    assert rows[1]["observed"] - rows[0]["observed"] == pytest.approx(300)
    assert set(METRICS) <= set(rows[0])


def test_unreadable_frame_is_recorded_with_its_error(session):
    root, store = session
    (root / "data" / "broken.fits").write_bytes(b"SIMPLE  =                    T" + b"\0" * 10)
    service = QualityService(store, QualityHistory(root / "q.sqlite3"))
    assert service.record("data/broken.fits") is None
    row = service.history.rows()[0]
    assert row["error"] and "broken.fits" in row["error"]
    assert service.pending() == []


def test_region_quality_reports_stars_in_frame_pixels(session):
    root, store = session
    write(root, "r.fits", fwhm=3.0)
    service = QualityService(store, QualityHistory(root / "q.sqlite3"))
    whole = service.measure("data/r.fits")
    part = service.measure("data/r.fits", region=(0.5, 0.0, 1.0, 1.0))
    assert 0 < part["star_count"] < whole["star_count"]
    assert min(part["stars"]["x"]) >= 199
    assert service.measure("data/r.fits") is whole


def test_concurrent_callers_share_one_measurement(session, monkeypatch):
    import threading

    import app.quality_service as module

    root, store = session
    write(root, "c.fits", fwhm=3.0)
    service = QualityService(store, QualityHistory(root / "q.sqlite3"))
    calls = []
    real_quality = module.quality

    def counted(*args, **kwargs):
        calls.append(1)
        time.sleep(0.3)  # long enough for every caller to arrive while it runs
        return real_quality(*args, **kwargs)

    monkeypatch.setattr(module, "quality", counted)
    results = []
    threads = [threading.Thread(target=lambda: results.append(service.measure("data/c.fits"))) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(calls) == 1
    assert len(results) == 4 and all(result is results[0] for result in results)
