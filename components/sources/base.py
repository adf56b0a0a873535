"""What every frame source shares: frame records, key checks, file-name rules.

A *key* names a frame inside a source: a '/'-separated path relative to the
source's root (a folder, or a bucket and prefix). Keys come from users, so
every source checks them with :func:`check_key` before touching storage.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Callable, Iterable, Protocol, Sequence, TypeVar, runtime_checkable

from components.errors import ImageNotFound, InvalidRequest, UnsafeKey

__all__ = [
    "FrameInfo",
    "FrameSource",
    "IMAGE_SUFFIXES",
    "check_key",
    "check_image_key",
    "check_directory",
    "is_image_name",
    "is_hidden_or_temporary",
    "frame_key",
    "split_key",
    "directories_of",
    "newest_first",
]

#: File name endings (lower case) of the images a source lists.
IMAGE_SUFFIXES = (
    ".fits", ".fit", ".fts", ".fits.fz", ".fz", ".fits.gz", ".fit.gz", ".fts.gz",
    ".fits.bz2", ".fit.bz2", ".jpg", ".jpeg", ".png",
)
# Endings of files still being written by common tools (rsync, browsers, scp).
_TEMPORARY_SUFFIXES = (".tmp", ".temp", ".part", ".partial", ".crdownload", ".swp", "~")
# Control characters (NUL included) have no business in a frame's name.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# "C:" or "c:foo": a Windows drive, absolute on that platform.
_DRIVE = re.compile(r"^[A-Za-z]:")


@dataclass(frozen=True)
class FrameInfo:
    """One frame of a source.

    Attributes
    ----------
    key : str
        '/'-separated path relative to the source root, e.g. ``"data/a.fits"``.
    directory : str
        The key's folder part (``""`` at the root).
    name : str
        The key's last part (the file name).
    size : int
        Bytes stored.
    modified : datetime
        Last modification, timezone-aware (UTC).
    version : str
        Changes whenever the frame is rewritten (local: ``"{mtime_ns}-{size}"``,
        S3: the ETag).
    """

    key: str
    directory: str
    name: str
    size: int
    modified: datetime
    version: str

    def to_dict(self) -> dict:
        """JSON-ready fields (``modified`` as an ISO 8601 string)."""
        fields = asdict(self)
        fields["modified"] = self.modified.isoformat()
        return fields


@runtime_checkable
class FrameSource(Protocol):
    """The interface of :class:`LocalSource` and :class:`S3Source`."""

    def list_frames(self, directory: str = "") -> list[FrameInfo]: ...

    def info(self, key: str) -> FrameInfo: ...

    def read(self, key: str): ...

    def directories(self) -> list[str]: ...


def _parts(key: str, what: str) -> list[str]:
    if not isinstance(key, str):
        raise InvalidRequest(f"{what} must be a string, got {type(key).__name__}")
    if _CONTROL.search(key):
        raise UnsafeKey(f"{what} {key!r} contains control characters")
    if "\\" in key:
        raise UnsafeKey(f"{what} {key!r} contains a backslash; use '/' between folders")
    # Empty and "." parts ("a//b", "./a") are harmless: drop them so every
    # frame has one canonical key (and one cache entry).
    parts = [part for part in key.split("/") if part not in ("", ".")]
    # The drive test looks at the canonical first part too ("./C:" is "C:").
    if key.startswith("/") or _DRIVE.match(key) or (parts and _DRIVE.match(parts[0])):
        raise UnsafeKey(f"{what} {key!r} is absolute; give a path relative to the root")
    for part in parts:
        if part == "..":
            raise UnsafeKey(f"{what} {key!r} leaves its folder ('..')")
        if part.startswith("."):
            raise UnsafeKey(f"{what} {key!r} names a hidden file or folder")
    return parts


def check_key(key: str) -> str:
    """The canonical form of a frame key, or :class:`UnsafeKey` if it could escape.

    Refuses absolute paths, ``..``, backslashes, control characters (NUL)
    and hidden (dotted) parts; drops empty and ``.`` parts.

    Examples
    --------
    >>> check_key("data//./a.fits")
    'data/a.fits'
    >>> check_key("../etc/passwd")
    Traceback (most recent call last):
    ...
    components.errors.UnsafeKey: key '../etc/passwd' leaves its folder ('..')
    """
    parts = _parts(key, "key")
    if not parts:
        raise UnsafeKey(f"key {key!r} is empty; name a frame")
    return "/".join(parts)


def check_image_key(key: str) -> str:
    """The canonical form of a key that must name an image file (by its name).

    Raises
    ------
    UnsafeKey
        As :func:`check_key`.
    ImageNotFound
        The name is not a frame's (see :func:`is_image_name`): no source stores one there.
    """
    key = check_key(key)
    if not is_image_name(split_key(key)[1]):
        raise ImageNotFound(f"Image does not exist: {key}.")
    return key


def check_directory(directory: str | None) -> str:
    """The canonical form of a folder key (``""`` or ``None`` is the root).

    Examples
    --------
    >>> check_directory("data/"), check_directory("")
    ('data', '')
    """
    if directory is None:
        return ""
    return "/".join(_parts(directory, "directory"))


def split_key(key: str) -> tuple[str, str]:
    """``(directory, name)`` of a canonical key.

    Examples
    --------
    >>> split_key("data/sim/a.fits"), split_key("a.fits")
    (('data/sim', 'a.fits'), ('', 'a.fits'))
    """
    directory, _, name = key.rpartition("/")
    return directory, name


def is_hidden_or_temporary(name: str) -> bool:
    """Whether a file name is hidden (dotted) or a download/write in progress."""
    lower = name.lower()
    return name.startswith(".") or lower.endswith(_TEMPORARY_SUFFIXES)


def is_image_name(name: str) -> bool:
    """Whether a file name looks like a frame (FITS, compressed FITS, JPEG, PNG).

    Examples
    --------
    >>> is_image_name("a.FITS.fz"), is_image_name(".a.fits"), is_image_name("a.txt")
    (True, False, False)
    """
    return not is_hidden_or_temporary(name) and name.lower().endswith(IMAGE_SUFFIXES)


def frame_key(s3_directory: str, full_filename: str, allowed: Sequence[str]) -> str:
    """The key ``{s3_directory}/{full_filename}`` of the original service's requests.

    Parameters
    ----------
    s3_directory : str
        One of ``allowed`` (``data``, ``info-images``, ``allsky``...).
    full_filename : str
        A file name, or a relative path that stays inside the directory.
    allowed : sequence of str
        The directories requests may name.

    Raises
    ------
    InvalidRequest
        If ``s3_directory`` is not allowed.
    UnsafeKey
        If ``full_filename`` is empty or could leave the directory.

    Examples
    --------
    >>> frame_key("data", "a.fits.fz", ["data", "allsky"])
    'data/a.fits.fz'
    """
    allowed = list(allowed)
    if not isinstance(s3_directory, str) or s3_directory not in allowed:
        raise InvalidRequest(
            f"Unknown s3_directory {s3_directory!r}; allowed: {', '.join(allowed)}"
        )
    if not isinstance(full_filename, str) or not full_filename.strip():
        raise UnsafeKey("full_filename is empty; name a file")
    parts = _parts(full_filename, "full_filename")
    if not parts:
        raise UnsafeKey(f"full_filename {full_filename!r} names no file")
    return "/".join([s3_directory, *parts])


def directories_of(keys: Iterable[str]) -> list[str]:
    """Every folder (and parent folder) holding one of ``keys``, sorted; root excluded.

    Examples
    --------
    >>> directories_of(["a.fits", "data/sim/b.fits", "data/c.fits"])
    ['data', 'data/sim']
    """
    found: set[str] = set()
    for key in keys:
        directory = split_key(key)[0]
        while directory and directory not in found:
            found.add(directory)
            directory = split_key(directory)[0]
    return sorted(found)


T = TypeVar("T")


def newest_first(frames: Iterable[T], info: Callable[[T], FrameInfo] | None = None) -> list[T]:
    """Frames sorted newest first; equal times by key, last name first.

    The one ordering of frames: the sources' listings, the dashboard's and
    ``GET /images`` (which merges several folders) all use it.

    Parameters
    ----------
    frames : iterable
        :class:`FrameInfo` records, or rows holding one.
    info : callable, optional
        The :class:`FrameInfo` of a row (default: the row itself).
    """
    get = info or (lambda frame: frame)
    return sorted(frames, key=lambda row: (get(row).modified, get(row).key), reverse=True)
