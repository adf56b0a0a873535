"""Decoding frames: components.sources.image."""

from __future__ import annotations

import bz2
import gzip
import io
import os
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from numpy.testing import assert_allclose, assert_array_equal
from PIL import Image as PILImage

from components.core.synthetic import star_field, write_fits
from components.errors import ImageNotFound, ImageReadError, InvalidRequest
from components.sources.image import HDUInfo, Image, list_image_hdus, load_image, normalize_hdu


@pytest.fixture(scope="module")
def frame():
    return star_field((60, 80), n_stars=8, seed=42, date_obs="2024-05-01T00:00:00")


@pytest.fixture
def fits_path(tmp_path, frame):
    return write_fits(frame, tmp_path / "frame.fits")


def _fits_bytes(*hdus) -> bytes:
    buffer = io.BytesIO()
    fits.HDUList(list(hdus)).writeto(buffer)
    return buffer.getvalue()


def _snapshot(path: Path):
    return path.read_bytes(), path.stat().st_mtime_ns


# --- formats ------------------------------------------------------------------


def test_plain_fits_from_path(fits_path, frame):
    image = load_image(fits_path)
    assert isinstance(image, Image)
    assert image.data.dtype == np.uint16 and image.data.dtype.isnative
    assert_array_equal(image.data, frame.data)
    assert image.hdu == 0 and image.name == "frame.fits"
    assert image.hdus == [HDUInfo(0, "PRIMARY", (60, 80), "uint16")]
    assert image.header["OBJECT"] == frame.header["OBJECT"]
    assert image.nbytes == 60 * 80 * 2


def test_plain_fits_from_bytes(fits_path, frame):
    image = load_image(fits_path.read_bytes(), name="data/x.fits")
    assert_array_equal(image.data, frame.data)
    assert image.name == "data/x.fits"


def test_bytes_without_name_are_called_bytes(fits_path):
    assert load_image(fits_path.read_bytes()).name == "<bytes>"


def test_tile_compressed_fits(tmp_path, frame):
    path = write_fits(frame, tmp_path / "frame.fits.fz", compress=True)
    image = load_image(path)
    assert image.hdu == 1
    assert image.data.dtype == np.uint16 and image.data.dtype.isnative
    assert_array_equal(image.data, frame.data)


@pytest.mark.parametrize("compress, suffix", [(gzip.compress, ".fits.gz"), (bz2.compress, ".fits.bz2")])
def test_whole_file_compressed_fits(tmp_path, fits_path, frame, compress, suffix):
    path = tmp_path / f"frame{suffix}"
    path.write_bytes(compress(fits_path.read_bytes()))
    image = load_image(path)
    assert_array_equal(image.data, frame.data)
    assert image.data.dtype == np.uint16


@pytest.mark.parametrize("compress", [gzip.compress, bz2.compress])
def test_compression_detected_by_magic_not_name(tmp_path, fits_path, frame, compress):
    path = tmp_path / "frame.fits"  # no .gz/.bz2 ending
    path.write_bytes(compress(fits_path.read_bytes()))
    assert_array_equal(load_image(path).data, frame.data)


def test_fits_with_misleading_extension(tmp_path, fits_path, frame):
    path = tmp_path / "frame.png"
    path.write_bytes(fits_path.read_bytes())
    assert_array_equal(load_image(path).data, frame.data)


@pytest.mark.parametrize(
    "dtype", [np.uint8, np.int8, np.int16, np.uint16, np.int32, np.uint32, np.int64, np.float32, np.float64]
)
def test_pixel_types_come_back_native(dtype):
    rng = np.random.default_rng(1)
    info = np.iinfo(dtype) if np.issubdtype(dtype, np.integer) else None
    if info:
        data = rng.integers(info.min, info.max, size=(7, 9), dtype=dtype, endpoint=True)
    else:
        data = rng.normal(size=(7, 9)).astype(dtype)
    image = load_image(_fits_bytes(fits.PrimaryHDU(data)))
    assert image.data.dtype == np.dtype(dtype)
    assert image.data.dtype.isnative
    assert_array_equal(image.data, data)
    assert image.hdus[0].dtype == np.dtype(dtype).name


