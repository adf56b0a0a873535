"""Synthetic star fields (components.core.synthetic) and the simulated camera."""

from __future__ import annotations

import math
import os
import re
import time

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS
from numpy.testing import assert_allclose, assert_array_equal
from scipy import ndimage
from scipy.optimize import curve_fit

from components.core import synthetic
from components.core.synthetic import STAR_DTYPE, star_field, write_fits
from components.sources.camera import SimulatedCamera


def _isolated(frame, margin=20, distance=25.0):
    """Indices of unsaturated stars far from the edges and from every other star."""
    stars = frame.stars
    height, width = frame.data.shape
    chosen = []
    for i, star in enumerate(stars):
        if not (margin < star.x < width - 1 - margin and margin < star.y < height - 1 - margin):
            continue
        others = np.hypot(stars.x - star.x, stars.y - star.y)
        others[i] = np.inf
        if others.min() > distance and not star.saturated:
            chosen.append(i)
    return chosen


def _cutout(data, star, half):
    col, row = int(round(star.x)), int(round(star.y))
    block = data[row - half : row + half + 1, col - half : col + half + 1].astype(np.float64)
    ys, xs = np.mgrid[row - half : row + half + 1, col - half : col + half + 1]
    return block, xs, ys


def _gaussian(coords, amplitude, x0, y0, sigma, offset):
    x, y = coords
    return amplitude * np.exp(-((x - x0) ** 2 + (y - y0) ** 2) / (2 * sigma**2)) + offset


def _moffat(coords, amplitude, x0, y0, alpha, beta, offset):
    x, y = coords
    return amplitude * (1 + ((x - x0) ** 2 + (y - y0) ** 2) / alpha**2) ** (-beta) + offset


def test_defaults_shape_dtype_and_star_table():
    frame = star_field(seed=1)
    assert frame.data.shape == (1024, 1536)
    assert frame.data.dtype == np.uint16
    assert frame.stars.dtype.names == STAR_DTYPE.names
    assert len(frame.stars) == 200
    assert isinstance(frame.stars, np.recarray)


def test_header_keywords():
    frame = star_field((64, 96), n_stars=3, seed=2, object="M42", filter="R", exptime=12.5,
                       date_obs="2024-01-02T03:04:05")
    header = frame.header
    assert header["OBJECT"] == "M42"
    assert header["FILTER"] == "R"
    assert header["EXPTIME"] == 12.5
    assert header["DATE-OBS"].startswith("2024-01-02T03:04:05")
    assert header["SATURATE"] == 65535
    assert (header["NAXIS1"], header["NAXIS2"]) == (96, 64)
    # uint16 is stored as int16 + 32768 in FITS.
    assert header["BITPIX"] == 16 and header["BZERO"] == 32768 and header["BSCALE"] == 1


def test_same_seed_same_frame_other_seed_other_frame():
    a = star_field((100, 120), n_stars=20, seed=7, date_obs="2024-01-01")
    b = star_field((100, 120), n_stars=20, seed=7, date_obs="2024-01-01")
    c = star_field((100, 120), n_stars=20, seed=8, date_obs="2024-01-01")
    assert_array_equal(a.data, b.data)
    assert_array_equal(a.stars.x, b.stars.x)
    assert not np.array_equal(a.data, c.data)


def test_star_positions_and_fluxes_match_truth():
    frame = star_field((300, 400), n_stars=25, seed=3, noise=False, background=0.0,
                       dtype=np.float64)
    chosen = _isolated(frame)
    assert len(chosen) >= 5
    for i in chosen:
        star = frame.stars[i]
        block, xs, ys = _cutout(frame.data, star, 12)
        total = block.sum()
        assert_allclose(total, star.flux, rtol=1e-3)
        assert_allclose((block * xs).sum() / total, star.x, atol=0.02)
        assert_allclose((block * ys).sum() / total, star.y, atol=0.02)


def test_total_flux_is_sum_of_stars_without_noise():
    frame = star_field((200, 200), n_stars=10, seed=4, noise=False, background=0.0,
                       dtype=np.float64)
    inside = _isolated(frame, margin=15, distance=0)
    # Stars well inside the frame keep all their light.
    assert len(inside) > 0
    assert frame.data.sum() <= frame.stars.flux.sum() * (1 + 1e-6)


@pytest.mark.parametrize("fwhm", [2.5, 4.0])
def test_gaussian_fwhm_fits_truth(fwhm):
    frame = star_field((400, 400), n_stars=12, fwhm=fwhm, seed=5, background=200.0)
    chosen = [i for i in _isolated(frame) if frame.stars.peak[i] > 1000]
    assert chosen
    for i in chosen:
        star = frame.stars[i]
        block, xs, ys = _cutout(frame.data, star, 10)
        guess = (block.max() - 200, star.x, star.y, fwhm / 2.355, 200)
        params, _ = curve_fit(_gaussian, (xs.ravel(), ys.ravel()), block.ravel(), p0=guess)
        assert_allclose(abs(params[3]) * 2 * math.sqrt(2 * math.log(2)), fwhm, rtol=0.03)
        assert_allclose(params[1:3], (star.x, star.y), atol=0.05)


