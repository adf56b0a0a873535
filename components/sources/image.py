"""Decode a frame (FITS, compressed FITS, PNG, JPEG) into a 2-D array and a header.

Formats are recognised by their first bytes, not by the file name:
plain FITS (any HDU, tile-compressed ``CompImageHDU`` included), whole-file
gzip or bzip2 compressed FITS, PNG and JPEG. Files are only ever opened for
reading, and nothing stays open (no memory maps) once an image is loaded.
"""

from __future__ import annotations

import io
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Union

import numpy as np
from astropy.io import fits
from astropy.wcs import WCS

from components.errors import FrameTooLarge, ImageNotFound, ImageReadError, InvalidRequest, QuickAnalysisError
from components.sources.decode import (
    DEFAULT_MAX_FRAME_BYTES,
    check_declared,
    decompress_tiles,
    read_compressed_fits,
)

__all__ = ["HDUInfo", "Image", "load_image", "list_image_hdus", "normalize_hdu"]

PathOrBytes = Union[str, os.PathLike, bytes, bytearray, memoryview]

_FITS_MAGIC = b"SIMPLE  ="
_GZIP_MAGIC = b"\x1f\x8b"
_BZIP2_MAGIC = b"BZh"
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_JPEG_MAGIC = b"\xff\xd8\xff"
# Weights of ITU-R BT.601 luma, as Pillow's own RGB -> L conversion.
# "No bound" for the stream readers, which need a number.
_UNBOUNDED = 1 << 62
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


@dataclass(frozen=True)
class HDUInfo:
    """An image HDU of a file.

    Attributes
    ----------
    index : int
        Position in the file (0 is the primary HDU).
    name : str
        ``EXTNAME`` (``"PRIMARY"`` for the primary HDU; the format, e.g.
        ``"PNG"``, for pictures).
    shape : tuple of int
        Shape of the HDU's data (rows, columns; a cube has a leading axis).
    dtype : str
        Pixel type once BZERO/BSCALE are applied, e.g. ``"uint16"``.
    """

    index: int
    name: str
    shape: tuple[int, ...]
    dtype: str


@dataclass(eq=False)
class Image:
    """A decoded frame.

    Attributes
    ----------
    data : ndarray
        2-D pixels in native byte order, BZERO/BSCALE applied (the first plane
        of a cube). Shared by every user of a cache: do not modify it.
    header : astropy.io.fits.Header
        Header of the HDU read (a minimal one for PNG/JPEG).
    wcs : astropy.wcs.WCS or None
        Celestial WCS of the header, None when absent or unusable.
    hdu : int
        Index of the HDU read.
    hdus : list of HDUInfo
        Every image HDU of the file.
    name : str
        What the image is called in messages (a key or a file name).
    """

    data: np.ndarray
    header: fits.Header
    wcs: WCS | None = None
    hdu: int = 0
    hdus: list[HDUInfo] = field(default_factory=list)
    name: str = ""

    @property
    def nbytes(self) -> int:
        """Bytes held by the pixels (what the image cache counts)."""
        return int(self.data.nbytes)

    @property
    def shape(self) -> tuple[int, int]:
        return self.data.shape


def normalize_hdu(hdu: int | str | None) -> int | str | None:
    """Canonical form of an HDU selector: None, an index, or an upper-case EXTNAME.

    A string of digits is an index (query strings carry no types).

    Examples
    --------
    >>> normalize_hdu("2"), normalize_hdu(" sci "), normalize_hdu(None)
    (2, 'SCI', None)
    """
    if hdu is None:
        return None
    if isinstance(hdu, bool):
        raise InvalidRequest(f"hdu must be an index or an EXTNAME, got {hdu!r}")
    if isinstance(hdu, (int, np.integer)):
        if hdu < 0:
            raise InvalidRequest(f"hdu must be 0 or more, got {hdu}")
        return int(hdu)
    if isinstance(hdu, str):
        text = hdu.strip()
        if not text:
            return None
        if text.isdigit():
            return int(text)
        return text.upper()
    raise InvalidRequest(f"hdu must be an index or an EXTNAME, got {hdu!r}")


