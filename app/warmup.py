"""Compile the hot kernels once per process, before the first observer needs them.

Two families of kernels are compiled on their first call:

* the numba kernels of :mod:`components.core` (statistics, histograms), once
  per pixel type;
* datashader's raster kernels behind the image view's ``rasterize`` (about
  1.5 s per pixel type, for its paths: the whole frame in blocks, part of it
  in blocks, and part of it pixel for pixel), compiled separately for the
  read-only arrays the frame store hands out.

``app.server`` runs :func:`warm_up` in a background thread at start-up, so
the first observer's session finds them compiled.
"""

from __future__ import annotations

import logging
import time

import numpy as np

from components.core import histogram_clipped, line_profile, statistics

__all__ = ["warm_up", "warm_up_core", "warm_up_rasterize", "RASTER_DTYPES"]

log = logging.getLogger("quickanalysis")

#: Pixel types whose raster kernels are compiled, most common first (cameras
#: write uint16; reduced frames are float32).
RASTER_DTYPES = (np.uint16, np.float32, np.int16, np.float64, np.int32, np.uint8)


def _frames(dtype, shape, writeable=(True, False)):
    """Small frames of ``dtype``: writeable, and read-only as the frame store hands them out.

    numba compiles a kernel once per argument type, and a read-only array is
    another type than a writeable one.
    """
    for flag in writeable:
        frame = (np.arange(shape[0] * shape[1]).reshape(shape) % 97).astype(dtype)
        frame.setflags(write=flag)
        yield frame


def warm_up_core() -> None:
    """Statistics, histogram and profile kernels, for every common pixel type."""
    for dtype in (np.uint16, np.int16, np.int32, np.uint8, np.float32, np.float64):
        for frame in _frames(dtype, (8, 8)):
            # A box is a non-contiguous view: one more argument type per frame type.
            for array in (frame, frame[1:7, 2:6]):
                statistics(array)
                histogram_clipped(array)
            line_profile(frame, (0, 0), (1, 1))


def warm_up_rasterize(dtypes=RASTER_DTYPES) -> None:
    """Run the image view's rasterize on a small frame of each type, down, zoomed and up."""
    from astropy.io import fits

    from components.sources import Image
    from components.views.image import image_element, rasterize_view

    for dtype in dtypes:
        # Read-only only: sessions get frames from the store, which locks them.
        for frame in _frames(dtype, (200, 300), writeable=(False,)):
            element = image_element(Image(frame, fits.Header()))
            rasterize_view(element, None, None, 120, 80)  # whole frame, in blocks
            rasterize_view(element, (10.3, 100.7), (5.2, 60.9), 40, 30)  # zoomed, in blocks
            rasterize_view(element, (10.3, 100.7), (5.2, 60.9), 600, 400)  # pixel for pixel


def warm_up(rasterize: bool = True) -> None:
    """Compile every kernel an observer's first frame needs (a few seconds, once)."""
    started = time.perf_counter()
    warm_up_core()
    core = time.perf_counter() - started
    if rasterize:
        try:
            warm_up_rasterize()
        except Exception:  # never let the warm-up take the server down
            log.exception("warming up rasterize failed")
    log.info(
        "warm-up done in %.1f s (core %.1f s, rasterize %.1f s)",
        time.perf_counter() - started, core, time.perf_counter() - started - core,
    )
