"""One place for each rule: every caller gives the answer of the one function, edge cases included.

The rules: the span rule and the relative <-> pixel conversions
(components.core.geometry), the pixel scale (components.core.wcs), display
intervals and the zscale fallback (components.core.intervals), stretches
(components.views.display, astropy's), header cards (components.core.header)
and the newest-first ordering (components.sources.base).
"""

from __future__ import annotations

import os
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.visualization import (
    AsinhStretch,
    LogStretch,
    PercentileInterval,
    SqrtStretch,
    ZScaleInterval,
)
from astropy.wcs import WCS

from components.core import geometry, intervals, wcs
from components.core.header import HeaderCard, header_cards, header_mapping
from components.core.quality import pixel_scale_of, quality
from components.core.synthetic import star_field, write_fits
from components.errors import ImageNotFound, InvalidRequest, UnsafeKey
from components.sources import FrameInfo, FrameStore, ImageCache, LocalSource, load_image
from components.sources.base import check_image_key, newest_first
from components.views import compute, coords, display

# ---------------------------------------------------------------- span rule


def test_span_rounds_half_to_even():
    # 0.25 * 10 = 2.5 -> 2 and 0.75 * 10 = 7.5 -> 8: numpy's rint, not round-half-up.
    assert geometry.relative_span(0.25, 0.75, 10) == (2, 8)
    assert geometry.relative_span(0.05, 0.15, 10) == (0, 2)  # rint(0.5) = 0, rint(1.5) = 2


def test_span_at_the_far_edge_is_the_last_pixel():
    assert geometry.relative_span(1.0, 1.0, 10) == (9, 10)


def test_span_too_thin_to_round_to_a_pixel_still_holds_one():
    assert geometry.relative_span(0.51, 0.52, 10) == (5, 6)


def test_subregion_slices_are_the_pixels_subregion_takes():
    data = np.arange(37 * 53).reshape(37, 53)
    rng = np.random.default_rng(4)
    for _ in range(200):
        x0, y0, x1, y1 = rng.uniform(0, 1, 4)
        if x0 == x1 or y0 == y1:
            continue
        rows, columns = geometry.subregion_slices(data.shape, x0, y0, x1, y1)
        np.testing.assert_array_equal(geometry.subregion(data, x0, y0, x1, y1), data[rows, columns])


def test_subregion_slices_refuse_what_subregion_refuses():
    with pytest.raises(InvalidRequest, match="zero area"):
        geometry.subregion_slices((10, 10), 0.2, 0.2, 0.2, 0.8)
    with pytest.raises(InvalidRequest, match=r"\[0, 1\]"):
        geometry.subregion_slices((10, 10), 0.2, 0.2, 1.2, 0.8)
    with pytest.raises(InvalidRequest, match="shape"):
        geometry.subregion_slices((0, 10), 0.2, 0.2, 0.4, 0.8)


def test_the_page_names_the_pixels_of_the_core_rule():
    shape = (40, 60)
    box = (12.3, 7.5, 47.5, 30.2)  # plot coordinates: pixel edges
    corners = coords.plot_box_to_relative(box, shape)
    assert coords.box_pixel_slices(box, shape) == geometry.subregion_slices(shape, *corners)


def test_quality_of_a_region_reports_stars_at_frame_pixels(tmp_path):
    from app.quality_service import QualityService
    from components.sources.history import QualityHistory

    frame = star_field(shape=(200, 300), n_stars=30, fwhm=3.0, seed=5)
    (tmp_path / "data").mkdir()
    write_fits(frame, tmp_path / "data" / "f.fits")
    store = FrameStore(LocalSource(tmp_path, settle=0), ImageCache(10**9))
    service = QualityService(store, QualityHistory(tmp_path / "q.sqlite3"))
    region = (0.35, 0.25, 0.95, 0.85)
    rows, columns = geometry.subregion_slices(frame.data.shape, *region)
    alone = quality(frame.data[rows, columns], frame.header)
    measured = service.measure("data/f.fits", region=region)
    assert measured["stars"]["x"] and rows.start > 0 and columns.start > 0
    assert measured["stars"]["x"] == pytest.approx([x + columns.start for x in alone["stars"]["x"]])
    assert measured["stars"]["y"] == pytest.approx([y + rows.start for y in alone["stars"]["y"]])


