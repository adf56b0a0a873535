"""The PNG of /lineprofiledisplay: the frame with the line drawn on it, and the profile below.

Drawn with numpy and Pillow rather than matplotlib: a figure, its text layout
and its anti-aliased rendering cost 250-400 ms and a 24-bit PNG of 0.6-1.3 MB,
where this takes a few tens of milliseconds and an 8-bit palette PNG of a
few hundred kilobytes at most, whatever the frame's size:

* the frame is sampled by striding to at most :data:`FRAME_MAX_SIDE` pixels a
  side and :data:`FRAME_MAX_PIXELS` pixels in all (a cached 61 MP frame costs a 0.4 MP view, never a pass over all its
  pixels), small frames are enlarged to at least :data:`FRAME_MIN_SIDE`;
* grey levels come from the zscale limits of that sample, computed once per
  frame (the decoded frames are cached, and so are their limits);
* the line, its ends and the profile are drawn with :mod:`PIL.ImageDraw`; the
  profile is drawn as its per-column minimum-maximum envelope when it has more
  samples than the plot has columns, so no star peak is lost.

:func:`layout` returns where the frame and the profile are drawn, so that
callers (and tests) can find them in the picture.
"""

from __future__ import annotations

import io
import math
import threading
import weakref
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from components.core import line_profile, relative_to_pixel
from components.core.intervals import zscale_limits  # the one zscale rule, fallback included

__all__ = [
    "FRAME_MAX_SIDE",
    "FRAME_MIN_SIDE",
    "FRAME_MAX_PIXELS",
    "GREY_LEVELS",
    "COLOURS",
    "Layout",
    "layout",
    "render_line_profile_png",
]

#: Longer side, in picture pixels, of the frame drawn (larger frames are strided).
FRAME_MAX_SIDE = 800
#: Most pixels of the frame's sample: 300 000 pixels of at most 7 bits of noise stay
#: under 300 KB of PNG even when nothing compresses.
FRAME_MAX_PIXELS = 300_000
#: Frames whose longer side is smaller are enlarged to this (pixel for pixel, no smoothing).
FRAME_MIN_SIDE = 480
#: Grey levels of the frame: 128 keep the zscale stretch smooth and noise compressible.
GREY_LEVELS = 128
#: Palette entries after the grey ramp: name -> RGB.
COLOURS = {
    "background": (255, 255, 255),
    "ink": (0, 0, 0),
    "grid": (220, 220, 220),
    "line": (255, 0, 0),
    "start": (0, 255, 0),
    "profile": (31, 119, 180),
}
_INDEX = {name: GREY_LEVELS + offset for offset, name in enumerate(COLOURS)}

_MARGIN_LEFT = 72  # room for the profile's value labels
_MARGIN_RIGHT = 24
_MARGIN_TOP = 28  # the title
_GAP = 40  # between the frame and the profile plot
_PLOT_HEIGHT = 200
_MARGIN_BOTTOM = 40  # the distance labels and axis title
_PLOT_MIN_WIDTH = 400
_MIN_FRAME_EDGE = 16  # a one-row frame is still drawn as a visible strip


def _palette() -> list[int]:
    grey = np.linspace(0, 255, GREY_LEVELS).round().astype(np.uint8)
    entries = [(int(v), int(v), int(v)) for v in grey] + list(COLOURS.values())
    entries += [(0, 0, 0)] * (256 - len(entries))
    return [channel for rgb in entries for channel in rgb]


_PALETTE = _palette()


@dataclass(frozen=True)
class Layout:
    """Where things are drawn, in picture pixels (``right``/``bottom`` exclusive).

    Attributes
    ----------
    width, height : int
        Size of the picture.
    frame : (left, top, right, bottom)
        The frame's box; frame pixel ``(x, y)`` (full resolution) is drawn at
        ``left + (x + 0.5) * (right - left) / frame_width`` and likewise for ``y``.
    plot : (left, top, right, bottom)
        The profile's axes box.
    step : int
        Stride of the frame's sample (1: every pixel).
    """

    width: int
    height: int
    frame: tuple[int, int, int, int]
    plot: tuple[int, int, int, int]
    step: int

    def to_picture(self, x: float, y: float, shape: tuple[int, int]) -> tuple[float, float]:
        """Picture coordinates of full-resolution frame pixel ``(x, y)`` of a frame of ``shape``."""
        left, top, right, bottom = self.frame
        return (left + (x + 0.5) * (right - left) / shape[1],
                top + (y + 0.5) * (bottom - top) / shape[0])


