"""The pixel scale of a frame: one rule for the profile pane, the quality metrics and the API.

Pure astropy: nothing here knows where the header came from.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np

__all__ = ["PIXEL_SCALE_KEYWORDS", "pixel_scale"]

#: Header keywords giving arcsec per pixel, in the order they are tried. They
#: are every keyword the profile pane (PIXSCAL1) and the quality metrics
#: (SECPIX1) read before they shared this rule; both read PIXSCALE and SECPIX first.
PIXEL_SCALE_KEYWORDS = ("PIXSCALE", "SECPIX", "SECPIX1", "PIXSCAL1")


def _positive(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) and number > 0 else None


def _wcs_scale(wcs) -> float | None:
    try:
        from astropy.wcs.utils import proj_plane_pixel_scales

        celestial = wcs.celestial
        if celestial.naxis == 0:
            return None
        # The celestial axes of a FITS WCS are in degrees (astropy converts them).
        return _positive(np.mean(proj_plane_pixel_scales(celestial)) * 3600.0)
    except Exception:  # a broken or unusual WCS gives no scale: the header may still say
        return None


def pixel_scale(
    header: Mapping | None = None, wcs=None, fallback: float | None = None
) -> float | None:
    """Arcsec per pixel of a frame.

    Tried in order: the celestial WCS (mean of the projection plane's pixel
    scales), the header keywords :data:`PIXEL_SCALE_KEYWORDS`, ``fallback``.
    A value that is not a finite positive number is skipped.

    Parameters
    ----------
    header : mapping, optional
        FITS header (any mapping of keyword to value).
    wcs : astropy.wcs.WCS, optional
        The frame's WCS; only its celestial part is used.
    fallback : float, optional
        Scale to use when neither says anything (e.g. the ``QA_PIXEL_SCALE`` setting).

    Returns
    -------
    float or None
        None when nothing gives a scale.

    Examples
    --------
    >>> pixel_scale({"SECPIX1": 0.62})
    0.62
    >>> pixel_scale({"PIXSCALE": "n/a"}, fallback=1.5)
    1.5
    >>> pixel_scale({}) is None
    True
    """
    if wcs is not None:
        scale = _wcs_scale(wcs)
        if scale is not None:
            return scale
    if header is not None:
        for keyword in PIXEL_SCALE_KEYWORDS:
            try:
                value = header[keyword]
            except (KeyError, TypeError, IndexError):
                continue
            scale = _positive(value)
            if scale is not None:
                return scale
    return _positive(fallback) if fallback is not None else None