def test_uint16_bzero_header(fits_path):
    header = fits.getheader(fits_path)
    assert header["BZERO"] == 32768 and header["BITPIX"] == 16
    assert load_image(fits_path).data.dtype == np.uint16


def test_bscale_gives_float32():
    values = np.linspace(-100.0, 100.0, 50).reshape(5, 10)
    hdu = fits.PrimaryHDU(values.copy())
    hdu.scale("int16", bscale=0.5, bzero=10.0)
    image = load_image(_fits_bytes(hdu))
    assert image.data.dtype == np.float32
    assert_allclose(image.data, np.round((values - 10) / 0.5) * 0.5 + 10, atol=1e-5)
    assert image.hdus[0].dtype == "float32"


def test_cube_gives_first_plane():
    cube = np.arange(3 * 4 * 5, dtype=np.float32).reshape(3, 4, 5)
    image = load_image(_fits_bytes(fits.PrimaryHDU(cube)))
    assert image.data.shape == (4, 5)
    assert_array_equal(image.data, cube[0])
    assert image.hdus[0].shape == (3, 4, 5)
    assert image.data.base is None or image.data.base.size == 20  # the cube is not kept


def test_png_grey_uint8(tmp_path):
    data = np.random.default_rng(2).integers(0, 255, size=(20, 30), dtype=np.uint8)
    path = tmp_path / "grey.png"
    PILImage.fromarray(data, mode="L").save(path)
    image = load_image(path)
    assert image.data.dtype == np.uint8
    assert_array_equal(image.data, data)
    assert image.wcs is None and image.hdu == 0
    assert (image.header["NAXIS"], image.header["NAXIS1"], image.header["NAXIS2"]) == (2, 30, 20)
    assert image.hdus == [HDUInfo(0, "PNG", (20, 30), "uint8")]


def test_png_16_bit(tmp_path):
    data = np.random.default_rng(3).integers(0, 65535, size=(10, 12), dtype=np.uint16)
    path = tmp_path / "deep.png"
    PILImage.fromarray(data).save(path)
    image = load_image(path)
    assert image.data.dtype.kind in "ui" and image.data.dtype.isnative
    assert_array_equal(image.data, data)


def test_png_rgb_becomes_float32_luminance(tmp_path):
    rgb = np.random.default_rng(4).integers(0, 255, size=(8, 9, 3), dtype=np.uint8)
    path = tmp_path / "colour.png"
    PILImage.fromarray(rgb, mode="RGB").save(path)
    image = load_image(path)
    assert image.data.dtype == np.float32 and image.data.shape == (8, 9)
    expected = rgb.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    assert_allclose(image.data, expected, rtol=1e-5)


def test_jpeg_grey(tmp_path):
    data = np.tile(np.arange(0, 240, 8, dtype=np.uint8), (16, 1))
    path = tmp_path / "a.jpg"
    PILImage.fromarray(data, mode="L").save(path, quality=95)
    image = load_image(path)
    assert image.data.shape == data.shape and image.data.dtype == np.uint8
    assert np.abs(image.data.astype(int) - data).max() < 10


def test_jpeg_from_bytes(tmp_path):
    buffer = io.BytesIO()
    PILImage.fromarray(np.zeros((5, 6, 3), np.uint8), mode="RGB").save(buffer, format="JPEG")
    image = load_image(buffer.getvalue(), name="allsky/latest.jpg")
    assert image.data.shape == (5, 6) and image.name == "allsky/latest.jpg"


def test_picture_has_only_hdu_zero(tmp_path):
    path = tmp_path / "a.png"
    PILImage.fromarray(np.zeros((4, 4), np.uint8)).save(path)
    with pytest.raises(ImageReadError, match="a.png"):
        load_image(path, hdu=1)


# --- HDU choice ---------------------------------------------------------------


