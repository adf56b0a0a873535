"""The one place that converts between plot coordinates and the API's coordinates.

The image is plotted with bounds ``[0, W] x [0, H]``: pixel ``(column c, row r)``
covers ``[c, c + 1] x [r, r + 1]`` in plot coordinates and its centre is
``(c + 0.5, r + 0.5)``. Plot ``y`` therefore grows with the array row, whatever
the orientation on screen: the default view inverts the y axis so that row 0
(``y = 0`` in the API) is at the top, and the FITS-orientation toggle only
un-inverts the axis. No coordinate, and so no result, depends on the toggle.

The API (:mod:`components.core`) uses relative coordinates in [0, 1]:

* a **point** ``(x, y)`` is the pixel position ``(x * (W - 1), y * (H - 1))``
  measured between pixel centres (0 is the centre of the first pixel);
* a **box** ``(x0, y0, x1, y1)`` covers rows ``rint(y0 * H) .. rint(y1 * H)``
  (end-exclusive) and likewise columns: its corners are pixel *edges*.

The relative <-> pixel rules themselves (and the span rule) are
:mod:`components.core.geometry`'s; this module only adds the half-pixel shift
between pixel and plot coordinates, clamping and sorting.

Nothing here imports Panel, Bokeh or HoloViews.
"""

from __future__ import annotations

import math
from typing import NamedTuple

from components.core import geometry

__all__ = [
    "Box",
    "Line",
    "bounds",
    "plot_to_pixel",
    "pixel_to_plot",
    "plot_to_relative_point",
    "relative_to_plot_point",
    "plot_line_to_relative",
    "relative_line_to_plot",
    "plot_box_to_relative",
    "relative_box_to_plot",
    "box_pixel_slices",
    "pixel_under",
    "clip_line",
    "clip_box",
]


class Line(NamedTuple):
    """A line in plot coordinates, from ``(x0, y0)`` to ``(x1, y1)``."""

    x0: float
    y0: float
    x1: float
    y1: float


class Box(NamedTuple):
    """A box in plot coordinates between two corners (any order)."""

    x0: float
    y0: float
    x1: float
    y1: float


def _check_shape(shape) -> tuple[int, int]:
    height, width = int(shape[0]), int(shape[1])
    if height < 1 or width < 1:
        raise ValueError(f"image shape must be positive, got {shape!r}")
    return height, width


def bounds(shape) -> tuple[float, float, float, float]:
    """``(left, bottom, right, top)`` of an image of ``shape`` (rows, cols) in plot coordinates."""
    height, width = _check_shape(shape)
    return 0.0, 0.0, float(width), float(height)


def plot_to_pixel(x: float, y: float) -> tuple[float, float]:
    """Continuous pixel position (column, row; 0 = centre of the first pixel) of a plot point."""
    return x - 0.5, y - 0.5


def pixel_to_plot(column: float, row: float) -> tuple[float, float]:
    """Plot point of a continuous pixel position (inverse of :func:`plot_to_pixel`)."""
    return column + 0.5, row + 0.5


def pixel_under(x: float, y: float, shape) -> tuple[int, int]:
    """``(column, row)`` of the pixel containing the plot point, clamped to the image."""
    height, width = _check_shape(shape)
    column = min(max(int(math.floor(x)), 0), width - 1)
    row = min(max(int(math.floor(y)), 0), height - 1)
    return column, row


def _unit(value: float) -> float:
    if not math.isfinite(value):
        raise ValueError(f"coordinate must be finite, got {value!r}")
    return min(max(value, 0.0), 1.0)


def plot_to_relative_point(x: float, y: float, shape) -> tuple[float, float]:
    """API point ``(x, y)`` in [0, 1] of a plot point (clamped to the pixel centres)."""
    shape = _check_shape(shape)
    rx, ry = geometry.pixel_to_relative(plot_to_pixel(float(x), float(y)), shape)
    return _unit(rx), _unit(ry)


def relative_to_plot_point(x: float, y: float, shape) -> tuple[float, float]:
    """Plot point of an API point (inverse of :func:`plot_to_relative_point` inside the image)."""
    shape = _check_shape(shape)
    return pixel_to_plot(*geometry.relative_to_pixel((_unit(float(x)), _unit(float(y))), shape))


def plot_line_to_relative(line, shape) -> tuple[tuple[float, float], tuple[float, float]]:
    """``(start, end)`` API points of a plot line, as ``line_profile`` takes them."""
    x0, y0, x1, y1 = line
    return plot_to_relative_point(x0, y0, shape), plot_to_relative_point(x1, y1, shape)


def relative_line_to_plot(start, end, shape) -> Line:
    """Plot line of API ``start`` and ``end`` points."""
    x0, y0 = relative_to_plot_point(start[0], start[1], shape)
    x1, y1 = relative_to_plot_point(end[0], end[1], shape)
    return Line(x0, y0, x1, y1)


def plot_box_to_relative(box, shape) -> tuple[float, float, float, float] | None:
    """API ``(x0, y0, x1, y1)`` of a plot box (sorted, clamped to the frame).

    Returns None when the box, clamped to the frame, has no area: the caller
    then analyses the whole frame (the API refuses zero-area boxes).
    """
    shape = _check_shape(shape)
    x0, y0, x1, y1 = (float(v) for v in box)
    left, right = sorted((x0, x1))
    top, bottom = sorted((y0, y1))
    rx0, ry0, rx1, ry1 = (_unit(v) for v in geometry.edges_to_relative((left, top, right, bottom), shape))
    if rx0 == rx1 or ry0 == ry1:
        return None
    return rx0, ry0, rx1, ry1


def relative_box_to_plot(x0: float, y0: float, x1: float, y1: float, shape) -> Box:
    """Plot box of an API box (sorted)."""
    shape = _check_shape(shape)
    left, right = sorted((_unit(x0), _unit(x1)))
    top, bottom = sorted((_unit(y0), _unit(y1)))
    return Box(*geometry.relative_to_edges((left, top, right, bottom), shape))


def box_pixel_slices(box, shape) -> tuple[slice, slice] | None:
    """``(rows, cols)`` slices of the pixels :func:`components.core.subregion` takes for a plot box.

    It calls ``subregion``'s own rule (:func:`components.core.subregion_slices`),
    so the page says exactly which pixels a box holds.
    """
    relative = plot_box_to_relative(box, shape)
    if relative is None:
        return None
    return geometry.subregion_slices(_check_shape(shape), *relative)


def clip_line(line, shape) -> Line:
    """The line with both ends moved inside the frame's pixel centres."""
    height, width = _check_shape(shape)
    x0, y0, x1, y1 = (float(v) for v in line)

    def clamp(value, size):
        return min(max(value, 0.5), size - 0.5)

    return Line(clamp(x0, width), clamp(y0, height), clamp(x1, width), clamp(y1, height))


def clip_box(box, shape) -> Box | None:
    """The box (sorted) intersected with the frame, or None if nothing is left."""
    height, width = _check_shape(shape)
    x0, y0, x1, y1 = (float(v) for v in box)
    left, right = sorted((x0, x1))
    top, bottom = sorted((y0, y1))
    left, right = max(left, 0.0), min(right, float(width))
    top, bottom = max(top, 0.0), min(bottom, float(height))
    if right <= left or bottom <= top:
        return None
    return Box(left, top, right, bottom)
