"""Focus curves: a hyperbola fitted to FWHM against focuser position.

Near focus the image of a star is limited by seeing; away from it the defocus
blur grows linearly with the focuser offset. The two add in quadrature, so

    FWHM(x) = sqrt(a**2 + b**2 * (x - c)**2)

a hyperbola whose vertex ``c`` is the best focus and ``a`` the best FWHM.
``FWHM**2`` is then a quadratic in ``x``: a linear least-squares fit of it
gives the starting point, and a non-linear fit of the hyperbola itself gives
the final values and, from its covariance, the uncertainty of the best focus.

Pure numpy/scipy: nothing here imports Panel or Bokeh.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Mapping, Sequence

import numpy as np
from scipy.optimize import curve_fit

__all__ = ["FocusFit", "fit_focus", "hyperbola", "focus_position", "MIN_FOCUS_POINTS"]

#: Fewest frames (at distinct focuser positions) a fit is attempted with.
MIN_FOCUS_POINTS = 5


@dataclass(frozen=True)
class FocusFit:
    """The fitted focus curve ``fwhm = sqrt(fwhm_min_px**2 + slope**2 * (focus - best_focus)**2)``.

    Attributes
    ----------
    best_focus : float
        Focuser position of the smallest FWHM (the hyperbola's vertex).
    best_focus_error : float
        One-sigma uncertainty of ``best_focus`` (from the fit's covariance,
        scaled by the scatter of the points about the curve).
    fwhm_min_px : float
        FWHM at best focus, in pixels.
    slope : float
        FWHM pixels per focuser step far from focus (the asymptotes' slope).
    points : int
        Points the fit used.
    """

    best_focus: float
    best_focus_error: float
    fwhm_min_px: float
    slope: float
    points: int

    def to_dict(self) -> dict:
        return asdict(self)

    def curve(self, focus) -> np.ndarray:
        """The fitted FWHM at the positions ``focus``."""
        return hyperbola(focus, self.fwhm_min_px, self.slope, self.best_focus)


def hyperbola(x, a: float, b: float, c: float) -> np.ndarray:
    """``sqrt(a**2 + b**2 * (x - c)**2)``.

    Examples
    --------
    >>> float(hyperbola(13.0, 3.0, 0.5, 5.0))
    5.0
    """
    x = np.asarray(x, dtype=np.float64)
    return np.sqrt(a * a + (b * (x - c)) ** 2)


def _finite_pairs(focus: Sequence, fwhm: Sequence) -> tuple[np.ndarray, np.ndarray]:
    pairs = []
    for x, y in zip(focus, fwhm):
        try:
            x, y = float(x), float(y)
        except (TypeError, ValueError):
            continue
        if math.isfinite(x) and math.isfinite(y) and y > 0:
            pairs.append((x, y))
    if not pairs:
        return np.zeros(0), np.zeros(0)
    x, y = np.array(pairs).T
    return x, y


def fit_focus(focus: Sequence, fwhm: Sequence, min_points: int = MIN_FOCUS_POINTS) -> FocusFit | None:
    """Fit the focus hyperbola to FWHM measurements at focuser positions.

    Parameters
    ----------
    focus, fwhm : sequence of float
        Focuser position and FWHM (pixels) of each frame; None, NaN and
        non-positive FWHM values are ignored.
    min_points : int
        Fewest usable points; fewer (or fewer than 3 distinct positions) give None.

    Returns
    -------
    FocusFit or None
        None when there are too few points or the points do not bracket a
        minimum (the curve opens downwards, or the vertex lies far outside
        the positions measured).

    Examples
    --------
    >>> positions = [4000, 4100, 4200, 4300, 4400, 4500, 4600]
    >>> widths = hyperbola(positions, 2.5, 0.02, 4320.0)
    >>> fit = fit_focus(positions, widths)
    >>> round(fit.best_focus), round(fit.fwhm_min_px, 2)
    (4320, 2.5)
    >>> fit_focus([1, 2], [3, 4]) is None
    True
    """
    x, y = _finite_pairs(focus, fwhm)
    if len(x) < max(min_points, 4) or len(np.unique(x)) < 3:
        return None
    # Centre and scale the positions: focuser steps run to 10**5 and the
    # quadratic's normal equations would lose most of their precision.
    centre, scale = float(np.mean(x)), float(np.ptp(x)) or 1.0
    u = (x - centre) / scale
    quadratic, linear, constant = np.polyfit(u, y * y, 2)
    if not quadratic > 0:
        return None
    c0 = -linear / (2.0 * quadratic)
    a0_squared = constant - linear * linear / (4.0 * quadratic)
    a0 = math.sqrt(a0_squared) if a0_squared > 0 else float(np.min(y)) * 0.9
    b0 = math.sqrt(quadratic)
    try:
        params, covariance = curve_fit(
            hyperbola, u, y, p0=(a0, b0, c0),
            bounds=((1e-6, 1e-9, -10.0), (np.inf, np.inf, 10.0)), maxfev=2000,
        )
    except (RuntimeError, ValueError):
        return None
    a, b, c = (float(value) for value in params)
    # A vertex well outside the positions measured is an extrapolation, not a focus.
    if not (u.min() - 0.5 <= c <= u.max() + 0.5):
        return None
    variance = float(covariance[2, 2]) if np.all(np.isfinite(covariance)) else math.inf
    error = math.sqrt(variance) * scale if variance >= 0 else math.inf
    return FocusFit(
        best_focus=centre + c * scale,
        best_focus_error=error,
        fwhm_min_px=a,
        slope=b / scale,
        points=int(len(x)),
    )


def focus_position(header: Mapping | None, keyword: str = "FOCPOS") -> float | None:
    """The focuser position a header records under ``keyword``, or None.

    Examples
    --------
    >>> focus_position({"FOCPOS": 4210})
    4210.0
    >>> focus_position({"FOCPOS": "n/a"}) is None, focus_position(None) is None
    (True, True)
    """
    if header is None or not keyword:
        return None
    try:
        value = header.get(keyword) if hasattr(header, "get") else header[keyword]
    except (KeyError, IndexError):
        return None
    if value is None or isinstance(value, bool):
        return None
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None
