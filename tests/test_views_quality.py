"""Quality views without a browser: cards, timeline, star picking and profile, session wiring.

The numbers shown must be the quality service's (``components.core.quality``
through :class:`app.quality_service.QualityService`), the timeline must be the
SQLite history of the session's folder, and a click (on a timeline point or a
star) must do what the observer meant.
"""

from __future__ import annotations

import json
import os
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest

from app.quality_service import QualityService
from components.core.quality import star_profile
from components.core.synthetic import star_field, write_fits
from components.sources import FrameStore, ImageCache, LocalSource
from components.sources.history import QualityHistory
from components.views import compute
from components.views.quality import (
    VERDICT_COLORS,
    QualityCards,
    QualityTimeline,
    StarProfilePane,
    axis_range,
    cards_html,
    current_point,
    quality_tiles,
    star_summary,
    timeline_data,
)
from components.views.state import Session, merge_history, nearest_star, profile_radius

START = datetime(2026, 3, 1, 2, 0, 0, tzinfo=timezone.utc)
FWHMS = (3.0, 3.6, 4.2)  # the frames' true FWHM, in observing order


@pytest.fixture
def root(tmp_path) -> Path:
    """data/n0..n2.fits observed 10 min apart (file times in the same order), other/x.fits."""
    now = time.time()
    for index, fwhm in enumerate(FWHMS):
        path = tmp_path / "data" / f"n{index}.fits"
        path.parent.mkdir(parents=True, exist_ok=True)
        frame = star_field((200, 300), n_stars=40, fwhm=fwhm, seed=index,
                           date_obs=START + timedelta(minutes=10 * index))
        write_fits(frame, path)
        os.utime(path, (now - 100 + index, now - 100 + index))
    other = tmp_path / "other" / "x.fits"
    other.parent.mkdir()
    write_fits(star_field((100, 120), n_stars=10, seed=9), other)
    os.utime(other, (now - 500, now - 500))
    return tmp_path


@pytest.fixture
def store(root) -> FrameStore:
    compute.clear()
    return FrameStore(LocalSource(root, settle=0), ImageCache(10**9))


@pytest.fixture
def service(store, tmp_path) -> QualityService:
    service = QualityService(store, QualityHistory(tmp_path / "history" / "q.sqlite3"))
    for key in service.pending():
        service.record(key)
    yield service
    service.history.close()


@pytest.fixture
def session(store, service) -> Session:
    session = Session(store=store, quality_service=service, directory="data")
    session.tick()
    return session


# ---------------------------------------------------------------- cards

KNOWN = {
    "key": "data/k.fits", "background": 512.25, "background_rms": 21.5, "saturation_level": 65535.0,
    "saturated_pixels": 120, "saturated_fraction": 0.002, "star_count": 12, "fwhm_px": 5.5,
    "fwhm_arcsec": 2.75, "hfr_px": 2.75, "elongation": 1.41, "pixel_scale": 0.5, "stars_measured": 9,
    "verdicts": {"fwhm": "warn", "elongation": "warn", "saturation": "bad", "star_count": "warn",
                 "background": "ok"},
    "stars": {"x": [10.0], "y": [20.0], "flux": [1.0], "a": [1.0], "b": [1.0]},
}


def test_tiles_show_each_metric_with_its_verdict():
    tiles = {tile["name"]: tile for tile in quality_tiles(KNOWN)}
    assert list(tiles) == ["fwhm", "hfr", "background", "saturation", "stars", "elongation"]
    assert (tiles["fwhm"]["value"], tiles["fwhm"]["sub"], tiles["fwhm"]["verdict"]) == ("5.50 px", "2.75″", "warn")
    assert tiles["hfr"]["value"] == "2.75 px" and tiles["hfr"]["sub"] == "1.38″"
    assert tiles["hfr"]["verdict"] == "warn"  # the stars' size: the FWHM's verdict
    assert tiles["background"]["value"] == "512.2" and "21.5" in tiles["background"]["sub"]
    assert tiles["background"]["verdict"] == "ok"
    assert tiles["saturation"]["value"] == "0.2 %" and tiles["saturation"]["verdict"] == "bad"
    assert tiles["stars"]["value"] == "12" and tiles["stars"]["verdict"] == "warn"
    assert tiles["elongation"]["value"] == "1.41" and tiles["elongation"]["verdict"] == "warn"


