"""Frames in an S3 bucket (AWS, MinIO, moto_server...), read with boto3.

Keys are checked exactly as for local folders, so a request can never
reach an object outside ``prefix``.
"""

from __future__ import annotations

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

__all__ = ["S3Source"]

_MISSING = {"404", "NoSuchKey", "NotFound", "NoSuchBucket"}


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
            from botocore.config import Config

            client = boto3.client(
                "s3",
                region_name=region,
                endpoint_url=endpoint_url,
                config=Config(connect_timeout=5, read_timeout=30, retries={"max_attempts": 3}),
            )
        self.bucket = bucket
        self.prefix = check_directory(prefix.strip("/")) if prefix else ""
        self.client = client
        #: LIST requests made so far (one per page): the frame feed makes them, nobody else on a timer.
        self.listings = 0

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

    def _missing(self, error, key: str | None) -> Exception:
        from botocore.exceptions import ClientError

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
        return self._frame(key, head["ContentLength"], head["LastModified"], head.get("ETag", ""))

    def read(self, key: str) -> bytes:
        """The stored bytes of a frame (``get_object``)."""
        key = self._checked(key)
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self._object_key(key))
            with response["Body"] as body:
                return body.read()
        except Exception as error:
            raise self._missing(error, key) from None

    def _objects(self, directory: str):
        prefix = self._object_key(directory) + "/" if directory else (self.prefix + "/" if self.prefix else "")
        paginator = self.client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
                self.listings += 1
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