# ---------------------------------------------------------------- relative <-> pixel


def test_pixel_to_relative_inverts_relative_to_pixel():
    shape = (7, 11)
    for point in [(0.0, 0.0), (1.0, 1.0), (0.3, 0.8)]:
        assert geometry.pixel_to_relative(geometry.relative_to_pixel(point, shape), shape) == pytest.approx(point)


def test_a_single_column_or_row_is_relative_zero():
    assert geometry.pixel_to_relative((0.0, 0.0), (1, 1)) == (0.0, 0.0)
    assert geometry.pixel_to_relative((3.0, 0.0), (1, 5)) == (0.75, 0.0)


def test_pixel_to_relative_is_not_clamped():
    assert geometry.pixel_to_relative((-1.0, 20.0), (11, 11)) == (-0.1, 2.0)


def test_box_edges_round_trip():
    shape = (30, 50)
    edges = geometry.relative_to_edges((0.2, 0.1, 0.9, 0.5), shape)
    assert edges == pytest.approx((10.0, 3.0, 45.0, 15.0))
    assert geometry.edges_to_relative(edges, shape) == pytest.approx((0.2, 0.1, 0.9, 0.5))


def test_plot_points_go_through_the_core_conversion():
    shape = (9, 13)
    for x, y in [(0.5, 0.5), (12.5, 8.5), (3.7, 2.2)]:
        rel = coords.plot_to_relative_point(x, y, shape)
        column, row = geometry.relative_to_pixel(rel, shape)
        assert (column + 0.5, row + 0.5) == pytest.approx((x, y))


# ---------------------------------------------------------------- pixel scale


def _bare_header(**cards) -> fits.Header:
    header = fits.Header()
    for key, value in cards.items():
        header[key] = value
    return header


@pytest.mark.parametrize("keyword", wcs.PIXEL_SCALE_KEYWORDS)
def test_each_pixel_scale_keyword_alone_gives_the_scale(keyword):
    assert wcs.pixel_scale(_bare_header(**{keyword: 0.62})) == 0.62


def test_keywords_are_tried_in_order():
    header = _bare_header(PIXSCAL1=0.9, SECPIX1=0.8, SECPIX=0.7, PIXSCALE=0.6)
    assert wcs.pixel_scale(header) == 0.6
    del header["PIXSCALE"]
    assert wcs.pixel_scale(header) == 0.7
    del header["SECPIX"]
    assert wcs.pixel_scale(header) == 0.8


def test_the_wcs_wins_over_the_header():
    frame = star_field(shape=(32, 32), n_stars=1, pixel_scale=0.75, seed=0)
    header = frame.header.copy()
    header["SECPIX1"] = 9.0
    assert wcs.pixel_scale(header, WCS(header)) == pytest.approx(0.75, rel=1e-9)


def test_a_wcs_without_celestial_axes_leaves_it_to_the_header():
    linear = WCS(naxis=2)  # pixel axes only: no sky
    assert wcs.pixel_scale(_bare_header(SECPIX1=0.4), linear) == 0.4


@pytest.mark.parametrize("bad", ["n/a", float("nan"), 0.0, -1.5, float("inf")])
def test_a_useless_keyword_value_is_skipped(bad):
    assert wcs.pixel_scale({"PIXSCALE": bad, "SECPIX1": 0.3}) == 0.3


def test_the_fallback_comes_last_and_must_be_positive():
    assert wcs.pixel_scale(_bare_header(), fallback=1.1) == 1.1
    assert wcs.pixel_scale(_bare_header(SECPIX=0.5), fallback=1.1) == 0.5
    assert wcs.pixel_scale(None, None, 0.0) is None
    assert wcs.pixel_scale(None, None, float("nan")) is None
    assert wcs.pixel_scale(None) is None


def test_quality_and_the_profile_pane_share_the_rule():
    header = _bare_header(SECPIX1=0.37)
    assert pixel_scale_of(header, None, 2.0) == wcs.pixel_scale(header, None, 2.0) == 0.37

    class _Image:  # what compute.pixel_scale reads of an Image
        def __init__(self):
            self.header, self.wcs, self.data = header, None, np.zeros((2, 2))

    compute.clear()
    assert compute.pixel_scale(_Image(), 2.0) == 0.37


