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

import weakref
from typing import Any, Callable

import numpy as np

from components.core import histogram_clipped, line_profile, statistics, subregion, wcs
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


def _corners(image, box) -> tuple[float, float, float, float] | None:
    """The API corners of a plot box; None (the whole frame) without a box or for one of no area."""
    return None if box is None else coords.plot_box_to_relative(box, image.data.shape)


def _pixels(image, corners) -> np.ndarray:
    return image.data if corners is None else subregion(image.data, *corners)


def region(image, box) -> tuple[np.ndarray, tuple[float, float, float, float] | None]:
    """Pixels of a plot box (or the whole frame for None) and the API corners used."""
    corners = _corners(image, box)
    return _pixels(image, corners), corners


def region_statistics(image, box=None) -> dict:
    """``components.core.statistics`` of the box (or whole frame), plus ``subregion``/``shape``."""
    corners = _corners(image, box)

    def compute():
        pixels = _pixels(image, corners)
        result = dict(statistics(pixels))
        result["shape"] = tuple(int(n) for n in pixels.shape)
        return result

    result = dict(_memoised(image, "statistics", (corners,), compute))
    result["subregion"] = corners
    return result


def region_histogram(image, box=None, clip_percent: float | None = 0.001) -> dict:
    """``components.core.histogram_clipped`` of the box (or whole frame)."""
    corners = _corners(image, box)

    def compute():
        return histogram_clipped(_pixels(image, corners), clip_percent)

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
    """Arcsec per pixel of a frame: :func:`components.core.wcs.pixel_scale`, the rule quality uses."""
    return _memoised(
        image, "pixel_scale", (fallback,),
        lambda: wcs.pixel_scale(getattr(image, "header", None), getattr(image, "wcs", None), fallback),
    )