@pytest.fixture
def mef_bytes():
    planes = [np.full((6, 7), i, dtype=np.int16) for i in range(1, 4)]
    return _fits_bytes(
        fits.PrimaryHDU(),
        fits.ImageHDU(planes[0], name="SCI"),
        fits.BinTableHDU.from_columns([fits.Column(name="a", format="E", array=np.zeros(3))], name="CAT"),
        fits.ImageHDU(planes[1], name="SCI", ver=2),
        fits.ImageHDU(planes[2], name="DQ"),
    )


def test_first_image_hdu_is_default(mef_bytes):
    image = load_image(mef_bytes)
    assert image.hdu == 1 and (image.data == 1).all()
    assert [info.index for info in image.hdus] == [1, 3, 4]


def test_hdu_by_index(mef_bytes):
    image = load_image(mef_bytes, hdu=3)
    assert image.hdu == 3 and (image.data == 2).all()


def test_hdu_by_index_string(mef_bytes):
    assert load_image(mef_bytes, hdu="4").hdu == 4


def test_hdu_by_extname_case_insensitive(mef_bytes):
    image = load_image(mef_bytes, hdu="dq")
    assert image.hdu == 4 and (image.data == 3).all()


def test_hdu_out_of_range(mef_bytes):
    with pytest.raises(ImageReadError, match="out of range"):
        load_image(mef_bytes, hdu=9, name="mef.fits")


def test_hdu_that_is_a_table(mef_bytes):
    with pytest.raises(ImageReadError, match="holds no image"):
        load_image(mef_bytes, hdu=2)


def test_empty_primary_hdu_refused(mef_bytes):
    with pytest.raises(ImageReadError, match="holds no image"):
        load_image(mef_bytes, hdu=0)


def test_unknown_extname(mef_bytes):
    with pytest.raises(ImageReadError, match="no HDU named 'WHT'"):
        load_image(mef_bytes, hdu="WHT")


def test_table_only_fits_has_no_image():
    table = fits.BinTableHDU.from_columns([fits.Column(name="x", format="J", array=np.arange(4))])
    with pytest.raises(ImageReadError, match="no HDU holds an image"):
        load_image(_fits_bytes(fits.PrimaryHDU(), table), name="cat.fits")


def test_list_image_hdus(mef_bytes):
    infos = list_image_hdus(mef_bytes)
    assert infos == [
        HDUInfo(1, "SCI", (6, 7), "int16"),
        HDUInfo(3, "SCI", (6, 7), "int16"),
        HDUInfo(4, "DQ", (6, 7), "int16"),
    ]


def test_list_image_hdus_of_png(tmp_path):
    path = tmp_path / "a.png"
    PILImage.fromarray(np.zeros((4, 5), np.uint8)).save(path)
    assert list_image_hdus(path) == [HDUInfo(0, "PNG", (4, 5), "uint8")]


def test_list_image_hdus_of_garbage():
    with pytest.raises(ImageReadError):
        list_image_hdus(b"not an image at all")


@pytest.mark.parametrize(
    "given, expected", [(None, None), (0, 0), ("3", 3), (" sci ", "SCI"), ("", None), (np.int64(2), 2)]
)
def test_normalize_hdu(given, expected):
    assert normalize_hdu(given) == expected


@pytest.mark.parametrize("bad", [True, -1, 1.5, ["SCI"]])
def test_normalize_hdu_refuses(bad):
    with pytest.raises(InvalidRequest):
        normalize_hdu(bad)


# --- WCS ----------------------------------------------------------------------


def test_celestial_wcs_from_header(fits_path, frame):
    wcs = load_image(fits_path).wcs
    assert wcs is not None and wcs.naxis == 2
    ra, dec = wcs.all_pix2world(frame.stars.x, frame.stars.y, 0)
    assert_allclose(ra, frame.stars.ra, atol=1e-9)
    assert_allclose(dec, frame.stars.dec, atol=1e-9)


def test_no_wcs_gives_none():
    assert load_image(_fits_bytes(fits.PrimaryHDU(np.zeros((3, 3))))).wcs is None


