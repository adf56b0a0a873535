"""Display limits (interval), stretches and colour palettes of the image view.

Intervals are :func:`components.core.intervals.interval_limits` (astropy's
ZScale, MinMax, Percentile and Manual intervals; re-exported here) and
stretches are astropy's (:func:`stretch`).

The rasterized image keeps the frame's *raw* values, so the hover and the
colorbar show real pixel values. Bokeh maps them linearly between the interval
limits onto a long palette; the stretch is baked into that palette: entry ``i``
of ``n`` has the colour of ``cmap(stretch((i + 0.5) / n))``. This is the same as
stretching the normalised data and colour-mapping it linearly, to 1/n of the
interval, and it costs nothing per render.

Pure numpy/astropy: nothing here imports Panel, Bokeh or HoloViews.
"""

from __future__ import annotations

import math

import numpy as np
from astropy.visualization import (
    AsinhStretch,
    HistEqStretch,
    LinearStretch,
    LogStretch,
    SqrtStretch,
)

from components.core.intervals import interval_limits

__all__ = [
    "INTERVALS",
    "STRETCHES",
    "COLORMAPS",
    "PALETTE_SIZE",
    "sample",
    "interval_limits",
    "stretch",
    "stretch_values",
    "equalization_table",
    "make_palette",
]

#: Interval names, in the order the control lists them.
INTERVALS = {
    "zscale": "zscale",
    "min/max": "minmax",
    "99.5 %": "99.5",
    "99 %": "99",
    "95 %": "95",
    "manual": "manual",
}
#: Stretch names, in the order the control lists them.
STRETCHES = {
    "linear": "linear",
    "log": "log",
    "sqrt": "sqrt",
    "asinh": "asinh",
    "hist. equalisation": "histeq",
}
#: Entries of the palette handed to Bokeh's LinearColorMapper.
PALETTE_SIZE = 4096
# Pixels sampled to estimate percentiles, zscale and the equalisation table.
_SAMPLE_PIXELS = 1_000_000
# astropy's defaults for the log and asinh stretches.
_LOG_A = 1000.0
_ASINH_A = 0.1


def _bokeh_palette(name: str) -> list[str]:
    import bokeh.palettes as palettes  # bokeh is light to import and always present

    return list(getattr(palettes, name))


def _colorcet_palette(name: str) -> list[str]:
    import colorcet

    return list(getattr(colorcet, name))


#: Colour map label -> loader of its 256-colour palette (low to high).
COLORMAPS = {
    "grey": lambda: _bokeh_palette("Greys256"),
    "viridis": lambda: _bokeh_palette("Viridis256"),
    "inferno": lambda: _bokeh_palette("Inferno256"),
    "magma": lambda: _bokeh_palette("Magma256"),
    "plasma": lambda: _bokeh_palette("Plasma256"),
    "cividis": lambda: _bokeh_palette("Cividis256"),
    "turbo": lambda: _bokeh_palette("Turbo256"),
    "fire": lambda: _colorcet_palette("fire"),
    "heat (kb)": lambda: _colorcet_palette("kb"),
    "coolwarm": lambda: _colorcet_palette("coolwarm"),
}


def sample(data: np.ndarray, max_pixels: int = _SAMPLE_PIXELS) -> np.ndarray:
    """Finite pixels of a regular grid of at most about ``max_pixels`` of ``data`` (float64)."""
    array = np.asarray(data)
    if array.ndim != 2:
        array = array.reshape(-1, array.shape[-1]) if array.ndim > 2 else array.reshape(1, -1)
    step = max(1, int(math.ceil(math.sqrt(array.size / max_pixels))))
    values = np.asarray(array[::step, ::step], dtype=np.float64).ravel()
    if not np.issubdtype(array.dtype, np.integer):
        values = values[np.isfinite(values)]
    return values


def equalization_table(values: np.ndarray, low: float, high: float, bins: int = PALETTE_SIZE) -> np.ndarray:
    """Cumulative distribution of ``values`` at ``bins + 1`` even steps of [low, high], in [0, 1]."""
    inside = values[(values >= low) & (values <= high)]
    if inside.size == 0 or high <= low:
        return np.linspace(0.0, 1.0, bins + 1)
    counts, _ = np.histogram(inside, bins=bins, range=(low, high))
    cumulative = np.concatenate([[0.0], np.cumsum(counts, dtype=np.float64)])
    return cumulative / cumulative[-1]


def stretch(name: str, table: np.ndarray | None = None):
    """The astropy stretch of a name (``table``: see :func:`equalization_table`).

    The log and asinh stretches keep astropy's defaults (``a = 1000`` and
    ``a = 0.1``). Histogram equalisation is astropy's :class:`HistEqStretch`
    given the frame's equalisation table as its mapping (``data`` the table's
    even steps of [0, 1], ``values`` the cumulative distribution there), so a
    palette costs one interpolation of 4096 entries and never sorts a sample.
    """
    if name == "linear":
        return LinearStretch()
    if name == "log":
        return LogStretch(a=_LOG_A)
    if name == "sqrt":
        return SqrtStretch()
    if name == "asinh":
        return AsinhStretch(a=_ASINH_A)
    if name == "histeq":
        if table is None:
            return LinearStretch()
        table = np.asarray(table, dtype=np.float64)
        return HistEqStretch(np.linspace(0.0, 1.0, len(table)), values=table)
    raise ValueError(f"unknown stretch {name!r}")


def stretch_values(name: str, t: np.ndarray, table: np.ndarray | None = None) -> np.ndarray:
    """Stretch of normalised values ``t`` in [0, 1] (clipped first); result in [0, 1]."""
    t = np.array(t, dtype=np.float64)  # a copy: astropy's stretches may work in place
    return stretch(name, table)(t, clip=True)


def _hex_to_rgb(colors: list[str]) -> np.ndarray:
    return np.array([[int(c[i : i + 2], 16) for i in (1, 3, 5)] for c in colors], dtype=np.float64)


_RGB_CACHE: dict[str, np.ndarray] = {}


def _rgb(cmap: str) -> np.ndarray:
    if cmap not in _RGB_CACHE:
        try:
            loader = COLORMAPS[cmap]
        except KeyError:
            raise ValueError(f"unknown colour map {cmap!r}") from None
        _RGB_CACHE[cmap] = _hex_to_rgb(loader())
    return _RGB_CACHE[cmap]


def make_palette(
    cmap: str,
    stretch: str = "linear",
    invert: bool = False,
    table: np.ndarray | None = None,
    size: int = PALETTE_SIZE,
) -> list[str]:
    """``size`` hex colours: entry i is ``cmap(stretch((i + 0.5) / size))``, reversed if ``invert``."""
    rgb = _rgb(cmap)
    t = (np.arange(size) + 0.5) / size
    position = stretch_values(stretch, t, table) * (len(rgb) - 1)
    if invert:
        position = (len(rgb) - 1) - position
    channels = [np.interp(position, np.arange(len(rgb)), rgb[:, i]) for i in range(3)]
    codes = np.clip(np.rint(np.stack(channels, axis=1)), 0, 255).astype(np.int64)
    packed = (codes[:, 0] << 16) | (codes[:, 1] << 8) | codes[:, 2]
    return [f"#{value:06x}" for value in packed.tolist()]
