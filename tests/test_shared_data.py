"""Real frames from real observatories (../shared/data): decoding and statistics.

Every expectation comes from the table in ../shared/data/README.md; each
statistic is checked against an independent numpy/scipy computation on data
read straight with astropy.
"""

from __future__ import annotations


import numpy as np
import pytest
from astropy.io import fits
from numpy.testing import assert_allclose, assert_array_equal
from scipy.stats import median_abs_deviation

from components.core import statistics
from components.errors import ImageReadError
from components.sources import FrameStore, ImageCache, LocalSource, list_image_hdus, load_image

# file: (shape, dtype, HDU holding the image, has a celestial WCS)
FRAMES = {
    "cpt1m013-ak06-20210504-0092-g00.fits.fz": ((1100, 1375), "uint16", 1, True),
    "neoexchange_mef_raw_test_frame.fits": ((522, 544), "uint16", 1, False),
    "cloudynight_dct_allsky_000.fits.bz2": ((1040, 1392), "uint16", 0, False),
    "HorseHead.fits": ((893, 891), "int16", 0, True),
    "reprojected_sdss_g.fits.bz2": ((496, 682), "float32", 0, True),
    "a8280271.fits": ((520, 536), "uint16", 0, False),
    "sip-wcs.fit": ((50, 100), "uint16", 0, True),
    "thar5s.fit": ((2671, 4007), "uint16", 0, False),
}


@pytest.fixture(scope="module")
def loaded(shared_data):
    return {name: load_image(shared_data / name) for name in FRAMES}


def _reference(path, hdu):
    data = fits.getdata(path, ext=hdu)
    return np.asarray(data, dtype=data.dtype.newbyteorder("="))


@pytest.mark.parametrize("name", list(FRAMES))
def test_shape_dtype_hdu(loaded, name):
    shape, dtype, hdu, _ = FRAMES[name]
    image = loaded[name]
    assert image.data.shape == shape
    assert image.data.dtype == np.dtype(dtype)
    assert image.data.dtype.isnative
    assert image.hdu == hdu
    assert image.name == name


@pytest.mark.parametrize("name", list(FRAMES))
def test_pixels_match_astropy(shared_data, loaded, name):
    assert_array_equal(loaded[name].data, _reference(shared_data / name, FRAMES[name][2]))


@pytest.mark.parametrize("name", list(FRAMES))
def test_wcs_presence(loaded, name):
    image = loaded[name]
    assert (image.wcs is not None) is FRAMES[name][3]
    if image.wcs is not None:
        assert image.wcs.naxis == 2 and image.wcs.has_celestial


@pytest.mark.parametrize("name", list(FRAMES))
def test_statistics_match_numpy(shared_data, loaded, name):
    stats = statistics(loaded[name].data)
    reference = _reference(shared_data / name, FRAMES[name][2]).astype(np.float64)
    finite = reference[np.isfinite(reference)]
    assert stats["count"] == finite.size
    assert stats["nonfinite"] == reference.size - finite.size
    assert_allclose(stats["mean"], np.mean(finite), rtol=1e-9, atol=1e-12)
    assert_allclose(stats["median"], np.median(finite), rtol=1e-9, atol=1e-12)
    assert_allclose(stats["std"], np.std(finite), rtol=1e-7, atol=1e-12)
    assert_allclose(stats["median_abs_deviation"], median_abs_deviation(finite, axis=None),
                    rtol=1e-7, atol=1e-12)
    assert_allclose(stats["min"], finite.min())
    assert_allclose(stats["max"], finite.max())


def test_mef_has_four_image_hdus(shared_data):
    infos = list_image_hdus(shared_data / "neoexchange_mef_raw_test_frame.fits")
    assert [(i.index, i.name, i.shape, i.dtype) for i in infos] == [
        (k, "SCI", (522, 544), "uint16") for k in (1, 2, 3, 4)
    ]


@pytest.mark.parametrize("hdu", [1, 2, 3, 4])
def test_mef_each_amplifier(shared_data, hdu):
    path = shared_data / "neoexchange_mef_raw_test_frame.fits"
    image = load_image(path, hdu=hdu)
    assert image.hdu == hdu
    assert_array_equal(image.data, _reference(path, hdu))


def test_horsehead_table_hdu_is_not_an_image(shared_data):
    with pytest.raises(ImageReadError, match="HorseHead.fits: HDU 1"):
        load_image(shared_data / "HorseHead.fits", hdu=1)


def test_allsky_has_saturated_pixels(loaded):
    assert loaded["cloudynight_dct_allsky_000.fits.bz2"].data.max() == 65535


def test_sdss_has_negative_values(loaded):
    assert loaded["reprojected_sdss_g.fits.bz2"].data.min() < 0


@pytest.mark.parametrize("name", ["thar5s.fit", "cpt1m013-ak06-20210504-0092-g00.fits.fz",
                                  "neoexchange_mef_raw_test_frame.fits", "cloudynight_dct_allsky_000.fits.bz2"])
def test_real_file_cut_in_half(shared_data, tmp_path, name):
    raw = (shared_data / name).read_bytes()
    path = tmp_path / name
    path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ImageReadError, match=name.replace(".", r"\.")):
        load_image(path)


def test_shared_frames_through_store_untouched(shared_data):
    before = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in shared_data.iterdir()}
    store = FrameStore(LocalSource(shared_data, settle=0), ImageCache(10**9))
    keys = {frame.key for frame in store.list_frames()}
    assert keys == set(FRAMES)
    for key in keys:
        assert store.load(key).data.shape == FRAMES[key][0]
    after = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in shared_data.iterdir()}
    assert after == before
