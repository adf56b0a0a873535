"""Regions an observer draws, pinned to the sky so they follow the field from frame to frame.

The shapes (:class:`Box`, :class:`Circle`) are small geometry objects in the
style of glue's ``roi.py``, in 0-based pixel coordinates (``x`` the column,
``y`` the row, pixel centres at integers). A :class:`PinnedRegion` keeps the
shape as an astropy ``regions`` sky region (``RectangleSkyRegion``,
``CircleSkyRegion``) made through the WCS of the frame it was drawn on, and
places it on any later frame through that frame's WCS. On a frame without a
WCS (or a region drawn on one) the shape stays in pixels.

Regions are written and read as DS9 region files through the ``regions``
package, so an observer can bring the regions they already use.

Pure numpy/astropy: nothing here imports Panel or Bokeh.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Iterable, Mapping

import astropy.units as u
import numpy as np
import numpy.typing as npt
import regions as rg

from components.core.quality import star_profile
from components.core.stats import statistics
from components.errors import InvalidRequest

__all__ = [
    "Box",
    "Circle",
    "Shape",
    "PinnedRegion",
    "pin",
    "shape_from_dict",
    "to_ds9",
    "from_ds9",
    "region_statistics",
    "stars_inside",
    "region_quality",
    "measure_region",
]

# Brightest stars inside a region whose profiles are fitted for its FWHM.
_FIT_STARS = 10


def _index_span(low: float, high: float, size: int) -> slice:
    """Indices i (pixel centres) with low <= i <= high, clipped to [0, size)."""
    start = min(size, max(0, int(math.ceil(low - 1e-9))))
    stop = min(size, int(math.floor(high + 1e-9)) + 1)
    return slice(start, max(start, stop))


@dataclass(frozen=True)
class Box:
    """Axis-aligned box holding the pixels whose centres have x0 <= x <= x1 and y0 <= y <= y1.

    Examples
    --------
    >>> box = Box(2, 1, 4, 3)
    >>> bool(box.contains(3, 2)), bool(box.contains(5, 2))
    (True, False)
    >>> box.slices((10, 10))
    (slice(1, 4, None), slice(2, 5, None))
    """

    x0: float
    y0: float
    x1: float
    y1: float

    def __post_init__(self):
        values = (self.x0, self.y0, self.x1, self.y1)
        if not all(isinstance(v, (int, float, np.number)) and math.isfinite(v) for v in values):
            raise InvalidRequest(f"box corners must be finite numbers, got {values}")
        # Normalise so x0 <= x1 and y0 <= y1 whichever corner was drawn first.
        object.__setattr__(self, "x0", float(min(values[0], values[2])))
        object.__setattr__(self, "x1", float(max(values[0], values[2])))
        object.__setattr__(self, "y0", float(min(values[1], values[3])))
        object.__setattr__(self, "y1", float(max(values[1], values[3])))

    kind = "box"

    @property
    def center(self) -> tuple[float, float]:
        return ((self.x0 + self.x1) / 2.0, (self.y0 + self.y1) / 2.0)

    def contains(self, x, y) -> np.ndarray:
        x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
        return (x >= self.x0) & (x <= self.x1) & (y >= self.y0) & (y <= self.y1)

    def slices(self, shape: tuple[int, int]) -> tuple[slice, slice]:
        """(rows, columns) of the bounding box, clipped to a frame of ``shape``."""
        return _index_span(self.y0, self.y1, shape[0]), _index_span(self.x0, self.x1, shape[1])

    def mask(self, shape: tuple[int, int]) -> tuple[tuple[slice, slice], np.ndarray]:
        """The bounding slices and a boolean mask of the pixels inside them."""
        rows, cols = self.slices(shape)
        return (rows, cols), np.ones((rows.stop - rows.start, cols.stop - cols.start), dtype=bool)

    def to_pixel_region(self) -> rg.RectanglePixelRegion:
        return rg.RectanglePixelRegion(rg.PixCoord(*self.center), self.x1 - self.x0, self.y1 - self.y0)

    def to_dict(self) -> dict:
        return {"kind": "box", "x0": self.x0, "y0": self.y0, "x1": self.x1, "y1": self.y1}


@dataclass(frozen=True)
class Circle:
    """Circle holding the pixels whose centres lie within ``r`` of ``(x, y)``.

    Examples
    --------
    >>> circle = Circle(5, 5, 2)
    >>> bool(circle.contains(6, 6)), bool(circle.contains(7, 7))
    (True, False)
    >>> int(circle.mask((20, 20))[1].sum())
    13
    """

    x: float
    y: float
    r: float

    def __post_init__(self):
        values = (self.x, self.y, self.r)
        if not all(isinstance(v, (int, float, np.number)) and math.isfinite(v) for v in values):
            raise InvalidRequest(f"circle centre and radius must be finite numbers, got {values}")
        if self.r <= 0:
            raise InvalidRequest(f"circle radius must be positive, got {self.r}")
        for name in ("x", "y", "r"):
            object.__setattr__(self, name, float(getattr(self, name)))

    kind = "circle"

    @property
    def center(self) -> tuple[float, float]:
        return (self.x, self.y)

    def contains(self, x, y) -> np.ndarray:
        x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
        return (x - self.x) ** 2 + (y - self.y) ** 2 <= self.r**2

    def slices(self, shape: tuple[int, int]) -> tuple[slice, slice]:
        return (
            _index_span(self.y - self.r, self.y + self.r, shape[0]),
            _index_span(self.x - self.r, self.x + self.r, shape[1]),
        )

    def mask(self, shape: tuple[int, int]) -> tuple[tuple[slice, slice], np.ndarray]:
        rows, cols = self.slices(shape)
        yy, xx = np.mgrid[rows, cols]
        return (rows, cols), self.contains(xx, yy)

    def to_pixel_region(self) -> rg.CirclePixelRegion:
        return rg.CirclePixelRegion(rg.PixCoord(self.x, self.y), self.r)

    def to_dict(self) -> dict:
        return {"kind": "circle", "x": self.x, "y": self.y, "r": self.r}


Shape = Box | Circle


def shape_from_dict(data: Mapping) -> Shape:
    """The shape a :meth:`Box.to_dict` / :meth:`Circle.to_dict` mapping describes.

    Examples
    --------
    >>> shape_from_dict({"kind": "circle", "x": 1, "y": 2, "r": 3})
    Circle(x=1.0, y=2.0, r=3.0)
    """
    try:
        kind = data["kind"]
        if kind == "box":
            return Box(*(float(data[name]) for name in ("x0", "y0", "x1", "y1")))
        if kind == "circle":
            return Circle(*(float(data[name]) for name in ("x", "y", "r")))
    except (KeyError, TypeError, ValueError) as error:
        raise InvalidRequest(f"bad region {dict(data)!r}: {error}") from error
    raise InvalidRequest(f"unknown region kind {kind!r} (box or circle)")


def _shape_of_pixel_region(region) -> Shape:
    if isinstance(region, rg.CirclePixelRegion):
        return Circle(float(region.center.x), float(region.center.y), float(region.radius))
    if isinstance(region, rg.RectanglePixelRegion):
        # The frame may be rotated against the one the box was drawn on: keep
        # the box axis-aligned, around all four corners.
        corners = np.asarray(region.corners, dtype=np.float64)
        return Box(corners[:, 0].min(), corners[:, 1].min(), corners[:, 0].max(), corners[:, 1].max())
    raise InvalidRequest(f"unsupported region {type(region).__name__} (box or circle)")


def _celestial(wcs):
    if wcs is None or not getattr(wcs, "has_celestial", False):
        return None
    return wcs.celestial


@dataclass
class PinnedRegion:
    """A region kept on the sky (or, without a WCS, in pixels).

    Attributes
    ----------
    name : str
        Label shown in the pane and written to DS9 files (``text={...}``).
    sky : regions.SkyRegion or None
        The region on the sky; None when it was drawn on a frame without a WCS
        (or imported in image coordinates).
    pixel : Box, Circle or None
        The shape in the pixels it was drawn on: used on frames without a WCS.
    """

    name: str
    sky: rg.SkyRegion | None = None
    pixel: Shape | None = None
    meta: dict = field(default_factory=dict)

    @property
    def pixels_only(self) -> bool:
        """True when the region is not on the sky (it keeps its pixels on every frame)."""
        return self.sky is None

    def place(self, wcs=None) -> Shape | None:
        """The region's shape on a frame with ``wcs`` (None: in its own pixels).

        Returns None for a sky-only region (imported from a DS9 file in sky
        coordinates) on a frame without a WCS.
        """
        celestial = _celestial(wcs)
        if self.sky is not None and celestial is not None:
            return _shape_of_pixel_region(self.sky.to_pixel(celestial))
        return self.pixel

    def to_dict(self) -> dict:
        """JSON-friendly form (sky centre in degrees, sizes in arcsec) for links and sessions."""
        data: dict = {"name": self.name}
        if self.pixel is not None:
            data["pixel"] = self.pixel.to_dict()
        if isinstance(self.sky, rg.CircleSkyRegion):
            data["sky"] = {"kind": "circle", "ra": self.sky.center.ra.deg, "dec": self.sky.center.dec.deg,
                           "r": self.sky.radius.to_value(u.arcsec)}
        elif isinstance(self.sky, rg.RectangleSkyRegion):
            data["sky"] = {"kind": "box", "ra": self.sky.center.ra.deg, "dec": self.sky.center.dec.deg,
                           "width": self.sky.width.to_value(u.arcsec),
                           "height": self.sky.height.to_value(u.arcsec),
                           "angle": self.sky.angle.to_value(u.deg)}
        return data

    @classmethod
    def from_dict(cls, data: Mapping) -> "PinnedRegion":
        """Inverse of :meth:`to_dict`; raises :class:`InvalidRequest` on bad input."""
        from astropy.coordinates import SkyCoord

        try:
            name = str(data.get("name") or "region")
            pixel = shape_from_dict(data["pixel"]) if data.get("pixel") else None
            sky = None
            if data.get("sky"):
                s = data["sky"]
                values = [float(s[k]) for k in ("ra", "dec")]
                if not all(math.isfinite(v) for v in values):
                    raise ValueError("non-finite sky position")
                centre = SkyCoord(*values, unit="deg", frame="icrs")
                if s["kind"] == "circle":
                    sky = rg.CircleSkyRegion(centre, float(s["r"]) * u.arcsec)
                elif s["kind"] == "box":
                    sky = rg.RectangleSkyRegion(
                        centre, float(s["width"]) * u.arcsec, float(s["height"]) * u.arcsec,
                        float(s.get("angle", 0.0)) * u.deg,
                    )
                else:
                    raise ValueError(f"unknown sky region kind {s['kind']!r}")
        except InvalidRequest:
            raise
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise InvalidRequest(f"bad pinned region {data!r}: {error}") from error
        if sky is None and pixel is None:
            raise InvalidRequest(f"pinned region {name!r} has neither sky nor pixel shape")
        return cls(name=name, sky=sky, pixel=pixel)


def pin(shape: Shape, wcs=None, name: str = "region") -> PinnedRegion:
    """Pin a shape drawn on a frame with ``wcs`` to the sky (in pixels without a WCS).

    Examples
    --------
    >>> from astropy.wcs import WCS
    >>> from components.core.synthetic import star_field
    >>> frame = star_field((64, 64), n_stars=1, seed=0)
    >>> region = pin(Circle(20, 30, 5), WCS(frame.header))
    >>> placed = region.place(WCS(frame.header))
    >>> round(placed.x, 6), round(placed.y, 6), round(placed.r, 6)
    (20.0, 30.0, 5.0)
    """
    celestial = _celestial(wcs)
    sky = shape.to_pixel_region().to_sky(celestial) if celestial is not None else None
    return PinnedRegion(name=name, sky=sky, pixel=shape)


def _labelled(region, name: str):
    region.meta["text"] = name
    return region


def to_ds9(pinned: Iterable[PinnedRegion]) -> str:
    """DS9 region file text: sky regions in ICRS (fk5-compatible), pixel-only ones in image coordinates."""
    listed = [
        _labelled(p.sky.copy() if p.sky is not None else p.pixel.to_pixel_region(), p.name)
        for p in pinned
        if p.sky is not None or p.pixel is not None
    ]
    return rg.Regions(listed).serialize(format="ds9")


def from_ds9(text: str, wcs=None) -> tuple[list[PinnedRegion], int]:
    """Pinned regions of a DS9 region file, and how many of its regions were skipped.

    Boxes and circles are read (in sky or image coordinates); other shapes
    are counted as skipped. A region in image coordinates is pinned to the
    sky through ``wcs`` when given (the frame it is meant for).

    Raises
    ------
    InvalidRequest
        When the text is not a DS9 region file or holds no box nor circle.
    """
    try:
        # The parser warns about (and drops) each line it cannot read: count those as skipped.
        with warnings.catch_warnings(record=True) as dropped:
            warnings.simplefilter("always")
            parsed = rg.Regions.parse(text, format="ds9")
    except Exception as error:  # the parser raises several types on bad text
        raise InvalidRequest(f"not a DS9 region file: {error}") from error
    pinned, skipped = [], len(dropped)
    for index, region in enumerate(parsed, start=1):
        name = str(region.meta.get("text") or region.meta.get("label") or f"region {index}")
        if isinstance(region, (rg.CircleSkyRegion, rg.RectangleSkyRegion)):
            pinned.append(PinnedRegion(name=name, sky=region, pixel=None))
        elif isinstance(region, (rg.CirclePixelRegion, rg.RectanglePixelRegion)):
            pinned.append(pin(_shape_of_pixel_region(region), wcs, name))
        else:
            skipped += 1
    if not pinned:
        raise InvalidRequest("the region file holds no box nor circle")
    return pinned, skipped


def region_statistics(image: npt.ArrayLike, shape: Shape) -> dict:
    """:func:`components.core.statistics` of the pixels inside ``shape`` (all None when off the frame)."""
    data = np.asarray(image)
    (rows, cols), inside = shape.mask(data.shape)
    cutout = data[rows, cols]
    return statistics(cutout if isinstance(shape, Box) else cutout[inside])


def stars_inside(stars: Mapping[str, list], shape: Shape) -> dict:
    """The entries of a quality result's ``stars`` (x, y, flux, a, b lists) inside ``shape``."""
    x = np.asarray(stars.get("x", []), dtype=np.float64)
    y = np.asarray(stars.get("y", []), dtype=np.float64)
    keep = shape.contains(x, y) if len(x) else np.zeros(0, dtype=bool)
    return {name: [v for v, k in zip(values, keep) if k] for name, values in stars.items()}