def test_moffat_fwhm_fits_truth():
    fwhm, beta = 3.5, 3.0
    frame = star_field((500, 500), n_stars=40, fwhm=fwhm, psf="moffat", beta=beta, seed=6,
                       background=200.0)
    chosen = [i for i in _isolated(frame) if frame.stars.peak[i] > 1000]
    assert chosen
    for i in chosen:
        star = frame.stars[i]
        block, xs, ys = _cutout(frame.data, star, 12)
        guess = (block.max() - 200, star.x, star.y, fwhm, beta, 200)
        params, _ = curve_fit(_moffat, (xs.ravel(), ys.ravel()), block.ravel(), p0=guess,
                              maxfev=5000)
        alpha, fitted_beta = abs(params[3]), params[4]
        measured = 2 * alpha * math.sqrt(2 ** (1 / fitted_beta) - 1)
        assert_allclose(measured, fwhm, rtol=0.03)


def test_oversampled_psf_is_pixel_integrated():
    # Integrating over pixels convolves with a unit box: variance grows by 1/12 px^2.
    common = dict(shape=(120, 120), n_stars=6, seed=1, noise=False, background=0.0, fwhm=2.0,
                  dtype=np.float64)
    variances = []
    for oversample in (1, 7):
        frame = star_field(**common, oversample=oversample)
        chosen = _isolated(frame, margin=12, distance=20)
        block, xs, ys = _cutout(frame.data, frame.stars[chosen[0]], 10)
        total = block.sum()
        cx = (block * xs).sum() / total
        variances.append((block * (xs - cx) ** 2).sum() / total)
    assert_allclose(variances[1] - variances[0], 1 / 12, atol=0.005)


def _moments(block, xs, ys):
    total = block.sum()
    cx, cy = (block * xs).sum() / total, (block * ys).sum() / total
    dx, dy = xs - cx, ys - cy
    cov = np.array([[(block * dx * dx).sum(), (block * dx * dy).sum()],
                    [(block * dx * dy).sum(), (block * dy * dy).sum()]]) / total
    values, vectors = np.linalg.eigh(cov)
    major = vectors[:, 1]
    angle = math.degrees(math.atan2(major[1], major[0])) % 180
    return math.sqrt(values[1] / values[0]), angle


def test_elongation_stretches_psf_along_angle():
    frame = star_field((300, 300), n_stars=6, fwhm=3.0, elongation=3.0, angle=30.0, seed=8,
                       noise=False, background=0.0, dtype=np.float64)
    chosen = _isolated(frame, margin=40, distance=60)
    assert chosen
    block, xs, ys = _cutout(frame.data, frame.stars[chosen[0]], 36)
    ratio, angle = _moments(block, xs, ys)
    assert_allclose(ratio, 3.0, rtol=0.03)
    assert_allclose(angle, 30.0, atol=1.0)


def test_round_psf_has_no_elongation():
    frame = star_field((300, 300), n_stars=10, fwhm=3.0, seed=9, noise=False, background=0.0,
                       dtype=np.float64)
    chosen = _isolated(frame)
    block, xs, ys = _cutout(frame.data, frame.stars[chosen[0]], 12)
    ratio, _ = _moments(block, xs, ys)
    assert_allclose(ratio, 1.0, atol=0.01)


def test_wcs_roundtrip():
    frame = star_field((200, 300), n_stars=15, seed=10, ra=150.0, dec=2.2, pixel_scale=0.8)
    wcs = WCS(frame.header)
    assert wcs.has_celestial
    assert list(wcs.wcs.ctype) == ["RA---TAN", "DEC--TAN"]
    ra, dec = wcs.all_pix2world(frame.stars.x, frame.stars.y, 0)
    assert_allclose(ra, frame.stars.ra, atol=1e-10)
    assert_allclose(dec, frame.stars.dec, atol=1e-10)
    x, y = wcs.all_world2pix(frame.stars.ra, frame.stars.dec, 0)
    assert_allclose(x, frame.stars.x, atol=1e-6)
    assert_allclose(y, frame.stars.y, atol=1e-6)
    centre = wcs.all_pix2world([[149.5, 99.5]], 0)[0]
    assert_allclose(centre, (150.0, 2.2), atol=1e-9)
    from astropy.wcs.utils import proj_plane_pixel_scales

    assert_allclose(proj_plane_pixel_scales(wcs) * 3600, [0.8, 0.8], rtol=1e-9)


