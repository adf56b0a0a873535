"""View logic without a browser: parameter state in, computed panes out.

Every number a pane shows must be what :mod:`components.core` (and so the
REST API) gives for the same frame and region; the coordinate conversion
between the plot and the API is tested on its own, thoroughly.
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from hypothesis import given, settings
from hypothesis import strategies as st

from components.core import histogram_clipped, line_profile, relative_to_pixel, statistics, subregion
from components.core.synthetic import star_field, write_fits
from components.sources import FrameStore, ImageCache, LocalSource
from components.views import compute, coords, display
from components.views.state import CLIP_CHOICES, Session

# ---------------------------------------------------------------- fixtures


def _write(path: Path, shape=(60, 90), seed=0, when: float | None = None, **kwargs) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_fits(star_field(shape, n_stars=8, seed=seed, **kwargs), path, compress=path.name.endswith(".fz"))
    if when is not None:
        os.utime(path, (when, when))
    return path


@pytest.fixture
def root(tmp_path) -> Path:
    """Two frames in data/ (b newer than a) and one in other/."""
    now = time.time()
    _write(tmp_path / "data" / "a.fits", seed=1, when=now - 30)
    _write(tmp_path / "data" / "b.fits.fz", seed=2, when=now - 20)
    _write(tmp_path / "other" / "c.fits", shape=(40, 50), seed=3, when=now - 100)
    return tmp_path


@pytest.fixture
def store(root) -> FrameStore:
    compute.clear()
    return FrameStore(LocalSource(root, settle=0), ImageCache(10**9))


@pytest.fixture
def session(store) -> Session:
    session = Session(store=store)
    session.tick()  # no scheduler: lists and reads right here
    return session


# ---------------------------------------------------------------- coordinates


def test_bounds_put_pixel_edges_on_integers():
    assert coords.bounds((4, 6)) == (0.0, 0.0, 6.0, 4.0)
    assert coords.plot_to_pixel(0.5, 0.5) == (0.0, 0.0)
    assert coords.pixel_to_plot(5, 3) == (5.5, 3.5)
    assert coords.pixel_under(5.99, 3.01, (4, 6)) == (5, 3)
    assert coords.pixel_under(-3, 99, (4, 6)) == (0, 3)  # clamped to the frame


def test_pixel_centres_map_to_the_api_points_of_those_pixels():
    shape = (7, 11)  # rows, columns
    for row in range(shape[0]):
        for column in range(shape[1]):
            rel = coords.plot_to_relative_point(column + 0.5, row + 0.5, shape)
            assert relative_to_pixel(rel, shape) == pytest.approx((column, row))
            back = coords.relative_to_plot_point(*rel, shape)
            assert back == pytest.approx((column + 0.5, row + 0.5))


def test_row_zero_is_the_top_row_of_the_api():
    # y = 0 in the API is array row 0, whatever the display orientation.
    shape = (5, 8)
    assert coords.plot_to_relative_point(0.5, 0.5, shape) == (0.0, 0.0)
    assert coords.plot_to_relative_point(7.5, 4.5, shape) == (1.0, 1.0)
    assert coords.plot_to_relative_point(-10, 50, shape) == (0.0, 1.0)  # clamped


def test_one_pixel_frame_has_well_defined_points():
    assert coords.plot_to_relative_point(0.7, 0.2, (1, 1)) == (0.0, 0.0)


@given(
    rows=st.integers(1, 40),
    cols=st.integers(1, 40),
    x0=st.floats(-5, 45), y0=st.floats(-5, 45), x1=st.floats(-5, 45), y1=st.floats(-5, 45),
)
@settings(max_examples=300, deadline=None)
def test_a_plot_box_gives_exactly_the_pixels_subregion_takes(rows, cols, x0, y0, x1, y1):
    data = np.arange(rows * cols).reshape(rows, cols)
    corners = coords.plot_box_to_relative((x0, y0, x1, y1), data.shape)
    slices = coords.box_pixel_slices((x0, y0, x1, y1), data.shape)
    if corners is None:
        assert slices is None
        return
    region = subregion(data, *corners)
    np.testing.assert_array_equal(region, data[slices])


@given(
    rows=st.integers(1, 30), cols=st.integers(1, 30),
    r0=st.integers(0, 29), r1=st.integers(1, 30), c0=st.integers(0, 29), c1=st.integers(1, 30),
)
@settings(max_examples=300, deadline=None)
def test_a_box_on_pixel_edges_holds_exactly_the_pixels_inside(rows, cols, r0, r1, c0, c1):
    r0, r1 = sorted((min(r0, rows - 1), min(r1, rows)))
    c0, c1 = sorted((min(c0, cols - 1), min(c1, cols)))
    if r1 <= r0 or c1 <= c0:
        return
    data = np.arange(rows * cols).reshape(rows, cols)
    corners = coords.plot_box_to_relative((c0, r0, c1, r1), data.shape)
    np.testing.assert_array_equal(subregion(data, *corners), data[r0:r1, c0:c1])
    # The same box drawn from the other corner, and its API round trip.
    assert coords.plot_box_to_relative((c1, r1, c0, r0), data.shape) == corners
    assert coords.relative_box_to_plot(*corners, data.shape) == pytest.approx((c0, r0, c1, r1))


def test_a_box_outside_the_frame_has_no_area():
    assert coords.plot_box_to_relative((20, 1, 30, 2), (10, 10)) is None
    assert coords.clip_box((20, 1, 30, 2), (10, 10)) is None
    assert coords.clip_box((-5, 8, 3, 30), (10, 10)) == (0.0, 8.0, 3.0, 10.0)


@given(
    rows=st.integers(2, 50), cols=st.integers(2, 50),
    points=st.lists(st.floats(0, 1), min_size=4, max_size=4),
)
@settings(max_examples=200, deadline=None)
def test_lines_round_trip_through_api_points(rows, cols, points):
    shape = (rows, cols)
    start, end = (points[0], points[1]), (points[2], points[3])
    line = coords.relative_line_to_plot(start, end, shape)
    again = coords.plot_line_to_relative(line, shape)
    assert again[0] == pytest.approx(start, abs=1e-12)
    assert again[1] == pytest.approx(end, abs=1e-12)


def test_a_drawn_line_samples_the_pixels_under_it():
    data = np.zeros((20, 30))
    data[7, :] = 5.0  # a horizontal ridge on row 7
    line = (0.5, 7.5, 29.5, 7.5)  # centre of row 7, first to last column
    profile = line_profile(data, *coords.plot_line_to_relative(line, data.shape))
    assert len(profile) == 30
    np.testing.assert_allclose(profile.values, 5.0)


# ---------------------------------------------------------------- display


def test_interval_limits():
    values = np.arange(1001, dtype=np.float64)
    assert display.interval_limits(values, "minmax") == (0.0, 1000.0)
    assert display.interval_limits(values, "minmax", extremes=(-5, 2000)) == (-5.0, 2000.0)
    low, high = display.interval_limits(values, "99")
    assert low == pytest.approx(5.0) and high == pytest.approx(995.0)
    assert display.interval_limits(values, "manual", (10, 20)) == (10.0, 20.0)
    assert display.interval_limits(values, "manual", (None, 20)) == (0.0, 20.0)
    low, high = display.interval_limits(values, "zscale")
    assert 0 <= low < high <= 1000
    assert display.interval_limits(np.full(10, 3.0), "minmax") == (2.5, 3.5)  # never empty
    assert display.interval_limits(np.array([]), "zscale") == (0.0, 1.0)


@pytest.mark.parametrize("name", list(display.STRETCHES.values()))
def test_stretches_are_monotonic_from_0_to_1(name):
    t = np.linspace(0, 1, 501)
    table = display.equalization_table(np.random.default_rng(0).normal(0.3, 0.1, 5000), 0, 1)
    y = display.stretch_values(name, t, table)
    assert y[0] == pytest.approx(0, abs=1e-9) and y[-1] == pytest.approx(1)
    assert np.all(np.diff(y) >= -1e-12)


def test_palettes():
    grey = display.make_palette("grey", "linear")
    assert len(grey) == display.PALETTE_SIZE
    assert grey[0] == "#000000" and grey[-1] == "#ffffff"  # black sky, white stars
    assert display.make_palette("grey", "linear", invert=True) == grey[::-1]
    log = display.make_palette("grey", "log")
    assert int(log[100][1:3], 16) > int(grey[100][1:3], 16)  # log lifts the faint end
    for cmap in display.COLORMAPS:
        assert len(display.make_palette(cmap, "sqrt", size=16)) == 16


# ---------------------------------------------------------------- session and frames


def test_session_shows_the_newest_frame_and_lists_folders(session):
    assert [f.key for f in session.frames] == ["data/b.fits.fz", "data/a.fits", "other/c.fits"]
    assert session.key == "data/b.fits.fz" and session.image is not None
    assert session.directories == ["data", "other"]
    assert session.loading is False and session.error == ""


def test_directory_narrows_the_listing(session):
    session.directory = "other"
    assert [f.key for f in session.frames] == ["other/c.fits"]
    assert session.key == "other/c.fits"  # following: the newest of that folder


def test_follow_switches_to_a_new_frame_keeping_line_box_and_display(session, root):
    session.param.update(line=(3.0, 4.0, 50.0, 30.0), box=(10.0, 10.0, 40.0, 30.0),
                         stretch="asinh", interval="99")
    before = compute.region_statistics(session.image, session.region_box())
    _write(root / "data" / "d.fits", seed=9, background=900.0)
    session.tick()
    assert session.key == "data/d.fits"
    assert session.notice == "New frame: d.fits"
    assert session.line == (3.0, 4.0, 50.0, 30.0) and session.box == (10.0, 10.0, 40.0, 30.0)
    assert (session.stretch, session.interval) == ("asinh", "99")
    after = compute.region_statistics(session.image, session.region_box())
    assert after["subregion"] == before["subregion"] and after["median"] > before["median"] + 300


def test_picking_an_older_frame_stops_following_until_turned_back_on(session, root):
    session.pick("data/a.fits")
    assert session.follow is False and session.key == "data/a.fits"
    assert session.image.name == "data/a.fits"
    _write(root / "data" / "e.fits", seed=5)
    session.tick()
    assert session.key == "data/a.fits" and session.notice == ""
    session.follow = True
    assert session.key == "data/e.fits"


def test_picking_the_newest_frame_keeps_following(session):
    session.pick("data/b.fits.fz")
    assert session.follow is True


def test_an_unreadable_frame_shows_a_message_and_the_session_goes_on(session, root):
    shown = session.image
    (root / "data" / "broken.fits").write_bytes(b"SIMPLE  =                    T" + b"\0" * 100)
    session.tick()
    assert "broken.fits" in session.error
    assert session.image is shown  # the last good frame stays on screen
    assert session.loading is False
    _write(root / "data" / "f.fits", seed=6)
    session.tick()
    assert session.key == "data/f.fits" and session.error == ""


def test_a_rewritten_frame_is_read_again(session, root):
    session.pick("data/a.fits")
    first = session.image
    path = _write(root / "data" / "a.fits", seed=42, when=time.time() - 25)
    session.tick()
    assert session.image is not first
    assert session.image.data.shape == first.data.shape
    assert path.exists()


def test_multi_extension_frames_offer_a_choice_of_hdu(store, root):
    hdus = fits.HDUList([fits.PrimaryHDU()])
    for value in (10, 20, 30):
        hdus.append(fits.ImageHDU(np.full((8, 12), value, np.int16), name="SCI"))
    hdus.writeto(root / "other" / "mef.fits")
    session = Session(store=store, directory="other")
    session.tick()
    assert session.key == "other/mef.fits" and session.image.hdu == 1
    from components.views.summary import hdu_options

    assert list(hdu_options(session.image).values()) == [1, 2, 3]
    session.hdu = 3
    assert session.image.hdu == 3 and int(session.image.data[0, 0]) == 30
    assert compute.region_statistics(session.image)["median"] == 30


def test_a_key_outside_the_folder_can_be_asked_for(store):
    session = Session(store=store, directory="data", key="other/c.fits", follow=False)
    session.tick()
    assert session.image is not None and session.image.name == "other/c.fits"


def test_a_missing_key_says_so(store):
    session = Session(store=store, key="data/nope.fits", follow=False)
    session.tick()
    assert "nope.fits" in session.error


def test_sessions_share_one_decode(store, monkeypatch):
    import components.sources.store as store_module

    calls = []
    real = store_module.load_image
    monkeypatch.setattr(store_module, "load_image", lambda *a, **k: calls.append(a) or real(*a, **k))
    first, second = Session(store=store), Session(store=store)
    first.tick()
    second.tick()
    assert first.image is second.image
    assert len(calls) == 1


def test_frames_are_read_through_the_scheduler(store):
    """With a scheduler (a served page) reading happens in a worker thread."""
    import threading

    done = threading.Event()
    queue = []

    def scheduler(callback):
        queue.append(callback)
        done.set()

    session = Session(store=store, scheduler=scheduler)
    session.tick()
    for _ in range(3):  # listing, then reading: each comes back through the scheduler
        assert done.wait(10)
        done.clear()
        queue.pop(0)()
        if session.image is not None:
            break
    assert session.key == "data/b.fits.fz" and session.loading is False


# ---------------------------------------------------------------- panes


@pytest.fixture
def dashboard(session):
    from components.views.layout import Dashboard

    return Dashboard(session=session)


def test_statistics_pane_shows_core_statistics_of_the_box(dashboard, session):
    data = session.image.data
    whole = dashboard.statistics.statistics()
    expected = statistics(data)
    for key in ("mean", "median", "mode", "min", "max", "std", "median_abs_deviation", "count"):
        assert whole[key] == expected[key]
    assert whole["subregion"] is None

    session.box = (10.0, 5.0, 40.5, 33.2)
    boxed = dashboard.statistics.statistics()
    corners = boxed["subregion"]
    assert corners == coords.plot_box_to_relative(session.box, data.shape)
    expected = statistics(subregion(data, *corners))
    for key in expected:
        assert boxed[key] == expected[key]
    html = dashboard.statistics._render(session.image, session.box)
    assert f'class="qa-stat-count">{expected["count"]:,}'.replace(",", "\u2009") in html
    assert "box x 10" in html


def test_statistics_pane_clears_the_box(dashboard, session):
    session.box = (10.0, 5.0, 40.0, 33.0)
    dashboard.statistics._clear.clicks += 1
    assert session.box is None
    assert dashboard.statistics.statistics()["count"] == session.image.data.size


def test_histogram_pane_shows_core_histogram(dashboard, session):
    data = session.image.data
    for clip in CLIP_CHOICES.values():
        session.clip_percent = clip
        assert dashboard.histogram.histogram()["counts"] == histogram_clipped(data, clip)["counts"]
    session.box = (0.0, 0.0, 30.0, 20.0)
    result = dashboard.histogram.histogram()
    expected = histogram_clipped(subregion(data, *result["subregion"]), session.clip_percent)
    assert result["edges"] == expected["edges"] and result["counts"] == expected["counts"]
    session.log_counts = True
    element = dashboard.histogram._bars(session.image, session.box, session.clip_percent, True)
    assert element.opts.get().kwargs["logy"] is True


def test_profile_pane_shows_core_profile(dashboard, session):
    assert dashboard.profile.summary() is None
    session.line = (2.5, 3.5, 70.25, 40.75)
    summary = dashboard.profile.summary()
    expected = line_profile(session.image.data, summary["start"], summary["end"])
    assert summary["count"] == len(expected)
    np.testing.assert_array_equal(summary["values"], expected.values)
    assert summary["scale"] == pytest.approx(0.5, rel=1e-3)  # the synthetic WCS: 0.5"/px
    curve = dashboard.profile._curve(session.image, session.line, "arcsec")
    assert curve.dimension_values(0)[-1] == pytest.approx(summary["length"] * summary["scale"])
    assert "samples" in dashboard.profile._describe(session.image, session.line)


def test_results_do_not_depend_on_the_display_orientation(dashboard, session):
    session.param.update(line=(2.5, 3.5, 70.25, 40.75), box=(10.0, 5.0, 40.5, 33.2))
    before = (dashboard.statistics.statistics(), dashboard.profile.summary()["count"])
    session.fits_orientation = True
    after = (dashboard.statistics.statistics(), dashboard.profile.summary()["count"])
    assert before == after


def test_header_pane_searches(dashboard, session):
    from components.views.header import filter_cards, header_cards

    cards = header_cards(session.image.header)
    assert any(card.startswith("OBJECT") for card in cards)
    assert filter_cards(cards, "object") == [c for c in cards if "object" in c.lower()]
    assert filter_cards(cards, "  ") == cards
    html = dashboard.header._render(session.image, "exptime")
    assert "EXPTIME" in html and "NAXIS1" not in html


def test_summary_pane(dashboard, session):
    from components.views.summary import frame_summary

    summary = frame_summary(session.image, session.info)
    assert summary["object"] == "SIMULATED" and summary["filter"] == "V"
    assert summary["exposure"] == 30.0 and summary["width"] == 90 and summary["height"] == 60
    assert summary["hdu"] == 1 and summary["wcs"] is True  # .fits.fz: image in HDU 1
    html = dashboard.summary._render(session.image, session.info)
    assert "SIMULATED" in html and "90 &times; 60 px" in html


def test_display_controls_feed_the_colour_mapping(session):
    mapping = session.colour_mapping()
    assert len(mapping["palette"]) == display.PALETTE_SIZE
    low, high = mapping["limits"]
    assert low < high
    session.interval = "minmax"
    stats = statistics(session.image.data)
    assert session.limits() == (stats["min"], stats["max"])
    session.param.update(interval="manual", manual_low=100.0, manual_high=200.0)
    assert session.limits() == (100.0, 200.0)
    session.param.update(interval="zscale", stretch="histeq")
    assert session.palette() != display.make_palette("grey")


def test_the_folder_asked_for_survives_the_first_listing(store):
    from components.views.layout import Dashboard

    session = Session(store=store, directory="other")
    dashboard = Dashboard(session=session)
    assert dashboard.directory_select.value == "other"
    session.tick()
    assert session.directory == "other" and session.key == "other/c.fits"
    assert dashboard.directory_select.value == "other"
    dashboard.directory_select.value = ""
    assert session.directory == "" and session.key == "data/b.fits.fz"


def test_frame_selector_options(dashboard, session):
    options = dashboard.frame_select.options
    assert list(options.values()) == [f.key for f in session.frames]
    dashboard.frame_select.value = "data/a.fits"
    assert session.key == "data/a.fits" and session.follow is False
    assert dashboard.directory_select.options == {"(every folder)": "", "data": "data", "other": "other"}


def test_image_element_shares_the_decoded_pixels(session):
    from components.views.image import image_element

    element = image_element(session.image)
    assert element.bounds.lbrt() == coords.bounds(session.image.data.shape)
    assert np.shares_memory(element.data["value"].values, session.image.data)


def test_hover_sky_grid_matches_the_wcs(session):
    from components.views.image import wcs_grid

    grid = wcs_grid(session.image)
    assert grid["ok"]
    nx, ny = grid["nx"], grid["ny"]
    height, width = session.image.data.shape
    # A node of the grid is the sky position of its pixel centre.
    column, row = width - 1, (ny // 2) * (height - 1) / (ny - 1)
    index = (ny // 2) * nx + (nx - 1)
    ra = math.degrees(math.atan2(grid["uy"][index], grid["ux"][index])) % 360
    dec = math.degrees(math.asin(grid["uz"][index]))
    expected = session.image.wcs.pixel_to_world_values(column, row)
    assert ra == pytest.approx(float(expected[0]), abs=1e-9)
    assert dec == pytest.approx(float(expected[1]), abs=1e-9)


def test_query_parameters():
    from app.main import query_options

    assert query_options({}) == {}
    options = query_options({"image": [b"data/a.fits"], "dir": [b"data/"]})
    assert options == {"directory": "data", "key": "data/a.fits", "follow": False}
    assert query_options({"follow": [b"0"]}) == {"follow": False}
    assert query_options({"image": [b"x.fits"], "follow": [b"1"]})["follow"] is True
    assert "dir" in query_options({"dir": [b"../etc"]})["error"]
    assert "follow" in query_options({"follow": [b"maybe"]})["error"]


def test_query_image_may_name_a_file_inside_dir(store):
    from app.main import query_options

    options = query_options({"image": [b"a.fits"], "dir": [b"data"]}, store)
    assert options["key"] == "data/a.fits"


def test_create_app_without_a_server(root, monkeypatch):
    import app.main
    import app.settings
    import app.state
    from app.settings import Settings

    # Settings and store of this test only: both are put back afterwards.
    monkeypatch.setattr(app.settings, "_current", Settings(root=root, demo=False))
    app.state.reset_store()
    try:
        layout = app.main.create_app()
        session = layout.dashboard.session
        assert session.key == "data/b.fits.fz"
    finally:
        app.state.reset_store()


def test_warm_up_compiles_rasterize_for_read_only_frames():
    from app.warmup import warm_up_rasterize

    warm_up_rasterize(dtypes=(np.uint16,))


def test_aligned_views_use_whole_pixels_and_blocks():
    from components.views.image import aligned_view

    shape = (6388, 9576)
    assert aligned_view(shape, None, None, 1200, 800) == ((0, 9576), (0, 6388), 1197, 799)
    (x0, x1), (y0, y1), cols, rows = aligned_view(shape, (100.3, 300.2), (181.2, 50.5), 1200, 800)
    assert (x0, x1, y0, y1, cols, rows) == (100, 301, 50, 182, 201, 132)  # one cell per pixel
    (x0, x1), (y0, y1), cols, rows = aligned_view(shape, (-50, 5000), (-10, 3000), 1000, 700)
    assert x0 == 0 and y0 == 0 and cols <= 1000 and rows <= 700 and x0 % 5 == 0
    assert aligned_view(shape, (20000, 30000), (0, 10), 100, 100)[2:] == (1, 1)  # beside the frame


def test_a_zoomed_in_view_shows_the_exact_pixels(session):
    from components.views.image import image_element, rasterize_view

    data = session.image.data
    view = rasterize_view(image_element(session.image), (10.3, 40.7), (5.2, 30.9), 800, 600)
    values = view.data["value"]
    assert values.shape == (26, 31)
    np.testing.assert_array_equal(values.values, data[5:31, 10:41])
    np.testing.assert_array_equal(values.y.values, np.arange(5, 31) + 0.5)
