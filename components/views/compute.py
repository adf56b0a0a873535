"""The numbers the panes show, computed by :mod:`components.core` and shared by sessions.

Every pane gets its numbers here, and everything here calls the same core
functions, with the same arguments, as the REST API: a box is turned into the
API's relative corners first (:mod:`components.views.coords`) and then handed
to :func:`components.core.subregion`, exactly as ``POST /statistics`` does.

Results are memoised per decoded image (the cache hands every session the
same :class:`Image` object for a frame), so a frame that several observers
watch is analysed once, not once per browser.
"""

from __future__ import annotations

import math
import weakref
from typing import Any, Callable

import numpy as np

from components.core import histogram_clipped, line_profile, statistics, subregion
from components.sources.cache import Memo
from components.views import coords, display

__all__ = [
    "region",
    "region_statistics",
    "region_histogram",
    "profile",
    "display_sample",
    "display_limits",
    "pixel_scale",
    "analysed",
    "clear",
]

_MAX_ENTRIES = 256
#: The panes' numbers per decoded image, computed once (single flight) for every session.
memo = Memo(max_entries=_MAX_ENTRIES)


def _memoised(image, kind: str, arguments: tuple, compute: Callable[[], Any]) -> Any:
    key = (id(image), kind, arguments)
    hit = memo.peek(key)
    if hit is not None and hit[0]() is not image:
        memo.discard(key)  # a dead image's id, reused
    return memo.get(key, lambda: (weakref.ref(image), compute()))[1]


def analysed(image, clip_percent: float, interval: str) -> bool:
    """Whether the whole-frame numbers a pane shows first are memoised for ``image``."""
    keys = ((id(image), "statistics", (None,)), (id(image), "histogram", (None, clip_percent)),
            (id(image), "limits", (interval,)))
    return all((hit := memo.peek(key)) is not None and hit[0]() is image for key in keys)


def clear() -> None:
    """Forget every memoised result (tests)."""
    memo.clear()


def region(image, box) -> tuple[np.ndarray, tuple[float, float, float, float] | None]:
    """Pixels of a plot box (or the whole frame for None) and the API corners used."""
    data = image.data
    if box is None:
        return data, None
    corners = coords.plot_box_to_relative(box, data.shape)
    if corners is None:
        return data, None
    return subregion(data, *corners), corners


def region_statistics(image, box=None) -> dict:
    """``components.core.statistics`` of the box (or whole frame), plus ``subregion``/``shape``."""
    data = image.data
    corners = None if box is None else coords.plot_box_to_relative(box, data.shape)

    def compute():
        pixels = data if corners is None else subregion(data, *corners)
        result = dict(statistics(pixels))
        result["shape"] = tuple(int(n) for n in pixels.shape)
        return result

    result = dict(_memoised(image, "statistics", (corners,), compute))
    result["subregion"] = corners
    return result


def region_histogram(image, box=None, clip_percent: float | None = 0.001) -> dict:
    """``components.core.histogram_clipped`` of the box (or whole frame)."""
    data = image.data
    corners = None if box is None else coords.plot_box_to_relative(box, data.shape)

    def compute():
        pixels = data if corners is None else subregion(data, *corners)
        return histogram_clipped(pixels, clip_percent)

    result = dict(_memoised(image, "histogram", (corners, clip_percent), compute))
    result["subregion"] = corners
    return result


def profile(image, line):
    """``components.core.line_profile`` of a plot line (API start/end computed here)."""
    start, end = coords.plot_line_to_relative(line, image.data.shape)
    return line_profile(image.data, start, end)


def display_sample(image) -> np.ndarray:
    """A regular sample of the frame's finite pixels, for display limits."""
    return _memoised(image, "sample", (), lambda: display.sample(image.data, 250_000))


def display_limits(image, interval: str, manual=(None, None)) -> tuple[float, float]:
    """Display limits of a frame for an interval name (see :func:`display.interval_limits`)."""
    if interval == "manual":
        stats = region_statistics(image)
        return display.interval_limits(
            display_sample(image), interval, manual, (stats["min"], stats["max"])
        )

    def compute():
        extremes = None
        if interval == "minmax":
            stats = region_statistics(image)
            extremes = (stats["min"], stats["max"])
        return display.interval_limits(display_sample(image), interval, extremes=extremes)

    return _memoised(image, "limits", (interval,), compute)


def equalization_table(image, low: float, high: float) -> np.ndarray:
    """Histogram-equalisation table of a frame between display limits."""
    return _memoised(
        image, "equalization", (low, high),
        lambda: display.equalization_table(display_sample(image), low, high),
    )


def pixel_scale(image, fallback: float | None = None) -> float | None:
    """Arcsec per pixel: from the WCS, else the header (PIXSCALE/SECPIX), else ``fallback``."""

    def compute():
        wcs = getattr(image, "wcs", None)
        if wcs is not None:
            try:
                from astropy.wcs.utils import proj_plane_pixel_scales

                scales = proj_plane_pixel_scales(wcs.celestial)
                value = float(np.mean(scales)) * 3600.0
                if math.isfinite(value) and value > 0:
                    return value
            except Exception:  # an unusual WCS: try the header
                pass
        header = getattr(image, "header", None)
        if header is not None:
            for keyword in ("PIXSCALE", "SECPIX", "PIXSCAL1"):
                try:
                    value = float(header[keyword])
                except (KeyError, TypeError, ValueError):
                    continue
                if math.isfinite(value) and value > 0:
                    return value
        return float(fallback) if fallback else None

    return _memoised(image, "pixel_scale", (fallback,), compute)
