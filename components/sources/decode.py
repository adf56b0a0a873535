"""Fast, bounded decoding of compressed frames: every core, and never more bytes than allowed.

Three jobs, each with astropy (or the standard library) as the fallback:

- :func:`decompress_tiles`: a tile-compressed image (``CompImageHDU``,
  ``.fits.fz``) decompressed tile by tile in a process-wide thread pool
  (imagecodecs' RICE decoder, zlib for GZIP_1/GZIP_2, astropy's own codec for
  HCOMPRESS_1; all release the GIL), then scaled by astropy's own code, so the
  array is bit-identical to ``hdu.data``. Anything unusual (quantized or
  dithered floats, ZBLANK/BLANK, a cube, an unknown ZCMPTYPE, odd columns)
  returns None and the caller lets astropy decode it.
- :func:`read_compressed_fits`: a whole-file ``.fits.bz2`` (indexed_bzip2's
  parallel reader) or ``.fits.gz`` (rapidgzip) decompressed as a stream, one
  HDU header first: a header declaring more than the bound stops the
  decompression there, and so does a stream longer than the bound.
- :func:`declared_nbytes` / :func:`check_declared`: the bytes an HDU's pixels
  will take, from its header alone, so too large a frame is refused
  (:class:`~components.errors.FrameTooLarge`, HTTP 413) before it is decoded.
"""

from __future__ import annotations

import bz2
import gzip
import math
import os
import threading
import zlib
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

import numpy as np
from astropy.io import fits

from components.errors import FrameTooLarge, ImageReadError

__all__ = [
    "DEFAULT_MAX_FRAME_BYTES",
    "declared_nbytes",
    "check_declared",
    "decompress_tiles",
    "read_compressed_fits",
    "decode_threads",
    "gzip_threads",
]

#: Bound on a frame's decoded bytes when the caller gives none (2 GiB).
DEFAULT_MAX_FRAME_BYTES = 2 * 1024**3

_BLOCK = 2880
_CARD = 80
# A header this long is hostile, not a camera's: stop reading it.
_MAX_HEADER_BYTES = 64 * 1024**2
_BITPIX_DTYPE = {8: "uint8", 16: "int16", 32: "int32", 64: "int64", -32: "float32", -64: "float64"}

_pool_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None


def decode_threads() -> int:
    """Threads the decoders use: the cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def _executor() -> ThreadPoolExecutor:
    """The process-wide decoding pool (one per process, not per call or session)."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=decode_threads(), thread_name_prefix="qa-decode")
        return _pool


# ----------------------------------------------------------------- sizes


def _axes(header, prefix: str) -> list[int]:
    count = int(header.get(f"{prefix}NAXIS", 0) or 0)
    return [int(header.get(f"{prefix}NAXIS{i}", 0) or 0) for i in range(1, count + 1)]


def declared_nbytes(header: fits.Header) -> int:
    """Bytes the pixels of an image HDU take once decoded, from its header alone.

    ``NAXIS1 * ... * NAXISn * |BITPIX| / 8`` (``ZNAXISn``/``ZBITPIX`` for the
    binary table of a tile-compressed image), or the size of the scaled
    result when BSCALE/BZERO turn integers into wider floats.

    Examples
    --------
    >>> header = fits.Header({"SIMPLE": True, "BITPIX": 16, "NAXIS": 2, "NAXIS1": 100, "NAXIS2": 50})
    >>> declared_nbytes(header)
    10000
    """
    compressed = bool(header.get("ZIMAGE", False))
    prefix = "Z" if compressed else ""
    axes = _axes(header, prefix)
    if not axes:
        return 0
    bitpix = int(header.get(f"{prefix}BITPIX", 8) or 8)
    itemsize = abs(bitpix) // 8
    scaled = header.get("BSCALE", 1) != 1 or header.get("BZERO", 0) not in (0, -128, 1 << 15, 1 << 31, 1 << 63)
    if scaled and bitpix > 0:
        # astropy scales 8/16-bit integers to float32, wider ones to float64.
        itemsize = max(itemsize, 4 if bitpix in (8, 16) else 8)
    return math.prod(axes) * itemsize


