"""The frame feed: the one watcher of storage in a process.

A :class:`FrameFeed` keeps the index of a source's frames in memory and says
when one arrives, is rewritten or goes away, on the process's event bus
(topic ``frame``, payload ``{"event": "added"|"changed"|"removed", "key",
"version", "directory", "name", "size", "modified"}``). Dashboard sessions,
the quality service and every later feature read the index
(:meth:`FrameFeed.frames`, :meth:`FrameFeed.directories`) and subscribe to
the bus: nothing else lists storage on a timer, and a page load lists nothing.

* A local folder is watched with ``watchfiles`` (inotify on Linux) in one
  thread. A file still being written is held back: it is announced once two
  looks :attr:`FrameFeed.look` seconds apart see the same size and
  modification time (and, for FITS, a whole number of 2880-byte blocks), or
  once it is :attr:`FrameFeed.settle` seconds old.
* S3 (or any source without a local root) is listed by one poller every
  ``poll_seconds`` however many sessions are open. When a listing fails the
  feed publishes ``storage`` ``{"state": "unreachable", "message"}`` once, and
  ``{"state": "reachable", ...}`` when a listing succeeds again.

The frames present when the feed starts form its first index and are not
announced.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Callable

from components.errors import ImageNotFound, QuickAnalysisError
from components.events import EventBus, bus
from components.sources.base import (
    FrameInfo,
    check_directory,
    directories_of,
    is_hidden_or_temporary,
    is_image_name,
    newest_first,
)

__all__ = ["FrameFeed", "ListingIndex", "frame_event"]

log = logging.getLogger("quickanalysis.feed")

_FITS_NAMES = (".fits", ".fit", ".fts", ".fits.fz", ".fz")
_FITS_BLOCK = 2880


def frame_event(event: str, info: FrameInfo) -> dict:
    """The agreed payload of a ``frame`` event."""
    return {"event": event, **info.to_dict()}


def _whole_fits(name: str, size: int) -> bool:
    """Whether a file of this size could be a complete (uncompressed-container) FITS file."""
    if not name.lower().endswith(_FITS_NAMES):
        return True
    return size > 0 and size % _FITS_BLOCK == 0


def _under(key: str, directory: str) -> bool:
    return not directory or key.startswith(directory + "/")


class FrameFeed:
    """The index of a source's frames, kept current and announced on the event bus.

    Parameters
    ----------
    source : LocalSource or S3Source
        Where frames are stored. A source with a ``root`` folder is watched
        with inotify; any other is listed every ``poll_seconds``.
    events : EventBus, optional
        Where events are published (default: the process's bus).
    poll_seconds : float
        Seconds between two listings of a source that cannot be watched.
    settle : float
        A local file this old is complete whatever the looks said.
    look : float
        Seconds between two looks at a local file still being written.

    Attributes
    ----------
    reachable : bool
        Whether the last listing succeeded.
    """

    def __init__(self, source, events: EventBus | None = None, poll_seconds: float = 2.0,
                 settle: float = 2.0, look: float = 0.1):
        self.source = source
        self.events = events or bus()
        self.poll_seconds = float(poll_seconds)
        self.settle = float(settle)
        self.look = float(look)
        self.reachable = True
        self._index: dict[str, FrameInfo] = {}
        self._sorted: list[FrameInfo] | None = None
        self._directories: list[str] | None = None
        # key -> ((size, mtime_ns), first seen so) of local files not announced yet.
        self._pending: dict[str, tuple[tuple[int, int], float]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._started = threading.Event()

    def __repr__(self) -> str:
        return f"FrameFeed({self.source!r})"

    @property
    def watches_files(self) -> bool:
        """Whether the source is a local folder (watched) rather than listed on a timer."""
        return getattr(self.source, "root", None) is not None

    @property
    def listings(self) -> int:
        """Listings of storage made so far (the source's own count)."""
        return int(getattr(self.source, "listings", 0))

    # ------------------------------------------------------------ reading the index

    def frames(self, directory: str = "") -> list[FrameInfo]:
        """Frames below ``directory`` (recursive), newest first; never touches storage."""
        directory = check_directory(directory)
        with self._lock:
            if self._sorted is None:
                self._sorted = newest_first(self._index.values())
            frames = self._sorted
        if not directory:
            return list(frames)
        return [info for info in frames if _under(info.key, directory)]

    def directories(self) -> list[str]:
        """Folders holding frames, sorted; the root excluded."""
        with self._lock:
            if self._directories is None:
                self._directories = directories_of(self._index)
            return list(self._directories)

    def get(self, key: str) -> FrameInfo | None:
        """The indexed frame under ``key`` (None when not indexed)."""
        with self._lock:
            return self._index.get(key)

    def info(self, key: str) -> FrameInfo:
        """The frame under ``key``: from the index, else asked of the source (one look)."""
        found = self.get(key)
        return found if found is not None else self.source.info(key)

    def subscribe(self, callback: Callable, topic: str = "frame") -> Callable[[], None]:
        """``events.subscribe(callback, topic)``; returns the unsubscribe function."""
        return self.events.subscribe(callback, topic)

    # ------------------------------------------------------------ running

    def start(self) -> "FrameFeed":
        """Index the source (one listing, here), then keep watching it in a thread."""
        if self._thread is None:
            self.scan(announce=False)
            self._thread = threading.Thread(target=self._run, name="frame-feed", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def wait_started(self, timeout: float = 10.0) -> bool:
        """Wait until the watcher is listening (tests write files only after it is)."""
        return self._started.wait(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                if self.watches_files and os.path.isdir(self.source.root):
                    self._watch()
                else:
                    self._started.set()
                    if self._stop.wait(self.poll_seconds):
                        break
                    self.scan()
            except Exception:  # the watcher must outlive any one failure
                log.exception("frame feed failed; listing again")
                if self._stop.wait(self.poll_seconds):
                    break
                self.scan()

    # ------------------------------------------------------------ listing (S3, start, fallback)

    def scan(self, announce: bool = True) -> bool:
        """List the whole source once and bring the index up to date; False when it failed."""
        try:
            if self.watches_files:
                found = self._walk("")
            else:
                found = {info.key: info for info in self.source.list_frames("")}
        except ImageNotFound:
            found = {}
        except Exception as error:  # storage unreachable: say so once
            self._unreachable(error)
            return False
        self._reachable()
        self._reconcile("", found, announce)
        return True

    def _walk(self, directory: str) -> dict[str, FrameInfo]:
        """Complete local frames below ``directory`` (files still being written are looked at later)."""
        found = {}
        now = time.time()
        for key, stat in self.source._walk(directory):
            if self._complete(key, stat, now):
                found[key] = self.source._frame(key, stat)
        return found

    def _reconcile(self, directory: str, found: dict[str, FrameInfo], announce: bool = True) -> None:
        """Make the index below ``directory`` equal ``found``, announcing the differences."""
        events = []
        with self._lock:
            gone = [key for key in self._index
                    if _under(key, directory) and key not in found and key not in self._pending]
            for key in gone:
                events.append(("removed", self._index.pop(key)))
            for key, info in found.items():
                previous = self._index.get(key)
                if previous is None or previous.version != info.version:
                    self._index[key] = info
                    events.append(("added" if previous is None else "changed", info))
            if events:
                self._sorted = self._directories = None
        if announce:
            for event, info in events:
                self._publish(event, info)

    def _publish(self, event: str, info: FrameInfo) -> None:
        log.debug("frame %s: %s", event, info.key)
        self.events.publish("frame", frame_event(event, info))

    def _unreachable(self, error: Exception) -> None:
        if self.reachable:
            self.reachable = False
            message = f"Storage is unreachable: {error}"
            log.warning("%s", message)
            self.events.publish("storage", {"state": "unreachable", "message": message})

    def _reachable(self) -> None:
        if not self.reachable:
            self.reachable = True
            log.info("storage is reachable again")
            self.events.publish("storage", {"state": "reachable", "message": "Storage is reachable again."})

    # ------------------------------------------------------------ watching a folder

    def _relative(self, path: str, root: str) -> str | None:
        relative = os.path.relpath(path, root)
        if relative == "." or relative.startswith(".."):
            return None
        parts = relative.split(os.sep)
        if any(is_hidden_or_temporary(part) for part in parts):
            return None
        return "/".join(parts)

    def _watch(self) -> None:
        import watchfiles

        root = os.path.realpath(self.source.root)

        def wanted(change, path: str) -> bool:
            return self._relative(path, root) is not None

        watcher = watchfiles.watch(
            root, watch_filter=wanted, stop_event=self._stop, debounce=400, step=30,
            rust_timeout=int(self.look * 1000), yield_on_timeout=True, raise_interrupt=False,
        )
        self._started.set()
        # Anything that happened between the first index and the watch starting.
        self.scan()
        for changes in watcher:
            for _, path in changes:
                key = self._relative(path, root)
                if key is not None:
                    self._changed(key, path)
            if self._pending:
                self._look_again()
            if not os.path.isdir(root):
                self._reconcile("", {})
                return  # the root went away: list until it is back

    def _changed(self, key: str, path: str) -> None:
        try:
            if os.path.isdir(path):
                self._rescan(key)
                return
            stat = os.stat(path)
        except OSError:
            stat = None
        if stat is None or not os.path.isfile(path):
            self._gone(key)
            return
        if is_image_name(key.rpartition("/")[2]):
            self._consider(key, stat, time.time())

    def _rescan(self, directory: str) -> None:
        """A folder appeared or moved in: index what it holds."""
        try:
            found = self._walk(directory)
        except QuickAnalysisError:
            return
        self._reconcile(directory, found)

    def _gone(self, key: str) -> None:
        self._pending.pop(key, None)
        with self._lock:
            keys = [k for k in self._index if k == key or k.startswith(key + "/")]
            removed = [self._index.pop(k) for k in keys]
            if removed:
                self._sorted = self._directories = None
        for info in removed:
            self._publish("removed", info)

    def _complete(self, key: str, stat: os.stat_result, now: float) -> bool:
        """Whether a local file is complete; if not, remember this look at it."""
        look = (int(stat.st_size), int(stat.st_mtime_ns))
        if now - stat.st_mtime_ns / 1e9 >= self.settle:
            self._pending.pop(key, None)
            return True
        previous = self._pending.get(key)
        if previous is not None and previous[0] == look and now - previous[1] >= self.look * 0.9:
            if _whole_fits(key, look[0]):
                self._pending.pop(key, None)
                return True
        if previous is None or previous[0] != look:
            self._pending[key] = (look, now)
        return False

    def _consider(self, key: str, stat: os.stat_result, now: float) -> None:
        info = self.source._frame(key, stat)
        current = self.get(key)
        if current is not None and current.version == info.version:
            self._pending.pop(key, None)
            return
        if not self._complete(key, stat, now):
            return
        with self._lock:
            self._index[key] = info
            self._sorted = self._directories = None
        self._publish("added" if current is None else "changed", info)

    def _look_again(self) -> None:
        root = os.path.realpath(self.source.root)
        now = time.time()
        for key in list(self._pending):
            path = os.path.join(root, *key.split("/"))
            try:
                stat = os.stat(path)
            except OSError:
                self._pending.pop(key, None)
                continue
            self._consider(key, stat, now)


class ListingIndex:
    """The index interface of :class:`FrameFeed` over a store, listing it at every call.

    For scripts and tests that run a session without a feed; a served
    dashboard always reads a :class:`FrameFeed`.
    """

    def __init__(self, store):
        self.store = store

    def frames(self, directory: str = "") -> list[FrameInfo]:
        try:
            return list(self.store.list_frames(directory))
        except ImageNotFound:
            return []

    def directories(self) -> list[str]:
        return directories_of(info.key for info in self.frames(""))

    def get(self, key: str) -> FrameInfo | None:
        try:
            return self.store.info(key)
        except QuickAnalysisError:
            return None

    def info(self, key: str) -> FrameInfo:
        return self.store.info(key)
