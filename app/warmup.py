"""Compile the hot kernels once per process, before the first observer needs them."""

from __future__ import annotations

import logging
import time

import numpy as np

from components.core import histogram_clipped, line_profile, statistics

__all__ = ["warm_up"]

log = logging.getLogger("quickanalysis")


def warm_up() -> None:
    started = time.perf_counter()
    # One tiny frame per common dtype compiles every numba specialisation.
    for dtype in (np.uint16, np.int16, np.int32, np.uint8, np.float32, np.float64):
        frame = (np.arange(64).reshape(8, 8) % 7).astype(dtype)
        # Cached frames are read-only, a numba type of its own; views of them
        # (boxes) are non-contiguous, another one.
        shared = frame.copy()
        shared.setflags(write=False)
        for array in (frame, shared, shared[1:7, 1:7]):
            statistics(array)
            histogram_clipped(array)
        line_profile(frame, (0, 0), (1, 1))
    log.info("warm-up done in %.1f s", time.perf_counter() - started)
