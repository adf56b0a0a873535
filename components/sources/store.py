"""The frame store: a source, the decoded-image cache, and the request rules.

Views and the REST API go through a :class:`FrameStore` only: it lists
frames, turns the original service's ``(s3_directory, full_filename)`` into
a key, and decodes each version of a frame once for everybody.
"""

from __future__ import annotations

import threading
from typing import Sequence

from components.sources.base import FrameInfo, FrameSource, frame_key
from components.sources.cache import ImageCache
from components.sources.decode import DEFAULT_MAX_FRAME_BYTES
from components.sources.image import Image, load_image, normalize_hdu
from components.sources.local import LocalSource
from components.sources.s3 import S3Source

__all__ = ["FrameStore", "store_from_settings", "shared_cache", "DEFAULT_DIRECTORIES"]

#: The original service's values of ``s3_directory``.
DEFAULT_DIRECTORIES = ("data", "info-images", "allsky")

_cache_lock = threading.Lock()
_shared_cache: ImageCache | None = None


def shared_cache(max_bytes: int) -> ImageCache:
    """The process-wide image cache (rebuilt only if ``max_bytes`` changes)."""
    global _shared_cache
    with _cache_lock:
        if _shared_cache is None or _shared_cache.max_bytes != int(max_bytes):
            _shared_cache = ImageCache(max_bytes)
        return _shared_cache


class FrameStore:
    """Frames of one source, decoded through a shared cache.

    Parameters
    ----------
    source : LocalSource or S3Source
        Where frames are stored.
    cache : ImageCache
        Decoded images; keyed by source, key, version and HDU, so a rewritten
        frame is decoded again.
    allowed_directories : sequence of str
        Values of ``s3_directory`` that :meth:`key_for` accepts.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from components.core.synthetic import star_field, write_fits
    >>> root = pathlib.Path(tempfile.mkdtemp()); (root / "data").mkdir()
    >>> _ = write_fits(star_field((32, 48), n_stars=3, seed=0), root / "data" / "a.fits")
    >>> store = FrameStore(LocalSource(root, settle=0), ImageCache(10**8))
    >>> store.load(store.key_for("data", "a.fits")).data.shape
    (32, 48)
    """

    def __init__(
        self,
        source: FrameSource,
        cache: ImageCache,
        allowed_directories: Sequence[str] = DEFAULT_DIRECTORIES,
        max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
    ):
        self.max_frame_bytes = int(max_frame_bytes)  # larger frames: FrameTooLarge (413)
        self.source = source
        self.cache = cache
        self.allowed_directories = tuple(allowed_directories)
        self._lock = threading.Lock()
        self._current: dict[tuple, tuple] = {}

    def __repr__(self) -> str:
        return f"FrameStore({self.source!r})"

    def list_frames(self, directory: str = "") -> list[FrameInfo]:
        """Frames below ``directory`` (recursive), newest first."""
        return self.source.list_frames(directory)

    def directories(self) -> list[str]:
        """Folders holding frames, sorted; the root excluded."""
        return self.source.directories()

    def info(self, key: str) -> FrameInfo:
        """The frame under ``key`` (UnsafeKey / ImageNotFound as the source)."""
        return self.source.info(key)

    def key_for(self, s3_directory: str, full_filename: str) -> str:
        """The key of the original service's ``(s3_directory, full_filename)``."""
        return frame_key(s3_directory, full_filename, self.allowed_directories)

    def peek(self, key: str, hdu: int | str | None = None, info: FrameInfo | None = None) -> Image | None:
        """The decoded frame if the cache holds its current version already (never decodes)."""
        hdu = normalize_hdu(hdu)
        if info is None or info.key != key:
            info = self.source.info(key)
        return self.cache.peek((id(self.source), info.key, info.version, hdu))

    def load(self, key: str, hdu: int | str | None = None, info: FrameInfo | None = None) -> Image:
        """The decoded frame under ``key`` (current version), through the cache.

        ``info`` (e.g. from the frame feed's index) saves asking the source
        which version is current.

        Raises
        ------
        UnsafeKey, ImageNotFound
            As :meth:`info`.
        ImageReadError
            The stored bytes are not a readable image (or lack ``hdu``).
        """
        hdu = normalize_hdu(hdu)
        if info is None or info.key != key:
            info = self.source.info(key)
        cache_key = (id(self.source), info.key, info.version, hdu)

        def loader() -> Image:
            image = load_image(self.source.read(info.key), hdu=hdu, name=info.key, max_bytes=self.max_frame_bytes)
            # Every session and request shares this array: nobody may alter it.
            image.data.setflags(write=False)
            return image

        image = self.cache.get(cache_key, loader)
        with self._lock:
            # A rewritten frame's old decode is dead weight: free it now.
            previous = self._current.get((info.key, hdu))
            self._current[(info.key, hdu)] = cache_key
        if previous is not None and previous != cache_key:
            self.cache.discard(previous)
        return image


def store_from_settings(settings) -> FrameStore:
    """The store described by :class:`app.settings.Settings`.

    S3 when ``settings.s3_bucket`` is set, the local ``settings.root``
    otherwise; the image cache is shared by the whole process.
    """
    if settings.s3_bucket:
        source = S3Source(
            settings.s3_bucket,
            prefix=settings.s3_prefix or "",
            region=settings.s3_region,
            endpoint_url=settings.s3_endpoint_url,
        )
    else:
        source = LocalSource(settings.root)
    return FrameStore(
        source,
        shared_cache(settings.cache_bytes),
        allowed_directories=settings.s3_directories,
        max_frame_bytes=min(settings.max_frame_bytes, settings.cache_bytes),
    )
