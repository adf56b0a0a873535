"""Pinned regions, focus and drift panes without a browser: session state in, numbers out."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest
from astropy.wcs import WCS

from app.quality_service import QualityService
from components.core.quality import quality
from components.core.regions import Box, Circle, measure_region, pin
from components.core.synthetic import crop, star_field, write_fits
from components.sources import FrameStore, ImageCache, LocalSource
from components.sources.history import QualityHistory
from components.views import compute
from components.views.drift import DriftPane
from components.views.focus import FocusPane
from components.views.regions import RegionsPane, plot_box_to_shape
from components.views.state import Session

SHIFT = 40


@pytest.fixture
def sky(tmp_path):
    """data/first.fits, then data/second.fits with the pointing 40 px further along +x."""
    wide = star_field((300, 400 + SHIFT), n_stars=150, fwhm=3.0, seed=21)
    now = time.time()
    first, second = crop(wide, 0, 0, 400, 300), crop(wide, SHIFT, 0, 400, 300)
    (tmp_path / "data").mkdir()
    for name, frame, when in (("first.fits", first, now - 20), ("second.fits", second, now - 10)):
        path = write_fits(frame, tmp_path / "data" / name)
        os.utime(path, (when, when))
    compute.clear()
    store = FrameStore(LocalSource(tmp_path, settle=0), ImageCache(10**9))
    service = QualityService(store, QualityHistory(tmp_path / "q.sqlite3"))
    return store, service, first, second


def test_pinned_box_follows_the_field_and_its_statistics_follow(sky):
    store, service, first, second = sky
    session = Session(store=store, quality_service=service, directory="data", key="data/first.fits", follow=False)
    pane = RegionsPane(session=session)
    session.tick()
    assert session.key == "data/first.fits" and session.quality is not None
    session.box = (150.0, 100.0, 231.0, 171.0)  # plot coordinates: pixel edges
    region = pane.pin_current_box()
    assert region is not None and not region.pixels_only
    assert plot_box_to_shape(session.box) == Box(149.5, 99.5, 230.5, 170.5)
    session.pick("data/second.fits")
    assert session.key == "data/second.fits"
    name = region.name
    on_first = pane.measurements[(name, "data/first.fits")]
    on_second = pane.measurements[(name, "data/second.fits")]
    assert on_second["shape"]["x0"] == pytest.approx(on_first["shape"]["x0"] - SHIFT)
    assert on_second["statistics"] == on_first["statistics"]
    expected = measure_region(second.data, WCS(second.header), region, quality(second.data, second.header))
    assert on_second["statistics"] == expected["statistics"]
    assert on_second["quality"]["star_count"] == on_first["quality"]["star_count"] > 0
    # The table shows the frame shown and the change against the previous frame: none, same stars.
    (row,) = pane.rows()
    assert row["median"] == on_second["statistics"]["median"] and row["Δ median"] == 0
    assert row["on sky"] == "sky"
    # Outlined on the image, where the region lands on the frame shown.
    outline = pane._outlines()["box"]
    assert outline["x"][0] == pytest.approx(np.mean([on_second["shape"]["x0"], on_second["shape"]["x1"]]) + 0.5)


def test_reference_frame_and_ds9_round_trip(sky):
    store, service, first, second = sky
    session = Session(store=store, quality_service=service, directory="data", key="data/second.fits", follow=False)
    pane = RegionsPane(session=session)
    session.tick()
    pane.pin_shape(Circle(150, 150, 30), "core")
    session.reference_key = "data/first.fits"
    (row,) = pane.rows()
    assert row["Δ median"] == 0 and row["kind"] == "circle"
    text = pane.ds9_text()
    assert "circle" in text and "text={core}" in text
    other = RegionsPane(session=Session(store=store, directory="data", key="data/first.fits", follow=False))
    other.session.tick()
    assert other.import_ds9(text) == 1
    back = other.regions()[0]
    assert back.name == "core"
    assert back.place(WCS(first.header)).center == pytest.approx((150 + SHIFT, 150), abs=1e-4)
    assert other.import_ds9("not a region file") == 0 and "Cannot import" in other.message


def test_frames_without_wcs_keep_pixels_and_say_so(tmp_path):
    from astropy.io import fits

    (tmp_path / "data").mkdir()
    fits.PrimaryHDU(np.arange(100 * 120, dtype=np.float32).reshape(100, 120)).writeto(tmp_path / "data" / "plain.fits")
    store = FrameStore(LocalSource(tmp_path, settle=0), ImageCache(10**8))
    session = Session(store=store, directory="data")
    pane = RegionsPane(session=session)
    session.tick()
    session.box = (10.0, 10.0, 20.0, 30.0)
    region = pane.pin_current_box()
    assert region.pixels_only
    assert "pixels only (no WCS)" in pane._note.object
    stats = pane.measurements[(region.name, "data/plain.fits")]["statistics"]
    assert stats["count"] == 10 * 20


def test_focus_and_drift_panes_follow_the_history():
    session = Session(store=object())
    focus, drift = FocusPane(session=session), DriftPane(session=session)
    assert focus.fit is None and "No frame" in focus._caption.object
    positions = np.arange(4000, 4900, 100)
    session.history = [
        {"key": f"data/{i}.fits", "name": f"{i}.fits", "observed": 1e9 + 60 * i, "focus": float(p),
         "fwhm_px": float(np.hypot(2.5, 0.01 * (p - 4420))), "center_ra": 10.0 + i * 1e-4, "center_dec": 20.0}
        for i, p in enumerate(positions)
    ]
    assert focus.fit.best_focus == pytest.approx(4420, rel=1e-4)
    assert "Best focus 4420" in focus._caption.object
    assert focus.best.location == pytest.approx(4420, rel=1e-4)
    focus.last = 3
    assert focus.fit is None and len(focus.source.data["key"]) == 3
    east = drift.source.data["east"]
    assert east[0] == 0 and east[-1] == pytest.approx(8 * 1e-4 * 3600 * np.cos(np.radians(20)), rel=1e-3)


def test_link_query_round_trips_every_listed_state(sky):
    from urllib.parse import parse_qs, urlencode

    from app.main import query_options
    from components.views.sky import link_query, parse_view

    store, service, first, _ = sky
    session = Session(
        store=store, directory="data", key="data/first.fits", follow=False, interval="minmax", stretch="asinh",
        cmap="viridis", line=(10.0, 20.5, 100.0, 200.0), box=(5.0, 6.0, 50.25, 60.0), compare="difference",
        reference_key="data/second.fits", blink_interval=2.5,
    )
    session.tick()
    pane = RegionsPane(session=session)
    pane.pin_shape(Circle(150, 150, 30), "core")
    pane.pin_shape(Box(10, 10, 40, 40), "corner")
    ranges = ((100.0, 300.0), (50.0, 200.0))
    query = link_query(session, ranges)
    arguments = {name: [value.encode()] for name, values in parse_qs(urlencode(query)).items() for value in values}
    options = query_options(arguments, store)
    assert "error" not in options
    restored = Session(store=store, **options)
    for name in ("directory", "key", "follow", "interval", "stretch", "cmap", "line", "box", "compare",
                 "reference_key", "blink_interval", "pinned"):
        assert getattr(restored, name) == getattr(session, name), name
    assert parse_view(arguments) == ranges
    # Following: the link does not pin a frame.
    session.follow = True
    assert "image" not in link_query(session) and link_query(session)["follow"] == "1"


@pytest.mark.parametrize("name, value", [("cmap", "nope"), ("box", "1,2,3"), ("blink", "100"),
                                         ("pinned", "{not json"), ("compare", "sideways"), ("line", "1,2,3,nan")])
def test_bad_link_arguments_are_reported_not_fatal(name, value):
    from app.main import query_options

    options = query_options({name: [value.encode()], "stretch": [b"log"]})
    assert name in options["error"]
    assert options["stretch"] == "log"  # the good arguments still apply