def _only_secpix1(path: Path, scale: float) -> Path:
    """A star field whose header gives its scale only as SECPIX1 (no WCS, no PIXSCALE)."""
    frame = star_field(shape=(120, 160), n_stars=25, fwhm=3.0, seed=11)
    header = fits.Header()
    for card in frame.header.cards:
        if card.keyword in ("OBJECT", "EXPTIME", "DATE-OBS", "SATURATE", "FILTER"):
            header[card.keyword] = (card.value, card.comment)
    header["SECPIX1"] = (scale, "[arcsec/pixel]")
    path.parent.mkdir(parents=True, exist_ok=True)
    fits.PrimaryHDU(frame.data, header=header).writeto(path)
    return path


def test_a_header_with_only_secpix1_gives_arcsec_on_quality_and_on_the_profile(tmp_path):
    from components.views.profile import ProfilePane, profile_summary
    from components.views.state import Session

    _only_secpix1(tmp_path / "data" / "secpix.fits", 0.62)
    store = FrameStore(LocalSource(tmp_path, settle=0), ImageCache(10**9))
    image = store.load("data/secpix.fits")
    assert image.wcs is None and "PIXSCALE" not in image.header

    measured = quality(image.data, image.header, wcs=image.wcs)
    assert measured["pixel_scale"] == 0.62
    assert measured["fwhm_arcsec"] == pytest.approx(measured["fwhm_px"] * 0.62)

    compute.clear()
    session = Session(store=store)
    session.tick()
    session.line = (10.5, 20.5, 150.5, 100.5)
    summary = profile_summary(session)
    assert summary["scale"] == 0.62
    caption = ProfilePane(session=session)._describe(session.image, session.line)
    assert f"= {summary['length'] * 0.62:.2f}&Prime;" in caption


# ---------------------------------------------------------------- intervals and the zscale fallback


def test_zscale_is_astropys_on_ordinary_data():
    values = np.random.default_rng(1).normal(100, 10, 50_000)
    assert intervals.zscale_limits(values) == pytest.approx(ZScaleInterval().get_limits(values))


def test_zscale_of_a_flat_frame_is_one_unit_around_it():
    assert intervals.zscale_limits(np.full(500, 7.0)) == (6.5, 7.5)


def test_zscale_of_nothing_is_zero_to_one():
    assert intervals.zscale_limits(np.array([])) == (0.0, 1.0)


def test_zscale_of_only_nan_is_zero_to_one():
    assert intervals.zscale_limits(np.full(10, np.nan)) == (0.0, 1.0)


def test_zscale_ignores_nan_and_inf():
    values = np.random.default_rng(2).normal(0, 1, 5000)
    dirty = np.concatenate([values, [np.nan, np.inf, -np.inf]])
    assert intervals.zscale_limits(dirty) == intervals.zscale_limits(values)


def test_zscale_collapsed_to_a_point_falls_back_to_min_max():
    # Mostly one value and a hot pixel: zscale's range collapses; show min..max instead.
    values = np.concatenate([np.zeros(10_000), [5.0]])
    assert intervals.zscale_limits(values) == (0.0, 5.0)


def test_zscale_fallback_uses_exact_extremes_when_given():
    values = np.concatenate([np.zeros(10_000), [5.0]])
    assert intervals.zscale_limits(values, extremes=(0.0, 60000.0)) == (0.0, 60000.0)


def test_the_page_and_the_png_share_one_zscale():
    values = np.concatenate([np.zeros(10_000), [5.0]])
    assert display.interval_limits(values, "zscale") == intervals.zscale_limits(values) == (0.0, 5.0)


def test_percentile_interval_is_astropys():
    values = np.random.default_rng(3).normal(0, 1, 10_000)
    assert display.interval_limits(values, "99.5") == pytest.approx(PercentileInterval(99.5).get_limits(values))


def test_minmax_with_extremes_ignores_the_sample():
    assert display.interval_limits(np.array([1.0, 2.0]), "minmax", extremes=(-3, 9)) == (-3.0, 9.0)


def test_manual_interval_fills_a_missing_limit_from_the_extremes():
    values = np.arange(10.0)
    assert display.interval_limits(values, "manual", (None, 4.0), extremes=(-1.0, 20.0)) == (-1.0, 4.0)
    assert display.interval_limits(values, "manual", (30.0, 4.0)) == (4.0, 30.0)  # sorted


