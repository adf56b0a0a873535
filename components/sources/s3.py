"""Frames in an S3 bucket (AWS, MinIO, moto_server...), read with boto3.

Keys are checked exactly as for local folders, so a request can never
reach an object outside ``prefix``.

When the store stops answering, calls fail within seconds (short connect and
read timeouts, one retry) with the botocore error, which the REST API answers
as 502; the source publishes a ``storage`` event on the process bus
(:mod:`components.events`) when it finds the store unreachable and again when
a call succeeds after that. Nothing is kept between calls but botocore's
connection pool, whose dead connections botocore replaces (and retries) by
itself, so the first call after the store is back succeeds.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timezone

from components.errors import ImageNotFound, UnsafeKey
from components.sources.base import (
    FrameInfo,
    check_directory,
    check_image_key,
    check_key,
    directories_of,
    is_image_name,
    newest_first,
    split_key,
)

__all__ = ["S3Source", "client_config", "is_unreachable"]

log = logging.getLogger("quickanalysis.s3")

_MISSING = {"404", "NoSuchKey", "NotFound", "NoSuchBucket"}
#: Seconds to open a connection to the store: a dead endpoint answers quickly.
CONNECT_TIMEOUT = 2.0
#: Seconds of silence on an open connection before giving up (a 61 MP frame streams in well under that).
READ_TIMEOUT = 15.0
#: Attempts per call (botocore's "standard" retry mode: the first and one retry, which replaces a
#: pooled connection the store closed while it was away).
MAX_ATTEMPTS = 2


def client_config():
    """The botocore ``Config`` of the S3 client: short timeouts, one retry."""
    from botocore.config import Config

    return Config(
        connect_timeout=CONNECT_TIMEOUT,
        read_timeout=READ_TIMEOUT,
        retries={"max_attempts": MAX_ATTEMPTS, "mode": "standard"},
    )


def is_unreachable(error: BaseException) -> bool:
    """Whether ``error`` says the store did not answer (or answered 5xx), rather than answered no."""
    from botocore.exceptions import (
        ClientError,
        ConnectionClosedError,
        ConnectTimeoutError,
        EndpointConnectionError,
        ReadTimeoutError,
        ResponseStreamingError,
    )

    if isinstance(error, ClientError):
        status = (getattr(error, "response", None) or {}).get("ResponseMetadata", {}).get("HTTPStatusCode")
        return isinstance(status, int) and status >= 500
    return isinstance(
        error,
        (EndpointConnectionError, ConnectTimeoutError, ReadTimeoutError, ConnectionClosedError,
         ResponseStreamingError, ConnectionError),
    )


def _error_code(error) -> str:
    response = getattr(error, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


class S3Source:
    """Frames stored as objects of one bucket, below an optional key prefix.

    Parameters
    ----------
    bucket : str
        Bucket name.
    prefix : str
        Folder inside the bucket that plays the role of the root.
    region, endpoint_url : str or None
        Passed to ``boto3.client("s3", ...)``; ``endpoint_url`` selects an
        S3-compatible server.
    client : botocore client, optional
        A ready client (then ``region`` and ``endpoint_url`` are unused).

    Examples
    --------
    >>> source = S3Source("my-bucket", prefix="frames/", region="us-east-1")  # doctest: +SKIP
    >>> source.list_frames("data")[0].key  # doctest: +SKIP
    'data/ogg0m406-kb27-20240101-0001-e91.fits.fz'
    """

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        region: str | None = None,
        endpoint_url: str | None = None,
        client=None,
    ):
        if client is None:
            import boto3

            client = boto3.client(
                "s3", region_name=region, endpoint_url=endpoint_url, config=client_config()
            )
        self.bucket = bucket
        self.prefix = check_directory(prefix.strip("/")) if prefix else ""
        self.client = client
        #: LIST requests made so far (one per page): the frame feed makes them, nobody else on a timer.
        self.listings = 0
        # None until a call tells; then whether the last call reached the store.
        self._reachable: bool | None = None
        self._state_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"S3Source({self.bucket!r}, prefix={self.prefix!r})"

    def _object_key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def _relative(self, object_key: str) -> str | None:
        """The frame key of an object, or None when the object is not a frame."""
        if self.prefix:
            if not object_key.startswith(self.prefix + "/"):
                return None
            object_key = object_key[len(self.prefix) + 1 :]
        try:
            key = check_key(object_key)
        except (UnsafeKey, ValueError):
            return None
        # Objects named "a//b" or "./a" have no canonical key: not reachable, not listed.
        if key != object_key or not is_image_name(split_key(key)[1]):
            return None
        return key

    @property
    def reachable(self) -> bool | None:
        """Whether the last call reached the store (None before the first call)."""
        return self._reachable

    def _set_reachable(self, reachable: bool, message: str) -> None:
        """Record the store's state; publish a ``storage`` event when it changes."""
        with self._state_lock:
            changed = self._reachable is not None and self._reachable != reachable
            changed = changed or (self._reachable is None and not reachable)
            self._reachable = reachable
        if not changed:
            return
        state = "reachable" if reachable else "unreachable"
        (log.info if reachable else log.warning)("S3 bucket %s is %s: %s", self.bucket, state, message)
        from components.events import bus

        bus().publish("storage", {"state": state, "message": message})

    def _answered(self) -> None:
        if self._reachable is not True:  # no lock on the hot path: state changes are rare
            self._set_reachable(True, f"bucket {self.bucket} answers again")

    def _missing(self, error, key: str | None) -> Exception:
        from botocore.exceptions import BotoCoreError, ClientError

        if isinstance(error, (BotoCoreError, ClientError, ConnectionError)):
            if is_unreachable(error):
                self._set_reachable(False, f"bucket {self.bucket} is unreachable: {error}")
            else:
                self._answered()  # it answered, even if with "no such key"
        if isinstance(error, ClientError) and _error_code(error) in _MISSING:
            if _error_code(error) == "NoSuchBucket":
                return ImageNotFound(f"Bucket does not exist: {self.bucket}.")
            return ImageNotFound(f"Image does not exist: {key}.")
        return error

    def _frame(self, key: str, size: int, modified: datetime, etag: str) -> FrameInfo:
        directory, name = split_key(key)
        if modified.tzinfo is None:
            modified = modified.replace(tzinfo=timezone.utc)
        modified = modified.astimezone(timezone.utc)
        return FrameInfo(key, directory, name, int(size), modified, etag.strip('"'))

    def _checked(self, key: str) -> str:
        return check_image_key(key)

    def info(self, key: str) -> FrameInfo:
        """The frame under ``key`` (``head_object``); ImageNotFound when absent."""
        key = self._checked(key)
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=self._object_key(key))
        except Exception as error:
            raise self._missing(error, key) from None
        self._answered()
        return self._frame(key, head["ContentLength"], head["LastModified"], head.get("ETag", ""))

    def read(self, key: str) -> bytes:
        """The stored bytes of a frame (``get_object``)."""
        key = self._checked(key)
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self._object_key(key))
            with response["Body"] as body:
                data = body.read()
        except Exception as error:
            raise self._missing(error, key) from None
        self._answered()
        return data

    def _objects(self, directory: str):
        prefix = self._object_key(directory) + "/" if directory else (self.prefix + "/" if self.prefix else "")
        paginator = self.client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
                self.listings += 1
                self._answered()
                yield from page.get("Contents", ())
        except Exception as error:
            raise self._missing(error, directory or None) from None

    def list_frames(self, directory: str = "") -> list[FrameInfo]:
        """Every frame below ``directory`` (recursive), newest first."""
        directory = check_directory(directory)
        frames = []
        for item in self._objects(directory):
            key = self._relative(item["Key"])
            if key is not None:
                frames.append(self._frame(key, item["Size"], item["LastModified"], item.get("ETag", "")))
        return newest_first(frames)

    def directories(self) -> list[str]:
        """Folders (and their parents) holding frames, sorted; the root excluded."""
        keys = (self._relative(item["Key"]) for item in self._objects(""))
        return directories_of(key for key in keys if key is not None)