def layout(shape: tuple[int, int]) -> Layout:
    """The layout of the picture for a frame of ``shape`` (rows, columns)."""
    rows, columns = int(shape[0]), int(shape[1])
    step = max(1, math.ceil(max(rows, columns) / FRAME_MAX_SIDE),
               math.ceil(math.sqrt(rows * columns / FRAME_MAX_PIXELS)))
    sampled = (math.ceil(rows / step), math.ceil(columns / step))
    scale = 1.0
    if max(sampled) < FRAME_MIN_SIDE:
        scale = FRAME_MIN_SIDE / max(sampled)
    height = max(_MIN_FRAME_EDGE, round(sampled[0] * scale))
    width = max(_MIN_FRAME_EDGE, round(sampled[1] * scale))
    plot_width = max(width, _PLOT_MIN_WIDTH)
    frame = (_MARGIN_LEFT, _MARGIN_TOP, _MARGIN_LEFT + width, _MARGIN_TOP + height)
    plot_top = frame[3] + _GAP
    plot = (_MARGIN_LEFT, plot_top, _MARGIN_LEFT + plot_width, plot_top + _PLOT_HEIGHT)
    return Layout(
        width=plot[2] + _MARGIN_RIGHT, height=plot[3] + _MARGIN_BOTTOM,
        frame=frame, plot=plot, step=step,
    )


# -- zscale limits, once per decoded frame

_limits_lock = threading.Lock()
# id(frame array) -> (weak reference to it, (step, low, high)); the weak
# reference proves the id still names the same array, and its callback drops
# the entry when the cache lets the frame go.
_limits: dict[int, tuple[weakref.ref, tuple[int, float, float]]] = {}


def _forget(key: int) -> None:
    with _limits_lock:
        _limits.pop(key, None)


def _cached_limits(data: np.ndarray, step: int, sample: np.ndarray) -> tuple[float, float]:
    key = id(data)
    with _limits_lock:
        entry = _limits.get(key)
    if entry is not None and entry[0]() is data and entry[1][0] == step:
        return entry[1][1], entry[1][2]
    low, high = zscale_limits(sample)
    try:
        reference = weakref.ref(data, lambda _ref, key=key: _forget(key))
    except TypeError:  # not weak-referenceable (never for ndarray): no caching
        return low, high
    with _limits_lock:
        _limits[key] = (reference, (step, low, high))
    return low, high


# -- drawing

_font_lock = threading.Lock()
_font_cache: list = []


def _font() -> ImageFont.ImageFont:
    """Pillow's built-in bitmap font: crisp on a palette picture, and about 100 x faster to
    draw than its FreeType default (tens of milliseconds a string on this machine)."""
    with _font_lock:
        if not _font_cache:
            _font_cache.append(ImageFont.load_default_imagefont())
        return _font_cache[0]


def _text(draw: ImageDraw.ImageDraw, xy: tuple[float, float], text: str, anchor: str = "la") -> None:
    """Draw ``text`` with ``anchor`` ``la`` (left, top), ``ma`` (centre, top) or ``rm`` (right, middle).

    The bitmap font does not take Pillow's ``anchor`` argument: placed by its box here.
    """
    font = _font()
    left, top, right, bottom = font.getbbox(text)
    x, y = xy
    if anchor[0] == "m":
        x -= (right - left) / 2
    elif anchor[0] == "r":
        x -= right - left
    if anchor[1] == "m":
        y -= (bottom - top) / 2
    draw.text((round(x), round(y)), text, fill=_INDEX["ink"], font=font)


def _label(value: float) -> str:
    return f"{value:.6g}"


def _grey_indices(sample: np.ndarray, low: float, high: float) -> np.ndarray:
    scaled = (np.asarray(sample, dtype=np.float32) - np.float32(low)) * np.float32(
        (GREY_LEVELS - 1) / (high - low)
    )
    np.nan_to_num(scaled, copy=False, nan=0.0, posinf=GREY_LEVELS - 1, neginf=0.0)
    np.clip(scaled + np.float32(0.5), 0, GREY_LEVELS - 1, out=scaled)
    return scaled.astype(np.uint8)


def _draw_profile(draw: ImageDraw.ImageDraw, box: tuple[int, int, int, int],
                  distance: np.ndarray, values: np.ndarray) -> tuple[float, float]:
    """Plot ``values`` against ``distance`` in ``box``; return the value range shown."""
    left, top, right, bottom = box
    finite = np.isfinite(values)
    if finite.any():
        vmin, vmax = float(values[finite].min()), float(values[finite].max())
    else:
        vmin, vmax = 0.0, 1.0
    if vmin >= vmax:
        vmin, vmax = vmin - 0.5, vmax + 0.5
    inner_top, inner_bottom = top + 4, bottom - 5  # keep the curve off the frame of the axes

    def y_of(v):
        return inner_bottom - (v - vmin) * (inner_bottom - inner_top) / (vmax - vmin)

    columns = right - left - 1
    length = float(distance[-1]) if distance.size and distance[-1] > 0 else 1.0
    x = left + distance / length * columns
    colour = _INDEX["profile"]
    if values.size > 2 * columns:
        # More samples than columns: each column's min-max envelope, overlapping its
        # neighbour's so that the curve stays connected.
        column = np.minimum((distance / length * columns).astype(np.intp), columns - 1)
        starts = np.flatnonzero(np.r_[True, column[1:] != column[:-1]])
        low = np.fmin.reduceat(values, starts)
        high = np.fmax.reduceat(values, starts)
        previous_low, previous_high = np.r_[low[:1], low[:-1]], np.r_[high[:1], high[:-1]]
        low, high = np.fmin(low, previous_high), np.fmax(high, previous_low)
        for index, lo, hi in zip(column[starts].tolist(), y_of(low).tolist(), y_of(high).tolist()):
            if math.isfinite(lo) and math.isfinite(hi):
                draw.line([(left + index, hi), (left + index, lo)], fill=colour)
    else:
        ys = y_of(values)
        run: list[tuple[float, float]] = []
        for px, py, ok in zip(x.tolist(), ys.tolist(), finite.tolist()):
            if ok:
                run.append((px, py))
                continue
            if run:
                draw.line(run, fill=colour) if len(run) > 1 else draw.point(run, fill=colour)
            run = []
        if run:
            draw.line(run, fill=colour) if len(run) > 1 else draw.point(run, fill=colour)
    return vmin, vmax


