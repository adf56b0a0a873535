"""The project's exception types.

Every error a client can cause is a :class:`QuickAnalysisError`; its
``status`` says how the REST API answers it (4xx), and its message is written
for the person who made the request.
"""

__all__ = [
    "QuickAnalysisError",
    "InvalidRequest",
    "ImageReadError",
    "ImageNotFound",
    "UnsafeKey",
    "FrameTooLarge",
]


class QuickAnalysisError(Exception):
    """Base class of every error caused by bad input rather than a bug."""

    status = 400


class InvalidRequest(QuickAnalysisError, ValueError):
    """A request or argument is malformed (coordinates, zero-area box, ...)."""


class ImageReadError(QuickAnalysisError):
    """A file is not a readable image: truncated, empty, not FITS/PNG/JPEG, no image HDU."""


class ImageNotFound(QuickAnalysisError, LookupError):
    """No image is stored under the requested key."""

    status = 404


class UnsafeKey(InvalidRequest):
    """A key tries to leave its folder (``..``, absolute path, symlink outside root)."""


class FrameTooLarge(ImageReadError):
    """A frame declares (or decompresses to) more bytes than QA_MAX_FRAME_BYTES allows."""

    status = 413