def _display_name(source: PathOrBytes, name: str | None) -> str:
    if name:
        return str(name)
    if isinstance(source, (bytes, bytearray, memoryview)):
        return "<bytes>"
    if isinstance(source, (str, os.PathLike)):
        return Path(source).name
    return f"<{type(source).__name__}>"


def _read_head(path: Path, name: str, count: int = 16) -> bytes:
    try:
        with open(path, "rb") as stream:
            return stream.read(count)
    except FileNotFoundError:
        raise ImageNotFound(f"Image does not exist: {name}.") from None
    except IsADirectoryError:
        raise ImageReadError(f"Cannot read {name}: it is a folder, not an image") from None
    except OSError as error:
        raise ImageReadError(f"Cannot read {name}: {error.strerror or error}") from None


def _sniff(head: bytes) -> str | None:
    if head.startswith(_FITS_MAGIC):
        return "fits"
    if head.startswith(_GZIP_MAGIC):
        return "gzip"
    if head.startswith(_BZIP2_MAGIC):
        return "bzip2"
    if head.startswith(_PNG_MAGIC):
        return "png"
    if head.startswith(_JPEG_MAGIC):
        return "jpeg"
    return None


def _reason(error: Exception) -> str:
    """A user-facing reason for an astropy/pillow failure."""
    text = str(error) or type(error).__name__
    if "buffer is too small" in text or "cannot reshape" in text or "truncated" in text.lower():
        return "the file is truncated"
    if "END card" in text or "Empty or corrupt" in text:
        return "the FITS header is incomplete or corrupt"
    return text


def _hdu_dtype(header: fits.Header) -> np.dtype:
    """Pixel type after scaling, as astropy returns it, from the header alone."""
    bitpix = int(header.get("BITPIX", 0))
    bscale = header.get("BSCALE", 1)
    bzero = header.get("BZERO", 0)
    base = {8: np.uint8, 16: np.int16, 32: np.int32, 64: np.int64, -32: np.float32, -64: np.float64}
    if bitpix not in base:
        return np.dtype(np.float64)
    if bitpix < 0 or (bscale == 1 and bzero == 0):
        return np.dtype(base[bitpix])
    if bscale == 1:
        # Unsigned (or signed bytes) stored with the standard offset.
        pseudo = {8: (-128, np.int8), 16: (1 << 15, np.uint16), 32: (1 << 31, np.uint32), 64: (1 << 63, np.uint64)}
        offset, kind = pseudo[bitpix]
        if bzero == offset:
            return np.dtype(kind)
    return np.dtype(np.float32 if bitpix in (8, 16) else np.float64)


def _is_image(hdu) -> bool:
    if not isinstance(hdu, (fits.PrimaryHDU, fits.ImageHDU, fits.CompImageHDU)):
        return False
    shape = hdu.shape
    return len(shape) >= 2 and all(int(n) > 0 for n in shape)


def _image_infos(hdul: fits.HDUList) -> list[HDUInfo]:
    return [
        HDUInfo(index, hdu.name, tuple(int(n) for n in hdu.shape), _hdu_dtype(hdu.header).name)
        for index, hdu in enumerate(hdul)
        if _is_image(hdu)
    ]


def _describe(hdul: fits.HDUList) -> str:
    parts = []
    for index, hdu in enumerate(hdul):
        kind = type(hdu).__name__
        if isinstance(hdu, (fits.PrimaryHDU, fits.ImageHDU)) and not _is_image(hdu):
            kind = "empty"
        parts.append(f"{index} {hdu.name} ({kind})")
    return ", ".join(parts)


def _choose(hdul: fits.HDUList, infos: list[HDUInfo], hdu: int | str | None, name: str) -> int:
    images = {info.index for info in infos}
    if hdu is None:
        if not infos:
            raise ImageReadError(f"Cannot read {name}: no HDU holds an image (HDUs: {_describe(hdul)})")
        return infos[0].index
    if isinstance(hdu, int):
        if hdu >= len(hdul):
            raise ImageReadError(
                f"Cannot read {name}: HDU {hdu} is out of range; the file has {len(hdul)} HDUs"
            )
        if hdu not in images:
            kind = type(hdul[hdu]).__name__
            raise ImageReadError(f"Cannot read {name}: HDU {hdu} ({kind}) holds no image")
        return hdu
    named = [index for index, item in enumerate(hdul) if item.name.upper() == hdu]
    for index in named:
        if index in images:
            return index
    if named:
        raise ImageReadError(f"Cannot read {name}: HDU {hdu!r} holds no image")
    raise ImageReadError(
        f"Cannot read {name}: no HDU named {hdu!r} (HDUs: {_describe(hdul)})"
    )


