"""Process-wide state shared by every dashboard session and API request."""

from __future__ import annotations

import threading

from app.settings import get_settings
from components.sources import FrameStore, store_from_settings

__all__ = ["get_store", "get_quality_service", "reset_store"]

_lock = threading.Lock()
_store: FrameStore | None = None
_quality = None


def get_store() -> FrameStore:
    """The frame store (source + decoded-image cache) of this process."""
    global _store
    with _lock:
        if _store is None:
            _store = store_from_settings(get_settings())
        return _store


def get_quality_service():
    """The background quality service of this process (started on first use)."""
    global _quality
    store = get_store()
    with _lock:
        if _quality is None:
            from app.quality_service import QualityService
            from components.sources.history import QualityHistory

            settings = get_settings()
            _quality = QualityService(
                store,
                QualityHistory(settings.history_path()),
                thresholds=settings.thresholds(),
                saturation=settings.saturation_level,
                pixel_scale=settings.pixel_scale,
            )
            if settings.quality:
                _quality.start()
        return _quality


def reset_store() -> None:
    """Forget the store, so the next call builds it from the current settings."""
    global _store, _quality
    with _lock:
        if _quality is not None:
            _quality.stop()
        _store = _quality = None
