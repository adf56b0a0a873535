"""Line profiles and sub-regions in the original service's relative coordinates.

A point is ``(x, y)`` in [0, 1]: ``x`` runs along columns, ``y`` along rows with
``y = 0`` the top row (array row 0). The pixel of a point is
``(x * (W - 1), y * (H - 1))`` for an image of ``H`` rows and ``W`` columns,
measured between pixel centres. A box's corners are pixel *edges* instead:
``(x * W, y * H)``, and the rows it holds follow the span rule
``rint(y0 * H) .. rint(y1 * H)`` (:func:`relative_span`).

These are the only places that convert between relative and pixel
coordinates: the dashboard (:mod:`components.views.coords`), the REST API and
the quality service all call them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import numpy.typing as npt

from components.errors import InvalidRequest

__all__ = [
    "LineProfile",
    "line_profile",
    "subregion",
    "subregion_slices",
    "relative_span",
    "relative_to_pixel",
    "pixel_to_relative",
    "relative_to_edges",
    "edges_to_relative",
]


@dataclass(frozen=True)
class LineProfile:
    """Samples of an image along a line.

    Attributes
    ----------
    values : ndarray
        Bilinearly interpolated pixel values (float64; NaN where a NaN pixel
        contributes).
    distance : ndarray
        Distance of each sample from the start, in pixels.
    x, y : ndarray
        Pixel coordinates (column, row) of each sample.
    start, end : tuple of float
        The relative end points the profile was asked for.
    width : int
        Number of parallel lines averaged.
    """

    values: np.ndarray
    distance: np.ndarray
    x: np.ndarray
    y: np.ndarray
    start: tuple[float, float]
    end: tuple[float, float]
    width: int = 1

    def __len__(self) -> int:
        return len(self.values)


def _relative_point(point: Sequence[float], name: str) -> tuple[float, float]:
    try:
        x, y = (float(point[0]), float(point[1]))
    except (TypeError, ValueError, IndexError, KeyError):
        raise InvalidRequest(f"{name} must be a pair of numbers (x, y), got {point!r}") from None
    for label, value in (("x", x), ("y", y)):
        if not math.isfinite(value) or not 0.0 <= value <= 1.0:
            raise InvalidRequest(f"{name}.{label} must be a number in [0, 1], got {value!r}")
    return x, y


def _check_image(image: npt.ArrayLike) -> np.ndarray:
    array = np.asarray(image)
    if array.ndim != 2:
        raise InvalidRequest(f"image must be 2-D, got shape {array.shape}")
    if array.size == 0:
        raise InvalidRequest("image is empty")
    return array


def relative_to_pixel(point: Sequence[float], shape: tuple[int, int]) -> tuple[float, float]:
    """Pixel (column, row) of a relative point on an image of ``shape`` (rows, cols).

    Examples
    --------
    >>> relative_to_pixel((0.5, 1.0), (5, 11))
    (5.0, 4.0)
    """
    x, y = _relative_point(point, "point")
    height, width = shape
    return x * (width - 1), y * (height - 1)


def pixel_to_relative(pixel: Sequence[float], shape: tuple[int, int]) -> tuple[float, float]:
    """Relative point of a pixel position (column, row), the inverse of :func:`relative_to_pixel`.

    Not clamped: a position outside the pixel centres gives a value outside
    [0, 1]. A single column (or row) maps to 0.

    Examples
    --------
    >>> pixel_to_relative((5.0, 4.0), (5, 11))
    (0.5, 1.0)
    """
    column, row = float(pixel[0]), float(pixel[1])
    height, width = shape
    return (column / (width - 1) if width > 1 else 0.0, row / (height - 1) if height > 1 else 0.0)


def relative_to_edges(
    corners: Sequence[float], shape: tuple[int, int]
) -> tuple[float, float, float, float]:
    """Pixel-edge coordinates ``(x0 * W, y0 * H, x1 * W, y1 * H)`` of a relative box.

    Examples
    --------
    >>> relative_to_edges((0.25, 0.5, 1.0, 1.0), (10, 20))
    (5.0, 5.0, 20.0, 10.0)
    """
    x0, y0, x1, y1 = (float(v) for v in corners)
    height, width = shape
    return x0 * width, y0 * height, x1 * width, y1 * height


def edges_to_relative(
    edges: Sequence[float], shape: tuple[int, int]
) -> tuple[float, float, float, float]:
    """Relative corners of a box given by pixel edges, the inverse of :func:`relative_to_edges`.

    Not clamped: edges outside the frame give values outside [0, 1].
    """
    left, top, right, bottom = (float(v) for v in edges)
    height, width = shape
    return left / width, top / height, right / width, bottom / height


def _bilinear(image: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Bilinear interpolation at pixel coordinates, clamped to the image."""
    height, width = image.shape
    xs = np.clip(xs, 0.0, width - 1)
    ys = np.clip(ys, 0.0, height - 1)
    x0 = np.minimum(np.floor(xs).astype(np.intp), max(width - 2, 0))
    y0 = np.minimum(np.floor(ys).astype(np.intp), max(height - 2, 0))
    x1 = np.minimum(x0 + 1, width - 1)
    y1 = np.minimum(y0 + 1, height - 1)
    fx = xs - x0
    fy = ys - y0
    # Gather only the four neighbours of each sample: never convert the frame.
    top = _lerp(image[y0, x0], image[y0, x1], fx)
    bottom = _lerp(image[y1, x0], image[y1, x1], fx)
    return _lerp(top, bottom, fy)