def render_line_profile_png(data: np.ndarray, start, end, title: str = "") -> bytes:
    """PNG of the frame (zscale, strided to <= 800 px) with the line, and its profile below.

    Parameters
    ----------
    data : ndarray
        2-D frame (not modified; read-only is fine).
    start, end : (x, y)
        Ends of the line, as fractions of the width and height (0 is the top row).
    title : str
        Drawn above the frame.

    Returns
    -------
    bytes
        An 8-bit palette PNG (grey frame, red line, green start, red square end,
        blue profile on white).
    """
    data = np.asarray(data)
    profile = line_profile(data, start, end)
    rows, columns = data.shape
    geometry = layout(data.shape)
    sample = data[:: geometry.step, :: geometry.step]
    low, high = _cached_limits(data, geometry.step, sample)

    picture = Image.new("P", (geometry.width, geometry.height), _INDEX["background"])
    picture.putpalette(_PALETTE)
    left, top, right, bottom = geometry.frame
    frame = Image.fromarray(_grey_indices(sample, low, high), mode="L")
    if frame.size != (right - left, bottom - top):
        frame = frame.resize((right - left, bottom - top), Image.Resampling.NEAREST)
    picture.paste(frame, (left, top))
    draw = ImageDraw.Draw(picture)
    draw.rectangle([left - 1, top - 1, right, bottom], outline=_INDEX["ink"])
    heading = title or "line profile"
    heading = f"{heading}   {columns} x {rows}, zscale {_label(low)} .. {_label(high)}"
    _text(draw, (left, 8), heading)

    x0, y0 = geometry.to_picture(*relative_to_pixel(start, data.shape), data.shape)
    x1, y1 = geometry.to_picture(*relative_to_pixel(end, data.shape), data.shape)
    draw.line([(x0, y0), (x1, y1)], fill=_INDEX["line"], width=2)
    draw.ellipse([x0 - 4, y0 - 4, x0 + 4, y0 + 4], fill=_INDEX["start"], outline=_INDEX["ink"])
    draw.rectangle([x1 - 4, y1 - 4, x1 + 4, y1 + 4], fill=_INDEX["line"], outline=_INDEX["ink"])

    plot = geometry.plot
    for fraction in (0.25, 0.5, 0.75):  # horizontal grid
        y = plot[1] + fraction * (plot[3] - plot[1])
        draw.line([(plot[0], y), (plot[2] - 1, y)], fill=_INDEX["grid"])
    vmin, vmax = _draw_profile(draw, plot, profile.distance, profile.values)
    draw.rectangle([plot[0], plot[1], plot[2] - 1, plot[3] - 1], outline=_INDEX["ink"])
    inner_top, inner_bottom = plot[1] + 4, plot[3] - 5
    for value, y in ((vmax, inner_top), ((vmin + vmax) / 2, (inner_top + inner_bottom) / 2),
                     (vmin, inner_bottom)):
        draw.line([(plot[0] - 4, y), (plot[0], y)], fill=_INDEX["ink"])
        _text(draw, (plot[0] - 6, y), _label(value), "rm")
    length = float(profile.distance[-1]) if profile.distance.size else 0.0
    for fraction in (0.0, 0.5, 1.0):
        x = plot[0] + fraction * (plot[2] - plot[0] - 1)
        draw.line([(x, plot[3]), (x, plot[3] + 4)], fill=_INDEX["ink"])
        _text(draw, (x, plot[3] + 7), _label(fraction * length), "ma")
    _text(draw, ((plot[0] + plot[2]) / 2, plot[3] + 22), "distance along the line (pixels)", "ma")
    _text(draw, (plot[0], plot[1] - 14), f"value ({profile.values.size} samples)")

    buffer = io.BytesIO()
    # zlib level 6 (Pillow's default) is several times faster than 9 for a few % in size.
    picture.save(buffer, format="PNG", compress_level=6)
    return buffer.getvalue()