def test_saturated_stars_clip_at_saturate():
    frame = star_field((200, 200), n_stars=5, saturate_stars=3, seed=11)
    assert frame.stars.saturated.sum() == 3
    assert frame.data.max() == 65535
    assert (frame.data == 65535).sum() >= 3


def test_custom_saturation_level():
    frame = star_field((200, 200), n_stars=5, saturate_stars=2, saturation=40000, seed=12)
    assert frame.header["SATURATE"] == 40000
    assert frame.data.max() == 40000


def test_no_saturation_without_bright_stars():
    frame = star_field((200, 200), n_stars=50, seed=13)
    assert frame.data.max() < 65535
    assert not frame.stars.saturated.any()


def _detections(data):
    median = np.median(data)
    sigma = 1.4826 * np.median(np.abs(data - median))
    _, count = ndimage.label(data > median + 8 * sigma)
    return count, median, sigma


def test_cloud_dims_stars_and_raises_background():
    clear = star_field((400, 600), n_stars=150, seed=14)
    cloudy = star_field((400, 600), n_stars=150, seed=14, cloud=0.8)
    clear_count, clear_median, _ = _detections(clear.data)
    cloudy_count, cloudy_median, _ = _detections(cloudy.data)
    assert cloudy_median > 1.5 * clear_median
    assert cloudy_count < 0.7 * clear_count
    assert_allclose(cloudy.stars.flux, clear.stars.flux * 0.2, rtol=1e-9)
    # A lumpy, sloped sky: the block medians spread far more than noise allows.
    blocks = cloudy.data.reshape(8, 50, 8, 75).astype(float)
    assert np.median(blocks, axis=(1, 3)).std() > 10 * np.median(clear.data) ** 0.5 / 50


def test_float_dtype_output():
    frame = star_field((50, 60), n_stars=3, seed=15, dtype=np.float32)
    assert frame.data.dtype == np.float32
    assert frame.header["BITPIX"] == -32
    assert "BZERO" not in frame.header


def test_noise_free_background_is_flat():
    frame = star_field((50, 60), n_stars=0, seed=16, noise=False, background=123.0)
    assert (frame.data == 123).all()


def test_background_noise_matches_model():
    frame = star_field((300, 300), n_stars=0, seed=17, background=400.0, read_noise=5.0,
                       dtype=np.float32)
    assert_allclose(frame.data.mean(), 400.0, atol=0.5)
    assert_allclose(frame.data.std(), math.sqrt(400 + 25), rtol=0.02)


@pytest.mark.parametrize(
    "kwargs",
    [dict(psf="airy"), dict(fwhm=0), dict(elongation=0.5), dict(cloud=1.5), dict(shape=(0, 5)),
     dict(psf="moffat", beta=1.0)],
)
def test_invalid_arguments_raise_value_error(kwargs):
    with pytest.raises(ValueError):
        star_field(**{"shape": (20, 20), **kwargs})


def test_large_frame():
    # Its speed is measured by bench/new_frame.py, not asserted here.
    frame = star_field((6388, 9576), n_stars=3000, seed=18)
    assert frame.data.shape == (6388, 9576)
    assert frame.header["SIMNSTAR"] == 3000


def test_write_fits_plain_roundtrip(tmp_path):
    frame = star_field((40, 50), n_stars=3, seed=19)
    path = write_fits(frame, tmp_path / "a.fits")
    with fits.open(path) as hdul:
        assert len(hdul) == 1
        assert_array_equal(hdul[0].data, frame.data)
        assert hdul[0].data.dtype == np.uint16
        assert hdul[0].header["OBJECT"] == frame.header["OBJECT"]
    assert sorted(os.listdir(tmp_path)) == ["a.fits"]


def test_write_fits_compressed_roundtrip(tmp_path):
    frame = star_field((40, 50), n_stars=3, seed=20)
    path = write_fits(frame, tmp_path / "a.fits.fz", compress=True)
    with fits.open(path) as hdul:
        assert isinstance(hdul[1], fits.CompImageHDU)
        assert hdul[1].compression_type == "RICE_1"
        assert_array_equal(hdul[1].data, frame.data)
        assert hdul[1].header["CTYPE1"] == "RA---TAN"


def test_write_fits_compressed_float_is_lossless(tmp_path):
    frame = star_field((40, 50), n_stars=3, seed=21, dtype=np.float32)
    path = write_fits(frame, tmp_path / "f.fits.fz", compress=True)
    with fits.open(path) as hdul:
        assert_array_equal(hdul[1].data, frame.data)


def test_write_fits_goes_through_hidden_temp_file(tmp_path, monkeypatch):
    seen = []
    real_replace = os.replace

    def spy(source, destination):
        seen.append((os.path.basename(source), os.path.dirname(source)))
        return real_replace(source, destination)

    monkeypatch.setattr(synthetic.os, "replace", spy)
    write_fits(star_field((20, 20), n_stars=1, seed=22), tmp_path / "b.fits")
    (name, folder), = seen
    assert name.startswith(".b.fits.") and folder == str(tmp_path)


