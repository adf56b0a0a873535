"""Pointing drift: where each frame's centre points, as offsets from the first frame.

Pure numpy/astropy: nothing here imports Panel or Bokeh.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Iterable, Sequence

import numpy as np
from astropy.coordinates import SkyCoord
from astropy.wcs import WCS

__all__ = ["Pointing", "frame_centre", "pointing_drift", "pointing_offsets"]


@dataclass(frozen=True)
class Pointing:
    """Sky position of one frame's centre and its offset from the first frame with a WCS.

    ``east_arcsec`` is the offset along RA on the sky (RA difference times
    cos Dec, positive to the east) and ``north_arcsec`` along Dec; both are
    None (and ``ra``/``dec`` too) for a frame without a celestial WCS.
    """

    key: str
    ra: float | None
    dec: float | None
    east_arcsec: float | None
    north_arcsec: float | None
    separation_arcsec: float | None

    def to_dict(self) -> dict:
        return asdict(self)


def frame_centre(wcs: WCS | None, shape: tuple[int, int]) -> tuple[float, float] | None:
    """(RA, Dec) in degrees of the centre of a frame of ``shape`` (rows, columns), or None.

    Examples
    --------
    >>> from components.core.synthetic import star_field
    >>> frame = star_field((64, 96), n_stars=1, ra=10.0, dec=20.0, seed=0)
    >>> [round(v, 6) for v in frame_centre(WCS(frame.header), frame.shape)]
    [10.0, 20.0]
    """
    if wcs is None or not getattr(wcs, "has_celestial", False):
        return None
    height, width = shape[0], shape[1]
    try:
        ra, dec = wcs.celestial.all_pix2world([(width - 1) / 2.0], [(height - 1) / 2.0], 0)
    except Exception:  # a WCS that cannot transform gives no pointing
        return None
    ra, dec = float(ra[0]), float(dec[0])
    return (ra, dec) if math.isfinite(ra) and math.isfinite(dec) else None


def pointing_drift(frames: Iterable[tuple[str, WCS | None, tuple[int, int]]]) -> list[Pointing]:
    """Offsets of each frame's centre from the first frame's (in arcsec on the sky).

    Parameters
    ----------
    frames : iterable of (key, wcs, shape)
        In observing order; ``wcs`` may be None.

    Returns
    -------
    list of Pointing
        One per frame, in the order given. The reference is the first frame
        that has a usable WCS.
    """
    keys, centres = [], []
    for key, wcs, shape in frames:
        keys.append(key)
        centres.append(frame_centre(wcs, shape))
    return pointing_offsets(keys, centres)


def pointing_offsets(keys: Sequence[str], centres: Sequence[tuple[float, float] | None]) -> list[Pointing]:
    """:class:`Pointing` of frames whose centres' (RA, Dec) are known (None where not).

    Examples
    --------
    >>> [round(p.north_arcsec, 3) for p in pointing_offsets(["a", "b"], [(10.0, 20.0), (10.0, 20.001)])]
    [0.0, 3.6]
    """
    centres = [
        c if c is not None and None not in c and all(math.isfinite(float(v)) for v in c) else None
        for c in centres
    ]
    known = [i for i, centre in enumerate(centres) if centre is not None]
    if not known:
        return [Pointing(key, None, None, None, None, None) for key in keys]
    ra = np.array([float(centres[i][0]) for i in known])
    dec = np.array([float(centres[i][1]) for i in known])
    coordinates = SkyCoord(ra, dec, unit="deg", frame="icrs")
    reference = coordinates[0]
    # Offsets in the reference's tangent frame: exact on the sky, no cos(Dec) approximation.
    east, north = reference.spherical_offsets_to(coordinates)
    separation = reference.separation(coordinates)
    by_index = {
        index: (float(ra[j]), float(dec[j]), float(east[j].arcsec), float(north[j].arcsec), float(separation[j].arcsec))
        for j, index in enumerate(known)
    }
    return [
        Pointing(key, *by_index[i]) if i in by_index else Pointing(key, None, None, None, None, None)
        for i, key in enumerate(keys)
    ]