def test_non_celestial_wcs_gives_none():
    hdu = fits.PrimaryHDU(np.zeros((3, 3)))
    hdu.header["CTYPE1"], hdu.header["CTYPE2"] = "WAVE", "TIME"
    assert load_image(_fits_bytes(hdu)).wcs is None


def test_broken_wcs_gives_none_not_error():
    hdu = fits.PrimaryHDU(np.zeros((3, 3)))
    hdu.header.update(CTYPE1="RA---TAN", CTYPE2="DEC--TAN", CRVAL1=10.0, CRVAL2=95.0,
                      CD1_1=0.0, CD1_2=0.0, CD2_1=0.0, CD2_2=0.0, PV2_1="junk")
    image = load_image(_fits_bytes(hdu))
    assert image.data.shape == (3, 3)


def test_cube_wcs_is_celestial_part():
    hdu = fits.PrimaryHDU(np.zeros((2, 4, 5), np.float32))
    hdu.header.update(CTYPE1="RA---TAN", CTYPE2="DEC--TAN", CTYPE3="FREQ", CRVAL1=10.0, CRVAL2=20.0,
                      CDELT1=-0.001, CDELT2=0.001, CRVAL3=1e9, CDELT3=1e6)
    wcs = load_image(_fits_bytes(hdu)).wcs
    assert wcs is not None and wcs.naxis == 2 and wcs.has_celestial


# --- errors -------------------------------------------------------------------


def test_zero_byte_file(tmp_path):
    path = tmp_path / "empty.fits"
    path.write_bytes(b"")
    with pytest.raises(ImageReadError, match="empty.fits.*empty"):
        load_image(path)


def test_zero_bytes():
    with pytest.raises(ImageReadError, match="empty"):
        load_image(b"", name="x.fits")


def test_random_bytes(tmp_path):
    path = tmp_path / "noise.fits"
    path.write_bytes(np.random.default_rng(5).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    with pytest.raises(ImageReadError, match="noise.fits: not a FITS, PNG or JPEG"):
        load_image(path)


def test_text_file(tmp_path):
    path = tmp_path / "notes.fits"
    path.write_text("hello\n")
    with pytest.raises(ImageReadError, match="notes.fits"):
        load_image(path)


def test_truncated_fits(tmp_path, fits_path):
    raw = fits_path.read_bytes()
    path = tmp_path / "half.fits"
    path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ImageReadError, match="half.fits.*truncated"):
        load_image(path)


def test_fits_header_without_end(tmp_path):
    header = fits.Header({"SIMPLE": True, "BITPIX": 16, "NAXIS": 2, "NAXIS1": 10, "NAXIS2": 10})
    text = header.tostring().replace("END" + " " * 77, " " * 80).encode()
    with pytest.raises(ImageReadError, match="cut.fits"):
        load_image(text, name="cut.fits")


def test_truncated_tile_compressed(tmp_path, frame):
    raw = write_fits(frame, tmp_path / "a.fits.fz", compress=True).read_bytes()
    with pytest.raises(ImageReadError, match="cut.fits.fz"):
        load_image(raw[: len(raw) - 2000], name="cut.fits.fz")


def test_corrupt_tile_compressed_data(tmp_path):
    data = star_field((300, 300), n_stars=50, seed=6).data
    hdus = fits.HDUList([fits.PrimaryHDU(), fits.CompImageHDU(data, compression_type="RICE_1")])
    buffer = io.BytesIO()
    hdus.writeto(buffer)
    raw = bytearray(buffer.getvalue())
    start = 2880 * 3
    raw[start : start + 20000] = np.random.default_rng(7).integers(0, 256, 20000, dtype=np.uint8).tobytes()
    with pytest.raises(ImageReadError, match="bad.fits.fz"):
        load_image(bytes(raw), name="bad.fits.fz")


