"""components.core focus, drift, compare and regions on synthetic frames with known truth."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.wcs import WCS

from components.core.compare import difference, pixel_offset, symmetric_limit
from components.core.drift import pointing_drift
from components.core.focus import fit_focus, focus_position, hyperbola
from components.core.quality import quality
from components.core.regions import (
    Box,
    Circle,
    PinnedRegion,
    from_ds9,
    measure_region,
    pin,
    region_statistics,
    stars_inside,
    to_ds9,
)
from components.core.synthetic import crop, star_field
from components.errors import InvalidRequest

SHIFT = 40


@pytest.fixture(scope="module")
def shifted_pair():
    """Two frames of one field, the second's pointing 40 px further along +x (its WCS says so)."""
    wide = star_field((300, 400 + SHIFT), n_stars=150, fwhm=3.0, seed=21)
    return crop(wide, 0, 0, 400, 300), crop(wide, SHIFT, 0, 400, 300)


# --- focus -------------------------------------------------------------------------------------

def test_focus_fit_of_a_measured_synthetic_focus_run_is_within_two_percent():
    truth, seeing, slope = 5200.0, 2.6, 0.012
    positions = np.linspace(4400, 6000, 9)
    measured = []
    for i, position in enumerate(positions):
        fwhm = float(hyperbola(position, seeing, slope, truth))
        frame = star_field((320, 320), n_stars=50, fwhm=fwhm, seed=100 + i)
        measured.append(quality(frame.data, frame.header)["fwhm_px"])
    fit = fit_focus(positions, measured)
    assert fit is not None
    assert fit.best_focus == pytest.approx(truth, rel=0.02)
    assert fit.fwhm_min_px == pytest.approx(seeing, rel=0.1)
    assert 0 < fit.best_focus_error < 0.02 * truth
    assert fit.points == len(positions)


def test_focus_error_grows_with_scatter():
    rng = np.random.default_rng(3)
    positions = np.linspace(-500, 500, 15)
    clean = hyperbola(positions, 3.0, 0.01, 40.0)
    tight = fit_focus(positions, clean * (1 + rng.normal(0, 0.01, clean.size)))
    loose = fit_focus(positions, clean * (1 + rng.normal(0, 0.08, clean.size)))
    assert tight.best_focus_error < loose.best_focus_error
    assert tight.best_focus == pytest.approx(40.0, abs=3 * tight.best_focus_error + 1)


def test_focus_fit_needs_enough_points_and_a_minimum():
    assert fit_focus([1, 2, 3], [4, 3, 4]) is None
    assert fit_focus([], []) is None
    # All at one position: nothing to fit.
    assert fit_focus([5] * 8, [3.0] * 8) is None
    # Monotonic FWHM far from any vertex: no bracketed focus.
    positions = np.linspace(0, 100, 8)
    assert fit_focus(positions, 10 - 0.05 * positions) is None
    # None and NaN entries are ignored, not fatal.
    positions = [0, 100, 200, 300, None, 400, 500, 600]
    widths = [float(v) if v is not None else np.nan for v in hyperbola([0, 100, 200, 300, 0, 400, 500, 600], 2, 0.02, 310)]
    fit = fit_focus(positions, widths)
    assert fit.points == 7 and fit.best_focus == pytest.approx(310, rel=1e-3)


def test_focus_position_reads_the_keyword():
    header = star_field((16, 16), n_stars=1, seed=0).header
    header["FOCPOS"] = 4321
    header["FOCUS"] = "unknown"
    assert focus_position(header) == 4321.0
    assert focus_position(header, "FOCUS") is None
    assert focus_position(header, "MISSING") is None


# --- drift -------------------------------------------------------------------------------------

def test_drift_of_a_synthetic_sequence_matches_the_wcs_shifts():
    wide = star_field((200, 400), n_stars=20, seed=5, dec=30.0, pixel_scale=0.5)
    steps = [(0, 0), (10, 0), (10, 20), (25, 30)]
    frames = [(f"f{i}", WCS(crop(wide, x, y, 300, 150).header), (150, 300)) for i, (x, y) in enumerate(steps)]
    frames.insert(2, ("nowcs", None, (150, 300)))
    drift = pointing_drift(frames)
    assert [p.key for p in drift] == ["f0", "f1", "nowcs", "f2", "f3"]
    assert drift[2].ra is None and drift[2].east_arcsec is None
    with_wcs = [p for p in drift if p.ra is not None]
    for (x, y), pointing in zip(steps, with_wcs):
        # East is to the left (CD1_1 < 0): moving the frame +x moves its centre west.
        # Within 0.01 arcsec (0.02 px): the TAN projection bends offsets that far from its tangent point.
        assert pointing.east_arcsec == pytest.approx(-0.5 * x, abs=1e-2)
        assert pointing.north_arcsec == pytest.approx(0.5 * y, abs=1e-2)
        assert pointing.separation_arcsec == pytest.approx(0.5 * np.hypot(x, y), abs=1e-2)
    assert pointing_drift([("a", None, (4, 4))])[0].ra is None


