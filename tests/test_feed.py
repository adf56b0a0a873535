"""The frame feed: one watcher per process, its events, and sessions that follow it.

Real files in a temporary folder (watched with inotify) and a real
moto_server over HTTP for S3. Nothing here asserts a duration: each wait is
for a state, with a generous deadline only so a broken feed fails instead of
hanging.
"""

from __future__ import annotations

import os
import queue
import shutil
import subprocess
import sys
import time
from pathlib import Path

import boto3
import numpy as np
import pytest

from app.quality_service import QualityService
from components.core.synthetic import star_field, write_fits
from components.events import EventBus
from components.sources import FrameStore, ImageCache, LocalSource, S3Source
from components.sources.feed import FrameFeed
from components.sources.history import QualityHistory
from components.views import compute
from components.views.state import Session
from tests.conftest import free_port, wait_for_http

DEADLINE = 60.0


def _fits(path: Path, seed: int, shape=(60, 90), **kwargs) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_fits(star_field(shape, n_stars=8, seed=seed, **kwargs), path)


def _fits_bytes(tmp_path: Path, seed: int, shape=(60, 90)) -> bytes:
    return _fits(tmp_path / f"bytes-{seed}.fits", seed, shape).read_bytes()


class Recorder:
    """Every event of a bus, in order, with a way to wait for one."""

    def __init__(self, events: EventBus):
        self.queue: queue.Queue = queue.Queue()
        self.seen: list = []
        events.subscribe(self.queue.put)

    def wait(self, predicate, deadline: float = DEADLINE):
        """The first event (seen already or coming) that matches ``predicate``."""
        for event in self.seen:
            if predicate(event):
                return event
        end = time.monotonic() + deadline
        while True:
            try:
                event = self.queue.get(timeout=max(0.01, end - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no such event; saw {[(e.topic, e.data) for e in self.seen]}") from None
            self.seen.append(event)
            if predicate(event):
                return event

    def drain(self) -> list:
        while True:
            try:
                self.seen.append(self.queue.get_nowait())
            except queue.Empty:
                return self.seen


def _is(topic, kind=None, key=None):
    def predicate(event):
        return event.topic == topic and (kind is None or event.data.get("event") == kind or
                                         event.data.get("state") == kind) and (
            key is None or event.data.get("key") == key)

    return predicate


def _until(condition, deadline: float = DEADLINE, step=None):
    end = time.monotonic() + deadline
    while not condition():
        if time.monotonic() > end:
            raise AssertionError("condition never held")
        if step is not None:
            step()
        time.sleep(0.01)


@pytest.fixture
def local(tmp_path):
    root = tmp_path / "root"
    old = _fits(root / "data" / "old.fits", seed=1)
    os.utime(old, (time.time() - 600,) * 2)
    events = EventBus()
    recorder = Recorder(events)
    source = LocalSource(root)
    feed = FrameFeed(source, events=events, settle=30.0).start()
    assert feed.wait_started()
    yield root, feed, recorder
    feed.stop()


# ---------------------------------------------------------------- local folder


def test_the_first_index_holds_the_frames_present_and_is_not_announced(local):
    root, feed, recorder = local
    assert [info.key for info in feed.frames()] == ["data/old.fits"]
    assert feed.directories() == ["data"]
    assert [e for e in recorder.drain() if e.topic == "frame"] == []


def test_a_new_frame_is_announced_once_with_the_agreed_payload(local):
    root, feed, recorder = local
    path = _fits(root / "data" / "new.fits", seed=2)
    event = recorder.wait(_is("frame", "added", "data/new.fits"))
    stat = path.stat()
    assert set(event.data) == {"event", "key", "version", "directory", "name", "size", "modified"}
    assert (event.data["directory"], event.data["name"], event.data["size"]) == ("data", "new.fits", stat.st_size)
    assert event.data["version"] == f"{stat.st_mtime_ns}-{stat.st_size}"
    assert [info.key for info in feed.frames("data")] == ["data/new.fits", "data/old.fits"]
    _fits(root / "data" / "other.fits", seed=3)
    recorder.wait(_is("frame", "added", "data/other.fits"))
    added = [e.data["key"] for e in recorder.drain() if e.topic == "frame" and e.data["event"] == "added"]
    assert added.count("data/new.fits") == 1


def test_a_half_written_frame_is_held_back_until_complete(local, tmp_path):
    root, feed, recorder = local
    whole = _fits_bytes(tmp_path, seed=4)
    half = len(whole) // 2 + 7  # not a whole number of FITS blocks
    path = root / "data" / "slow.fits"
    with open(path, "wb") as stream:
        stream.write(whole[:half])
        stream.flush()
        # The feed has looked at the file (and holds it back).
        _until(lambda: "data/slow.fits" in feed._pending)
        _until(lambda: feed._pending.get("data/slow.fits", ((0, 0), time.time()))[1] < time.time() - 0.3)
        assert feed.get("data/slow.fits") is None
        stream.write(whole[half:])
    event = recorder.wait(_is("frame", "added", "data/slow.fits"))
    assert event.data["size"] == len(whole)
    announced = [e for e in recorder.drain() if e.topic == "frame" and e.data["key"] == "data/slow.fits"]
    assert [e.data["size"] for e in announced] == [len(whole)]


def test_rewritten_and_removed_frames_are_announced(local):
    root, feed, recorder = local
    path = root / "data" / "old.fits"
    before = feed.get("data/old.fits").version
    _fits(path, seed=5, shape=(70, 90))
    changed = recorder.wait(_is("frame", "changed", "data/old.fits"))
    assert changed.data["version"] != before and feed.get("data/old.fits").version == changed.data["version"]
    path.unlink()
    removed = recorder.wait(_is("frame", "removed", "data/old.fits"))
    assert removed.data["key"] == "data/old.fits"
    assert feed.frames() == [] and feed.directories() == []


def test_a_folder_moved_in_is_indexed_and_one_removed_is_forgotten(local, tmp_path):
    root, feed, recorder = local
    outside = tmp_path / "night"
    _fits(outside / "a.fits", seed=6)
    os.rename(outside, root / "night")
    recorder.wait(_is("frame", "added", "night/a.fits"))
    assert "night" in feed.directories()
    shutil.rmtree(root / "night")
    recorder.wait(_is("frame", "removed", "night/a.fits"))
    assert "night" not in feed.directories()


def test_hidden_files_are_not_frames(local):
    root, feed, recorder = local
    (root / ".quickanalysis").mkdir()
    (root / ".quickanalysis" / "x.fits").write_bytes(b"0" * 2880)
    _fits(root / "data" / "seen.fits", seed=7)
    recorder.wait(_is("frame", "added", "data/seen.fits"))
    assert all(not info.key.startswith(".") for info in feed.frames())


# ---------------------------------------------------------------- S3


@pytest.fixture(scope="module")
def s3(moto_server):
    return boto3.client("s3", endpoint_url=moto_server, region_name="us-east-1")


def test_s3_frames_are_announced_from_one_listing_per_poll(s3, moto_server, tmp_path):
    bucket = f"feed-{time.time_ns()}"
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="data/a.fits", Body=_fits_bytes(tmp_path, 1))
    events = EventBus()
    recorder = Recorder(events)
    source = S3Source(bucket, endpoint_url=moto_server, region="us-east-1")
    feed = FrameFeed(source, events=events, poll_seconds=3600)
    feed.scan(announce=False)  # what start() does first
    assert [info.key for info in feed.frames()] == ["data/a.fits"] and source.listings == 1
    s3.put_object(Bucket=bucket, Key="data/b.fits", Body=_fits_bytes(tmp_path, 2))
    feed.scan()
    assert recorder.wait(_is("frame", "added", "data/b.fits")).data["directory"] == "data"
    s3.put_object(Bucket=bucket, Key="data/a.fits", Body=_fits_bytes(tmp_path, 3))
    s3.delete_object(Bucket=bucket, Key="data/b.fits")
    feed.scan()
    recorder.wait(_is("frame", "changed", "data/a.fits"))
    recorder.wait(_is("frame", "removed", "data/b.fits"))
    assert source.listings == 3  # one LIST per poll, whatever reads the index meanwhile
    for _ in range(10):
        feed.frames("data"), feed.directories()
    assert source.listings == 3


class Moto:
    """A moto_server of the test's own, stopped and started again on one port."""

    def __init__(self):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = None

    def start(self):
        executable = shutil.which("moto_server") or str(Path(sys.executable).with_name("moto_server"))
        self.process = subprocess.Popen(
            [executable, "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        wait_for_http(self.url, self.process, timeout=30)

    def stop(self):
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None


@pytest.fixture
def own_moto():
    moto = Moto()
    moto.start()
    yield moto
    moto.stop()


def _s3_frames(moto: Moto, tmp_path: Path, bucket: str):
    client = boto3.client("s3", endpoint_url=moto.url, region_name="us-east-1")
    client.create_bucket(Bucket=bucket)
    client.put_object(Bucket=bucket, Key="data/a.fits", Body=_fits_bytes(tmp_path, 1))
    return client


def test_s3_unreachable_is_said_once_and_back_when_it_is(own_moto, tmp_path):
    _s3_frames(own_moto, tmp_path, "night")
    events = EventBus()
    recorder = Recorder(events)
    from botocore.config import Config

    client = boto3.client("s3", endpoint_url=own_moto.url, region_name="us-east-1",
                          config=Config(connect_timeout=1, read_timeout=2, retries={"max_attempts": 1}))
    feed = FrameFeed(S3Source("night", client=client), events=events, poll_seconds=3600)
    feed.scan(announce=False)
    store = FrameStore(feed.source, ImageCache(10**8))
    session = Session(store=store, feed=feed)
    session.connect(events)
    session.refresh()
    assert session.key == "data/a.fits"

    own_moto.stop()
    assert feed.scan() is False and feed.scan() is False
    down = [e for e in recorder.drain() if e.topic == "storage"]
    assert [e.data["state"] for e in down] == ["unreachable"]
    assert "unreachable" in session.storage
    assert [info.key for info in feed.frames()] == ["data/a.fits"]  # the index survives

    own_moto.start()
    _s3_frames(own_moto, tmp_path, "night").put_object(
        Bucket="night", Key="data/b.fits", Body=_fits_bytes(tmp_path, 2))
    assert feed.scan() is True
    recorder.wait(_is("storage", "reachable"))
    assert session.storage == ""
    assert session.key == "data/b.fits"  # resumed, following, without a new session


# ---------------------------------------------------------------- sessions on the feed


@pytest.fixture
def served(tmp_path):
    """A feed, a store and a quality service over a watched folder (as the app wires them)."""
    root = tmp_path / "root"
    first = _fits(root / "data" / "first.fits", seed=1, shape=(200, 300))
    os.utime(first, (time.time() - 600,) * 2)
    events = EventBus()
    source = LocalSource(root)
    feed = FrameFeed(source, events=events).start()
    assert feed.wait_started()
    store = FrameStore(source, ImageCache(10**9))
    service = QualityService(store, QualityHistory(tmp_path / "q.sqlite3"), feed=feed)
    service.start()
    compute.clear()
    yield root, feed, store, service, events
    service.stop()
    feed.stop()


def _session(store, feed, service, events, pending):
    session = Session(store=store, feed=feed, quality_service=service, directory="data",
                      scheduler=pending.append)
    session.connect(events)
    session.refresh()
    return session


def _pump(pending):
    while pending:
        pending.pop(0)()


def test_two_sessions_follow_a_new_frame_with_one_decode_and_one_analysis(served):
    root, feed, store, service, events = served
    pending: list = []
    sessions = [_session(store, feed, service, events, pending) for _ in range(2)]
    _until(lambda: all(s.image is not None for s in sessions), step=lambda: _pump(pending))
    decodes, statistics_runs = store.cache.decodes, compute.memo.computes
    listings = feed.listings

    path = _fits(root / "data" / "second.fits", seed=2, shape=(200, 300), background=1500.0)
    _until(lambda: all(s.key == "data/second.fits" and s.quality is not None for s in sessions),
           step=lambda: _pump(pending))
    first, second = sessions
    assert first.image is second.image and first.quality is second.quality
    assert store.cache.decodes == decodes + 1  # one decode for the feed, the service and both tabs
    assert service.measurements == 2  # the first frame and the new one, once each
    # Whole-frame statistics, histogram, sample and limits: once each for the new frame.
    assert compute.memo.computes - statistics_runs == 4
    assert all(s.notice == "New frame: second.fits" for s in sessions)
    assert float(np.median(first.image.data)) > 1400
    assert feed.listings == listings  # the sessions listed nothing
    assert path.exists()


def test_a_tab_left_open_lists_nothing(served):
    root, feed, store, service, events = served
    pending: list = []
    session = _session(store, feed, service, events, pending)
    _until(lambda: session.image is not None, step=lambda: _pump(pending))
    listings = feed.listings
    for _ in range(50):
        session.refresh()
        _pump(pending)
    assert feed.listings == listings


def test_the_history_grows_from_quality_events(served):
    root, feed, store, service, events = served
    pending: list = []
    session = _session(store, feed, service, events, pending)
    session.load_history()
    _until(lambda: [r["key"] for r in session.history] == ["data/first.fits"], step=lambda: _pump(pending))
    reads = []
    original = service.history.rows
    service.history.rows = lambda *a, **k: reads.append(a) or original(*a, **k)
    _fits(root / "data" / "third.fits", seed=3, shape=(200, 300))
    _until(lambda: [r["key"] for r in session.history] == ["data/first.fits", "data/third.fits"],
           step=lambda: _pump(pending))
    assert reads == []  # from the event's row: no reading of the history


def test_a_frame_announced_again_after_a_failed_read_is_shown(served):
    """The follow race: a frame whose first read failed must be read again when announced again."""
    root, feed, store, service, events = served
    pending: list = []
    session = _session(store, feed, service, events, pending)
    _until(lambda: session.image is not None, step=lambda: _pump(pending))
    broken = root / "data" / "late.fits"
    broken.write_bytes(b"SIMPLE  =                    T" + b" " * 2850)  # one block, no END
    _until(lambda: "late.fits" in session.error, step=lambda: _pump(pending))
    assert session.key == "data/first.fits"
    _fits(broken, seed=4, shape=(200, 300))
    _until(lambda: session.key == "data/late.fits" and session.error == "", step=lambda: _pump(pending))
    assert session.image.data.shape == (200, 300)


def test_a_page_reading_a_new_frame_holds_the_foreground_until_the_frame_is_shown(served):
    from components.foreground import foreground

    root, feed, store, service, events = served
    pending: list = []
    session = _session(store, feed, service, events, pending)
    _until(lambda: session.image is not None, step=lambda: _pump(pending))
    _pump(pending)
    before = foreground.in_flight
    _fits(root / "data" / "second.fits", seed=2, shape=(200, 300))
    _until(lambda: session.loading, step=lambda: pending and pending.pop(0)())
    assert foreground.in_flight == before + 1  # reading: background work waits
    _until(lambda: session.key == "data/second.fits", step=lambda: _pump(pending))
    _pump(pending)
    assert foreground.in_flight == before  # shown: it may go on


def test_the_background_measurement_waits_while_a_page_shows_a_frame(served, monkeypatch):
    import threading

    import app.quality_service
    from components.foreground import foreground

    root, feed, store, service, events = served
    _until(lambda: service.measurements >= 1)  # the first frame

    class Page:
        pass

    page = Page()
    foreground.busy(page)
    try:
        _fits(root / "data" / "second.fits", seed=2, shape=(200, 300))
        _until(lambda: feed.get("data/second.fits") is not None)
        time.sleep(1.0)  # well within the service's longest wait (3 s)
        assert service.measurements == 1
    finally:
        foreground.done(page)
    _until(lambda: service.measurements == 2)
    # A measurement somebody asks for (a page, the API) does not wait, however long the page is busy.
    monkeypatch.setattr(app.quality_service, "FOREGROUND_WAIT", 3600.0)
    foreground.busy(page)
    try:
        _fits(root / "data" / "third.fits", seed=3, shape=(200, 300))
        _until(lambda: feed.get("data/third.fits") is not None)
        results = []
        asked = threading.Thread(target=lambda: results.append(service.measure("data/third.fits")), daemon=True)
        asked.start()
        asked.join(60)
        assert results and results[0]["key"] == "data/third.fits"
    finally:
        foreground.done(page)