@pytest.mark.parametrize("compress", [gzip.compress, bz2.compress])
def test_truncated_whole_file_compression(fits_path, compress):
    raw = compress(fits_path.read_bytes())
    with pytest.raises(ImageReadError, match="x.fits.gz.*(corrupt|truncated)"):
        load_image(raw[: len(raw) // 2], name="x.fits.gz")


def test_gzip_of_something_else():
    with pytest.raises(ImageReadError, match="does not hold a FITS"):
        load_image(gzip.compress(b"hello world"), name="x.fits.gz")


def test_truncated_png(tmp_path):
    buffer = io.BytesIO()
    PILImage.fromarray(np.random.default_rng(8).integers(0, 255, (50, 50), dtype=np.uint8)).save(buffer, "PNG")
    raw = buffer.getvalue()
    with pytest.raises(ImageReadError, match="x.png"):
        load_image(raw[: len(raw) // 2], name="x.png")


def test_missing_file(tmp_path):
    with pytest.raises(ImageNotFound, match="Image does not exist: nothing.fits."):
        load_image(tmp_path / "nothing.fits")


def test_folder_is_not_an_image(tmp_path):
    with pytest.raises(ImageReadError):
        load_image(tmp_path)


def test_wrong_argument_type():
    with pytest.raises(InvalidRequest):
        load_image(12345)


# --- files are left alone -----------------------------------------------------


@pytest.mark.parametrize("compress", [False, True])
def test_files_are_not_modified(tmp_path, frame, compress):
    path = write_fits(frame, tmp_path / ("a.fits.fz" if compress else "a.fits"), compress=compress)
    os.utime(path, ns=(1_000_000_000, 1_000_000_000))
    before = _snapshot(path)
    image = load_image(path)
    image.data[0, 0] = 1  # even writing into the decoded copy...
    list_image_hdus(path)
    assert _snapshot(path) == before  # ...never reaches the file


def test_no_file_left_open(tmp_path, fits_path):
    load_image(fits_path)
    list_image_hdus(fits_path)
    target = os.path.realpath(fits_path)
    open_files = [os.path.realpath(os.path.join("/proc/self/fd", fd)) for fd in os.listdir("/proc/self/fd")]
    assert target not in open_files


def test_data_is_not_a_memmap(fits_path):
    data = load_image(fits_path).data
    assert not isinstance(data, np.memmap)
    assert not isinstance(data.base, np.memmap)


def test_truncated_later_hdu_refuses_whole_file(mef_bytes):
    # HDU 1 is intact, but a file cut short is still being written: refuse it.
    with fits.open(io.BytesIO(mef_bytes)) as hdul:
        cut = hdul.fileinfo(4)["datLoc"] + 10
    with pytest.raises(ImageReadError, match="m.fits: the file is truncated"):
        load_image(mef_bytes[:cut], name="m.fits")


def test_truncated_inside_extension_header(mef_bytes):
    with fits.open(io.BytesIO(mef_bytes)) as hdul:
        cut = hdul.fileinfo(4)["hdrLoc"] + 400
    with pytest.raises(ImageReadError, match="truncated"):
        load_image(mef_bytes[:cut], name="m.fits")


def test_missing_final_padding_is_tolerated(fits_path, frame):
    raw = fits_path.read_bytes()
    unpadded = raw[: 2880 * 2 + frame.data.nbytes]  # header blocks + pixels, no padding
    assert_array_equal(load_image(unpadded).data, frame.data)


@pytest.mark.parametrize("mode", ["L", "RGB"])
def test_picture_data_is_plain_writeable_array(tmp_path, mode):
    path = tmp_path / "a.png"
    shape = (6, 7) if mode == "L" else (6, 7, 3)
    PILImage.fromarray(np.ones(shape, np.uint8), mode=mode).save(path)
    data = load_image(path).data
    assert data.flags.writeable and data.flags.c_contiguous


@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.uint16, np.float32])
def test_fits_data_is_plain_writeable_array(dtype):
    data = load_image(_fits_bytes(fits.PrimaryHDU(np.ones((5, 6), dtype)))).data
    assert data.flags.writeable and data.flags.c_contiguous and data.dtype.isnative