def _native_plane(data: np.ndarray) -> np.ndarray:
    """The first 2-D plane in native byte order (a cube's plane is copied out)."""
    if data.ndim > 2:
        # Copy the plane so the rest of the cube can be freed.
        data = np.array(data[(0,) * (data.ndim - 2)], dtype=data.dtype.newbyteorder("="))
    elif not data.dtype.isnative:
        data = data.astype(data.dtype.newbyteorder("="))
    return data


def celestial_wcs(header: fits.Header) -> WCS | None:
    """The celestial part of a header's WCS, or None (absent, or too broken to use)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            wcs = WCS(header)
            if not wcs.has_celestial:
                return None
            return wcs.celestial
        except Exception:
            return None


def _stream_size(target) -> int | None:
    try:
        if isinstance(target, io.BytesIO):
            return target.getbuffer().nbytes
        return os.fstat(target.fileno()).st_size
    except (OSError, AttributeError, ValueError):
        return None


def _peek(target, offset: int, count: int) -> bytes:
    if isinstance(target, io.BytesIO):
        return bytes(target.getbuffer()[offset : offset + count])
    return os.pread(target.fileno(), count, offset)


def _check_complete(hdul: fits.HDUList, target, name: str) -> None:
    """Refuse a file cut short: pixels past its end, or a partial extension header.

    A missing final padding block is tolerated (some cameras omit it);
    compressed tiles are checked by the decompressor.
    """
    size = _stream_size(target)
    if size is None or not len(hdul):
        return
    for index, hdu in enumerate(hdul):
        if isinstance(hdu, fits.CompImageHDU):
            continue
        header = hdu.header
        axes = [int(header.get(f"NAXIS{i}", 0)) for i in range(1, int(header.get("NAXIS", 0)) + 1)]
        count = int(np.prod(axes, dtype=np.int64)) if axes else 0
        if count:
            count = int(header.get("GCOUNT", 1)) * (int(header.get("PCOUNT", 0)) + count)
        needed = hdul.fileinfo(index)["datLoc"] + abs(int(header.get("BITPIX", 8))) // 8 * count
        if needed > size:
            raise ImageReadError(
                f"Cannot read {name}: the file is truncated ({size} bytes; HDU {index} ends at byte {needed})"
            )
    info = hdul.fileinfo(len(hdul) - 1)
    end = info["datLoc"] + info["datSpan"]
    if end < size and _peek(target, end, 8) == b"XTENSION":
        raise ImageReadError(f"Cannot read {name}: the file is truncated (in the header of HDU {len(hdul)})")


def _open_fits(target, name: str, max_bytes: int | None = None) -> tuple[fits.HDUList, list[HDUInfo]]:
    hdul = fits.open(target, mode="readonly", memmap=False, lazy_load_hdus=True)
    try:
        infos = _image_infos(hdul)
        for info in infos:
            # Refuse a frame too large before reading (or checking) any pixel.
            check_declared(hdul[info.index].header, max_bytes, name, info.index)
        _check_complete(hdul, target, name)
    except BaseException:
        hdul.close()
        raise
    return hdul, infos


def _open_fits_or_fail(target, name: str, max_bytes: int | None = None):
    """:func:`_open_fits`, with any failure but the project's own an ImageReadError."""
    try:
        return _open_fits(target, name, max_bytes)
    except QuickAnalysisError:
        raise
    except Exception as error:
        raise ImageReadError(f"Cannot read {name}: {_reason(error)}") from None


