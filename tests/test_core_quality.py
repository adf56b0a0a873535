"""components.core.quality on synthetic fields with a known PSF, and on real frames."""

import math

import numpy as np
import pytest
from astropy.io import fits

from components.core.quality import (
    QualityThresholds,
    moffat,
    pixel_scale_of,
    quality,
    saturation_level_of,
    star_profile,
)
from components.core.synthetic import star_field
from components.errors import InvalidRequest


@pytest.mark.parametrize("psf", ["gaussian", "moffat"])
@pytest.mark.parametrize("fwhm", [2.5, 4.0, 6.0])
def test_fwhm_within_five_percent_of_truth(psf, fwhm):
    frame = star_field(shape=(768, 1024), n_stars=120, fwhm=fwhm, psf=psf, seed=11)
    result = quality(frame.data, frame.header)
    assert result["fwhm_px"] == pytest.approx(fwhm, rel=0.05)
    assert result["stars_measured"] >= 10
    assert result["fwhm_arcsec"] == pytest.approx(result["fwhm_px"] * result["pixel_scale"])


def test_gaussian_half_flux_radius_is_half_the_fwhm():
    frame = star_field(shape=(768, 1024), n_stars=120, fwhm=4.0, psf="gaussian", seed=12)
    assert quality(frame.data, frame.header)["hfr_px"] == pytest.approx(2.0, rel=0.1)


def test_trailed_field_is_more_elongated_than_a_round_one():
    round_ = quality(star_field(shape=(512, 768), n_stars=100, fwhm=3, seed=1).data)
    trailed = quality(star_field(shape=(512, 768), n_stars=100, fwhm=3, elongation=3, seed=1).data)
    assert round_["elongation"] < 1.2
    assert trailed["elongation"] > 1.8 > round_["elongation"]
    assert trailed["verdicts"]["elongation"] == "bad" and round_["verdicts"]["elongation"] == "ok"


def test_saturated_star_raises_the_saturated_fraction():
    clean = star_field(shape=(512, 512), n_stars=60, fwhm=3, seed=2)
    burnt = star_field(shape=(512, 512), n_stars=60, fwhm=3, saturate_stars=3, seed=2)
    assert quality(clean.data, clean.header)["saturated_fraction"] == 0
    result = quality(burnt.data, burnt.header)
    assert result["saturated_pixels"] > 10
    assert result["saturated_fraction"] == result["saturated_pixels"] / burnt.data.size
    # Saturated stars never enter the FWHM.
    assert result["fwhm_px"] == pytest.approx(3.0, rel=0.05)


def test_cloudy_frame_has_fewer_stars():
    clear = quality(star_field(shape=(512, 768), n_stars=150, fwhm=3, seed=4).data)
    cloudy = quality(star_field(shape=(512, 768), n_stars=150, fwhm=3, cloud=0.85, seed=4).data)
    assert cloudy["star_count"] < 0.6 * clear["star_count"]


def test_blank_frame_measures_no_stars():
    rng = np.random.default_rng(0)
    result = quality(rng.normal(100, 5, size=(200, 200)).astype(np.float32))
    assert result["star_count"] < 3
    assert result["fwhm_px"] is None and result["verdicts"]["fwhm"] == "unknown"
    assert result["background"] == pytest.approx(100, abs=1)
    assert result["background_rms"] == pytest.approx(5, rel=0.1)


def test_nan_pixels_do_not_break_quality():
    frame = star_field(shape=(400, 400), n_stars=50, fwhm=3, seed=5, dtype=np.float32)
    data = frame.data.copy()
    data[:20] = np.nan
    result = quality(data)
    assert math.isfinite(result["background"]) and result["fwhm_px"] == pytest.approx(3, rel=0.05)


def test_bad_image_is_refused():
    with pytest.raises(InvalidRequest):
        quality(np.zeros(10))
    with pytest.raises(InvalidRequest):
        quality(np.zeros((0, 3)))


def test_thresholds_drive_verdicts():
    frame = star_field(shape=(512, 512), n_stars=60, fwhm=4, seed=6)
    strict = QualityThresholds(fwhm_arcsec_warn=0.5, fwhm_arcsec_bad=1.0)
    assert quality(frame.data, frame.header, thresholds=strict)["verdicts"]["fwhm"] == "bad"
    assert quality(frame.data, frame.header)["verdicts"]["fwhm"] == "ok"