def test_unmeasured_metrics_are_unknown():
    quality = dict(KNOWN, fwhm_px=None, fwhm_arcsec=None, hfr_px=None, elongation=None,
                   verdicts={"fwhm": "unknown", "elongation": "unknown", "saturation": "ok",
                             "star_count": "bad", "background": "ok"})
    tiles = {tile["name"]: tile for tile in quality_tiles(quality)}
    assert tiles["fwhm"]["value"] is None and tiles["fwhm"]["verdict"] == "unknown"
    assert tiles["elongation"]["verdict"] == "unknown"
    html = cards_html(quality)
    assert 'data-metric="fwhm" data-verdict="unknown"' in html


def test_cards_html_carries_the_numbers_verdicts_and_legend():
    from components.core.quality import QualityThresholds

    html = cards_html(KNOWN, thresholds=QualityThresholds())
    meta = json.loads(html.split('data-quality="', 1)[1].split('"', 1)[0].replace("&quot;", '"'))
    assert meta["state"] == "ready" and meta["key"] == "data/k.fits"
    assert meta["fwhm_px"] == 5.5 and meta["star_count"] == 12
    assert meta["verdicts"] == {"fwhm": "warn", "hfr": "warn", "background": "ok", "saturation": "bad",
                                "stars": "warn", "elongation": "warn"}
    assert 'class="qa-tile qa-bad" data-metric="saturation"' in html
    assert "warn from 2.5″, bad from 4″" in html  # the limits, in the tile's tooltip
    for verdict in VERDICT_COLORS:
        assert f'qa-dot qa-{verdict}' in html  # the legend


def test_cards_say_measuring_failed_or_not_available():
    assert "measuring…" in cards_html(None, pending=True)
    assert '"state": "measuring"' in cards_html(None, pending=True).replace("&quot;", '"')
    assert "Cannot measure this frame: broken" in cards_html(None, error="broken")
    assert "not measured" in cards_html(None)
    assert "No frame yet" in cards_html(None, has_image=False)


# ---------------------------------------------------------------- session


def test_the_session_measures_the_frame_shown(session, service):
    assert session.key == "data/n2.fits"
    assert session.quality is service.measure("data/n2.fits")  # the service's memo
    assert session.quality_pending is False
    assert session.quality["fwhm_px"] == pytest.approx(FWHMS[2], rel=0.1)
    session.pick("data/n0.fits")
    assert session.quality["key"] == "data/n0.fits"
    assert session.quality["fwhm_px"] == pytest.approx(FWHMS[0], rel=0.1)


def test_the_measurement_runs_in_a_worker_and_lands_through_the_scheduler(store, tmp_path):
    service = QualityService(store, QualityHistory(tmp_path / "fresh.sqlite3"))  # nothing measured yet
    pending, main = [], threading.get_ident()
    threads = []
    original = service._measure

    def measure(*args):
        threads.append(threading.get_ident())
        return original(*args)

    service._measure = measure

    def scheduler(callback):
        pending.append(callback)

    session = Session(store=store, quality_service=service, directory="data", scheduler=scheduler)
    session.tick()
    deadline = time.monotonic() + 30
    while session.quality is None and time.monotonic() < deadline:
        while pending:
            pending.pop(0)()
        if session.image is not None and session.quality is None:
            assert session.quality_pending  # the cards say "measuring…" meanwhile
        time.sleep(0.01)
    assert session.quality["key"] == "data/n2.fits"
    assert threads and main not in threads  # never on the session's thread


def test_concurrent_sessions_share_one_measurement(store, tmp_path):
    service = QualityService(store, QualityHistory(tmp_path / "fresh.sqlite3"))
    pending = []
    sessions = [Session(store=store, quality_service=service, directory="data", scheduler=pending.append)
                for _ in range(3)]
    for session in sessions:
        session.tick()
    deadline = time.monotonic() + 30
    while any(session.quality is None for session in sessions) and time.monotonic() < deadline:
        while pending:
            pending.pop(0)()
        time.sleep(0.01)
    assert all(session.quality is sessions[0].quality for session in sessions)
    assert service.measurements == 1


def test_a_history_row_replaces_the_row_of_its_key():
    rows = [{"key": "a", "observed": 1.0}, {"key": "b", "observed": 2.0}]
    merged = merge_history(rows, {"key": "a", "observed": 3.0})
    assert [(row["key"], row["observed"]) for row in merged] == [("b", 2.0), ("a", 3.0)]
    assert merge_history([], {"key": "c", "observed": 0.0}) == [{"key": "c", "observed": 0.0}]