def _lerp(a: np.ndarray, b: np.ndarray, fraction: np.ndarray) -> np.ndarray:
    # A neighbour with zero weight must not contribute, so a NaN pixel
    # spoils only the samples that really depend on it (NaN * 0 is NaN).
    a = a.astype(np.float64)
    b = b.astype(np.float64)
    with np.errstate(invalid="ignore"):
        mixed = a * (1 - fraction) + b * fraction
    return np.where(fraction == 0, a, np.where(fraction == 1, b, mixed))


def line_profile(
    image: npt.ArrayLike,
    start: Sequence[float],
    end: Sequence[float],
    width: int = 1,
) -> LineProfile:
    """Sample ``image`` along the line from ``start`` to ``end``.

    Samples are evenly spaced with both ends included; their number is
    ``ceil(hypot(dx, dy)) + 1`` for a line of ``dx, dy`` pixels (1 for a
    zero-length line), so consecutive samples are at most one pixel apart.

    Parameters
    ----------
    image : array_like
        2-D image, row 0 at the top.
    start, end : sequence of float
        Relative points ``(x, y)`` in [0, 1].
    width : int, optional
        Number of parallel lines, one pixel apart and centred on the line,
        whose samples are averaged (like DS9's projection thickness).

    Returns
    -------
    LineProfile

    Examples
    --------
    >>> import numpy as np
    >>> image = np.tile(np.arange(5.0), (3, 1))
    >>> profile = line_profile(image, (0, 0), (1, 0))
    >>> profile.values.tolist()
    [0.0, 1.0, 2.0, 3.0, 4.0]
    """
    array = _check_image(image)
    if not array.dtype.isnative:
        array = array.astype(array.dtype.newbyteorder("="))
    try:
        width = int(width)
    except (TypeError, ValueError):
        raise InvalidRequest(f"width must be a whole number, got {width!r}") from None
    if width < 1:
        raise InvalidRequest(f"width must be at least 1, got {width}")
    start = _relative_point(start, "start")
    end = _relative_point(end, "end")
    x0, y0 = relative_to_pixel(start, array.shape)
    x1, y1 = relative_to_pixel(end, array.shape)
    length = math.hypot(x1 - x0, y1 - y0)
    count = math.ceil(length) + 1 if length > 0 else 1
    xs = np.linspace(x0, x1, count)
    ys = np.linspace(y0, y1, count)
    distance = np.linspace(0.0, length, count)
    if width == 1 or length == 0:
        values = _bilinear(array, xs, ys)
    else:
        # Unit normal to the line; offsets centred so the band is symmetric.
        nx, ny = -(y1 - y0) / length, (x1 - x0) / length
        offsets = np.arange(width) - (width - 1) / 2.0
        values = np.mean(
            [_bilinear(array, xs + o * nx, ys + o * ny) for o in offsets], axis=0
        )
    return LineProfile(values, distance, xs, ys, start, end, width)


def subregion(
    image: npt.ArrayLike, x0: float, y0: float, x1: float, y1: float
) -> np.ndarray:
    """The rectangle of ``image`` between two relative corners, in any order.

    Rows run from ``rint(min(y) * H)`` to ``rint(max(y) * H)`` and columns
    likewise, end-exclusive; a box that rounds to nothing still covers one
    pixel each way. The result is a view: no pixel is copied.

    Raises
    ------
    InvalidRequest
        If a corner is outside [0, 1] or the box has zero area
        (``x0 == x1`` or ``y0 == y1``).

    Examples
    --------
    >>> import numpy as np
    >>> image = np.arange(100).reshape(10, 10)
    >>> subregion(image, 0.5, 0.2, 0.1, 0.0).shape
    (2, 4)
    """
    array = _check_image(image)
    rows, columns = subregion_slices(array.shape, x0, y0, x1, y1)
    return array[rows, columns]


def subregion_slices(
    shape: tuple[int, int], x0: float, y0: float, x1: float, y1: float
) -> tuple[slice, slice]:
    """``(rows, columns)`` slices of the pixels :func:`subregion` takes for a relative box.

    The offset of a sub-region inside its frame is ``(rows.start, columns.start)``.

    Raises
    ------
    InvalidRequest
        As :func:`subregion`.

    Examples
    --------
    >>> subregion_slices((10, 10), 0.5, 0.2, 0.1, 0.0)
    (slice(0, 2, None), slice(1, 5, None))
    """
    height, width = int(shape[0]), int(shape[1])
    if height < 1 or width < 1:
        raise InvalidRequest(f"image shape must be positive, got {tuple(shape)!r}")
    xa, ya = _relative_point((x0, y0), "subregion corner 0")
    xb, yb = _relative_point((x1, y1), "subregion corner 1")
    if xa == xb or ya == yb:
        raise InvalidRequest(
            f"subregion has zero area: x0={xa}, x1={xb}, y0={ya}, y1={yb}"
        )
    r0, r1 = relative_span(min(ya, yb), max(ya, yb), height)
    c0, c1 = relative_span(min(xa, xb), max(xa, xb), width)
    return slice(r0, r1), slice(c0, c1)


def relative_span(low: float, high: float, size: int) -> tuple[int, int]:
    """The span rule: pixels ``rint(low * size)`` to ``rint(high * size)``, end-exclusive.

    ``rint`` rounds half to even. The span is kept inside ``[0, size)`` and
    holds at least one pixel. ``low <= high`` are relative edges in [0, 1].

    Examples
    --------
    >>> relative_span(0.25, 0.75, 10)  # rint(2.5) = 2, rint(7.5) = 8
    (2, 8)
    >>> relative_span(1.0, 1.0, 10)  # the last pixel, never an empty span
    (9, 10)
    """
    first = int(np.rint(low * size))
    last = int(np.rint(high * size))
    first = min(max(first, 0), size - 1)
    last = max(last, first + 1)
    return first, min(last, size)
