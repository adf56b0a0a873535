"""The decoded-image cache (ImageCache) and the frame store (FrameStore)."""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from astropy.io import fits
from numpy.testing import assert_array_equal

from app.settings import Settings
from components.core.synthetic import star_field, write_fits
from components.errors import ImageNotFound, ImageReadError, InvalidRequest, UnsafeKey
from components.sources import FrameStore, Image, ImageCache, LocalSource, S3Source, store_from_settings
from components.sources.store import shared_cache

OLD = 1_600_000_000


def _image(nbytes: int, fill: int = 0) -> Image:
    return Image(np.full((1, nbytes), fill, dtype=np.uint8), fits.Header())


def _loader(nbytes: int, calls: list | None = None, fill: int = 0):
    def load():
        if calls is not None:
            calls.append(fill)
        return _image(nbytes, fill)

    return load


# --- ImageCache -------------------------------------------------------------------


def test_hit_and_miss_counters():
    cache = ImageCache(1000)
    first = cache.get("a", _loader(10))
    second = cache.get("a", _loader(10))
    assert first is second
    assert (cache.hits, cache.misses, cache.decodes) == (1, 1, 1)


def test_lru_eviction_order():
    cache = ImageCache(300)
    for key in "abc":
        cache.get(key, _loader(100))
    cache.get("a", _loader(100))  # a is now the most recent
    cache.get("d", _loader(100))  # evicts b, the least recent
    assert cache.keys() == ["c", "a", "d"]
    assert "b" not in cache


def test_byte_bound_respected():
    cache = ImageCache(1000)
    rng = np.random.default_rng(1)
    for i, size in enumerate(rng.integers(50, 400, 40)):
        cache.get(i, _loader(int(size)))
        assert cache.nbytes <= 1000
    assert cache.nbytes == sum(cache.get(key, _loader(1)).nbytes for key in cache.keys())


def test_eviction_frees_several_small_images():
    cache = ImageCache(300)
    for key in "abc":
        cache.get(key, _loader(100))
    cache.get("big", _loader(250))
    assert cache.keys() == ["big"] and cache.nbytes == 250


def test_image_larger_than_bound_returned_not_kept():
    cache = ImageCache(100)
    cache.get("small", _loader(50))
    image = cache.get("huge", _loader(500))
    assert image.nbytes == 500
    assert "huge" not in cache and "small" in cache
    cache.get("huge", _loader(500))
    assert cache.decodes == 3


def test_loader_error_propagates_and_is_not_cached():
    cache = ImageCache(1000)

    def broken():
        raise ImageReadError("Cannot read x: bad")

    with pytest.raises(ImageReadError):
        cache.get("x", broken)
    assert "x" not in cache
    assert cache.get("x", _loader(10)).nbytes == 10  # the next call tries again
    assert cache.decodes == 2


def test_clear_and_discard():
    cache = ImageCache(1000)
    cache.get("a", _loader(10))
    cache.get("b", _loader(10))
    cache.discard("a")
    cache.discard("missing")
    assert cache.keys() == ["b"] and cache.nbytes == 10
    cache.clear()
    assert len(cache) == 0 and cache.nbytes == 0


def test_single_flight_decodes_once():
    cache = ImageCache(10_000)
    calls = []
    barrier = threading.Barrier(8)

    def slow():
        calls.append(1)
        time.sleep(0.2)
        return _image(100)

    def request(_):
        barrier.wait()
        return cache.get("frame", slow)

    with ThreadPoolExecutor(8) as pool:
        images = list(pool.map(request, range(8)))
    assert len(calls) == 1 and cache.decodes == 1
    assert all(image is images[0] for image in images)
    assert cache.hits + cache.misses == 8


def test_single_flight_error_reaches_every_waiter():
    cache = ImageCache(10_000)
    barrier = threading.Barrier(4)
    calls = []

    def broken():
        calls.append(1)
        time.sleep(0.2)
        raise ImageReadError("Cannot read frame: truncated")

    def request(_):
        barrier.wait()
        try:
            cache.get("frame", broken)
        except ImageReadError as error:
            return str(error)

    with ThreadPoolExecutor(4) as pool:
        messages = list(pool.map(request, range(4)))
    assert messages == ["Cannot read frame: truncated"] * 4
    assert len(calls) == 1


def test_different_keys_decode_in_parallel():
    cache = ImageCache(10_000)
    barrier = threading.Barrier(2)
    # Both decodes must be running at once to pass this second barrier: decodes
    # made one after the other would break it (the timeout only avoids a hang).
    both_decoding = threading.Barrier(2, timeout=30)

    def slow():
        both_decoding.wait()
        return _image(10)

    def request(key):
        barrier.wait()
        return cache.get(key, slow)

    with ThreadPoolExecutor(2) as pool:
        list(pool.map(request, ["a", "b"]))
    assert not both_decoding.broken
    assert cache.decodes == 2