def test_without_a_service_there_is_no_quality(store):
    session = Session(store=store)
    session.tick()
    assert session.quality is None and session.quality_pending is False
    session.poll_history()
    assert session.history == []
    cards = QualityCards(session=session)
    assert "not measured" in cards._render(None, False, "", session.image)


def test_the_history_is_replaced_only_when_it_changes(session, service, root):
    session.poll_history()
    rows = session.history
    assert [row["key"] for row in rows] == ["data/n0.fits", "data/n1.fits", "data/n2.fits"]
    session.poll_history()
    assert session.history is rows  # nothing new: no redraw
    path = root / "data" / "n3.fits"
    write_fits(star_field((200, 300), n_stars=40, fwhm=3.3, seed=3,
                          date_obs=START + timedelta(minutes=30)), path)
    service.record("data/n3.fits")
    session.poll_history()
    assert session.history is not rows and session.history[-1]["key"] == "data/n3.fits"
    assert len(session.history) == 4
    session.directory = "other"  # another folder: its own history
    assert [row["key"] for row in session.history] == ["other/x.fits"]


def test_a_row_measured_while_the_history_is_read_is_not_lost(store, service, root):
    """The read misses a frame measured just after it; its quality event lands before the read does."""
    pending = []
    session = Session(store=store, quality_service=service, directory="data", scheduler=pending.append)
    read_done = threading.Event()
    original_rows = service.history.rows

    def rows(directory=None):
        found = original_rows(directory)  # read before n3 is measured
        read_done.set()
        return found

    service.history.rows = rows
    try:
        session.load_history()
        assert read_done.wait(30)
        path = root / "data" / "n3.fits"
        write_fits(star_field((200, 300), n_stars=40, fwhm=3.3, seed=3,
                              date_obs=START + timedelta(minutes=30)), path)
        row = service.record("data/n3.fits")
        assert row is not None and row["key"] == "data/n3.fits"
        session.take_quality(row)  # its event, handled before the read's callback
        deadline = time.monotonic() + 30
        while not session.history and time.monotonic() < deadline:
            while pending:
                pending.pop(0)()
            time.sleep(0.01)
    finally:
        service.history.rows = original_rows
    assert [r["key"] for r in session.history] == [f"data/n{i}.fits" for i in range(4)]


def test_after_a_failed_history_read_new_rows_still_reach_the_timeline(store, service, monkeypatch):
    session = Session(store=store, quality_service=service, directory="data")

    def broken(directory=None):
        raise OSError("database is locked")

    monkeypatch.setattr(service.history, "rows", broken)
    session.load_history()  # fails: logged, nothing shown yet
    assert session.history == []
    session.take_quality(service.history.latest("data/n2.fits"))  # the next quality event
    assert [r["key"] for r in session.history] == ["data/n2.fits"]


# ---------------------------------------------------------------- timeline


def _history(tmp_path) -> QualityHistory:
    history = QualityHistory(tmp_path / "known.sqlite3")
    base = START.timestamp()
    history.record("data/b.fits", "v", base + 600, {
        "fwhm_px": 4.0, "fwhm_arcsec": 2.0, "background": 600.0, "star_count": 80, "elongation": 1.1,
        "verdicts": {"fwhm": "ok", "background": "ok", "star_count": "ok", "elongation": "ok"}})
    history.record("data/a.fits", "v", base, {
        "fwhm_px": 6.0, "fwhm_arcsec": 3.0, "background": 500.0, "star_count": 20, "elongation": 1.4,
        "verdicts": {"fwhm": "warn", "background": "ok", "star_count": "warn", "elongation": "warn"}})
    history.record("data/c.fits", "v", base + 1200, error="Cannot read")
    return history


def test_timeline_data_from_known_rows(tmp_path):
    rows = _history(tmp_path).rows()
    data = timeline_data(rows)
    columns = data["columns"]
    assert data["unit"] == "arcsec"
    assert columns["key"] == ["data/a.fits", "data/b.fits", "data/c.fits"]  # observing order
    np.testing.assert_array_equal(columns["time"][:2], [START.timestamp() * 1000, START.timestamp() * 1000 + 600_000])
    np.testing.assert_array_equal(columns["fwhm"][:2], [3.0, 2.0])
    np.testing.assert_array_equal(columns["star_count"][:2], [20, 80])
    assert np.isnan(columns["fwhm"][2]) and columns["error"][2] == "Cannot read"
    assert columns["fwhm_color"][:2] == [VERDICT_COLORS["warn"], VERDICT_COLORS["ok"]]
    assert columns["when"][0] == "2026-03-01 02:00:00"
    assert current_point(columns, "data/b.fits") == 1 and current_point(columns, "nope") is None
    # Without a pixel scale for every frame the FWHM is in pixels.
    rows[0]["fwhm_arcsec"] = None
    assert timeline_data(rows)["unit"] == "px"
    np.testing.assert_array_equal(timeline_data(rows)["columns"]["fwhm"][:2], [6.0, 4.0])


