"""Quality of every frame, measured in the background and recorded in the session's history.

One worker thread per server process: it never blocks a dashboard session or an
API request, and each frame version is measured once (results are kept in
memory for the dashboard's star overlay and in SQLite for the timeline).
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from concurrent.futures import Future
from datetime import datetime

from astropy.time import Time

from app.settings import get_settings
from components.core import subregion
from components.core.drift import frame_centre
from components.core.focus import focus_position
from components.core.quality import QualityThresholds, quality
from components.errors import QuickAnalysisError
from components.sources import FrameStore, Image
from components.sources.history import QualityHistory

__all__ = ["QualityService", "observed_time"]

log = logging.getLogger("quickanalysis.quality")


def observed_time(image: Image, fallback: datetime) -> float:
    """Epoch seconds of DATE-OBS (UTC), or of ``fallback`` when the header has none."""
    value = image.header.get("DATE-OBS") if image.header is not None else None
    if value:
        try:
            return float(Time(str(value), scale="utc").unix)
        except (ValueError, TypeError):
            pass
    return fallback.timestamp()


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
    interval : float
        Seconds between two looks for new frames.
    """

    def __init__(
        self,
        store: FrameStore,
        history: QualityHistory,
        thresholds: QualityThresholds | None = None,
        saturation: float | None = None,
        pixel_scale: float | None = None,
        interval: float = 1.0,
        remembered: int = 64,
    ):
        self.store, self.history = store, history
        self.thresholds = thresholds or QualityThresholds()
        self.saturation, self.pixel_scale = saturation, pixel_scale
        self.interval = interval
        self._results: OrderedDict = OrderedDict()
        self._measuring: dict = {}
        self._remembered = remembered
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._done = history.seen()

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="quality", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def measure(self, key: str, hdu=None, region: tuple[float, float, float, float] | None = None) -> dict:
        """Quality of a frame (or of a relative sub-region), with star positions in frame pixels.

        Measured once per frame version: concurrent callers (the background
        worker and any number of sessions) wait for the one measurement.
        """
        info = self.store.info(key)
        cache_key = (key, info.version, hdu, region)
        with self._lock:
            if cache_key in self._results:
                self._results.move_to_end(cache_key)
                return self._results[cache_key]
            pending = self._measuring.get(cache_key)
            owner = pending is None
            if owner:
                pending = self._measuring[cache_key] = Future()
        if not owner:
            return pending.result()
        try:
            result = self._measure(info, hdu, region)
        except BaseException as error:
            pending.set_exception(error)
            raise
        finally:
            with self._lock:
                self._measuring.pop(cache_key, None)
        with self._lock:
            self._results[cache_key] = result
            while len(self._results) > self._remembered:
                self._results.popitem(last=False)
        pending.set_result(result)
        return result

    def _measure(self, info, hdu, region) -> dict:
        image = self.store.load(info.key, hdu)
        data, dx, dy = image.data, 0, 0
        if region is not None:
            height, width = image.data.shape
            data = subregion(image.data, *region)
            dy = int(round(min(region[1], region[3]) * height))
            dx = int(round(min(region[0], region[2]) * width))
            dy, dx = min(dy, height - 1), min(dx, width - 1)
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

    def record(self, key: str) -> dict | None:
        """Measure one frame and record it in the history (errors are recorded too)."""
        info = self.store.info(key)
        try:
            result = self.measure(key)
        except QuickAnalysisError as error:
            self.history.record(key, info.version, info.modified.timestamp(), error=str(error))
            result = None
        self._done.add((key, info.version))
        if result is not None:
            self.history.record(key, info.version, result["observed"], result)
        return result

    def pending(self) -> list[str]:
        """Keys of frames not measured yet, newest first."""
        return [f.key for f in self.store.list_frames() if (f.key, f.version) not in self._done]

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                for key in self.pending():
                    if self._stop.is_set():
                        break
                    self.record(key)
            except Exception:  # a bad scan must not end the worker
                log.exception("quality scan failed")
            self._stop.wait(self.interval)