def _load_fits(target, hdu: int | str | None, name: str, max_bytes: int | None = None) -> Image:
    with warnings.catch_warnings():
        # Non-standard but readable headers are common; they are not errors here.
        warnings.simplefilter("ignore")
        hdul, infos = _open_fits_or_fail(target, name, max_bytes)
        with hdul:
            index = _choose(hdul, infos, hdu, name)
            chosen = hdul[index]
            try:
                data = None
                if isinstance(chosen, fits.CompImageHDU):
                    # Every core; None for anything unusual, which astropy decodes.
                    data = decompress_tiles(chosen)
                if data is None:
                    data = chosen.data
                if data is None:
                    raise ValueError("the HDU has no data")
                data = _native_plane(np.asarray(data))
                header = chosen.header.copy()
            except QuickAnalysisError:
                raise
            except Exception as error:
                raise ImageReadError(f"Cannot read {name}: HDU {index}: {_reason(error)}") from None
    expected = infos[[info.index for info in infos].index(index)]
    if data.shape != expected.shape[-2:]:
        raise ImageReadError(f"Cannot read {name}: HDU {index} holds {data.shape} pixels, expected {expected.shape}")
    # Report the type actually produced (BLANK or odd scaling can change it).
    infos = [info if info.index != index else HDUInfo(index, info.name, info.shape, data.dtype.name) for info in infos]
    return Image(data=data, header=header, wcs=celestial_wcs(header), hdu=index, hdus=infos, name=name)


def _picture_array(picture) -> np.ndarray:
    mode = picture.mode
    if mode in ("1", "LA", "L"):
        return np.asarray(picture.convert("L"), dtype=np.uint8)
    if mode.startswith("I;16"):
        array = np.asarray(picture)
        return array.astype(array.dtype.newbyteorder("="), copy=False).astype(np.uint16, copy=False)
    if mode == "I":
        return np.asarray(picture, dtype=np.int32)
    if mode == "F":
        return np.asarray(picture, dtype=np.float32)
    # Colour (RGB, RGBA, palette, CMYK...): luminance, kept in float32.
    rgb = np.asarray(picture.convert("RGB"), dtype=np.float32)
    return np.ascontiguousarray(rgb @ _LUMA)


def _load_picture(target, kind: str, hdu: int | str | None, name: str, max_bytes: int | None = None) -> Image:
    from PIL import Image as PILImage

    if hdu not in (None, 0):
        raise ImageReadError(f"Cannot read {name}: a {kind.upper()} file has only HDU 0")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with PILImage.open(target) as picture:
                # At most 4 bytes a pixel come out (float32 luminance, int32).
                declared = picture.width * picture.height * 4
                if max_bytes is not None and declared > max_bytes:
                    raise FrameTooLarge(
                        f"Cannot read {name}: {picture.width} x {picture.height} pixels take {declared} bytes, "
                        f"more than the {max_bytes} bytes a frame may take (QA_MAX_FRAME_BYTES)"
                    )
                picture.load()
                data = _picture_array(picture)
    except QuickAnalysisError:
        raise
    except Exception as error:
        raise ImageReadError(f"Cannot read {name}: corrupt or truncated {kind.upper()} ({error})") from None
    if data.ndim != 2 or data.size == 0:
        raise ImageReadError(f"Cannot read {name}: the {kind.upper()} holds no 2-D image")
    if not (data.flags.writeable and data.flags.c_contiguous):
        # Pillow may hand out read-only views; numba kernels compile once per
        # layout, so give the core the same plain arrays FITS decoding gives.
        data = np.array(data, order="C")
    # A minimal header (structural cards) so header-driven code still works.
    header = fits.PrimaryHDU(data=data).header
    info = HDUInfo(0, kind.upper(), data.shape, data.dtype.name)
    return Image(data=data, header=header, wcs=None, hdu=0, hdus=[info], name=name)