def test_axis_ranges_keep_every_point_inside():
    assert axis_range([1.0, 3.0], pad=0.1) == pytest.approx((0.8, 3.2))
    assert axis_range([5.0], pad=0.1) == pytest.approx((4.75, 5.25))
    assert axis_range([np.nan]) == (0.0, 1.0)
    low, high = axis_range([1e12], pad=0.04, minimum=30_000)
    assert high - low == 60_000


def test_the_timeline_shows_the_sessions_frames_and_rings_the_one_shown(session):
    timeline = QualityTimeline(session=session)
    session.poll_history()
    assert timeline.source.data["key"] == ["data/n0.fits", "data/n1.fits", "data/n2.fits"]
    fwhm = np.asarray(timeline.source.data["fwhm"]) / 0.5  # arcsec -> px (0.5"/px)
    np.testing.assert_allclose(fwhm, FWHMS, rtol=0.1)
    assert timeline.current.data["time"] == [timeline.source.data["time"][2]]
    assert timeline.figures[0].title.text == "FWHM (″)"
    assert timeline._x_range.start < timeline.source.data["time"][0]
    assert timeline._x_range.end > timeline.source.data["time"][-1]
    caption = timeline._describe(session.history, session.key)
    meta = json.loads(caption.split('data-timeline="', 1)[1].split('"', 1)[0].replace("&quot;", '"'))
    assert meta == {"count": 3, "current": "data/n2.fits", "unit": "arcsec"}


def test_clicking_a_timeline_point_opens_that_frame(session):
    timeline = QualityTimeline(session=session)
    session.poll_history()
    timeline.source.selected.indices = [0]  # what the browser's tap tool sends
    assert session.key == "data/n0.fits" and session.follow is False
    assert session.info.key == "data/n0.fits"  # read (no scheduler: at once)
    assert timeline.source.selected.indices == []  # a click, not a lasting selection
    assert timeline.current.data["time"] == [timeline.source.data["time"][0]]
    timeline.click(2)  # the newest frame: following again is the observer's choice
    assert session.key == "data/n2.fits"


# ---------------------------------------------------------------- stars


def _isolated_star(frame, shape, margin=25):
    """The brightest unsaturated star with no other star within ``margin`` px."""
    xs, ys = np.asarray(frame.stars["x"]), np.asarray(frame.stars["y"])
    for index in np.argsort(-np.asarray(frame.stars["flux"])):
        star = frame.stars[index]
        if star["saturated"] or not (margin < star["x"] < shape[1] - margin and margin < star["y"] < shape[0] - margin):
            continue
        distance = np.hypot(xs - star["x"], ys - star["y"])
        distance[index] = np.inf
        if distance.min() > margin:
            return {"x": float(star["x"]), "y": float(star["y"]), "flux": float(star["flux"])}
    raise AssertionError("no isolated star")


def test_nearest_star_and_profile_radius():
    quality = {"stars": {"x": [10.0, 50.0], "y": [10.0, 40.0]}, "fwhm_px": 3.0}
    assert nearest_star(quality, 48.0, 41.0, 6.0) == (50.0, 40.0)
    assert nearest_star(quality, 30.0, 30.0, 6.0) is None
    assert nearest_star(None, 1, 1, 6) is None
    assert profile_radius(quality) == 12.0 and profile_radius(None) == 15.0
    assert profile_radius({"fwhm_px": 20.0}) == 30.0