def region_quality(image: npt.ArrayLike, shape: Shape, result: Mapping | None) -> dict:
    """Quality of the stars of a frame's quality ``result`` that lie inside ``shape``.

    Returns
    -------
    dict
        ``star_count``, ``fwhm_px`` (median Moffat FWHM of the brightest
        stars inside, fitted on ``image``) and ``elongation`` (median a/b);
        None when no star is inside.
    """
    inside = stars_inside((result or {}).get("stars") or {}, shape)
    count = len(inside.get("x", []))
    if not count:
        return {"star_count": 0, "fwhm_px": None, "elongation": None}
    data = np.asarray(image)
    order = np.argsort(inside["flux"])[::-1][:_FIT_STARS]
    fwhms = []
    for i in order:
        a, b = float(inside["a"][i]), float(inside["b"][i])
        radius = float(np.clip(4.0 * 2.355 * math.sqrt(max(a * b, 0.25)), 8.0, 30.0))
        fwhm = star_profile(data, float(inside["x"][i]), float(inside["y"][i]), radius).fwhm
        if fwhm is not None and 1.0 <= fwhm <= radius:
            fwhms.append(fwhm)
    ratios = [a / b for a, b in zip(inside["a"], inside["b"]) if b > 0]
    return {
        "star_count": count,
        "fwhm_px": float(np.median(fwhms)) if fwhms else None,
        "elongation": float(np.median(ratios)) if ratios else None,
    }


def measure_region(image: npt.ArrayLike, wcs, region: PinnedRegion, result: Mapping | None = None) -> dict:
    """Place ``region`` on a frame and measure it: the shape, its statistics and stars.

    Returns
    -------
    dict
        ``name``, ``shape`` (the placed shape's dict, None when it cannot be
        placed), ``on_sky`` (placed through the frame's WCS),
        ``statistics`` and ``quality`` (None when not placed).
    """
    shape = region.place(wcs)
    on_sky = region.sky is not None and _celestial(wcs) is not None
    if shape is None:
        return {"name": region.name, "shape": None, "on_sky": False, "statistics": None, "quality": None}
    return {
        "name": region.name,
        "shape": shape.to_dict(),
        "on_sky": on_sky,
        "statistics": region_statistics(image, shape),
        "quality": region_quality(image, shape, result),
    }