def check_declared(header: fits.Header, max_bytes: int | None, name: str, hdu: int | None = None) -> None:
    """Raise FrameTooLarge when ``header`` declares more pixel bytes than ``max_bytes``."""
    if max_bytes is None:
        return
    size = declared_nbytes(header)
    if size > max_bytes:
        where = "" if hdu is None else f" HDU {hdu}"
        raise FrameTooLarge(
            f"Cannot read {name}:{where} declares {size} bytes of pixels, "
            f"more than the {max_bytes} bytes a frame may take (QA_MAX_FRAME_BYTES)"
        )


# ------------------------------------------------ whole-file bz2 / gzip


def gzip_threads() -> int:
    """Threads for rapidgzip: every core from 4 cores, else its single-threaded decoder.

    A gzip file without an index is decoded in parallel speculatively, at
    about twice the work; on 2 cores that loses to rapidgzip's own
    single-threaded decoder (bench/decode.py: 2.5 s against 7.7 s for the
    61 MP frame on this 2-core machine, both faster than zlib's 4.4 s).
    bzip2 blocks are independent, so indexed_bzip2 always uses every core.
    """
    threads = decode_threads()
    return threads if threads >= 4 else 1


def _open_stream(source, kind: str, threads: int | None = None):
    """A (parallel) decompressing reader of ``source`` (a path or a binary file object)."""
    try:
        if kind == "bzip2":
            import indexed_bzip2

            return indexed_bzip2.open(source, parallelization=threads or decode_threads())
        import rapidgzip

        return rapidgzip.open(source, parallelization=threads or gzip_threads())
    except ImportError:
        opener = bz2.open if kind == "bzip2" else gzip.open
        return opener(source, "rb")


def _read_exactly(stream, count: int) -> bytearray:
    """Up to ``count`` bytes (fewer only at the end of the stream), read in place."""
    buffer = bytearray(count)
    view = memoryview(buffer)
    done = 0
    while done < count:
        got = stream.readinto(view[done:])
        if not got:
            break
        done += got
    view.release()
    if done < count:
        del buffer[done:]
    return buffer


def _ends_header(block: bytes) -> bool:
    return any(block[i : i + 3] == b"END" and not block[i + 3 : i + _CARD].strip()
               for i in range(0, len(block), _CARD))


