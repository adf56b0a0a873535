"""A process-wide cache of decoded images, bounded by their bytes.

Every dashboard session and API request goes through one cache, so ten
observers opening the newest frame decode it once: concurrent requests for
one key wait for the first one's decode (single flight) instead of repeating it.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from concurrent.futures import Future
from typing import Callable, Hashable

from components.sources.image import Image

__all__ = ["ImageCache"]


class ImageCache:
    """Thread-safe least-recently-used cache of :class:`Image`, bounded by ``nbytes``.

    Parameters
    ----------
    max_bytes : int
        Upper bound on the summed ``Image.nbytes`` kept. An image larger than
        the bound is returned to its caller but not kept.

    Attributes
    ----------
    hits, misses : int
        Calls of :meth:`get` that found the image cached, or did not (a call
        that waits for another call's decode is a miss).
    decodes : int
        Calls of a loader (at most one at a time per key).

    Examples
    --------
    >>> import numpy as np
    >>> from astropy.io import fits
    >>> cache = ImageCache(max_bytes=1_000)
    >>> load = lambda: Image(np.zeros((10, 10), np.uint8), fits.Header())
    >>> cache.get("a", load) is cache.get("a", load), cache.hits, cache.decodes
    (True, 1, 1)
    """

    def __init__(self, max_bytes: int):
        self.max_bytes = int(max_bytes)
        self._images: OrderedDict[Hashable, Image] = OrderedDict()
        self._pending: dict[Hashable, Future] = {}
        self._lock = threading.Lock()
        self._nbytes = 0
        self.hits = 0
        self.misses = 0
        self.decodes = 0

    def __len__(self) -> int:
        with self._lock:
            return len(self._images)

    def __contains__(self, cache_key: Hashable) -> bool:
        with self._lock:
            return cache_key in self._images

    @property
    def nbytes(self) -> int:
        """Bytes of the images kept now."""
        return self._nbytes

    def keys(self) -> list:
        """Cached keys, least recently used first."""
        with self._lock:
            return list(self._images)

    def get(self, cache_key: Hashable, loader: Callable[[], Image]) -> Image:
        """The image cached under ``cache_key``, decoded by ``loader()`` when absent.

        Exceptions of ``loader`` reach every caller waiting for that decode;
        nothing is cached then, so the next call tries again.
        """
        with self._lock:
            image = self._images.get(cache_key)
            if image is not None:
                self._images.move_to_end(cache_key)
                self.hits += 1
                return image
            self.misses += 1
            pending = self._pending.get(cache_key)
            owner = pending is None
            if owner:
                pending = self._pending[cache_key] = Future()
                self.decodes += 1
        if not owner:
            return pending.result()
        try:
            image = loader()
        except BaseException as error:
            with self._lock:
                del self._pending[cache_key]
            pending.set_exception(error)
            raise
        with self._lock:
            del self._pending[cache_key]
            self._store(cache_key, image)
        pending.set_result(image)
        return image

    def _store(self, cache_key: Hashable, image: Image) -> None:
        size = image.nbytes
        if size > self.max_bytes:
            return
        old = self._images.pop(cache_key, None)
        if old is not None:
            self._nbytes -= old.nbytes
        self._images[cache_key] = image
        self._nbytes += size
        while self._nbytes > self.max_bytes:
            _, evicted = self._images.popitem(last=False)
            self._nbytes -= evicted.nbytes

    def discard(self, cache_key: Hashable) -> None:
        """Forget one image (no error when absent)."""
        with self._lock:
            old = self._images.pop(cache_key, None)
            if old is not None:
                self._nbytes -= old.nbytes

    def clear(self) -> None:
        """Forget every image (counters are kept)."""
        with self._lock:
            self._images.clear()
            self._nbytes = 0
