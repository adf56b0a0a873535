"""Difference of two frames: current minus reference, aligned through their WCS.

When both frames have a celestial WCS the reference is brought onto the
current frame's pixel grid: by a whole-pixel shift when the two WCS differ
only by such a shift (exact: no interpolation), otherwise by
``reproject.reproject_interp`` (bilinear). Without a WCS on either frame the
difference is pixel to pixel. Pixels the reference does not cover are NaN.

Pure numpy/astropy (+ reproject): nothing here imports Panel or Bokeh.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from astropy.wcs import WCS

__all__ = ["Difference", "difference", "pixel_offset", "symmetric_limit"]

# Largest departure (pixels) from a constant whole-pixel offset still treated as a shift.
_SHIFT_TOLERANCE = 1e-3
# Percentile of |difference| that sets the symmetric colour limits.
_LIMIT_PERCENTILE = 99.5


@dataclass(frozen=True)
class Difference:
    """``data`` = current - aligned reference, on the current frame's grid.

    Attributes
    ----------
    data : ndarray
        float64 difference; NaN where the reference does not cover.
    limit : float
        Symmetric colour limit: show ``(-limit, limit)``.
    method : {"pixel", "shift", "reproject"}
        How the reference was aligned.
    offset : (int, int) or None
        (dx, dy) whole-pixel shift when ``method == "shift"``: current pixel
        ``(x, y)`` is reference pixel ``(x + dx, y + dy)``.
    """

    data: np.ndarray
    limit: float
    method: str
    offset: tuple[int, int] | None = None

    @property
    def limits(self) -> tuple[float, float]:
        return (-self.limit, self.limit)


def symmetric_limit(data: npt.ArrayLike, percentile: float = _LIMIT_PERCENTILE) -> float:
    """A colour limit symmetric about zero holding ``percentile`` % of the finite |values|.

    Examples
    --------
    >>> symmetric_limit([-4.0, 1.0, 2.0], percentile=100)
    4.0
    >>> symmetric_limit([float("nan")])
    1.0
    """
    values = np.abs(np.asarray(data, dtype=np.float64))
    values = values[np.isfinite(values)]
    if values.size == 0:
        return 1.0
    limit = float(np.percentile(values, percentile))
    if not limit > 0:
        limit = float(values.max())
    return limit if limit > 0 else 1.0


def _celestial(wcs) -> WCS | None:
    if wcs is None or not getattr(wcs, "has_celestial", False):
        return None
    return wcs.celestial


def pixel_offset(current_wcs: WCS, reference_wcs: WCS, shape: tuple[int, int]) -> tuple[int, int] | None:
    """The whole-pixel (dx, dy) taking current pixels onto reference pixels, or None.

    None when the mapping is not one constant whole-pixel shift over the
    frame (rotation, scale, distortion or a fractional shift).
    """
    height, width = shape
    xs = np.array([0.0, width - 1.0, 0.0, width - 1.0, (width - 1) / 2.0])
    ys = np.array([0.0, 0.0, height - 1.0, height - 1.0, (height - 1) / 2.0])
    try:
        world = current_wcs.all_pix2world(xs, ys, 0)
        rx, ry = reference_wcs.all_world2pix(world[0], world[1], 0)
    except Exception:  # no convergence: not a simple shift
        return None
    dx, dy = rx - xs, ry - ys
    if not (np.all(np.isfinite(dx)) and np.all(np.isfinite(dy))):
        return None
    sx, sy = round(float(np.mean(dx))), round(float(np.mean(dy)))
    if np.max(np.abs(dx - sx)) > _SHIFT_TOLERANCE or np.max(np.abs(dy - sy)) > _SHIFT_TOLERANCE:
        return None
    return int(sx), int(sy)


def _shifted(reference: np.ndarray, shape: tuple[int, int], dx: int, dy: int) -> np.ndarray:
    """Reference pixels at (x + dx, y + dy) on a grid of ``shape``; NaN outside."""
    out = np.full(shape, np.nan)
    height, width = shape
    rh, rw = reference.shape
    # Current rows y with 0 <= y + dy < rh, columns likewise.
    y0, y1 = max(0, -dy), min(height, rh - dy)
    x0, x1 = max(0, -dx), min(width, rw - dx)
    if y0 < y1 and x0 < x1:
        out[y0:y1, x0:x1] = reference[y0 + dy : y1 + dy, x0 + dx : x1 + dx]
    return out


def difference(
    current: npt.ArrayLike,
    reference: npt.ArrayLike,
    current_wcs: WCS | None = None,
    reference_wcs: WCS | None = None,
) -> Difference:
    """Current minus reference, the reference aligned onto the current frame.

    Parameters
    ----------
    current, reference : array_like
        2-D frames (any shapes; the result has the current frame's).
    current_wcs, reference_wcs : astropy.wcs.WCS, optional
        Celestial WCS of each; alignment needs both.

    Returns
    -------
    Difference

    Examples
    --------
    >>> import numpy as np
    >>> d = difference(np.full((2, 3), 5), np.ones((2, 3)))
    >>> d.method, float(d.data[0, 0]), d.limits
    ('pixel', 4.0, (-4.0, 4.0))
    """
    current = np.asarray(current, dtype=np.float64)
    reference = np.asarray(reference, dtype=np.float64)
    if current.ndim != 2 or reference.ndim != 2:
        from components.errors import InvalidRequest

        raise InvalidRequest("difference needs two 2-D frames")
    shape = current.shape
    cw, rw = _celestial(current_wcs), _celestial(reference_wcs)
    offset = None
    if cw is None or rw is None:
        method, aligned = "pixel", _shifted(reference, shape, 0, 0)
    else:
        offset = pixel_offset(cw, rw, shape)
        if offset is not None:
            method, aligned = "shift", _shifted(reference, shape, *offset)
        else:
            from reproject import reproject_interp

            method = "reproject"
            aligned, _ = reproject_interp((reference, rw), cw, shape_out=shape, order="bilinear")
    data = current - aligned
    return Difference(data=data, limit=symmetric_limit(data), method=method, offset=offset)

