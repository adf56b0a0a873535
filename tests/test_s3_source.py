"""S3Source against a real moto_server over HTTP on 127.0.0.1."""

from __future__ import annotations

import io
import time
import uuid

import boto3
import numpy as np
import pytest
from astropy.io import fits
from numpy.testing import assert_array_equal

from app.settings import Settings
from components.core.synthetic import star_field
from components.errors import ImageNotFound, UnsafeKey
from components.sources import FrameStore, ImageCache, S3Source, load_image, store_from_settings

pytestmark = pytest.mark.s3


def _fits_bytes(seed: int) -> tuple[bytes, np.ndarray]:
    frame = star_field((30, 40), n_stars=2, seed=seed)
    buffer = io.BytesIO()
    fits.PrimaryHDU(frame.data, frame.header).writeto(buffer)
    return buffer.getvalue(), frame.data


@pytest.fixture(scope="module")
def client(moto_server):
    return boto3.client("s3", endpoint_url=moto_server, region_name="us-east-1")


@pytest.fixture
def bucket(client):
    name = f"qa-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=name)
    return name


@pytest.fixture
def source(bucket, moto_server):
    return S3Source(bucket, endpoint_url=moto_server, region="us-east-1")


def test_list_read_info(client, bucket, source):
    raw, data = _fits_bytes(1)
    client.put_object(Bucket=bucket, Key="data/a.fits", Body=raw)
    frames = source.list_frames()
    assert [f.key for f in frames] == ["data/a.fits"]
    info = source.info("data/a.fits")
    head = client.head_object(Bucket=bucket, Key="data/a.fits")
    assert (info.key, info.directory, info.name, info.size) == ("data/a.fits", "data", "a.fits", len(raw))
    assert info.version == head["ETag"].strip('"') == frames[0].version
    assert info.modified.utcoffset().total_seconds() == 0
    read = source.read("data/a.fits")
    assert read == raw
    assert_array_equal(load_image(read).data, data)


def test_newest_first(client, bucket, source):
    client.put_object(Bucket=bucket, Key="data/old.fits", Body=b"1")
    time.sleep(1.1)  # moto's LastModified has one-second resolution
    client.put_object(Bucket=bucket, Key="data/b.fits", Body=b"2")
    client.put_object(Bucket=bucket, Key="data/a.fits", Body=b"3")
    keys = [f.key for f in source.list_frames()]
    assert keys[-1] == "data/old.fits"
    frames = source.list_frames()
    assert frames == sorted(frames, key=lambda f: (f.modified, f.key), reverse=True)


def test_listing_filters_and_recurses(client, bucket, source):
    for key in ["data/a.fits.fz", "data/sub/b.fits", "allsky/c.jpg", "data/notes.txt", "data/.hidden.fits",
                "data/d.fits.tmp", "data/", "data//e.fits", "data/../f.fits"]:
        client.put_object(Bucket=bucket, Key=key, Body=b"x")
    assert sorted(f.key for f in source.list_frames()) == ["allsky/c.jpg", "data/a.fits.fz", "data/sub/b.fits"]
    assert sorted(f.key for f in source.list_frames("data")) == ["data/a.fits.fz", "data/sub/b.fits"]
    assert source.directories() == ["allsky", "data", "data/sub"]


def test_directory_is_a_folder_not_a_name_prefix(client, bucket, source):
    client.put_object(Bucket=bucket, Key="data/a.fits", Body=b"x")
    client.put_object(Bucket=bucket, Key="database/b.fits", Body=b"x")
    assert [f.key for f in source.list_frames("data")] == ["data/a.fits"]


def test_prefix_is_the_root(client, bucket, moto_server):
    client.put_object(Bucket=bucket, Key="frames/data/a.fits", Body=b"inside")
    client.put_object(Bucket=bucket, Key="other/secret.fits", Body=b"outside")
    client.put_object(Bucket=bucket, Key="framesX/b.fits", Body=b"outside")
    source = S3Source(bucket, prefix="/frames/", endpoint_url=moto_server, region="us-east-1")
    assert [f.key for f in source.list_frames()] == ["data/a.fits"]
    assert source.read("data/a.fits") == b"inside"
    with pytest.raises(UnsafeKey):
        source.read("../other/secret.fits")
    with pytest.raises(ImageNotFound):
        source.read("other/secret.fits")


def test_missing_object(source):
    with pytest.raises(ImageNotFound) as caught:
        source.info("data/none.fits")
    assert str(caught.value) == "Image does not exist: data/none.fits."
    with pytest.raises(ImageNotFound):
        source.read("data/none.fits")


def test_missing_bucket(moto_server):
    source = S3Source(f"absent-{uuid.uuid4().hex[:8]}", endpoint_url=moto_server, region="us-east-1")
    with pytest.raises(ImageNotFound):
        source.list_frames()
    with pytest.raises(ImageNotFound):
        source.info("data/a.fits")
    with pytest.raises(ImageNotFound):
        source.read("data/a.fits")
    with pytest.raises(ImageNotFound):
        source.directories()


@pytest.mark.parametrize("key", ["../a.fits", "/data/a.fits", "data/../../a.fits", "a\x00.fits", "data\\a.fits",
                                 ".hidden/a.fits"])
def test_unsafe_keys(source, key):
    with pytest.raises(UnsafeKey):
        source.info(key)
    with pytest.raises(UnsafeKey):
        source.read(key)


def test_unsafe_directory(source):
    with pytest.raises(UnsafeKey):
        source.list_frames("../")


def test_non_image_object_not_served(client, bucket, source):
    client.put_object(Bucket=bucket, Key="data/notes.txt", Body=b"hello")
    with pytest.raises(ImageNotFound):
        source.read("data/notes.txt")


def test_store_rereads_rewritten_object(client, bucket, source):
    store = FrameStore(source, ImageCache(10**8))
    first_raw, first_data = _fits_bytes(1)
    client.put_object(Bucket=bucket, Key="data/a.fits", Body=first_raw)
    first = store.load(store.key_for("data", "a.fits"))
    assert_array_equal(first.data, first_data)
    assert store.load("data/a.fits") is first
    second_raw, second_data = _fits_bytes(2)
    client.put_object(Bucket=bucket, Key="data/a.fits", Body=second_raw)
    second = store.load("data/a.fits")
    assert_array_equal(second.data, second_data)
    assert store.cache.decodes == 2


def test_store_from_settings_reads_bucket(client, bucket, moto_server):
    raw, data = _fits_bytes(3)
    client.put_object(Bucket=bucket, Key="root/allsky/x.fits", Body=raw)
    settings = Settings(s3_bucket=bucket, s3_prefix="root", s3_region="us-east-1", s3_endpoint_url=moto_server)
    store = store_from_settings(settings)
    assert [f.key for f in store.list_frames()] == ["allsky/x.fits"]
    assert_array_equal(store.load(store.key_for("allsky", "x.fits")).data, data)