@pytest.mark.parametrize("name", ["nope", "0", "150"])
def test_an_unknown_interval_is_refused(name):
    with pytest.raises(ValueError):
        display.interval_limits(np.arange(10.0), name)


# ---------------------------------------------------------------- stretches


T = np.linspace(0.0, 1.0, 1001)


def test_log_stretch_is_astropys_with_a_1000():
    np.testing.assert_array_equal(display.stretch_values("log", T), LogStretch(a=1000)(T.copy()))


def test_asinh_stretch_is_astropys_with_a_0_1():
    np.testing.assert_array_equal(display.stretch_values("asinh", T), AsinhStretch(a=0.1)(T.copy()))


def test_sqrt_stretch_is_astropys():
    np.testing.assert_array_equal(display.stretch_values("sqrt", T), SqrtStretch()(T.copy()))


def test_histogram_equalisation_follows_the_table():
    table = display.equalization_table(np.random.default_rng(0).normal(0.3, 0.1, 5000), 0.0, 1.0, bins=64)
    expected = np.interp(T, np.linspace(0.0, 1.0, len(table)), table)
    np.testing.assert_allclose(display.stretch_values("histeq", T, table), expected, rtol=0, atol=1e-15)


def test_histogram_equalisation_without_a_table_is_linear():
    np.testing.assert_array_equal(display.stretch_values("histeq", T), T)


def test_stretches_clip_and_leave_the_input_alone():
    t = np.array([-0.5, 0.25, 1.5])
    assert display.stretch_values("sqrt", t).tolist() == [0.0, 0.5, 1.0]
    assert t.tolist() == [-0.5, 0.25, 1.5]


def test_an_unknown_stretch_is_refused():
    with pytest.raises(ValueError, match="unknown stretch"):
        display.stretch_values("gamma", T)


def test_the_palette_bakes_in_the_stretch():
    size = 64
    palette = display.make_palette("grey", "log", size=size)
    grey = np.arange(256.0)  # Greys256 runs black to white, one step a level
    for i in (0, 5, 31, 63):
        level = np.interp(LogStretch(a=1000)(np.array([(i + 0.5) / size]))[0] * 255, np.arange(256), grey)
        assert palette[i] == "#{0:02x}{0:02x}{0:02x}".format(int(np.rint(level)))


# ---------------------------------------------------------------- header cards


def _header_from_text(*cards: str) -> fits.Header:
    return fits.Header.fromstring("".join(card.ljust(80) for card in [*cards, "END"]))


def test_cards_keep_keyword_value_comment_and_text():
    cards = header_cards(_header_from_text("EXPTIME =                 30.0 / [s] exposure"))
    assert cards == [HeaderCard("EXPTIME", 30.0, "[s] exposure", "EXPTIME =                 30.0 / [s] exposure")]


def test_an_unparsable_card_is_shown_verbatim():
    raw = "BADVAL  = 12x3 / oops"
    (card,) = header_cards(_header_from_text(raw))
    assert card.text == raw and card.keyword == "BADVAL" and card.value == "12x3 / oops"


def test_an_undefined_value_is_none():
    (card,) = header_cards(_header_from_text("UNDEF   ="))
    assert card.keyword == "UNDEF" and card.value is None


def test_a_complex_value_is_text():
    (card,) = header_cards(_header_from_text("CPLX    = (1.0, 2.0)"))
    assert card.value == "(1+2j)"


def test_hierarch_keywords_keep_their_long_name():
    (card,) = header_cards(_header_from_text("HIERARCH ESO DET NAME = 'CCD'"))
    assert card.keyword == "ESO DET NAME" and card.value == "CCD"


def test_mapping_lists_commentary_and_keeps_the_last_repeat():
    header = _header_from_text(
        "A       =                    1", "A       =                    2",
        "HISTORY first", "HISTORY second", "COMMENT hello", "",
    )
    assert header_mapping(header_cards(header)) == {"A": 2, "HISTORY": ["first", "second"], "COMMENT": ["hello"]}


def test_no_header_no_cards():
    assert header_cards(None) == []


