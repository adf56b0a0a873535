"""Display limits of a frame: astropy's intervals, and the one zscale fallback.

The dashboard's image view and the REST API's ``/lineprofiledisplay`` picture
both take their limits from here, so a degenerate frame falls back the same way
on the page and in the PNG.

Pure numpy/astropy: nothing here imports Panel, Bokeh or HoloViews.
"""

from __future__ import annotations

import math

import numpy as np
from astropy.visualization import (
    ManualInterval,
    MinMaxInterval,
    PercentileInterval,
    ZScaleInterval,
)

__all__ = ["widen", "zscale_limits", "interval_limits"]


def widen(low: float, high: float) -> tuple[float, float]:
    """``(low, high)`` as floats with ``low < high``: sorted, and one unit wide if equal.

    Non-finite limits give ``(0, 1)``.

    Examples
    --------
    >>> widen(3, 3)
    (2.5, 3.5)
    >>> widen(5, 1)
    (1.0, 5.0)
    """
    low, high = float(low), float(high)
    if not (math.isfinite(low) and math.isfinite(high)):
        return 0.0, 1.0
    if high < low:
        low, high = high, low
    if high == low:
        return low - 0.5, high + 0.5
    return low, high


def _finite(values) -> np.ndarray:
    array = np.asarray(values).ravel()
    if np.issubdtype(array.dtype, np.floating):
        array = array[np.isfinite(array)]
    return array


def zscale_limits(values, extremes: tuple[float, float] | None = None) -> tuple[float, float]:
    """IRAF's zscale limits of ``values``, with ``low < high``.

    When zscale fails or gives no range (a flat or nearly flat frame, a fit
    that does not converge) the limits are the data's min and max (``extremes``
    when given: a sample may miss a hot pixel), widened by :func:`widen`.
    An empty (or all non-finite) input gives ``(0, 1)``.

    Examples
    --------
    >>> zscale_limits([7.0] * 100)
    (6.5, 7.5)
    >>> zscale_limits([])
    (0.0, 1.0)
    """
    finite = _finite(values)
    if finite.size == 0:
        return 0.0, 1.0
    try:
        low, high = (float(v) for v in ZScaleInterval().get_limits(finite))
    except Exception:  # zscale's fit can fail on degenerate data: fall back to min/max
        low = high = math.nan
    if not (math.isfinite(low) and math.isfinite(high)) or low >= high:
        if extremes is not None and all(v is not None for v in extremes):
            low, high = float(extremes[0]), float(extremes[1])
        else:
            low, high = float(finite.min()), float(finite.max())
    return widen(low, high)


def interval_limits(
    values,
    interval: str,
    manual: tuple[float | None, float | None] = (None, None),
    extremes: tuple[float, float] | None = None,
) -> tuple[float, float]:
    """Display limits ``(low, high)`` with ``low < high``.

    Parameters
    ----------
    values : array_like
        Finite sample of the frame.
    interval : str
        ``zscale``, ``minmax``, a percentile kept around the median
        (``"99.5"``, ``"99"``, ``"95"``...) or ``manual``.
    manual : (low, high)
        Limits for ``manual``; a missing one falls back to the min or max.
    extremes : (min, max), optional
        Exact min and max of the frame (the sample may miss a hot pixel).

    Raises
    ------
    ValueError
        For an unknown interval name.
    """
    values = np.asarray(values)
    if values.size == 0:
        return 0.0, 1.0
    if extremes is not None and all(v is not None for v in extremes):
        # Known exactly already: a ManualInterval with both limits reads no pixel.
        bounds = ManualInterval(float(extremes[0]), float(extremes[1]))
    else:
        bounds = MinMaxInterval()
    if interval == "minmax":
        return widen(*bounds.get_limits(values))
    if interval == "manual":
        low, high = bounds.get_limits(values)
        mlow, mhigh = manual
        return widen(low if mlow is None else float(mlow), high if mhigh is None else float(mhigh))
    if interval == "zscale":
        return zscale_limits(values, extremes)
    try:
        percent = float(interval)
    except (TypeError, ValueError):
        raise ValueError(f"unknown interval {interval!r}") from None
    if not 0.0 < percent <= 100.0:
        raise ValueError(f"a percentile interval keeps (0, 100] %, got {interval!r}")
    # The percentage kept is centred: 99 keeps 0.5 % .. 99.5 %.
    return widen(*PercentileInterval(percent).get_limits(values))