def test_write_fits_failure_leaves_nothing(tmp_path, monkeypatch):
    def broken(self, *args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(fits.HDUList, "writeto", broken)
    with pytest.raises(OSError):
        write_fits(star_field((20, 20), n_stars=1, seed=23), tmp_path / "c.fits")
    assert os.listdir(tmp_path) == []


def test_write_fits_replaces_existing_file_atomically(tmp_path):
    target = tmp_path / "d.fits"
    write_fits(star_field((20, 20), n_stars=1, seed=24), target)
    second = star_field((20, 20), n_stars=1, seed=25)
    write_fits(second, target)
    assert_array_equal(fits.getdata(target), second.data)


# --- simulated camera -------------------------------------------------------

_NAME = re.compile(r"^sim-\d{8}-\d{6}-\d{4}\.fits\.fz$")


def test_camera_capture_writes_compressed_frame(tmp_path):
    camera = SimulatedCamera(tmp_path / "new" / "sim", shape=(64, 96), seed=1)
    path = camera.capture()
    assert path.parent == tmp_path / "new" / "sim"
    assert _NAME.match(path.name)
    with fits.open(path) as hdul:
        assert isinstance(hdul[1], fits.CompImageHDU)
        assert hdul[1].data.shape == (64, 96) and hdul[1].data.dtype == np.uint16
        header = hdul[1].header
        for key in ("OBJECT", "FILTER", "EXPTIME", "DATE-OBS", "SATURATE", "SIMCOND", "CTYPE1"):
            assert key in header
    assert camera.frames_written == 1


def test_camera_thread_stops_after_max_frames(tmp_path):
    camera = SimulatedCamera(tmp_path, interval=0.01, max_frames=3, shape=(32, 48), seed=2)
    camera.start()
    deadline = time.monotonic() + 20
    while camera.running and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not camera.running
    names = sorted(os.listdir(tmp_path))
    assert len(names) == 3 and all(_NAME.match(name) for name in names)
    camera.stop()


def test_camera_stop_ends_thread(tmp_path):
    camera = SimulatedCamera(tmp_path, interval=30.0, shape=(32, 48), seed=3).start()
    deadline = time.monotonic() + 10
    while camera.frames_written == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    camera.stop()
    assert not camera.running
    assert camera.frames_written == 1


def test_camera_never_overwrites_or_deletes(tmp_path):
    camera = SimulatedCamera(tmp_path, shape=(32, 48), seed=4)
    first = camera.capture()
    before = first.read_bytes(), first.stat().st_mtime_ns
    # A file already holding the next name must survive untouched.
    paths = [camera.capture() for _ in range(3)]
    assert len(set(paths + [first])) == 4
    assert (first.read_bytes(), first.stat().st_mtime_ns) == before
    assert sorted(os.listdir(tmp_path)) == sorted(p.name for p in paths + [first])


def test_camera_conditions_vary(tmp_path):
    camera = SimulatedCamera(tmp_path, shape=(32, 48), seed=5)
    seen, fwhms, objects, filters, exptimes = set(), [], set(), set(), set()
    for _ in range(120):
        exposure = camera.next_exposure()
        camera._count += 1  # advance target/filter rotation without writing
        seen.update(exposure.conditions)
        parameters = exposure.parameters
        objects.add(parameters["object"])
        filters.add(parameters["filter"])
        exptimes.add(parameters["exptime"])
        if exposure.conditions == ["normal"]:
            fwhms.append(parameters["fwhm"])
        if "trailed" in exposure.conditions:
            assert 2.0 <= parameters["elongation"] <= 4.0
        if "cloudy" in exposure.conditions:
            assert 0.5 <= parameters["cloud"] <= 0.9
        if "defocused" in exposure.conditions:
            assert parameters["fwhm"] >= 8.0
        assert isinstance(exposure.focus, int)
    assert seen == {"normal", "saturated", "defocused", "trailed", "cloudy", "focus"}
    assert min(fwhms) >= 2.0 and max(fwhms) <= 5.0
    # Seeing drifts slowly: consecutive normal frames differ little.
    assert np.abs(np.diff(fwhms)).max() < 1.5
    assert len(objects) >= 3 and len(filters) >= 4 and len(exptimes) >= 3


def test_camera_frames_have_saturated_star_when_asked(tmp_path):
    camera = SimulatedCamera(tmp_path, shape=(64, 64), seed=6)
    for _ in range(200):
        exposure = camera.next_exposure()
        if "saturated" in exposure.conditions:
            frame = star_field(**exposure.parameters, seed=1)
            assert frame.data.max() == 65535
            break
    else:
        pytest.fail("no saturated frame in 200 draws")
