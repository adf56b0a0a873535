"""Frames in a local folder (the embedded default source).

Files are only read, never opened for writing, and never locked. Keys are
checked before any path is built, and a symlink may point anywhere inside
the root but nowhere outside it.
"""

from __future__ import annotations

import os
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

from components.errors import ImageNotFound, UnsafeKey
from components.sources.base import (
    FrameInfo,
    check_directory,
    check_image_key,
    check_key,
    directories_of,
    is_hidden_or_temporary,
    is_image_name,
    newest_first,
    split_key,
)

__all__ = ["LocalSource"]


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


class LocalSource:
    """Frames under a local folder, named by '/'-separated keys relative to it.

    Parameters
    ----------
    root : path-like
        The folder (it may not exist yet: it then holds no frames).
    settle : float
        A file modified less than ``settle`` seconds ago is listed only once
        two looks saw the same size and mtime: a frame still being copied in
        is not offered half-written. 0 lists everything at once.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> (root / "data").mkdir()
    >>> _ = (root / "data" / "a.fits").write_bytes(b"SIMPLE  =")
    >>> source = LocalSource(root, settle=0)
    >>> [frame.key for frame in source.list_frames()], source.directories()
    (['data/a.fits'], ['data'])
    """

    def __init__(self, root: str | os.PathLike, settle: float = 0.5):
        self.root = Path(root)
        self.settle = float(settle)
        self._lock = threading.Lock()
        # key -> (size, mtime_ns) of files seen while still fresh.
        self._fresh: dict[str, tuple[int, int]] = {}
        #: Walks of the folder (listings) made so far: the frame feed makes them, nobody else on a timer.
        self.listings = 0

    def __repr__(self) -> str:
        return f"LocalSource({str(self.root)!r})"

    @property
    def _real_root(self) -> str:
        # Resolved on every use: the root may be created (or re-linked) later.
        return os.path.realpath(self.root)

    def _resolve(self, relative: str, what: str) -> str:
        root = self._real_root
        path = os.path.realpath(os.path.join(root, *relative.split("/")) if relative else root)
        if not _inside(path, root):
            raise UnsafeKey(f"{what} {relative!r} leaves the root (a link points outside it)")
        return path

    def _frame(self, key: str, stat: os.stat_result) -> FrameInfo:
        directory, name = split_key(key)
        return FrameInfo(
            key=key,
            directory=directory,
            name=name,
            size=int(stat.st_size),
            modified=datetime.fromtimestamp(stat.st_mtime_ns / 1e9, tz=timezone.utc),
            version=f"{stat.st_mtime_ns}-{stat.st_size}",
        )

    def path(self, key: str) -> Path:
        """The real path of a frame (checked: inside the root, an existing image file)."""
        key = check_image_key(key)
        path = self._resolve(key, "key")
        if not os.path.isfile(path):
            raise ImageNotFound(f"Image does not exist: {key}.")
        return Path(path)

    def info(self, key: str) -> FrameInfo:
        """The frame under ``key``.

        Raises
        ------
        UnsafeKey
            The key could leave the root.
        ImageNotFound
            No image file is stored under the key.
        """
        key = check_key(key)
        path = self.path(key)
        try:
            stat = os.stat(path)
        except FileNotFoundError:
            raise ImageNotFound(f"Image does not exist: {key}.") from None
        return self._frame(key, stat)

    def read(self, key: str) -> Path:
        """Where to read the frame from (a path: the decoder opens it read-only)."""
        return self.path(key)

    def _walk(self, directory: str):
        """(key, stat) of every image file below ``directory``, links inside the root only."""
        root = self._real_root
        start = self._resolve(directory, "directory")
        self.listings += 1
        if not os.path.isdir(start):
            return
        pending = [(start, directory)]
        while pending:
            folder, prefix = pending.pop()
            try:
                entries = list(os.scandir(folder))
            except OSError:
                continue  # vanished or unreadable: nothing to list there
            for entry in entries:
                if is_hidden_or_temporary(entry.name):
                    continue
                key = f"{prefix}/{entry.name}" if prefix else entry.name
                try:
                    if entry.is_dir(follow_symlinks=False):
                        pending.append((entry.path, key))
                        continue
                    if not is_image_name(entry.name) or not entry.is_file(follow_symlinks=True):
                        continue
                    if entry.is_symlink() and not _inside(os.path.realpath(entry.path), root):
                        continue
                    yield key, entry.stat(follow_symlinks=True)
                except OSError:
                    continue  # deleted between scandir and stat

    def _settled(self, key: str, stat: os.stat_result, now: float) -> bool:
        if now - stat.st_mtime_ns / 1e9 >= self.settle:
            self._fresh.pop(key, None)
            return True
        look = (stat.st_size, stat.st_mtime_ns)
        previous = self._fresh.get(key)
        self._fresh[key] = look
        return previous == look

    def list_frames(self, directory: str = "") -> list[FrameInfo]:
        """Every complete frame below ``directory`` (recursive), newest first.

        A missing directory holds no frames.
        """
        directory = check_directory(directory)
        now = time.time()
        # Walk outside the lock: sessions listing at once should not queue on the disk.
        found = list(self._walk(directory))
        with self._lock:
            frames = [self._frame(key, stat) for key, stat in found if self._settled(key, stat, now)]
        return newest_first(frames)

    def directories(self) -> list[str]:
        """Folders (and their parents) holding frames, sorted; the root excluded."""
        return directories_of(key for key, _ in self._walk(""))
