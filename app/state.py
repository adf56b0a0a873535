"""Process-wide state shared by every dashboard session and API request.

The app wires the components together here: one frame store (source and
decoded-image cache), one frame feed watching the store's source, and one
quality service subscribed to the feed.
"""

from __future__ import annotations

import threading

from app.settings import get_settings
from components.sources import FrameStore, store_from_settings

__all__ = ["get_store", "get_feed", "get_quality_service", "reset_store"]

_lock = threading.RLock()
_store: FrameStore | None = None
_feed = None
_quality = None


def get_store() -> FrameStore:
    """The frame store (source + decoded-image cache) of this process."""
    global _store
    with _lock:
        if _store is None:
            _store = store_from_settings(get_settings())
        return _store


def get_feed():
    """The frame feed of this process (the one watcher of storage), started on first use."""
    global _feed
    with _lock:
        if _feed is None:
            from components.sources.feed import FrameFeed

            settings = get_settings()
            _feed = FrameFeed(get_store().source, poll_seconds=settings.s3_poll_seconds).start()
        return _feed


def get_quality_service():
    """The quality service of this process (subscribed to the feed on first use)."""
    global _quality
    with _lock:
        if _quality is None:
            from app.quality_service import QualityService
            from components.sources.history import QualityHistory

            settings = get_settings()
            _quality = QualityService(
                get_store(),
                QualityHistory(settings.history_path()),
                thresholds=settings.thresholds(),
                saturation=settings.saturation_level,
                pixel_scale=settings.pixel_scale,
                feed=get_feed(),
            )
            if settings.quality:
                _quality.start()
        return _quality


def reset_store() -> None:
    """Forget the store, feed and service, so the next call builds them from the current settings."""
    global _store, _feed, _quality
    with _lock:
        if _quality is not None:
            _quality.stop()
        if _feed is not None:
            _feed.stop()
        _store = _feed = _quality = None
