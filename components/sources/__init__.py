"""Where frames come from: local folders or S3, decoding, and the image cache.

A view or API handler asks a :class:`FrameStore` for a key and gets an
:class:`Image`; it never opens files itself.
"""

from components.sources.base import FrameInfo, FrameSource, check_key, frame_key, is_image_name
from components.sources.cache import ImageCache
from components.sources.image import HDUInfo, Image, list_image_hdus, load_image, normalize_hdu
from components.sources.local import LocalSource
from components.sources.s3 import S3Source
from components.sources.store import FrameStore, shared_cache, store_from_settings

__all__ = [
    "FrameInfo",
    "FrameSource",
    "HDUInfo",
    "Image",
    "ImageCache",
    "FrameStore",
    "LocalSource",
    "S3Source",
    "check_key",
    "frame_key",
    "is_image_name",
    "list_image_hdus",
    "load_image",
    "normalize_hdu",
    "shared_cache",
    "store_from_settings",
]