# --- compare -----------------------------------------------------------------------------------

def test_difference_without_wcs_is_pixel_to_pixel_and_exact():
    rng = np.random.default_rng(0)
    a, b = rng.normal(100, 5, (50, 60)), rng.normal(100, 5, (50, 60))
    result = difference(a, b)
    assert result.method == "pixel"
    np.testing.assert_array_equal(result.data, a - b)
    assert result.limits == (-result.limit, result.limit)
    assert result.limit == pytest.approx(np.percentile(np.abs(a - b), 99.5))
    # A smaller reference leaves NaN where it does not cover.
    partial = difference(a, b[:40, :50])
    assert np.isnan(partial.data[45, 0]) and np.isnan(partial.data[0, 55])
    np.testing.assert_array_equal(partial.data[:40, :50], a[:40, :50] - b[:40, :50])


def test_difference_of_shifted_frames_is_exact_through_the_wcs_offset(shifted_pair):
    first, second = shifted_pair
    w1, w2 = WCS(first.header), WCS(second.header)
    assert pixel_offset(w2, w1, second.shape) == (SHIFT, 0)
    result = difference(second.data, first.data, w2, w1)
    assert result.method == "shift" and result.offset == (SHIFT, 0)
    expected = second.data[:, : 400 - SHIFT].astype(float) - first.data[:, SHIFT:].astype(float)
    np.testing.assert_array_equal(result.data[:, : 400 - SHIFT], expected)
    assert np.isnan(result.data[:, 400 - SHIFT :]).all()
    # Same field, same pixels: the aligned difference vanishes where both cover.
    assert np.nanmax(np.abs(result.data)) == 0
    # The same frame against itself: aligned with no shift.
    assert difference(first.data, first.data, w1, w1).offset == (0, 0)


def test_difference_reprojects_a_fractional_shift_within_interpolation_tolerance():
    frame = star_field((200, 240), n_stars=0, seed=1, noise=False, background=0.0)
    yy, xx = np.mgrid[:200, :240]
    smooth = 1000 + 3.0 * xx + 2.0 * yy + 50 * np.sin(xx / 15.0)  # bilinear interpolation is ~exact on it
    reference_header = frame.header.copy()
    reference_header["CRPIX1"] += 0.5
    reference_header["CRPIX2"] -= 0.25
    w_cur, w_ref = WCS(frame.header), WCS(reference_header)
    # Reference pixel (x + 0.5, y - 0.25) sees what current pixel (x, y) sees.
    reference = 1000 + 3.0 * (xx - 0.5) + 2.0 * (yy + 0.25) + 50 * np.sin((xx - 0.5) / 15.0)
    assert pixel_offset(w_cur, w_ref, (200, 240)) is None
    result = difference(smooth, reference, w_cur, w_ref)
    assert result.method == "reproject"
    inner = result.data[5:-5, 5:-5]
    assert np.all(np.isfinite(inner))
    assert np.max(np.abs(inner)) < 0.1  # of a 1000-2000 ADU signal
    assert symmetric_limit(result.data) == result.limit


def test_difference_refuses_non_images():
    with pytest.raises(InvalidRequest):
        difference(np.zeros(5), np.zeros(5))


# --- regions -----------------------------------------------------------------------------------

def test_shapes_contain_slices_and_validate():
    box = Box(10, 20, 4, 8)  # corners in any order
    assert (box.x0, box.y0, box.x1, box.y1) == (4, 8, 10, 20)
    assert box.slices((100, 100)) == (slice(8, 21), slice(4, 11))
    assert box.slices((15, 6)) == (slice(8, 15), slice(4, 6))
    assert Box(200, 200, 300, 300).slices((10, 10)) == (slice(10, 10), slice(10, 10))
    circle = Circle(10, 10, 3)
    (rows, cols), mask = circle.mask((100, 100))
    assert mask.sum() == 29 and rows == slice(7, 14)
    with pytest.raises(InvalidRequest):
        Circle(1, 1, 0)
    with pytest.raises(InvalidRequest):
        Box(0, 0, float("nan"), 1)


def test_region_statistics_match_numpy():
    rng = np.random.default_rng(1)
    image = rng.normal(100, 10, (80, 90))
    stats = region_statistics(image, Box(5, 6, 25, 30))
    assert stats["count"] == 21 * 25
    assert stats["median"] == pytest.approx(np.median(image[6:31, 5:26]))
    circle = Circle(40, 40, 10)
    yy, xx = np.mgrid[:80, :90]
    inside = image[(xx - 40) ** 2 + (yy - 40) ** 2 <= 100]
    assert region_statistics(image, circle)["mean"] == pytest.approx(inside.mean())
    assert region_statistics(image, Box(500, 500, 600, 600))["count"] == 0


