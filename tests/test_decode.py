"""Parallel decoding equals astropy's, bit for bit; frames too large are refused before decoding.

Reference arrays come from astropy itself (``hdu.data`` of the same file),
which the parallel decoders must reproduce exactly: same dtype, same bits,
same header. The size bound is checked in process and over real HTTP, with
bombs (a few bytes that decompress to 512 MiB) built in the test by
streaming zeros into the compressors, never holding the 512 MiB.
"""

from __future__ import annotations

import bz2
import gzip
import io
import zlib
from pathlib import Path

import numpy as np
import pytest
import requests
from astropy.io import fits
from numpy.testing import assert_array_equal

from app.settings import Settings
from components.errors import FrameTooLarge, ImageReadError
from components.sources import load_image
from components.sources.decode import (
    check_declared,
    declared_nbytes,
    decompress_tiles,
    read_compressed_fits,
)
from components.sources.store import store_from_settings

MiB = 1024**2
GiB = 1024**3
BOMB_SHAPE = (16384, 16384)  # int16: 512 MiB of pixels


# ------------------------------------------------------------------ helpers


def astropy_hdu(raw: bytes, index: int) -> tuple[np.ndarray, fits.Header]:
    """What astropy alone decodes from ``raw``: pixels (native order) and header."""
    with fits.open(io.BytesIO(raw), memmap=False) as hdul:
        data = hdul[index].data
        header = hdul[index].header.copy()
    return np.asarray(data, dtype=data.dtype.newbyteorder("=")), header


def fz_bytes(data: np.ndarray, header: fits.Header | None = None, **options) -> bytes:
    buffer = io.BytesIO()
    fits.HDUList([fits.PrimaryHDU(), fits.CompImageHDU(data, header=header, **options)]).writeto(buffer)
    return buffer.getvalue()


def parallel(raw: bytes, index: int = 1) -> np.ndarray | None:
    """The parallel decoder's own answer (None: it hands the HDU to astropy)."""
    with fits.open(io.BytesIO(raw), memmap=False) as hdul:
        return decompress_tiles(hdul[index])


def assert_same(raw: bytes, index: int = 1) -> None:
    """load_image equals astropy on ``raw``: dtype, bits and header."""
    expected, header = astropy_hdu(raw, index)
    image = load_image(raw, hdu=index, name="x.fits")
    assert image.data.dtype == expected.dtype
    assert_array_equal(image.data, expected, strict=True)
    # NaNs at the same places too (assert_array_equal treats NaN == NaN).
    assert image.data.tobytes() == expected.tobytes()
    assert image.header.tostring() == header.tostring()


def header_card_bytes(shape: tuple[int, ...], bitpix: int = 16) -> bytes:
    header = fits.Header([("SIMPLE", True), ("BITPIX", bitpix), ("NAXIS", len(shape))])
    for axis, length in enumerate(reversed(shape), start=1):
        header[f"NAXIS{axis}"] = length
    return header.tostring().encode("ascii")