def test_star_profile_fits_a_known_moffat():
    yy, xx = np.mgrid[:61, :61]
    r = np.hypot(xx - 30.3, yy - 29.8)
    image = moffat(r, 5000.0, 3.0, 2.5, 100.0)
    profile = star_profile(image, 31, 29, radius=25)
    assert profile.x == pytest.approx(30.3, abs=0.05) and profile.y == pytest.approx(29.8, abs=0.05)
    assert profile.fit.beta == pytest.approx(2.5, rel=0.02)
    assert profile.fwhm == pytest.approx(2 * 3.0 * math.sqrt(2 ** (1 / 2.5) - 1), rel=0.01)
    assert profile.background == pytest.approx(100, rel=0.05)


def test_pixel_scale_sources():
    frame = star_field(shape=(64, 64), n_stars=1, pixel_scale=0.75, seed=0)
    from astropy.wcs import WCS

    assert pixel_scale_of(frame.header, WCS(frame.header)) == pytest.approx(0.75, rel=1e-6)
    assert pixel_scale_of(fits.Header({"PIXSCALE": 1.2})) == 1.2
    assert pixel_scale_of(fits.Header(), default=0.4) == 0.4
    assert pixel_scale_of(None) is None


def test_saturation_level_sources():
    data = np.zeros((2, 2), dtype=np.uint16)
    assert saturation_level_of(data, fits.Header({"SATURATE": 50000})) == 50000
    assert saturation_level_of(data) == 65535
    assert saturation_level_of(data.astype(np.float32)) is None
    assert saturation_level_of(data.astype(np.float32), default=1e5) == 1e5


def test_real_frames_give_finite_plausible_values(shared_data):
    from components.sources import load_image

    for name in ("cpt1m013-ak06-20210504-0092-g00.fits.fz", "a8280271.fits", "HorseHead.fits",
                 "cloudynight_dct_allsky_000.fits.bz2", "reprojected_sdss_g.fits.bz2"):
        image = load_image(shared_data / name)
        result = quality(image.data, image.header, wcs=image.wcs)
        assert math.isfinite(result["background"]) and math.isfinite(result["background_rms"]), name
        assert result["background_rms"] >= 0 and 0 <= result["saturated_fraction"] <= 1, name
        assert result["star_count"] >= 0, name
        if result["fwhm_px"] is not None:
            assert 0.5 < result["fwhm_px"] < 40, (name, result["fwhm_px"])
            assert 1.0 <= result["elongation"] < 5, (name, result["elongation"])
    guide = load_image(shared_data / "cpt1m013-ak06-20210504-0092-g00.fits.fz")
    result = quality(guide.data, guide.header, wcs=guide.wcs)
    assert result["star_count"] >= 5 and result["fwhm_px"] is not None
    assert result["pixel_scale"] == pytest.approx(0.48, rel=0.05)


def test_moffat_jacobian_matches_finite_differences():
    from components.core.quality import moffat_jacobian

    r = np.linspace(0.0, 25.0, 200)
    parameters = np.array([5000.0, 3.0, 2.5, 12.0])
    analytic = moffat_jacobian(r, *parameters)
    for column in range(4):
        step = np.zeros(4)
        step[column] = 1e-6 * max(abs(parameters[column]), 1.0)
        numeric = (moffat(r, *(parameters + step)) - moffat(r, *(parameters - step))) / (2 * step[column])
        np.testing.assert_allclose(analytic[:, column], numeric, rtol=1e-6, atol=1e-6)


def test_star_fit_equals_the_bounded_numerical_fit():
    """The fit with the analytic Jacobian answers what scipy's bounded fit with numerical derivatives does."""
    from scipy.optimize import curve_fit

    from components.core.quality import MoffatFit

    rng = np.random.default_rng(7)
    yy, xx = np.mgrid[:61, :61]
    image = moffat(np.hypot(xx - 30.3, yy - 29.8), 5000.0, 3.0, 2.5, 0.0) + 1000.0 + rng.normal(0, 30, (61, 61))
    profile = star_profile(image, 30, 30, radius=25)
    r, values, peak = profile.radius, profile.values, profile.peak
    half = float(r[np.flatnonzero(values < peak / 2)[0]])
    p0 = (peak, max(half / np.sqrt(2.0 ** (1.0 / 3.0) - 1.0), 0.3), 3.0, 0.0)
    bounds = ((0.0, 0.05, 1.01, -peak), (10 * peak + 1, 10 * r[-1] + 1, 30.0, peak))
    reference, _ = curve_fit(moffat, r, values, p0=p0, bounds=bounds, maxfev=400)
    assert profile.fwhm == pytest.approx(MoffatFit(*reference).fwhm, rel=1e-5)
    assert profile.fwhm == pytest.approx(2 * 3.0 * np.sqrt(2 ** (1 / 2.5) - 1), rel=0.02)
