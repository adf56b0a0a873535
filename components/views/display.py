"""Display limits (interval), stretches and colour palettes of the image view.

The rasterized image keeps the frame's *raw* values, so the hover and the
colorbar show real pixel values. Bokeh maps them linearly between the interval
limits onto a long palette; the stretch is baked into that palette: entry ``i``
of ``n`` has the colour of ``cmap(stretch((i + 0.5) / n))``. This is the same as
stretching the normalised data and colour-mapping it linearly, to 1/n of the
interval, and it costs nothing per render.

Pure numpy: nothing here imports Panel, Bokeh or HoloViews.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "INTERVALS",
    "STRETCHES",
    "COLORMAPS",
    "PALETTE_SIZE",
    "sample",
    "interval_limits",
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


def _widen(low: float, high: float) -> tuple[float, float]:
    if not (math.isfinite(low) and math.isfinite(high)):
        return 0.0, 1.0
    if high < low:
        low, high = high, low
    if high == low:
        return low - 0.5, high + 0.5
    return float(low), float(high)


def interval_limits(
    values: np.ndarray,
    interval: str,
    manual: tuple[float | None, float | None] = (None, None),
    extremes: tuple[float, float] | None = None,
) -> tuple[float, float]:
    """Display limits ``(low, high)`` with ``low < high``.

    Parameters
    ----------
    values : ndarray
        Finite sample of the frame (see :func:`sample`).
    interval : str
        ``zscale``, ``minmax``, a percentile kept around the median
        (``99.5``, ``99``, ``95``) or ``manual``.
    manual : (low, high)
        Limits for ``manual``; a missing one falls back to min/max.
    extremes : (min, max), optional
        Exact min and max of the frame (the sample may miss a hot pixel).
    """
    if values.size == 0:
        return 0.0, 1.0
    if extremes is not None and all(v is not None for v in extremes):
        low, high = float(extremes[0]), float(extremes[1])
    else:
        low, high = float(values.min()), float(values.max())
    if interval == "minmax":
        return _widen(low, high)
    if interval == "manual":
        mlow, mhigh = manual
        return _widen(low if mlow is None else float(mlow), high if mhigh is None else float(mhigh))
    if interval == "zscale":
        from astropy.visualization import ZScaleInterval

        try:
            zlow, zhigh = ZScaleInterval().get_limits(values)
        except Exception:  # degenerate data: fall back to min/max
            zlow, zhigh = low, high
        return _widen(float(zlow), float(zhigh))
    try:
        percent = float(interval)
    except ValueError:
        raise ValueError(f"unknown interval {interval!r}") from None
    cut = (100.0 - percent) / 2.0
    plow, phigh = np.percentile(values, [cut, 100.0 - cut])
    return _widen(float(plow), float(phigh))


def equalization_table(values: np.ndarray, low: float, high: float, bins: int = PALETTE_SIZE) -> np.ndarray:
    """Cumulative distribution of ``values`` at ``bins + 1`` even steps of [low, high], in [0, 1]."""
    inside = values[(values >= low) & (values <= high)]
    if inside.size == 0 or high <= low:
        return np.linspace(0.0, 1.0, bins + 1)
    counts, _ = np.histogram(inside, bins=bins, range=(low, high))
    cumulative = np.concatenate([[0.0], np.cumsum(counts, dtype=np.float64)])
    return cumulative / cumulative[-1]


def stretch_values(name: str, t: np.ndarray, table: np.ndarray | None = None) -> np.ndarray:
    """Stretch of normalised values ``t`` in [0, 1] (astropy's definitions); result in [0, 1]."""
    t = np.clip(np.asarray(t, dtype=np.float64), 0.0, 1.0)
    if name == "linear":
        return t
    if name == "log":
        return np.log(_LOG_A * t + 1.0) / math.log(_LOG_A + 1.0)
    if name == "sqrt":
        return np.sqrt(t)
    if name == "asinh":
        return np.arcsinh(t / _ASINH_A) / math.asinh(1.0 / _ASINH_A)
    if name == "histeq":
        if table is None:
            return t
        return np.interp(t, np.linspace(0.0, 1.0, len(table)), table)
    raise ValueError(f"unknown stretch {name!r}")


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