def bomb(kind: str, shape: tuple[int, int] = BOMB_SHAPE) -> bytes:
    """A FITS header declaring ``shape`` int16, then its zeros, compressed.

    The zeros are streamed 1 MiB at a time into the compressor (one 16 MiB
    stream, repeated: bzip2 and gzip both allow concatenated streams).
    """
    total = int(np.prod(shape)) * 2
    chunk, per_stream = bytes(MiB), 16
    if kind == "bzip2":
        head = bz2.compress(header_card_bytes(shape))
        compressor = bz2.BZ2Compressor(9)
        body = b"".join(compressor.compress(chunk) for _ in range(per_stream)) + compressor.flush()
    else:
        head = gzip.compress(header_card_bytes(shape))
        compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
        body = b"".join(compressor.compress(chunk) for _ in range(per_stream)) + compressor.flush()
    return head + body * (total // (per_stream * MiB))


def vm_hwm(pid: int) -> int:
    """Peak resident set size of a process, in bytes (Linux VmHWM)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM in /proc status")


# ------------------------------------------------------------------ declared sizes


def test_declared_nbytes_of_plain_header():
    header = fits.Header([("SIMPLE", True), ("BITPIX", 16), ("NAXIS", 2), ("NAXIS1", 300), ("NAXIS2", 200)])
    assert declared_nbytes(header) == 300 * 200 * 2


def test_declared_nbytes_counts_scaled_floats_and_whole_cube():
    header = fits.Header([("BITPIX", 16), ("NAXIS", 3), ("NAXIS1", 10), ("NAXIS2", 20), ("NAXIS3", 4),
                          ("BSCALE", 2.0)])
    assert declared_nbytes(header) == 10 * 20 * 4 * 4  # astropy gives float32
    header["BSCALE"], header["BZERO"] = 1, 32768
    assert declared_nbytes(header) == 10 * 20 * 4 * 2  # uint16: same width


def test_declared_nbytes_of_compressed_table_uses_znaxis():
    header = fits.Header([("XTENSION", "BINTABLE"), ("BITPIX", 8), ("NAXIS", 2), ("NAXIS1", 8),
                          ("NAXIS2", 100), ("ZIMAGE", True), ("ZBITPIX", 32), ("ZNAXIS", 2),
                          ("ZNAXIS1", 1000), ("ZNAXIS2", 100)])
    assert declared_nbytes(header) == 1000 * 100 * 4


def test_check_declared_refuses_with_413():
    header = fits.Header([("BITPIX", -64), ("NAXIS", 2), ("NAXIS1", 100), ("NAXIS2", 100)])
    check_declared(header, 80_000, "ok.fits")
    with pytest.raises(FrameTooLarge, match="big.fits.*80000 bytes.*QA_MAX_FRAME_BYTES") as caught:
        check_declared(header, 79_999, "big.fits")
    assert caught.value.status == 413
    assert isinstance(caught.value, ImageReadError)


# ------------------------------------------------------------------ bit-identical to astropy


def _shared_image_hdus(path: Path) -> list[int]:
    with fits.open(path, memmap=False) as hdul:
        return [i for i, hdu in enumerate(hdul)
                if isinstance(hdu, (fits.PrimaryHDU, fits.ImageHDU, fits.CompImageHDU))
                and len(hdu.shape) >= 2 and all(hdu.shape)]


def test_every_shared_frame_equals_astropy(shared_data):
    files = sorted(p for p in shared_data.iterdir() if p.name != "README.md")
    assert len(files) >= 8
    checked = 0
    for path in files:
        raw = path.read_bytes()
        for index in _shared_image_hdus(path):
            expected = fits.getdata(path, ext=index)
            expected = np.asarray(expected, dtype=expected.dtype.newbyteorder("="))
            for source in (path, raw):  # from a path and from bytes (as S3 hands them)
                image = load_image(source, hdu=index, name=path.name)
                assert image.data.dtype == expected.dtype, path.name
                assert image.data.tobytes() == expected.tobytes(), (path.name, index)
            checked += 1
    assert checked >= 11  # the MEF has 4 image HDUs


def test_shared_fz_takes_the_parallel_path(shared_data):
    raw = (shared_data / "cpt1m013-ak06-20210504-0092-g00.fits.fz").read_bytes()
    data = parallel(raw)
    assert data is not None and data.dtype == np.uint16
    assert_same(raw)


def _frame(dtype: str, shape=(75, 130), seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if np.dtype(dtype).kind == "f":
        return (rng.normal(100, 30, shape) * rng.choice([1, 1e-3, 1e5], shape)).astype(dtype)
    info = np.iinfo(dtype)
    values = rng.integers(info.min, info.max, shape, endpoint=True, dtype=np.int64)
    values[:, :10] = rng.integers(max(info.min, -50), 50, (shape[0], 10))  # compressible part
    return values.astype(dtype)


LOSSLESS = [
    ("uint16", "RICE_1", None),
    ("int16", "RICE_1", None),
    ("int32", "RICE_1", None),
    ("uint8", "RICE_1", None),
    ("uint16", "RICE_1", (16, 48)),  # edge tiles on both axes
    ("uint16", "GZIP_1", None),
    ("int16", "GZIP_2", None),
    ("int32", "GZIP_2", (7, 130)),
    ("uint32", "GZIP_1", None),
    ("int16", "HCOMPRESS_1", None),
    ("float32", "GZIP_2", None),
    ("float32", "GZIP_1", (10, 33)),
    ("float64", "GZIP_2", None),
]


@pytest.mark.parametrize("dtype, compression, tiles", LOSSLESS)
def test_synthetic_fz_parallel_equals_astropy(dtype, compression, tiles):
    data = _frame(dtype)
    options = {"compression_type": compression}
    if tiles:
        options["tile_shape"] = tiles
    if data.dtype.kind == "f":
        options["quantize_level"] = 0.0  # lossless floats
    raw = fz_bytes(data, **options)
    decoded = parallel(raw)
    assert decoded is not None, "expected the parallel path"
    expected, _ = astropy_hdu(raw, 1)
    assert decoded.dtype == expected.dtype == data.dtype
    assert decoded.tobytes() == expected.tobytes() == data.tobytes()
    assert_same(raw)


def test_float_nan_inf_lossless_gzip_equals_astropy():
    data = _frame("float32")
    data[3, 4], data[5, 6], data[7, 8] = np.nan, np.inf, -np.inf
    raw = fz_bytes(data, compression_type="GZIP_2", quantize_level=0.0)
    assert parallel(raw) is not None
    assert_same(raw)


def test_bscale_bzero_scaled_by_astropy_rules():
    data = _frame("int16")
    header = fits.Header([("BSCALE", 0.5), ("BZERO", 10.0)])
    hdu = fits.CompImageHDU(data, header=header, compression_type="RICE_1", do_not_scale_image_data=True)
    hdu.header["BSCALE"], hdu.header["BZERO"] = 0.5, 10.0
    buffer = io.BytesIO()
    fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(buffer)
    raw = buffer.getvalue()
    expected, _ = astropy_hdu(raw, 1)
    assert expected.dtype == np.float32
    decoded = parallel(raw)
    assert decoded is not None and decoded.tobytes() == expected.tobytes()
    assert_same(raw)


@pytest.mark.parametrize("quantize", [{"quantize_level": 16.0},
                                      {"quantize_level": 4.0, "quantize_method": 2},
                                      {"quantize_level": 16.0, "quantize_method": -1}])
def test_quantized_floats_fall_back_to_astropy(quantize):
    data = _frame("float32").astype(np.float32)
    data[0, 0] = np.nan  # ZBLANK too
    raw = fz_bytes(data, compression_type="RICE_1", **quantize)
    assert parallel(raw) is None
    assert_same(raw)


def test_blank_keyword_falls_back_to_astropy():
    data = _frame("int32")
    raw = fz_bytes(data, header=fits.Header([("BLANK", -999)]), compression_type="RICE_1")
    assert parallel(raw) is None
    assert_same(raw)


def test_cube_falls_back_and_gives_first_plane():
    cube = np.stack([_frame("int16", (20, 30), seed) for seed in range(3)])
    raw = fz_bytes(cube, compression_type="RICE_1")
    assert parallel(raw) is None
    assert_array_equal(load_image(raw).data, cube[0], strict=True)


def test_plio_falls_back_to_astropy():
    data = np.random.default_rng(1).integers(0, 100, (40, 50)).astype(np.int32)
    raw = fz_bytes(data, compression_type="PLIO_1")
    assert parallel(raw) is None
    assert_same(raw)


@pytest.mark.parametrize("compress", [gzip.compress, bz2.compress])
def test_whole_file_compressed_mef_equals_astropy(compress):
    hdus = [fits.PrimaryHDU()] + [fits.ImageHDU(_frame(dtype, seed=i), name="SCI")
                                   for i, dtype in enumerate(["uint16", "float32", "int32"])]
    hdus.append(fits.BinTableHDU.from_columns([fits.Column("A", "J", array=np.arange(5))]))
    buffer = io.BytesIO()
    fits.HDUList(hdus).writeto(buffer)
    plain = buffer.getvalue()
    raw = compress(plain)
    for index in (1, 2, 3):
        expected, header = astropy_hdu(plain, index)
        image = load_image(raw, hdu=index)
        assert image.data.dtype == expected.dtype
        assert image.data.tobytes() == expected.tobytes()
        assert image.header.tostring() == header.tostring()


@pytest.mark.parametrize("kind", ["gzip", "bzip2"])
def test_stream_reader_returns_the_whole_file_and_ignores_trailing_zeros(kind):
    buffer = io.BytesIO()
    fits.HDUList([fits.PrimaryHDU(_frame("int16")), fits.ImageHDU(_frame("uint16"))]).writeto(buffer)
    plain = buffer.getvalue()
    compress = gzip.compress if kind == "gzip" else bz2.compress
    assert read_compressed_fits(io.BytesIO(compress(plain)), kind, 10 * MiB, "x") == plain
    # Zero padding after the last HDU: not an HDU, not read further.
    assert read_compressed_fits(io.BytesIO(compress(plain + bytes(8 * 2880))), kind, 10 * MiB, "x") == plain


# ------------------------------------------------------------------ the bound, in process


@pytest.mark.parametrize("kind, suffix", [("bzip2", "bz2"), ("gzip", "gz")])
def test_bomb_refused_from_its_header(tmp_path, kind, suffix):
    raw = bomb(kind)
    assert len(raw) < 2 * MiB  # a small file...
    path = tmp_path / f"bomb.fits.{suffix}"
    path.write_bytes(raw)
    for source in (path, raw):  # ...that declares 512 MiB of pixels
        with pytest.raises(FrameTooLarge, match=r"bomb.fits.*536870912 bytes.*268435456") as caught:
            load_image(source, name=path.name, max_bytes=256 * MiB)
        assert caught.value.status == 413


def test_stream_longer_than_the_bound_stops_decompressing():
    # Every HDU declares less than the bound; together they pass it.
    hdus = [fits.PrimaryHDU()] + [fits.ImageHDU(np.ones((100, 100), np.int16)) for _ in range(4)]
    buffer = io.BytesIO()
    fits.HDUList(hdus).writeto(buffer)
    raw = gzip.compress(buffer.getvalue())
    assert load_image(raw, hdu=1, max_bytes=100_000).data.shape == (100, 100)
    with pytest.raises(FrameTooLarge, match="decompresses to more than the 50000 bytes"):
        load_image(raw, hdu=1, max_bytes=50_000)


def test_uncompressed_huge_naxis_refused_before_reading(tmp_path):
    path = tmp_path / "huge.fits"
    path.write_bytes(header_card_bytes((100_000, 100_000), bitpix=-64) + bytes(2880))
    with pytest.raises(FrameTooLarge, match="huge.fits: HDU 0 declares 80000000000 bytes") as caught:
        load_image(path)
    assert caught.value.status == 413


def test_tile_compressed_refused_by_znaxis():
    raw = fz_bytes(_frame("int32", (64, 64)), compression_type="RICE_1")
    assert load_image(raw, max_bytes=64 * 64 * 4).data.shape == (64, 64)
    with pytest.raises(FrameTooLarge, match="HDU 1 declares 16384 bytes"):
        load_image(raw, max_bytes=64 * 64 * 4 - 1)


def test_png_refused_from_its_size(tmp_path):
    from PIL import Image as PILImage

    path = tmp_path / "big.png"
    PILImage.fromarray(np.zeros((100, 200), np.uint8)).save(path)
    assert load_image(path, max_bytes=100 * 200 * 4).data.shape == (100, 200)
    with pytest.raises(FrameTooLarge, match="big.png"):
        load_image(path, max_bytes=100 * 200 * 4 - 1)


def test_frame_limit_never_above_the_cache_bound(tmp_path):
    settings = Settings(root=tmp_path, cache_bytes=256 * MiB, max_frame_bytes=2 * GiB)
    assert store_from_settings(settings).max_frame_bytes == 256 * MiB
    settings = Settings(root=tmp_path, cache_bytes=GiB, max_frame_bytes=100 * MiB)
    assert store_from_settings(settings).max_frame_bytes == 100 * MiB


# ------------------------------------------------------------------ the bound, over HTTP


def test_bombs_answer_413_and_the_server_stays_within_the_cache_bound(tmp_path, start_server):
    cache = 256 * MiB
    data = tmp_path / "data"
    data.mkdir()
    (data / "bomb.fits.bz2").write_bytes(bomb("bzip2"))
    (data / "bomb.fits.gz").write_bytes(bomb("gzip"))
    (data / "huge.fits").write_bytes(header_card_bytes((60_000, 60_000), bitpix=16) + bytes(2880))
    fine = np.arange(200 * 300, dtype=np.uint16).reshape(200, 300)
    fits.PrimaryHDU(fine).writeto(data / "fine.fits")
    server = start_server(tmp_path, env={"QA_CACHE_BYTES": str(cache)})
    for name in ("bomb.fits.bz2", "bomb.fits.gz", "huge.fits"):
        for path in ("/statistics", "/histogram-clipped"):
            response = requests.post(
                server.url + path, json={"s3_directory": "data", "full_filename": name}, timeout=120
            )
            assert response.status_code == 413, (name, response.text)
            assert response.headers["Content-Type"].startswith("application/json")
            body = response.json()
            assert body["success"] is False
            assert name in body["message"] and "QA_MAX_FRAME_BYTES" in body["message"]
    # The server still works, and never held the bombs' pixels.
    response = requests.post(server.url + "/statistics",
                             json={"s3_directory": "data", "full_filename": "fine.fits"}, timeout=60)
    assert response.status_code == 200, response.text
    assert response.json()["stats"]["max"] == fine.max()
    peak = vm_hwm(server.process.pid)
    print(f"server peak RSS (VmHWM): {peak / MiB:.0f} MiB")
    assert peak < cache + GiB, f"peak RSS {peak / MiB:.0f} MiB"
