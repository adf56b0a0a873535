"""The one single-flight memo of the process, and the one executor for background work.

:class:`Memo` is the only single-flight implementation of the project: decoded
images (:class:`ImageCache`), the whole-frame numbers of the panes
(:mod:`components.views.compute`) and quality measurements
(:class:`app.quality_service.QualityService`) all go through it, so ten
observers opening the newest frame cause one decode and one analysis.

A caller either blocks (:meth:`Memo.get`: computed in the caller's thread,
or waiting for the computation in progress) or does not (:meth:`Memo.future`:
computed by :func:`executor`). A blocking caller that finds a computation
still queued in the executor runs it itself, so executor threads waiting on
one another can never deadlock.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from typing import Any, Callable, Hashable

from components.sources.image import Image

__all__ = ["Memo", "ImageCache", "executor"]

_executor: ThreadPoolExecutor | None = None
_executor_lock = threading.Lock()


def executor() -> ThreadPoolExecutor:
    """The process-wide worker threads (decoding, analysis, sessions' background work).

    One pool for the whole process, never one per session: most of the work
    (reading, decompressing, numba kernels) releases the GIL.
    """
    global _executor
    with _executor_lock:
        if _executor is None:
            workers = max(4, 2 * (os.cpu_count() or 2))
            _executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="qa-work")
        return _executor


class _Task:
    """One computation of a memo entry: run once, by whoever gets to it first."""

    __slots__ = ("compute", "future", "_started", "_lock")

    def __init__(self, compute: Callable[[], Any]):
        self.compute = compute
        self.future: Future = Future()
        self._started = False
        self._lock = threading.Lock()

    def claim(self) -> bool:
        with self._lock:
            if self._started:
                return False
            self._started = True
            return True


class Memo:
    """Thread-safe least-recently-used memo with single-flight computation.

    Parameters
    ----------
    max_entries : int or None
        Most entries kept (None: no bound on the count).
    max_bytes : int or None
        Upper bound on the summed ``size(value)`` kept (None: no bound). A
        value larger than the bound is returned to its callers but not kept.
    size : callable, optional
        Size of a value in bytes (needed with ``max_bytes``).

    Attributes
    ----------
    hits, misses : int
        Look-ups that found the value kept, or did not (a look-up that joins a
        computation in progress is a miss).
    computes : int
        Computations started (at most one at a time per key).

    Examples
    --------
    >>> memo = Memo(max_entries=2)
    >>> memo.get("a", lambda: 1), memo.get("a", lambda: 2), memo.computes
    (1, 1, 1)
    """

    def __init__(self, max_entries: int | None = None, max_bytes: int | None = None,
                 size: Callable[[Any], int] | None = None):
        self.max_entries = max_entries
        self.max_bytes = None if max_bytes is None else int(max_bytes)
        self._size = size or (lambda value: 0)
        self._values: OrderedDict[Hashable, Any] = OrderedDict()
        self._sizes: dict[Hashable, int] = {}
        self._pending: dict[Hashable, _Task] = {}
        self._lock = threading.Lock()
        self._nbytes = 0
        self.hits = 0
        self.misses = 0
        self.computes = 0

    def __len__(self) -> int:
        with self._lock:
            return len(self._values)

    def __contains__(self, key: Hashable) -> bool:
        with self._lock:
            return key in self._values

    @property
    def nbytes(self) -> int:
        """Summed size of the values kept now."""
        return self._nbytes

    def keys(self) -> list:
        """Keys kept, least recently used first."""
        with self._lock:
            return list(self._values)

    def peek(self, key: Hashable, default=None):
        """The value kept under ``key`` (``default`` when absent); never computes."""
        with self._lock:
            if key in self._values:
                self._values.move_to_end(key)
                return self._values[key]
            return default

    def pending(self, key: Hashable) -> bool:
        """Whether ``key`` is being computed (or queued) right now."""
        with self._lock:
            return key in self._pending

    def _lookup(self, key: Hashable, compute: Callable[[], Any]) -> tuple[Any, _Task | None, bool]:
        """(value, None, _) when kept; else (None, task, created)."""
        with self._lock:
            if key in self._values:
                self._values.move_to_end(key)
                self.hits += 1
                return self._values[key], None, False
            self.misses += 1
            task = self._pending.get(key)
            if task is not None:
                return None, task, False
            task = self._pending[key] = _Task(compute)
            return None, task, True

    def _run(self, key: Hashable, task: _Task) -> None:
        """Compute ``task`` (the caller has claimed it) and settle its future."""
        with self._lock:
            self.computes += 1
        try:
            value = task.compute()
        except BaseException as error:
            with self._lock:
                self._pending.pop(key, None)
            task.future.set_exception(error)
            return
        with self._lock:
            self._pending.pop(key, None)
            self._keep(key, value)
        task.future.set_result(value)

    def get(self, key: Hashable, compute: Callable[[], Any]) -> Any:
        """The value under ``key``, computed by ``compute()`` (in this thread) when absent.

        Concurrent callers wait for the one computation; its exception reaches
        each of them, and nothing is kept then (the next call tries again).
        """
        value, task, _ = self._lookup(key, compute)
        if task is None:
            return value
        if task.claim():
            self._run(key, task)
        return task.future.result()

    def future(self, key: Hashable, compute: Callable[[], Any], pool: Executor | None = None) -> Future:
        """A future of the value under ``key``; never blocks (computed in ``pool``, default :func:`executor`)."""
        value, task, created = self._lookup(key, compute)
        if task is None:
            done: Future = Future()
            done.set_result(value)
            return done
        if created:
            def run():
                if task.claim():
                    self._run(key, task)

            (pool or executor()).submit(run)
        return task.future

    def put(self, key: Hashable, value: Any) -> None:
        """Keep ``value`` under ``key`` (replacing any)."""
        with self._lock:
            self._keep(key, value)

    def _keep(self, key: Hashable, value: Any) -> None:
        size = int(self._size(value))
        if self.max_bytes is not None and size > self.max_bytes:
            return
        self._forget(key)
        self._values[key] = value
        self._sizes[key] = size
        self._nbytes += size
        while (self.max_bytes is not None and self._nbytes > self.max_bytes) or (
            self.max_entries is not None and len(self._values) > self.max_entries
        ):
            evicted, _ = self._values.popitem(last=False)
            self._nbytes -= self._sizes.pop(evicted, 0)

    def _forget(self, key: Hashable) -> None:
        if key in self._values:
            del self._values[key]
            self._nbytes -= self._sizes.pop(key, 0)

    def discard(self, key: Hashable) -> None:
        """Forget one value (no error when absent)."""
        with self._lock:
            self._forget(key)

    def discard_where(self, predicate: Callable[[Hashable], bool]) -> None:
        """Forget every value whose key matches ``predicate``."""
        with self._lock:
            for key in [key for key in self._values if predicate(key)]:
                self._forget(key)

    def clear(self) -> None:
        """Forget every value (counters are kept)."""
        with self._lock:
            self._values.clear()
            self._sizes.clear()
            self._nbytes = 0


class ImageCache(Memo):
    """The decoded images of the process: a :class:`Memo` bounded by ``Image.nbytes``.

    Parameters
    ----------
    max_bytes : int
        Upper bound on the summed ``Image.nbytes`` kept. An image larger than
        the bound is returned to its caller but not kept.

    Attributes
    ----------
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
        super().__init__(max_bytes=max_bytes, size=lambda image: image.nbytes)

    @property
    def decodes(self) -> int:
        return self.computes

    def get(self, cache_key: Hashable, loader: Callable[[], Image]) -> Image:
        """The image cached under ``cache_key``, decoded by ``loader()`` when absent."""
        return super().get(cache_key, loader)