def _data_span(header: fits.Header) -> int:
    """Bytes of an HDU's data part, padding included (FITS standard, 4.4.1)."""
    axes = _axes(header, "")
    if not axes or not any(axes):
        count = 0
    else:
        count = math.prod(axes)
    if header.get("XTENSION") is not None or count:
        count = int(header.get("GCOUNT", 1) or 1) * (int(header.get("PCOUNT", 0) or 0) + count)
    size = abs(int(header.get("BITPIX", 8) or 8)) // 8 * count
    return -(-size // _BLOCK) * _BLOCK


def read_compressed_fits(source, kind: str, max_bytes: int, name: str, threads: int | None = None) -> bytes:
    """Decompress a whole-file compressed FITS file, within ``max_bytes``.

    The stream is read one HDU at a time: its header first, then (if the
    header declares pixels within ``max_bytes``) its data. Decompression
    stops as soon as a header declares too large an image or the
    decompressed stream would pass ``max_bytes`` plus its headers.

    Parameters
    ----------
    source : path-like or binary file object
        The compressed file.
    kind : {"bzip2", "gzip"}
    max_bytes : int
        Bound on the decompressed pixels.
    name : str
        The file's name in messages.
    threads : int, optional
        Decompression threads (default: every core for bzip2,
        :func:`gzip_threads` for gzip).

    Returns
    -------
    bytes
        The FITS file (what astropy then parses; a truncated stream gives
        what there is, for astropy to report).

    Raises
    ------
    FrameTooLarge
        A header declares more than ``max_bytes``, or the stream is longer.
    ImageReadError
        The stream is corrupt, or holds no FITS file.
    """
    parts: list[bytes | bytearray] = []
    total_data = 0
    headers = 0
    source = os.fspath(source) if isinstance(source, os.PathLike) else source
    try:
        with _open_stream(source, kind, threads) as stream:
            index = 0
            while True:
                block = _read_exactly(stream, _BLOCK)
                if not block:
                    break
                if index == 0 and not bytes(block).startswith(b"SIMPLE  ="):
                    raise ImageReadError(f"Cannot read {name}: the {kind} file does not hold a FITS file")
                if index > 0 and not bytes(block).startswith(b"XTENSION"):
                    break  # padding or garbage after the last HDU, which astropy ignores too
                header_blocks = [block]
                while not _ends_header(block) and len(block) == _BLOCK:
                    headers += _BLOCK
                    if headers > _MAX_HEADER_BYTES:
                        raise FrameTooLarge(f"Cannot read {name}: a FITS header longer than {_MAX_HEADER_BYTES} bytes")
                    block = _read_exactly(stream, _BLOCK)
                    header_blocks.append(block)
                parts.extend(header_blocks)
                if not _ends_header(block):
                    break  # truncated header: astropy says so
                try:
                    header = fits.Header.fromstring(b"".join(header_blocks).decode("ascii", "replace"))
                except Exception:
                    break  # astropy reports the corrupt header
                check_declared(header, max_bytes, name, index)
                span = _data_span(header)
                total_data += span
                if total_data > max_bytes + _BLOCK * (index + 1):
                    raise FrameTooLarge(
                        f"Cannot read {name}: it decompresses to more than the {max_bytes} bytes "
                        "a frame may take (QA_MAX_FRAME_BYTES)"
                    )
                data = _read_exactly(stream, span)
                parts.append(data)
                if len(data) < span:
                    break
                index += 1
    except (FrameTooLarge, ImageReadError):
        raise
    except (OSError, EOFError, ValueError, RuntimeError, zlib.error) as error:
        raise ImageReadError(f"Cannot read {name}: corrupt or truncated {kind} data ({error})") from None
    if not parts:
        raise ImageReadError(f"Cannot read {name}: corrupt or truncated {kind} data (nothing decompressed)")
    raw = b"".join(parts)
    parts.clear()
    return raw


# ------------------------------------------------------- tile compression

_CODECS = ("RICE_1", "RICE_ONE", "GZIP_1", "GZIP_2", "HCOMPRESS_1")


def _setting(header, name: str, default):
    for i in range(1, 1000):
        key = f"ZNAME{i}"
        if key not in header:
            break
        if str(header[key]).strip().lower() == name.lower():
            return header.get(f"ZVAL{i}", default)
    return default


class _Unusual(Exception):
    """This tile-compressed image is for astropy to decode."""


def _plan(hdu) -> dict:
    """What the parallel decoder needs, or _Unusual for anything but the plain cases."""
    table = hdu._bintable
    if table is None or hdu._data_loaded or hdu._do_not_scale_image_data:
        raise _Unusual("not read from a file")
    header = table.header
    kind = str(header.get("ZCMPTYPE", "")).strip().upper()
    if kind not in _CODECS:
        raise _Unusual(kind)
    if int(header.get("ZNAXIS", 0)) != 2:
        raise _Unusual("not 2-D")
    zbitpix = int(header["ZBITPIX"])
    if zbitpix not in _BITPIX_DTYPE:
        raise _Unusual("ZBITPIX")
    if zbitpix < 0 and kind != "GZIP_1" and kind != "GZIP_2":
        raise _Unusual("quantized floats")
    for key in ("ZBLANK", "ZSCALE", "ZZERO", "ZQUANTIZ", "ZDITHER0"):
        if key in header:
            raise _Unusual(key)
    if "BLANK" in hdu.header:
        raise _Unusual("BLANK")
    names = [column.name.upper() for column in table.columns]
    if names != ["COMPRESSED_DATA"]:
        raise _Unusual("columns")
    tform = str(table.columns[0].format).upper().lstrip("1")
    if tform[:1] not in ("P", "Q") or tform[1:2] != "B":
        raise _Unusual(tform)
    if kind == "HCOMPRESS_1" and _setting(header, "SCALE", 0) != 0:
        raise _Unusual("lossy HCOMPRESS")
    rows, columns = int(header["ZNAXIS2"]), int(header["ZNAXIS1"])
    tile = (int(header.get("ZTILE2", 1)), int(header.get("ZTILE1", columns)))
    if min(tile) < 1 or rows < 1 or columns < 1:
        raise _Unusual("tiles")
    grid = (-(-rows // tile[0]), -(-columns // tile[1]))
    descriptors = np.array(table.data["COMPRESSED_DATA"])
    if descriptors.shape != (grid[0] * grid[1], 2):
        raise _Unusual("tile table")
    if np.any(descriptors[:, 0] == 0):
        raise _Unusual("empty tile")
    heap = table._get_raw_data(int(header["PCOUNT"]), np.uint8, table._data_offset + table._theap)
    if heap is None or len(heap) < int((descriptors[:, 0] + descriptors[:, 1]).max()):
        raise _Unusual("heap")
    return {
        "kind": kind, "zbitpix": zbitpix, "shape": (rows, columns), "tile": tile, "grid": grid,
        "descriptors": descriptors.astype(np.int64), "heap": heap,
        "blocksize": int(_setting(header, "BLOCKSIZE", 32)),
        "bytepix": int(_setting(header, "BYTEPIX", 4)),
        "smooth": int(_setting(header, "SMOOTH", 0)),
    }


def _gunzip(cdata) -> bytes:
    """One gzip member: imagecodecs (about twice zlib's speed here), else zlib."""
    try:
        import imagecodecs

        return imagecodecs.gzip_decode(cdata)
    except ImportError:
        return zlib.decompress(cdata, 47)  # gzip or zlib header (wbits 32 + 15)


def _gzip_tile(cdata, plan: dict, count: int, shuffled: bool) -> np.ndarray:
    """A GZIP_1/GZIP_2 tile as big-endian values (astropy's size rules)."""
    raw = _gunzip(cdata)
    size = len(raw)
    zbitpix = plan["zbitpix"]
    if size == count * 2:
        dtype = ">i2"
    elif size == count * 4:
        dtype = ">f4" if zbitpix < 0 else ">i4"
    elif size == count * 8:
        dtype = ">f8" if zbitpix < 0 else ">i8"
    elif size == count:
        dtype = "u1"
    else:
        raise _Unusual("tile size")
    values = np.frombuffer(raw, dtype=np.uint8)
    itemsize = np.dtype(dtype).itemsize
    if shuffled and itemsize > 1:
        # GZIP_2 stores byte plane after byte plane: interleave them back.
        values = np.ascontiguousarray(values.reshape(itemsize, count).T)
    return values.view(dtype)


def _rice_imagecodecs(cdata, plan: dict, out: np.ndarray) -> None:
    import imagecodecs

    dtype = np.dtype(f"i{plan['bytepix']}")
    if out.dtype == dtype and out.flags.c_contiguous:
        imagecodecs.rcomp_decode(cdata, shape=out.shape, dtype=dtype, nblock=plan["blocksize"], out=out)
    else:
        out[...] = imagecodecs.rcomp_decode(cdata, shape=out.shape, dtype=dtype, nblock=plan["blocksize"])


def _rice_astropy(cdata, plan: dict, out: np.ndarray) -> None:
    from astropy.io.fits.hdu.compressed._codecs import Rice1

    codec = Rice1(blocksize=plan["blocksize"], bytepix=plan["bytepix"], tilesize=out.size)
    out[...] = codec.decode(cdata)[: out.size].reshape(out.shape)


# cfitsio's hdecompress (inside astropy's HCompress1) keeps its bit-reader state in
# static globals: two tiles decoded at once corrupt each other (seen here as an
# intermittent fallback to astropy), so HCOMPRESS tiles are decoded one at a time.
_hcompress_lock = threading.Lock()


def _hcompress_astropy(cdata, plan: dict, out: np.ndarray) -> None:
    from astropy.io.fits.hdu.compressed._codecs import HCompress1

    if min(out.shape) < 2:
        raise _Unusual("HCOMPRESS needs 2-D tiles")  # astropy refuses them too
    codec = HCompress1(scale=0, smooth=plan["smooth"], bytepix=8, nx=out.shape[0], ny=out.shape[1])
    with _hcompress_lock:
        decoded = np.asarray(codec.decode(cdata))
    out[...] = decoded.reshape(out.shape)


#: RICE decoders to choose from (bench/decode.py measures both).
RICE_DECODERS: dict[str, Callable] = {"imagecodecs": _rice_imagecodecs, "astropy": _rice_astropy}


def _decode_tile(plan: dict, index: int, out: np.ndarray, rice: Callable) -> None:
    count, offset = plan["descriptors"][index]
    cdata = plan["heap"][offset : offset + count]
    kind = plan["kind"]
    if kind in ("RICE_1", "RICE_ONE"):
        rice(cdata, plan, out)
    elif kind == "HCOMPRESS_1":
        _hcompress_astropy(cdata, plan, out)
    else:
        out[...] = _gzip_tile(cdata, plan, out.size, kind == "GZIP_2").reshape(out.shape)


def _decode_rows(plan: dict, image: np.ndarray, tile_rows: range, rice: Callable) -> None:
    (height, width), grid_x = plan["tile"], plan["grid"][1]
    for ty in tile_rows:
        for tx in range(grid_x):
            out = image[ty * height : (ty + 1) * height, tx * width : (tx + 1) * width]
            _decode_tile(plan, ty * grid_x + tx, out, rice)


def decompress_tiles(hdu, threads: int | None = None, rice: str = "imagecodecs") -> np.ndarray | None:
    """The pixels of a tile-compressed HDU, decompressed on every core, scaled as astropy does.

    Parameters
    ----------
    hdu : astropy.io.fits.CompImageHDU
        An HDU of a file opened by astropy (its data not yet read).
    threads : int, optional
        Parallel workers (default: every core, in the process-wide pool).
    rice : {"imagecodecs", "astropy"}
        Which RICE_1 tile decoder to run in the pool.

    Returns
    -------
    ndarray or None
        What ``hdu.data`` would give (same dtype and bits), or None when
        the image is unusual (quantized, ZBLANK, a cube...) and astropy
        must decode it.
    """
    try:
        plan = _plan(hdu)
    except (_Unusual, AttributeError, KeyError, TypeError, ValueError):
        # AttributeError: astropy's internals moved; astropy decodes then.
        return None
    image = np.empty(plan["shape"], dtype=_BITPIX_DTYPE[plan["zbitpix"]])
    decoder = RICE_DECODERS[rice]
    grid_y = plan["grid"][0]
    workers = threads or decode_threads()
    chunks = min(grid_y, workers * 4)
    bounds = np.linspace(0, grid_y, chunks + 1).astype(int)
    ranges = [range(a, b) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]
    try:
        if workers == 1 or len(ranges) == 1:
            for rows in ranges:
                _decode_rows(plan, image, rows, decoder)
        else:
            pool = _executor() if threads is None else ThreadPoolExecutor(max_workers=workers)
            try:
                futures = [pool.submit(_decode_rows, plan, image, rows, decoder) for rows in ranges]
                for future in futures:
                    future.result()
            finally:
                if pool is not _pool:
                    pool.shutdown()
    except Exception:
        # A corrupt or odd tile: astropy decodes (and reports) it its own way.
        return None
    # astropy's own scaling (BZERO/BSCALE, unsigned offsets) and header update,
    # so the result is the very array and header ``hdu.data`` gives.
    data = hdu._scale_data(image)
    hdu._update_header_scale_info(data.dtype)
    return data