def _prepare(source: PathOrBytes, name: str, max_bytes: int) -> tuple[str, object]:
    """Format of ``source`` and what to open: a path, or an in-memory stream.

    Whole-file bzip2/gzip is decompressed here, in parallel and within
    ``max_bytes`` (FrameTooLarge beyond).
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        raw = bytes(source)
        head = raw[:16]
        path = None
    elif isinstance(source, (str, os.PathLike)):
        path = Path(source)
        head = _read_head(path, name)
        raw = None
    else:
        raise InvalidRequest(f"Cannot read {name}: expected a path or bytes, got {type(source).__name__}")
    if not head:
        raise ImageReadError(f"Cannot read {name}: the file is empty")
    kind = _sniff(head)
    if kind is None:
        raise ImageReadError(f"Cannot read {name}: not a FITS, PNG or JPEG file")
    if kind in ("gzip", "bzip2"):
        compressed = io.BytesIO(raw) if raw is not None else path
        try:
            raw = read_compressed_fits(compressed, kind, max_bytes, name)
        except FileNotFoundError:
            raise ImageNotFound(f"Image does not exist: {name}.") from None
        return "fits", io.BytesIO(raw)
    if raw is not None:
        return kind, io.BytesIO(raw)
    return kind, path


def load_image(
    path_or_bytes: PathOrBytes,
    hdu: int | str | None = None,
    name: str | None = None,
    max_bytes: int | None = DEFAULT_MAX_FRAME_BYTES,
) -> Image:
    """Decode a frame.

    Parameters
    ----------
    path_or_bytes : path-like or bytes
        A file, or its whole content.
    hdu : int, str or None
        Index or EXTNAME of the HDU to read; by default the first HDU holding
        an image (a 3-D cube gives its first plane).
    name : str, optional
        What to call the image in messages (default: the file name).
    max_bytes : int or None
        Bound on the decoded pixels of any image HDU of the file (and on a
        bzip2/gzip stream's decompressed size); None for no bound.

    Returns
    -------
    Image

    Raises
    ------
    ImageReadError
        The content is not a readable image: empty, truncated, corrupt, not
        FITS/PNG/JPEG, no image HDU, or ``hdu`` out of range.
    ImageNotFound
        The path does not exist.
    FrameTooLarge
        The header declares more than ``max_bytes`` of pixels, or the
        bzip2/gzip stream decompresses to more (an ImageReadError, status 413).

    Examples
    --------
    >>> import io, numpy as np
    >>> from astropy.io import fits
    >>> buffer = io.BytesIO()
    >>> fits.PrimaryHDU(np.arange(6, dtype=np.uint16).reshape(2, 3)).writeto(buffer)
    >>> image = load_image(buffer.getvalue(), name="tiny.fits")
    >>> image.data.dtype.name, image.data.shape, image.hdu
    ('uint16', (2, 3), 0)
    """
    name = _display_name(path_or_bytes, name)
    hdu = normalize_hdu(hdu)
    limit = _UNBOUNDED if max_bytes is None else int(max_bytes)
    kind, target = _prepare(path_or_bytes, name, limit)
    if kind in ("png", "jpeg"):
        return _load_picture(target, kind, hdu, name, max_bytes)
    if isinstance(target, Path):
        try:
            with open(target, "rb") as stream:
                return _load_fits(stream, hdu, name, max_bytes)
        except FileNotFoundError:
            raise ImageNotFound(f"Image does not exist: {name}.") from None
    return _load_fits(target, hdu, name, max_bytes)


def list_image_hdus(path_or_bytes: PathOrBytes, name: str | None = None) -> list[HDUInfo]:
    """Every image HDU of a file (one entry for PNG/JPEG), without decoding pixels.

    Raises
    ------
    ImageReadError
        The content is not a readable FITS, PNG or JPEG file.

    Examples
    --------
    >>> import io, numpy as np
    >>> from astropy.io import fits
    >>> buffer = io.BytesIO()
    >>> fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(np.zeros((2, 3)), name="SCI")]).writeto(buffer)
    >>> list_image_hdus(buffer.getvalue())
    [HDUInfo(index=1, name='SCI', shape=(2, 3), dtype='float64')]
    """
    name = _display_name(path_or_bytes, name)
    kind, target = _prepare(path_or_bytes, name, DEFAULT_MAX_FRAME_BYTES)
    if kind in ("png", "jpeg"):
        return _load_picture(target, kind, None, name).hdus
    stream = open(target, "rb") if isinstance(target, Path) else target
    with stream, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        hdul, infos = _open_fits_or_fail(stream, name)
        hdul.close()
    return infos