# --- FrameStore ---------------------------------------------------------------------


@pytest.fixture
def store(tmp_path):
    (tmp_path / "data").mkdir()
    return FrameStore(LocalSource(tmp_path, settle=0), ImageCache(10**8))


def _write(root, key, seed, **kwargs):
    frame = star_field((30, 40), n_stars=2, seed=seed, **kwargs)
    path = write_fits(frame, root / key)
    return frame, path


def test_store_load_through_cache(store):
    root = store.source.root
    frame, _ = _write(root, "data/a.fits", 1)
    image = store.load("data/a.fits")
    assert_array_equal(image.data, frame.data)
    assert image.name == "data/a.fits"
    assert store.load("data/a.fits") is image
    assert (store.cache.decodes, store.cache.hits) == (1, 1)


def test_store_rereads_rewritten_file(store):
    root = store.source.root
    _, path = _write(root, "data/a.fits", 1)
    os.utime(path, (OLD, OLD))
    first = store.load("data/a.fits")
    second_frame, path = _write(root, "data/a.fits", 2)
    os.utime(path, (OLD + 10, OLD + 10))
    second = store.load("data/a.fits")
    assert second is not first
    assert_array_equal(second.data, second_frame.data)
    assert store.cache.decodes == 2
    assert len(store.cache) == 1  # the old version's decode was freed


def test_store_cache_key_includes_hdu(store):
    root = store.source.root
    hdus = fits.HDUList([fits.PrimaryHDU()] + [fits.ImageHDU(np.full((4, 4), i, np.int16), name="SCI") for i in (1, 2)])
    hdus.writeto(root / "data" / "mef.fits")
    one = store.load("data/mef.fits", hdu=1)
    two = store.load("data/mef.fits", hdu=2)
    assert (one.data == 1).all() and (two.data == 2).all()
    assert store.load("data/mef.fits", hdu="1") is one  # "1" and 1 are one entry
    assert store.load("data/mef.fits") is not one  # default is its own entry
    assert store.cache.decodes == 3


def test_store_missing_and_unsafe(store):
    with pytest.raises(ImageNotFound, match="Image does not exist: data/none.fits."):
        store.load("data/none.fits")
    with pytest.raises(UnsafeKey):
        store.load("../etc/passwd")


def test_store_unreadable_file(store):
    (store.source.root / "data" / "bad.fits").write_bytes(b"SIMPLE  = garbage")
    with pytest.raises(ImageReadError, match="data/bad.fits"):
        store.load("data/bad.fits")


def test_store_key_for(store):
    assert store.key_for("allsky", "a.jpg") == "allsky/a.jpg"
    with pytest.raises(InvalidRequest, match="Unknown s3_directory 'x'; allowed: data, info-images, allsky"):
        store.key_for("x", "a.jpg")
    with pytest.raises(UnsafeKey):
        store.key_for("data", "../a.jpg")


def test_store_lists_and_directories(store):
    root = store.source.root
    _, a = _write(root, "data/a.fits", 1)
    os.utime(a, (OLD, OLD))
    _write(root, "data/b.fits", 2)
    assert [f.key for f in store.list_frames("data")] == ["data/b.fits", "data/a.fits"]
    assert store.directories() == ["data"]
    assert store.info("data/a.fits").name == "a.fits"


def test_store_single_flight_through_store(store):
    _write(store.source.root, "data/a.fits", 1)
    barrier = threading.Barrier(6)

    def request(_):
        barrier.wait()
        return store.load("data/a.fits")

    with ThreadPoolExecutor(6) as pool:
        images = list(pool.map(request, range(6)))
    assert store.cache.decodes == 1
    assert all(image is images[0] for image in images)


def test_store_from_settings_local(tmp_path):
    settings = Settings(root=tmp_path, cache_bytes=12345, s3_directories=["data", "extra"])
    store = store_from_settings(settings)
    assert isinstance(store.source, LocalSource) and store.source.root == tmp_path
    assert store.cache.max_bytes == 12345
    assert store.allowed_directories == ("data", "extra")
    # One cache for the whole process.
    assert store_from_settings(settings).cache is store.cache is shared_cache(12345)


def test_store_from_settings_s3():
    settings = Settings(s3_bucket="bucket", s3_prefix="frames/", s3_region="us-east-1",
                        s3_endpoint_url="http://127.0.0.1:9")
    store = store_from_settings(settings)
    assert isinstance(store.source, S3Source)
    assert store.source.bucket == "bucket" and store.source.prefix == "frames"
    assert store.source.client.meta.endpoint_url == "http://127.0.0.1:9"
