"""Process-wide state shared by every dashboard session and API request."""

from __future__ import annotations

import threading

from app.settings import get_settings
from components.sources import FrameStore, store_from_settings

__all__ = ["get_store", "reset_store"]

_lock = threading.Lock()
_store: FrameStore | None = None


def get_store() -> FrameStore:
    """The frame store (source + decoded-image cache) of this process."""
    global _store
    with _lock:
        if _store is None:
            _store = store_from_settings(get_settings())
        return _store


def reset_store() -> None:
    """Forget the store, so the next call builds it from the current settings."""
    global _store
    with _lock:
        _store = None