@pytest.mark.parametrize("shape", [Box(150, 100, 230, 170), Circle(190, 140, 45)])
def test_pinned_region_lands_on_the_same_stars_when_the_pointing_shifts(shifted_pair, shape):
    first, second = shifted_pair
    w1, w2 = WCS(first.header), WCS(second.header)
    region = pin(shape, w1, "field")
    placed = region.place(w2)
    assert placed.center == pytest.approx((shape.center[0] - SHIFT, shape.center[1]), abs=1e-6)
    # The same true stars fall inside on both frames.
    in_first = set(np.flatnonzero(shape.contains(first.stars.x, first.stars.y)).tolist())
    truth = {(round(s.ra, 8), round(s.dec, 8)) for s in first.stars[sorted(in_first)]}
    in_second = placed.contains(second.stars.x, second.stars.y)
    assert truth and truth == {(round(s.ra, 8), round(s.dec, 8)) for s in second.stars[in_second]}
    # Pixels are identical, so the statistics are too; and the detected stars follow.
    q1, q2 = quality(first.data, first.header), quality(second.data, second.header)
    m1, m2 = measure_region(first.data, w1, region, q1), measure_region(second.data, w2, region, q2)
    assert m1["on_sky"] and m2["on_sky"]
    assert m1["statistics"] == m2["statistics"]
    assert m1["quality"]["star_count"] == m2["quality"]["star_count"] > 0
    assert m2["quality"]["fwhm_px"] == pytest.approx(3.0, rel=0.1)
    # Had it stayed in pixels it would hold other pixels.
    assert region_statistics(second.data, shape) != m2["statistics"]


def test_frames_without_wcs_keep_the_region_in_pixels(shifted_pair):
    first, _ = shifted_pair
    region = pin(Box(10, 10, 50, 50), None, "px")
    assert region.pixels_only and region.place(WCS(first.header)) == Box(10, 10, 50, 50)
    sky = pin(Box(10, 10, 50, 50), WCS(first.header))
    assert not sky.pixels_only and sky.place(None) == Box(10, 10, 50, 50)


def test_stars_inside_filters_a_quality_result():
    stars = {"x": [1.0, 5.0, 9.0], "y": [1.0, 5.0, 9.0], "flux": [3, 2, 1], "a": [1, 1, 1], "b": [1, 1, 1]}
    assert stars_inside(stars, Circle(5, 5, 2)) == {"x": [5.0], "y": [5.0], "flux": [2], "a": [1], "b": [1]}


def test_ds9_round_trip_keeps_sky_and_pixel_regions(shifted_pair):
    first, second = shifted_pair
    w1, w2 = WCS(first.header), WCS(second.header)
    regions = [pin(Box(100, 80, 160, 140), w1, "box one"), pin(Circle(200, 150, 25), w1, "star"),
               pin(Circle(30, 40, 5), None, "pixels")]
    text = to_ds9(regions)
    assert "circle" in text and "box" in text and "text={box one}" in text
    back, skipped = from_ds9(text)
    assert skipped == 0 and [r.name for r in back] == ["box one", "star", "pixels"]
    assert back[2].pixels_only and back[2].place(w2) == Circle(30, 40, 5)
    for original, loaded in zip(regions[:2], back[:2]):
        a, b = original.place(w2), loaded.place(w2)
        assert a.center == pytest.approx(b.center, abs=1e-4)
    assert back[1].place(w2).r == pytest.approx(25, rel=1e-5)
    # JSON form (for links) round-trips too.
    for region in regions:
        again = PinnedRegion.from_dict(region.to_dict())
        assert again.place(w2).center == pytest.approx(region.place(w2).center, abs=1e-6)


def test_ds9_import_of_a_hand_written_file_and_bad_input():
    text = (
        "# Region file format: DS9 version 4.1\n"
        "icrs\n"
        "circle(83.8,-5.4,10\") # text={core}\n"
        "ellipse(83.8,-5.4,10\",5\",0)\n"
        "image\n"
        "box(50,60,20,10,0)\n"
    )
    pinned, skipped = from_ds9(text)
    assert skipped == 1 and [p.name for p in pinned] == ["core", "region 3"]
    frame = star_field((200, 200), n_stars=1, ra=83.8, dec=-5.4, seed=0)
    core = pinned[0].place(WCS(frame.header))
    assert core.center == pytest.approx((99.5, 99.5), abs=1e-3) and core.r == pytest.approx(20, rel=1e-4)
    # DS9 image coordinates are 1-based: box centred on DS9 (50, 60) is pixel (49, 59).
    assert pinned[1].place(None) == Box(39, 54, 59, 64)
    with pytest.raises(InvalidRequest):
        from_ds9("this is not a region file(")
    with pytest.raises(InvalidRequest):
        from_ds9("fk5\nellipse(83.8,-5.4,10\",5\",0)\n")
    with pytest.raises(InvalidRequest):
        PinnedRegion.from_dict({"name": "x", "sky": {"kind": "circle", "ra": "nan", "dec": 0, "r": 1}})