def test_the_header_pane_lists_the_same_cards():
    from components.views.header import header_cards as pane_cards

    header = _header_from_text("OBJECT  = 'M31     ' / target", "BADVAL  = 12x3 / oops", "HISTORY made")
    assert pane_cards(header) == [card.text for card in header_cards(header)]


def test_the_api_and_the_pane_read_one_header(start_server, tmp_path):
    import requests

    from components.views.header import header_cards as pane_cards

    path = tmp_path / "root" / "data" / "odd.fits"
    path.parent.mkdir(parents=True)
    fits.PrimaryHDU(np.zeros((4, 5), dtype=np.uint16), header=fits.Header([("BADVAL", 12345, "oops")])).writeto(path)
    # A card astropy cannot parse, as real headers have (astropy refuses to write one).
    raw = path.read_bytes()
    good = fits.Card("BADVAL", 12345, "oops").image.encode()
    assert raw.count(good) == 1
    path.write_bytes(raw.replace(good, "BADVAL  = 12x3 / oops".ljust(80).encode()))
    server = start_server(tmp_path / "root")
    answer = requests.get(server.url + "/header", params={"full_filename": "odd.fits", "s3_directory": "data"},
                          timeout=30).json()
    header = load_image(path).header
    expected = header_cards(header)
    assert answer["cards"] == [{"keyword": c.keyword, "value": c.value, "comment": c.comment} for c in expected]
    assert "BADVAL" in [card["keyword"] for card in answer["cards"]]
    assert pane_cards(header) == [c.text for c in expected]


# ---------------------------------------------------------------- newest first


def _info(key: str, seconds: float) -> FrameInfo:
    when = datetime(2026, 12, 1, tzinfo=timezone.utc) + timedelta(seconds=seconds)
    directory, _, name = key.rpartition("/")
    return FrameInfo(key, directory, name, 1, when, str(seconds))


def test_newest_first_orders_by_time():
    frames = [_info("d/a.fits", 1), _info("d/b.fits", 3), _info("d/c.fits", 2)]
    assert [f.key for f in newest_first(frames)] == ["d/b.fits", "d/c.fits", "d/a.fits"]


def test_equal_times_put_the_last_key_first():
    frames = [_info("d/a.fits", 5), _info("e/a.fits", 5), _info("d/b.fits", 5)]
    assert [f.key for f in newest_first(frames)] == ["e/a.fits", "d/b.fits", "d/a.fits"]


def test_rows_holding_a_frame_sort_by_it():
    rows = [(_info("d/a.fits", 1), "d"), (_info("e/b.fits", 2), "e")]
    assert [row[1] for row in newest_first(rows, info=lambda row: row[0])] == ["e", "d"]


def test_the_local_source_lists_in_that_order(tmp_path):
    now = time.time()
    for name, age in (("a.fits", 30), ("b.fits", 10), ("c.fits", 20)):
        path = write_fits(star_field((8, 8), n_stars=1, seed=1), tmp_path / name)
        os.utime(path, (now - age, now - age))
    listed = LocalSource(tmp_path, settle=0).list_frames()
    assert listed == newest_first(listed) and [f.key for f in listed] == ["b.fits", "c.fits", "a.fits"]


# ---------------------------------------------------------------- image keys


def test_an_image_key_is_canonical():
    assert check_image_key("data//./a.fits.fz") == "data/a.fits.fz"


def test_a_key_that_names_no_image_is_not_found():
    with pytest.raises(ImageNotFound, match="data/notes.txt"):
        check_image_key("data/notes.txt")


def test_an_escaping_image_key_is_unsafe():
    with pytest.raises(UnsafeKey):
        check_image_key("../a.fits")


def test_both_sources_refuse_a_non_image_key_alike(tmp_path, moto_server):
    import boto3

    from components.sources import S3Source

    (tmp_path / "notes.txt").write_text("not a frame")
    client = boto3.client("s3", endpoint_url=moto_server, region_name="us-east-1")
    client.create_bucket(Bucket="rules-keys")
    client.put_object(Bucket="rules-keys", Key="notes.txt", Body=b"not a frame")
    for source in (LocalSource(tmp_path, settle=0), S3Source("rules-keys", client=client)):
        with pytest.raises(ImageNotFound, match=r"Image does not exist: notes\.txt\."):
            source.info("notes.txt")
