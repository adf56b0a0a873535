"""Every frame analysed once, as soon as the frame feed announces it.

The :class:`QualityService` subscribes to the frame feed (topic ``frame``).
For each frame announced it

1. prepares what every dashboard tab needs first, in the process-wide
   executor: the decoded image and its whole-frame statistics, histogram and
   display limits (:func:`prepare_frame`), so the following tabs find them
   ready;
2. measures its quality (one worker thread, newest frame first), records it
   in the SQLite history and publishes the history row on the bus (topic
   ``quality``, with ``"directory"``).

Everything goes through the process's single-flight memos
(:class:`components.sources.cache.Memo`): a frame version is decoded once and
measured once however many sessions and API requests ask meanwhile.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import Future
from datetime import datetime

from astropy.time import Time

from app.settings import get_settings
from components.core import subregion_slices
from components.core.drift import frame_centre
from components.core.focus import focus_position
from components.core.quality import QualityThresholds, quality
from components.errors import QuickAnalysisError
from components.events import EventBus, bus
from components.foreground import foreground
from components.sources import FrameStore, Image
from components.sources.cache import Memo, executor
from components.sources.history import QualityHistory

__all__ = ["QualityService", "observed_time", "prepare_frame", "PREPARED_CLIP", "PREPARED_INTERVAL"]

log = logging.getLogger("quickanalysis.quality")

#: What a new tab shows first (the Session's defaults): prepared for every frame announced.
PREPARED_CLIP = 0.001
PREPARED_INTERVAL = "zscale"
#: Longest wait (seconds) of a measurement for the pages showing a frame (components.foreground).
FOREGROUND_WAIT = 3.0


def observed_time(image: Image, fallback: datetime) -> float:
    """Epoch seconds of DATE-OBS (UTC), or of ``fallback`` when the header has none."""
    value = image.header.get("DATE-OBS") if image.header is not None else None
    if value:
        try:
            return float(Time(str(value), scale="utc").unix)
        except (ValueError, TypeError):
            pass
    return fallback.timestamp()


def prepare_frame(store: FrameStore, info) -> Image:
    """Decode a frame and compute the whole-frame numbers a new tab shows first (memoised)."""
    from components.views import compute

    image = store.load(info.key, info=info)
    compute.region_statistics(image)
    compute.region_histogram(image, None, PREPARED_CLIP)
    compute.display_limits(image, PREPARED_INTERVAL)
    return image


class QualityService:
    """Measures and records the quality of frames of a :class:`FrameStore`.

    Parameters
    ----------
    store : FrameStore
        Where frames come from (decoded once, through the shared cache).
    history : QualityHistory
        Where each frame's metrics are recorded.
    thresholds : QualityThresholds
        Limits of the verdicts.
    saturation, pixel_scale : float, optional
        Fallbacks when a header says nothing.
    feed : FrameFeed, optional
        The process's frame feed; without one, :meth:`start` starts a feed of
        its own over ``store.source``.
    events : EventBus, optional
        Where ``quality`` is published (default: the feed's, else the process's bus).
    prepare : bool
        Prepare every frame announced for the dashboard (:func:`prepare_frame`).
    remembered : int
        Measurements kept in memory (the star overlay of recent frames).

    Attributes
    ----------
    measurements : int
        Quality measurements made (one per frame version and region).
    """

    def __init__(
        self,
        store: FrameStore,
        history: QualityHistory,
        thresholds: QualityThresholds | None = None,
        saturation: float | None = None,
        pixel_scale: float | None = None,
        feed=None,
        events: EventBus | None = None,
        prepare: bool = True,
        remembered: int = 64,
        interval: float = 2.0,
    ):
        self.store, self.history = store, history
        self.thresholds = thresholds or QualityThresholds()
        self.saturation, self.pixel_scale = saturation, pixel_scale
        self.feed = feed
        self.events = events or (feed.events if feed is not None else bus())
        self.prepare = prepare
        self.interval = interval
        self._results = Memo(max_entries=remembered)
        self._own_feed = False
        self._queue: dict[str, object] = {}  # key -> FrameInfo waiting for its measurement
        self._condition = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._unsubscribe = None
        self._done = history.seen()

    @property
    def measurements(self) -> int:
        return self._results.computes

    # ------------------------------------------------------------ running

    def start(self) -> None:
        """Subscribe to the feed and measure, newest first, every frame not recorded yet."""
        if self._thread is not None:
            return
        if self.feed is None:
            from components.sources.feed import FrameFeed

            self.feed = FrameFeed(self.store.source, events=self.events, poll_seconds=self.interval)
            self._own_feed = True
        self._unsubscribe = self.feed.subscribe(self._on_frame, "frame")
        if self._own_feed:
            self.feed.start()
        for info in reversed(self.feed.frames()):
            if (info.key, info.version) not in self._done:
                self._enqueue(info)
        self._thread = threading.Thread(target=self._run, name="quality", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        with self._condition:
            self._condition.notify_all()
        if self._unsubscribe is not None:
            self._unsubscribe()
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._own_feed:
            self.feed.stop()

    def _on_frame(self, event) -> None:
        """A ``frame`` event (in the feed's thread: hand the work on at once)."""
        data = event.data
        if data.get("event") not in ("added", "changed"):
            return
        info = self.feed.get(data["key"])
        if info is None or info.version != data.get("version"):
            return  # already superseded
        if self.prepare:
            executor().submit(self._prepare, info)
        self._enqueue(info)

    def _prepare(self, info) -> None:
        try:
            prepare_frame(self.store, info)
        except QuickAnalysisError as error:
            log.info("cannot prepare %s: %s", info.key, error)
        except Exception:
            log.exception("preparing %s failed", info.key)

    def _enqueue(self, info) -> None:
        with self._condition:
            self._queue[info.key] = info
            self._condition.notify()

    def request(self, key: str) -> None:
        """Measure ``key`` soon (non-blocking); a ``quality`` event says when it is done."""
        try:
            info = self.feed.info(key) if self.feed is not None else self.store.info(key)
        except QuickAnalysisError:
            return
        self._enqueue(info)

    def _next(self):
        with self._condition:
            while not self._queue and not self._stop.is_set():
                self._condition.wait()
            if self._stop.is_set():
                return None
            key = max(self._queue, key=lambda k: (self._queue[k].modified, k))
            return self._queue.pop(key)

    def _run(self) -> None:
        while not self._stop.is_set():
            info = self._next()
            if info is None:
                break
            # Pages showing a frame first: measuring holds the GIL for long stretches. Only
            # here, in the background: a page or an API request asking for it does not wait.
            foreground.wait_quiet(timeout=FOREGROUND_WAIT)
            try:
                self.record(info.key, info)
            except Exception:  # a bad frame must not end the worker
                log.exception("measuring %s failed", info.key)

    # ------------------------------------------------------------ measuring

    def _memo_key(self, info, hdu, region) -> tuple:
        return (id(self.store), info.key, info.version, hdu, region)

    def result(self, key: str, version: str, hdu=None):
        """The measurement of that frame version, if made already (never measures)."""
        return self._results.peek((id(self.store), key, version, hdu, None))

    def measuring(self, key: str, version: str, hdu=None) -> bool:
        """Whether that frame version is being measured, or waits in the queue."""
        if self._results.pending((id(self.store), key, version, hdu, None)):
            return True
        with self._condition:
            queued = self._queue.get(key)
        return hdu is None and queued is not None and queued.version == version

    def measure(self, key: str, hdu=None, region: tuple[float, float, float, float] | None = None,
                info=None) -> dict:
        """Quality of a frame (or of a relative sub-region), with star positions in frame pixels.

        Measured once per frame version: concurrent callers (the background
        worker and any number of sessions) wait for the one measurement.
        """
        if info is None or info.key != key:
            info = self.feed.info(key) if self.feed is not None else self.store.info(key)
        return self._results.get(
            self._memo_key(info, hdu, region), lambda: self._measure(info, hdu, region),
        )

    def measure_future(self, key: str, hdu=None, info=None) -> Future:
        """A future of :meth:`measure` that never blocks the caller (measured in the executor)."""
        if info is None or info.key != key:
            info = self.feed.info(key) if self.feed is not None else self.store.info(key)
        return self._results.future(
            self._memo_key(info, hdu, None), lambda: self._measure(info, hdu, None),
        )

    def _measure(self, info, hdu, region) -> dict:
        image = self.store.load(info.key, hdu, info=info)
        data, dx, dy = image.data, 0, 0
        if region is not None:  # subregion()'s own span rule gives the offset of the stars
            rows, columns = subregion_slices(image.data.shape, *region)
            data, dy, dx = image.data[rows, columns], rows.start, columns.start
        result = quality(
            data, image.header, wcs=image.wcs, saturation=self.saturation,
            pixel_scale=self.pixel_scale, thresholds=self.thresholds,
        )
        if dx or dy:
            result["stars"]["x"] = [x + dx for x in result["stars"]["x"]]
            result["stars"]["y"] = [y + dy for y in result["stars"]["y"]]
        result["key"], result["version"], result["hdu"] = info.key, info.version, image.hdu
        result["observed"] = observed_time(image, info.modified)
        result["focus"] = focus_position(image.header, get_settings().focus_keyword)
        result["center_ra"], result["center_dec"] = frame_centre(image.wcs, image.data.shape) or (None, None)
        return result

    def record(self, key: str, info=None) -> dict | None:
        """Measure one frame, record it in the history (errors too) and publish the row."""
        if info is None or info.key != key:
            info = self.feed.info(key) if self.feed is not None else self.store.info(key)
        try:
            result = self.measure(key, info=info)
        except QuickAnalysisError as error:
            self.history.record(key, info.version, info.modified.timestamp(), error=str(error))
            result = None
        self._done.add((key, info.version))
        if result is not None:
            self.history.record(key, info.version, result["observed"], result)
        row = self.history.latest(key)
        if row is not None:
            log.debug("recorded %s (%s)", key, info.version)
            self.events.publish("quality", row)
        return result

    def pending(self) -> list[str]:
        """Keys of frames not measured yet, newest first."""
        frames = self.feed.frames() if self.feed is not None else self.store.list_frames()
        return [f.key for f in frames if (f.key, f.version) not in self._done]