def test_a_click_on_a_star_gives_its_profile_and_fwhm(tmp_path):
    shape, truth = (240, 320), 4.0
    frame = star_field(shape, n_stars=25, fwhm=truth, seed=5)
    (tmp_path / "data").mkdir()
    write_fits(frame, tmp_path / "data" / "star.fits")
    store = FrameStore(LocalSource(tmp_path, settle=0), ImageCache(10**8))
    service = QualityService(store, QualityHistory(tmp_path / "q.sqlite3"))
    session = Session(store=store, quality_service=service)
    session.tick()
    from components.views.image import ImageView, picked_marker

    view = ImageView(session=session)
    pane = StarProfilePane(session=session)
    assert "click a star" in pane._describe(None, None, session.image)
    star = _isolated_star(frame, shape)
    # A click 2 px beside the star, in plot coordinates (pixel centres at +0.5).
    view.pick_star(star["x"] + 0.5 + 2.0, star["y"] + 0.5 - 1.0)
    snapped = nearest_star(session.quality, star["x"], star["y"], 3.0)
    assert session.star == snapped  # snapped onto the detected star
    summary = pane.summary()
    assert summary["star"] is True
    assert summary["x"] == pytest.approx(star["x"], abs=0.3) and summary["y"] == pytest.approx(star["y"], abs=0.3)
    assert summary["fwhm_px"] == pytest.approx(truth, rel=0.05)
    assert summary["fwhm_arcsec"] == pytest.approx(truth * 0.5, rel=0.05)
    expected = star_profile(session.image.data, *session.star, profile_radius(session.quality))
    assert summary["fwhm_px"] == pytest.approx(expected.fwhm)
    html = pane._describe(session.star_result, session.star, session.image)
    assert "qa-star-fwhm" in html and f"{summary['fwhm_px']:.2f} px" in html
    overlay = pane._profile(session.star_result)
    points, curve, marker = overlay.values()
    assert len(points) == summary["samples"] and len(curve) == 200
    assert marker.dimension_values(0)[0] == pytest.approx(summary["fwhm_px"] / 2)
    assert picked_marker(session) == {"x": [summary["x"] + 0.5], "y": [summary["y"] + 0.5]}
    # Empty sky: no star, no FWHM.
    sky = next((x, y) for x, y in ((30.0, 30.0), (290.0, 30.0), (30.0, 210.0), (290.0, 210.0))
               if all(np.hypot(s["x"] - x, s["y"] - y) > 30 for s in frame.stars))
    session.select_star(*sky)
    assert pane.summary()["star"] is False and pane.summary()["fwhm_px"] is None
    assert "no star" in pane._describe(session.star_result, session.star, session.image)
    session.star = None
    assert session.star_result is None and pane.summary() is None
    service.history.close()


def test_the_star_overlay_follows_the_quality_and_the_toggle(session):
    import panel as pn

    from components.views.image import ImageView, star_markers

    view = ImageView(session=session)
    pn.panel(view).get_root()  # render: the Bokeh figure and its star circles exist
    source, renderer = view._handles["stars_source"], view._handles["stars_renderer"]
    stars = session.quality["stars"]
    np.testing.assert_array_equal(source.data["x"], np.asarray(stars["x"]) + 0.5)
    np.testing.assert_array_equal(source.data["y"], np.asarray(stars["y"]) + 0.5)
    assert renderer.visible is True
    session.show_stars = False
    assert renderer.visible is False
    session.pick("data/n0.fits")
    np.testing.assert_array_equal(source.data["x"], star_markers(session.quality)["x"])
    assert session.quality["key"] == "data/n0.fits"
    # The hover tool describes pixels only, never the circles.
    figure = view._handles["figure"]
    hover = next(t for t in figure.tools if type(t).__name__ == "HoverTool")
    assert renderer not in hover.renderers


def test_the_dashboard_shows_the_quality_and_switches_tabs(session):
    from components.views.layout import Dashboard

    dashboard = Dashboard(session=session)
    html = dashboard.quality._render(session.quality, False, "", session.image)
    assert '"state": "ready"' in html.replace("&quot;", '"')
    assert dashboard.tabs.active == 0  # Region
    star = session.quality["stars"]
    session.select_star(star["x"][0], star["y"][0])
    assert dashboard.tabs.active == dashboard._tab_names.index("Star")
    session.box = (10.0, 10.0, 50.0, 40.0)
    assert dashboard.tabs.active == dashboard._tab_names.index("Region")
    from components.views.layout import _drag_hint

    assert "click a star" in _drag_hint("pan")
    dashboard._page_ready()  # re-sends the plain Bokeh models; harmless without a page
    dashboard._resend_quality()


def test_star_summary_flags_light_below_the_noise():
    rng = np.random.default_rng(1)
    sky = rng.normal(500, 20, (41, 41))
    result = star_profile(sky, 20, 20, 12)
    summary = star_summary(result)
    assert summary["star"] is False and summary["fwhm_px"] is None
