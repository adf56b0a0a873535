"""The image view: the frame rasterized by datashader, with line and box drawing.

Pipeline (one per session)::

    session.image --> hv.Image (raw pixels, bounds [0, W] x [0, H], no copy)
                  --> rasterize (datashader, at the plot's size and zoom)
                  --> Bokeh colour mapping (clim = interval, palette = cmap o stretch)
    * Points (the line's two ends, PointDraw)  * Rectangles (the box, BoxEdit)
    + circles on the detected stars (Session.quality) and on the star clicked

Only a screen-sized image ever goes to the browser, with raw values, so the
hover and the colorbar show real pixel values. Plot coordinates are pixel
edges (:mod:`components.views.coords`); y grows with the array row and the y
axis is inverted so row 0 is at the top, unless the FITS-orientation toggle is
on. Drawing: with the *Line* (or *Box*) tool active, a drag on empty sky draws
a new line (box) and a drag on an existing end (box) moves it; the stream
data reach the server while the mouse moves, so the panes follow the drag.
With *Pan / zoom* active, a click (no drag) picks the star under it
(:meth:`Session.select_star`): its radial profile goes to the star pane.
The star circles are plain Bokeh renderers added to the figure (like the
line's segment), fed from the session without re-rendering the image.
"""

from __future__ import annotations

import functools
import itertools
import logging
import math

import holoviews as hv
import numpy as np
import panel as pn
import param
import xarray as xr
from bokeh.events import Tap
from bokeh.models import ColumnDataSource, CustomJS, CustomJSHover, HoverTool
from holoviews.operation.datashader import rasterize

from components.views import coords
from components.views.batch import held
from components.views.state import Session
from components.views.sync import resend

__all__ = [
    "ImageView", "image_element", "aligned_view", "rasterize_view", "wcs_grid", "star_markers",
    "DRAW_JS", "HOVER_JS",
]

log = logging.getLogger("quickanalysis.views")

#: Colour of the profile line and of the statistics box.
LINE_COLOR = "#ff4136"
BOX_COLOR = "#2ecc40"
#: Colour of the detected stars' circles, and of the star clicked.
STAR_COLOR = "#39cccc"
PICKED_COLOR = "#ffdc00"
# Nodes per side of the grid of sky positions the hover interpolates.
_WCS_GRID = 33
#: The image's hover tool, found again by this description when its tooltips change.
_HOVER_DESCRIPTION = "Pixel value and sky position"
#: Tags of the figure that tell the page the server moved the view (see ImageView.show_ranges).
_VIEW_COUNTER = itertools.count(1)

Frame = hv.streams.Stream.define("Frame", token=0)


def aligned_view(shape, x_range, y_range, width: int, height: int):
    """Ranges and size of the rasterized view: whole frame pixels, whole blocks.

    The view's ranges are widened to pixel edges (and clipped to the frame), and
    the output has one cell per ``f x f`` block of frame pixels, ``f`` the
    smallest whole factor that fits the plot's ``width x height`` screen pixels.
    Zoomed in, each cell then *is* a frame pixel (the hover shows its exact
    value, and no pixel is smeared over two); zoomed out, a cell is the mean
    of a square block of about ``f x f`` pixels.

    Returns ``((x0, x1), (y0, y1), columns, rows)``.
    """
    rows, cols = int(shape[0]), int(shape[1])
    if x_range is None or y_range is None or None in tuple(x_range) + tuple(y_range):
        x_range, y_range = (0, cols), (0, rows)
    x0, x1 = sorted(float(v) for v in x_range)
    y0, y1 = sorted(float(v) for v in y_range)
    x0, x1 = max(math.floor(x0), 0), min(math.ceil(x1), cols)
    y0, y1 = max(math.floor(y0), 0), min(math.ceil(y1), rows)
    if x1 <= x0 or y1 <= y0:  # looking beside the frame
        x0, x1, y0, y1 = 0, min(cols, 1), 0, min(rows, 1)
    width, height = max(int(width), 1), max(int(height), 1)
    factor = max(1, math.ceil((x1 - x0) / width), math.ceil((y1 - y0) / height))
    if factor > 1:  # blocks start on multiples of the factor (the last may be cut by the edge)
        x0, y0 = (x0 // factor) * factor, (y0 // factor) * factor
    return (x0, x1), (y0, y1), math.ceil((x1 - x0) / factor), math.ceil((y1 - y0) / factor)


def rasterize_view(element: hv.Image, x_range, y_range, width: int, height: int) -> hv.Image:
    """datashader's rasterize of a frame element for a view of ``width x height`` screen pixels."""
    rows, cols = element.interface.shape(element, gridded=True)
    (x0, x1), (y0, y1), columns, lines = aligned_view((rows, cols), x_range, y_range, width, height)
    return rasterize(
        element, dynamic=False, x_range=(x0, x1), y_range=(y0, y1), width=columns, height=lines,
    )


def image_element(image) -> hv.Image:
    """The frame as an hv.Image on pixel-edge bounds, sharing the decoded array (no copy)."""
    if image is None:
        data = np.full((2, 2), np.nan, dtype=np.float32)
    else:
        data = image.data
    height, width = data.shape
    array = xr.DataArray(
        data,
        coords={"y": np.arange(height) + 0.5, "x": np.arange(width) + 0.5},
        dims=("y", "x"),
        name="value",
    )
    return hv.Image(array, kdims=["x", "y"], vdims=["value"])


def star_markers(quality: dict | None) -> dict:
    """Plot positions of the detected stars (frame pixel ``(x, y)`` -> plot ``(x + 0.5, y + 0.5)``)."""
    stars = (quality or {}).get("stars") or {}
    xs = np.asarray(stars.get("x", []), dtype=np.float64)
    ys = np.asarray(stars.get("y", []), dtype=np.float64)
    if len(xs) != len(ys):
        xs = ys = np.zeros(0)
    return {"x": xs + 0.5, "y": ys + 0.5}


def picked_marker(session) -> dict:
    """Plot position of the star clicked: its fitted centre once measured, else the click."""
    result, star = session.star_result, session.star
    if result is not None:
        return {"x": [float(result.x) + 0.5], "y": [float(result.y) + 0.5]}
    if star is not None:
        return {"x": [float(star[0]) + 0.5], "y": [float(star[1]) + 0.5]}
    return {"x": [], "y": []}


def wcs_grid(image, nodes: int = _WCS_GRID) -> dict:
    """Unit vectors of the sky position at a grid of pixel centres, for the hover.

    Interpolating unit vectors (not RA/Dec) is safe across RA = 0 and near the
    poles; on a 33 x 33 grid the error is far below an arcsecond.
    """
    if image is None or getattr(image, "wcs", None) is None:
        return {"ok": False}
    height, width = image.data.shape
    nx, ny = min(nodes, width), min(nodes, height)
    columns = np.linspace(0.0, width - 1.0, nx) if nx > 1 else np.zeros(1)
    rows = np.linspace(0.0, height - 1.0, ny) if ny > 1 else np.zeros(1)
    grid_x, grid_y = np.meshgrid(columns, rows)
    try:
        ra, dec = image.wcs.celestial.pixel_to_world_values(grid_x.ravel(), grid_y.ravel())
    except Exception as error:  # an unusable WCS: no sky position in the hover
        log.info("no sky coordinates for %s: %s", getattr(image, "name", "?"), error)
        return {"ok": False}
    ra, dec = np.radians(np.asarray(ra, float)), np.radians(np.asarray(dec, float))
    if not (np.all(np.isfinite(ra)) and np.all(np.isfinite(dec))):
        return {"ok": False}
    return {
        "ok": True,
        "nx": int(nx),
        "ny": int(ny),
        "width": int(width),
        "height": int(height),
        # Arrays (not lists) travel as binary and cost Bokeh nothing to walk.
        "ux": np.cos(dec) * np.cos(ra),
        "uy": np.cos(dec) * np.sin(ra),
        "uz": np.sin(dec),
    }


#: CustomJSHover code: pixel column/row, RA/Dec (sexagesimal) and the value.
HOVER_JS = r"""
const W = grid.width, H = grid.height;
function pixel(v, size) { return Math.min(Math.max(Math.floor(v), 0), size - 1); }
if (format == "col") { return grid.shape ? String(pixel(special_vars.x, grid.shape[1])) : String(Math.floor(special_vars.x)); }
if (format == "row") { return grid.shape ? String(pixel(special_vars.y, grid.shape[0])) : String(Math.floor(special_vars.y)); }
if (format == "value") {
  if (value == null || Number.isNaN(value)) { return "NaN"; }
  if (Number.isInteger(value)) { return String(value); }
  const a = Math.abs(value);
  return (a != 0 && (a < 1e-3 || a >= 1e6)) ? value.toExponential(4) : value.toPrecision(6);
}
if (!grid.ok) { return "-"; }
const px = special_vars.x - 0.5, py = special_vars.y - 0.5;
let gx = px / Math.max(W - 1, 1) * (grid.nx - 1), gy = py / Math.max(H - 1, 1) * (grid.ny - 1);
gx = Math.min(Math.max(gx, 0), grid.nx - 1); gy = Math.min(Math.max(gy, 0), grid.ny - 1);
const i0 = Math.min(Math.floor(gx), Math.max(grid.nx - 2, 0)), j0 = Math.min(Math.floor(gy), Math.max(grid.ny - 2, 0));
const i1 = Math.min(i0 + 1, grid.nx - 1), j1 = Math.min(j0 + 1, grid.ny - 1);
const fx = gx - i0, fy = gy - j0;
function at(a) {
  const v00 = a[j0 * grid.nx + i0], v01 = a[j0 * grid.nx + i1];
  const v10 = a[j1 * grid.nx + i0], v11 = a[j1 * grid.nx + i1];
  return (v00 * (1 - fx) + v01 * fx) * (1 - fy) + (v10 * (1 - fx) + v11 * fx) * fy;
}
const ux = at(grid.ux), uy = at(grid.uy), uz = at(grid.uz);
const norm = Math.sqrt(ux * ux + uy * uy + uz * uz);
let ra = Math.atan2(uy, ux) * 180 / Math.PI; if (ra < 0) { ra += 360; }
const dec = Math.asin(Math.max(-1, Math.min(1, uz / norm))) * 180 / Math.PI;
function sexa(v, hours) {
  const sign = v < 0 ? "-" : (hours ? "" : "+");
  let x = Math.abs(v) / (hours ? 15 : 1);
  const digits = hours ? 2 : 1;
  let d = Math.floor(x), m = Math.floor((x - d) * 60);
  let s = ((x - d) * 60 - m) * 60;
  if (Number(s.toFixed(digits)) >= 60) { s = 0; m += 1; }
  if (m >= 60) { m = 0; d += 1; }
  const pad = (n, w) => String(n).padStart(w, "0");
  return sign + pad(d, 2) + ":" + pad(m, 2) + ":" + s.toFixed(digits).padStart(3 + digits, "0");
}
if (format == "ra") { return sexa(ra, true) + "  (" + ra.toFixed(5) + "°)"; }
if (format == "dec") { return sexa(dec, false) + "  (" + dec.toFixed(5) + "°)"; }
return String(value);
"""

#: Drawing on the image: runs on the figure's pan events, after the active tool.
DRAW_JS = r"""
const toolbar = figure.toolbar;
const active = toolbar.active_drag;
const name = cb_obj.event_name;
const x = cb_obj.x, y = cb_obj.y;
const state = figure.__qa_draw || (figure.__qa_draw = {mode: null, timer: null, x0: 0, y0: 0});

function send(source) {
  source.setv({data: source.data}, {check_eq: false});
}
function later(source) {
  if (state.timer != null) { return; }
  state.timer = setTimeout(() => { state.timer = null; send(source); }, 60);
}
function now(source) {
  if (state.timer != null) { clearTimeout(state.timer); state.timer = null; }
  send(source);
}
function set_line(x0, y0, x1, y1) {
  const d = {}; d[line_x] = [x0, x1]; d[line_y] = [y0, y1];
  line_source.data = d;
}
function set_box(x0, y0, x1, y1) {
  const d = {};
  d[box_left] = [Math.min(x0, x1)]; d[box_right] = [Math.max(x0, x1)];
  d[box_bottom] = [Math.min(y0, y1)]; d[box_top] = [Math.max(y0, y1)];
  box_source.data = d;
}
function edit_line(x1, y1) {
  line_source.get_array(line_x)[1] = x1; line_source.get_array(line_y)[1] = y1;
  line_source.change.emit();
}
function edit_box(x1, y1) {
  const x0 = state.x0, y0 = state.y0;
  box_source.get_array(box_left)[0] = Math.min(x0, x1); box_source.get_array(box_right)[0] = Math.max(x0, x1);
  box_source.get_array(box_bottom)[0] = Math.min(y0, y1); box_source.get_array(box_top)[0] = Math.max(y0, y1);
  box_source.change.emit();
}

if (name == "panstart") {
  state.mode = null;
  if (line_tool != null && active === line_tool) {
    if (line_source.selected.indices.length > 0) { state.mode = "line-drag"; }
    else { state.mode = "line-draw"; state.x0 = x; state.y0 = y; set_line(x, y, x, y); }
  } else if (box_tool != null && active === box_tool && !cb_obj.modifiers.shift) {
    if (box_source.selected.indices.length > 0) { state.mode = "box-drag"; }
    else { state.mode = "box-draw"; state.x0 = x; state.y0 = y; set_box(x, y, x, y); }
  }
} else if (name == "pan") {
  if (state.mode == "line-draw") { edit_line(x, y); later(line_source); }
  else if (state.mode == "line-drag") { later(line_source); }
  else if (state.mode == "box-draw") { edit_box(x, y); later(box_source); }
  else if (state.mode == "box-drag") { later(box_source); }
} else if (name == "panend") {
  const mode = state.mode;
  state.mode = null;
  if (mode == "line-draw") { edit_line(x, y); now(line_source); }
  else if (mode == "box-draw") { edit_box(x, y); now(box_source); }
  else if (mode == "line-drag") { setTimeout(() => now(line_source), 0); }
  else if (mode == "box-drag") { setTimeout(() => now(box_source), 0); }
}
"""


#: Square pixels: widen the x or y range so both axes have the same data units per screen pixel.
ASPECT_JS = r"""
const run = () => {
  const iw = figure.inner_width, ih = figure.inner_height;
  if (!(iw > 0 && ih > 0)) { return; }
  const xr = figure.x_range, yr = figure.y_range;
  const xs = xr.end - xr.start, ys = yr.end - yr.start;
  const ax = Math.abs(xs), ay = Math.abs(ys);
  if (!(ax > 0 && ay > 0)) { return; }
  const ux = ax / iw, uy = ay / ih;
  if (Math.abs(ux - uy) / Math.max(ux, uy) < 0.002) { return; }
  if (ux > uy) {
    const c = (yr.start + yr.end) / 2, half = (ux * ih / 2) * Math.sign(ys);
    yr.setv({start: c - half, end: c + half});
  } else {
    const c = (xr.start + xr.end) / 2, half = (uy * iw / 2) * Math.sign(xs);
    xr.setv({start: c - half, end: c + half});
  }
};
if (cb_obj != null && cb_obj.event_name === "reset") { setTimeout(run, 0); } else { run(); }
"""

#: Lays the page out again when the figure's canvas is not its element's size.
#: Workaround for holoviz/panel#4922 (a Bokeh plot keeps more room than it has
#: until it is laid out again): measured in Chromium, the image's first layout
#: took 5 px more height than its element had, and the next layout of the page,
#: whenever something else changed, shrank the plot and moved the view (square
#: pixels) under the observer's mouse. Runs on the figure's first sizes, when
#: its element is resized, and once a second later; at most three layouts per
#: element size, so a lasting difference cannot loop.
FIT_JS = r"""
const view = Bokeh.index.find_one(figure);
if (view == null || view.canvas_view == null) { return; }
if (view.__qa_fit == null) {
  const state = view.__qa_fit = {size: null, tries: 0};
  const fit = () => {
    const box = view.el.getBoundingClientRect(), canvas = view.canvas_view.bbox;
    if (!(box.width > 0 && box.height > 0)) { return; }
    const size = Math.round(box.width) + "x" + Math.round(box.height);
    if (size !== state.size) { state.size = size; state.tries = 0; }
    if ((Math.abs(box.height - canvas.height) >= 1 || Math.abs(box.width - canvas.width) >= 1) && state.tries < 3) {
      state.tries += 1;
      view.invalidate_layout();
    }
  };
  state.fit = fit;
  new ResizeObserver(() => requestAnimationFrame(fit)).observe(view.el);
  setTimeout(fit, 1000);
}
requestAnimationFrame(() => requestAnimationFrame(view.__qa_fit.fit));
"""


class ImageView(pn.viewable.Viewer):
    """The frame, its colorbar, hover, and the line and box the observer draws."""

    session = param.ClassSelector(class_=Session)
    drag_mode = param.Selector(default="pan", objects=["pan", "line", "box"], doc="What a drag does.")
    min_height = param.Integer(default=520)
    colour_override = param.Dict(
        default=None, allow_None=True, doc="{palette, limits} replacing the session's (the difference view).",
    )

    def __init__(self, **params):
        super().__init__(**params)
        session = self.session
        self._frame = Frame()
        self._build_number = 0
        self._shape = None
        self._ranges: tuple | None = None
        self._handles: dict = {}
        #: Callables given each new Bokeh figure (overlays of other views: pinned regions).
        self.figure_hooks: list = []
        #: Callable returning what to show instead of the session's image (None: the image).
        self.display_source = None
        # One formatter for every field: the format name says what to show.
        self._hover = CustomJSHover(code=HOVER_JS, args={"grid": {"ok": False}})
        self._update_grid()
        self._pane = pn.pane.HoloViews(
            None, sizing_mode="stretch_both", min_height=self.min_height, linked_axes=False,
            stylesheets=[STILL_LOADING_CSS],
        )
        if session.image is not None:
            self._shape = session.shape
            self._pane.object = self._build()
        session.param.watch(self._on_image, "image")
        session.param.watch(self._on_orientation, "fits_orientation")
        session.param.watch(self._on_regions, ["line", "box"])
        session.param.watch(self._on_loading, "loading")
        session.param.watch(self._on_stars, ["quality", "show_stars"])
        session.param.watch(self._on_picked, ["star", "star_result"])

    # ---------------------------------------------------------------- building

    def _element(self):
        """The hv.Image of the frame shown (built once per frame: it shares the pixels)."""
        image = self.session.image
        # Another array on the same grid (blink's reference, the difference): zoom, pan and shapes stay.
        shown = self.display_source() if self.display_source is not None else None
        image = shown if shown is not None else image
        cached = getattr(self, "_element_cache", None)
        if cached is None or cached[0] is not image:
            cached = (image, image_element(image))
            self._element_cache = cached
        return cached[1]

    def _rasterize(self, token=0, x_range=None, y_range=None, width=None, height=None, scale=1.0):
        """The frame rasterized for the current view (see :func:`rasterize_view`)."""
        return rasterize_view(self._element(), x_range, y_range, width or 800, height or 600)

    def _tooltips(self) -> list:
        tips = [("x", "$x{col}"), ("y", "$y{row}"), ("value", "@image{value}")]
        if self._grid.get("ok"):
            tips += [("RA", "$x{ra}"), ("Dec", "$x{dec}")]
        return tips

    def _make_hover(self) -> HoverTool:
        return HoverTool(
            tooltips=self._tooltips(),
            formatters={"$x": self._hover, "$y": self._hover, "@image": self._hover},
            description=_HOVER_DESCRIPTION,
        )

    def _build(self):
        """A new HoloViews object for the pane (first frame, new frame size, orientation)."""
        session = self.session
        self._build_number += 1
        build = self._build_number
        self._handles = {}
        self._frame = Frame()
        self._range_stream = hv.streams.RangeXY()
        self._range_stream.add_subscriber(self._on_range)
        rasterized = hv.DynamicMap(
            self._rasterize, streams=[self._frame, self._range_stream, hv.streams.PlotSize()],
        )
        opts = dict(
            colorbar=True,
            colorbar_opts={"title": "value", "formatter": _colorbar_formatter()},
            tools=[self._make_hover()],
            default_tools=["pan", "wheel_zoom", "box_zoom", "reset", "save"],
            # Only the scroll tool: HoloViews re-applies active tools on every
            # update, which would take the drag tool away from a drawing observer.
            active_tools=["wheel_zoom"],
            invert_yaxis=not session.fits_orientation,
            responsive=True,
            min_height=self.min_height,
            xlabel="x (column)",
            ylabel="y (row)",
            clipping_colors={"NaN": "#00000000"},
            hooks=[functools.partial(self._image_hook, build)],
            toolbar="above",
        )
        if self._ranges is not None:
            opts.update(xlim=self._ranges[0], ylim=self._ranges[1])
        styled = rasterized.apply(_colour, colour=session.colour_mapping, override=self.param.colour_override).opts(**opts)

        line = session.line
        line_points = [] if line is None else [(line[0], line[1]), (line[2], line[3])]
        points = hv.Points(line_points, kdims=["x", "y"]).opts(
            color=LINE_COLOR, size=9, line_color="white",
            hooks=[functools.partial(self._points_hook, build)],
        )
        self._line_stream = hv.streams.PointDraw(
            source=points, num_objects=2, add=False, drag=True,
            tooltip="Line profile: drag on the image to draw a line, drag an end to move it",
        )
        self._line_stream.add_subscriber(self._on_line_drawn)

        box = session.box
        boxes = [] if box is None else [tuple(box)]
        rectangles = hv.Rectangles(boxes, kdims=["x0", "y0", "x1", "y1"]).opts(
            fill_alpha=0.06, fill_color=BOX_COLOR, line_color=BOX_COLOR, line_width=2,
            hooks=[functools.partial(self._box_hook, build)],
        )
        self._box_stream = hv.streams.BoxEdit(
            source=rectangles, num_objects=1,
            tooltip="Statistics box: drag on the image to draw a box, drag the box to move it",
        )
        self._box_stream.add_subscriber(self._on_box_drawn)
        return (styled * rectangles * points).opts(
            responsive=True, min_height=self.min_height, active_tools=["wheel_zoom"]
        )

    # ---------------------------------------------------------------- hooks

    def _image_hook(self, build, plot, element):
        if build != self._build_number:
            return  # a plot of an earlier build, being replaced
        figure = plot.state
        if self._handles.get("figure") is not figure:
            figure.toolbar.on_change("active_drag", self._toolbar_changed)
            aspect = CustomJS(code=ASPECT_JS, args={"figure": figure})
            figure.js_on_change("inner_width", aspect)
            figure.js_on_change("inner_height", aspect)
            figure.js_on_change("tags", aspect)  # the server moved the view (show_ranges)
            fit = CustomJS(code=FIT_JS, args={"figure": figure})
            figure.js_on_change("inner_width", fit)
            figure.js_on_change("inner_height", fit)
            figure.js_on_event("reset", aspect)
            for tool in figure.tools:
                if type(tool).__name__ == "BoxZoomTool":
                    tool.match_aspect = True
                elif type(tool).__name__ == "WheelZoomTool":
                    tool.zoom_on_axis = False
            self._add_star_renderers(figure, plot.handles.get("glyph_renderer"))
            figure.on_event(Tap, self._on_tap)
            for hook in self.figure_hooks:
                hook(figure)
        self._handles["figure"] = figure
        self._handles["image_renderer"] = plot.handles.get("glyph_renderer")
        self._install_draw_js()

    def _add_star_renderers(self, figure, image_renderer):
        """Circles on the detected stars and on the star clicked, just above the image."""
        session = self.session
        stars = ColumnDataSource(star_markers(session.quality), name="qa-stars")
        picked = ColumnDataSource(picked_marker(session), name="qa-picked-star")
        star_renderer = figure.scatter(
            "x", "y", source=stars, size=14, marker="circle", fill_alpha=0.0,
            line_color=STAR_COLOR, line_width=1.0, line_alpha=0.7, visible=session.show_stars,
        )
        picked_renderer = figure.scatter(
            "x", "y", source=picked, size=24, marker="circle", fill_alpha=0.0,
            line_color=PICKED_COLOR, line_width=2.5,
        )
        above = figure.renderers.index(image_renderer) + 1 if image_renderer in figure.renderers else 0
        for renderer in (picked_renderer, star_renderer):  # on the image, under the line and box
            figure.renderers.remove(renderer)
            figure.renderers.insert(above, renderer)
        self._handles.update(
            stars_source=stars, stars_renderer=star_renderer, picked_source=picked,
        )

    def _on_stars(self, *events):
        source, renderer = self._handles.get("stars_source"), self._handles.get("stars_renderer")
        if source is None:
            return
        if any(event.name == "quality" for event in events):
            source.data = star_markers(self.session.quality)
        renderer.visible = self.session.show_stars

    def _on_picked(self, *events):
        source = self._handles.get("picked_source")
        if source is not None:
            source.data = picked_marker(self.session)

    def resync(self, raster: bool = True) -> None:
        """Send the view's current state again (see :mod:`components.views.sync`).

        With ``raster`` the frame is rasterized afresh too: the plot's first size
        arrives while the page is connecting, and the image made for it may have
        been dropped.
        """
        if raster and self.session.image is not None:
            self._frame.event(token=self._frame.token + 1)
        resend(self._handles.get("stars_source"), "data")
        resend(self._handles.get("stars_renderer"), "visible")
        resend(self._handles.get("picked_source"), "data")

    def _on_tap(self, event):
        """A click on the image: in Pan / zoom mode, pick the star there."""
        if self.drag_mode != "pan" or event.x is None or event.y is None:
            return
        if not (math.isfinite(event.x) and math.isfinite(event.y)):
            return
        self.pick_star(event.x, event.y)

    def pick_star(self, x: float, y: float) -> None:
        """Profile the star at plot point ``(x, y)`` (see :meth:`Session.select_star`)."""
        self.session.select_star(*coords.plot_to_pixel(x, y))

    def _points_hook(self, build, plot, element):
        if build != self._build_number:
            return
        figure = plot.state
        source = plot.handles["source"]
        renderer = plot.handles["glyph_renderer"]
        self._handles["line_source"] = source
        self._handles["line_tool"] = _tool_for(figure, renderer)
        if self._handles.get("segment_for") is not source:
            self._handles["segment_for"] = source
            glyph = renderer.glyph
            segment = figure.line(
                x=_field(glyph.x, "x"), y=_field(glyph.y, "y"),
                source=source, line_color=LINE_COLOR, line_width=2,
            )
            # The segment sits under the end points so they stay grabbable.
            figure.renderers.remove(segment)
            figure.renderers.insert(figure.renderers.index(renderer), segment)
        self._install_draw_js()

    def _box_hook(self, build, plot, element):
        if build != self._build_number:
            return
        self._handles["box_source"] = plot.handles["source"]
        self._handles["box_renderer"] = plot.handles["glyph_renderer"]
        self._handles["box_tool"] = _tool_for(plot.state, plot.handles["glyph_renderer"])
        self._install_draw_js()

    def _install_draw_js(self):
        handles = self._handles
        needed = ("figure", "line_source", "line_tool", "box_source", "box_renderer", "box_tool")
        if any(handles.get(name) is None for name in needed):
            return
        figure = handles["figure"]
        if handles.get("js_for") is figure:
            return
        handles["js_for"] = figure
        box_glyph = handles["box_renderer"].glyph
        callback = CustomJS(
            code=DRAW_JS,
            args=dict(
                figure=figure,
                line_source=handles["line_source"],
                line_tool=handles["line_tool"],
                line_x="x",
                line_y="y",
                box_source=handles["box_source"],
                box_tool=handles["box_tool"],
                box_left=_field(box_glyph.left, "left"),
                box_right=_field(box_glyph.right, "right"),
                box_bottom=_field(box_glyph.bottom, "bottom"),
                box_top=_field(box_glyph.top, "top"),
            ),
        )
        for event in ("panstart", "pan", "panend"):
            figure.js_on_event(event, callback)
        self._apply_drag_mode()

    # ---------------------------------------------------------------- sync

    def _apply_drag_mode(self):
        figure = self._handles.get("figure")
        if figure is None:
            return
        tool = {
            "line": self._handles.get("line_tool"),
            "box": self._handles.get("box_tool"),
        }.get(self.drag_mode)
        if tool is None:
            tool = next((t for t in figure.tools if type(t).__name__ == "PanTool"), None)
        if tool is not None and figure.toolbar.active_drag is not tool:
            figure.toolbar.active_drag = tool

    @param.depends("drag_mode", watch=True)
    def _drag_mode_changed(self):
        self._apply_drag_mode()

    def _toolbar_changed(self, attr, old, new):
        """The observer picked a drag tool on the Bokeh toolbar: mirror it in the mode buttons."""
        if new is None or isinstance(new, str):
            return
        if new is self._handles.get("line_tool"):
            mode = "line"
        elif new is self._handles.get("box_tool"):
            mode = "box"
        elif type(new).__name__ == "PanTool":
            mode = "pan"
        else:
            return
        if mode != self.drag_mode:
            self.drag_mode = mode

    def _on_range(self, x_range=None, y_range=None, **_):
        """Remember the view, to restore it when the plot is rebuilt (orientation toggle)."""
        if x_range is not None and y_range is not None and None not in (*x_range, *y_range):
            self._ranges = (tuple(sorted(x_range)), tuple(sorted(y_range)))

    def _on_line_drawn(self, data=None, **_):
        line = _line_from(data)
        if line != self.session.line:
            self._syncing = True
            try:
                with held(pn.state.curdoc):  # its panes in one message, at most one walk of the models
                    self.session.line = line
            finally:
                self._syncing = False

    def _on_box_drawn(self, data=None, **_):
        box = _box_from(data)
        if box != self.session.box:
            self._syncing = True
            try:
                with held(pn.state.curdoc):  # its panes in one message, at most one walk of the models
                    self.session.box = box
            finally:
                self._syncing = False

    def _on_regions(self, *events):
        """Regions set by the server (cleared, restored): draw them in the browser."""
        if getattr(self, "_syncing", False):
            return
        for event in events:
            if event.name == "line":
                source = self._handles.get("line_source")
                line = event.new
                data = {"x": [], "y": []} if line is None else {"x": [line[0], line[2]], "y": [line[1], line[3]]}
            else:
                source = self._handles.get("box_source")
                renderer = self._handles.get("box_renderer")
                if renderer is None:
                    continue
                glyph = renderer.glyph
                box = event.new
                fields = (
                    _field(glyph.left, "left"), _field(glyph.bottom, "bottom"),
                    _field(glyph.right, "right"), _field(glyph.top, "top"),
                )
                if box is None:
                    data = {name: [] for name in fields}
                else:
                    left, right = sorted((box[0], box[2]))
                    bottom, top = sorted((box[1], box[3]))
                    data = dict(zip(fields, ([left], [bottom], [right], [top])))
            if source is not None:
                source.data = data

    def _update_grid(self):
        self._grid = wcs_grid(self.session.image)
        shape = list(self.session.shape) if self.session.image is not None else None
        grid = dict(self._grid, shape=shape)
        self._hover.args = {"grid": grid}

    def _on_image(self, event):
        had_grid = self._grid.get("ok")
        self._update_grid()
        shape = self.session.shape
        figure = self._handles.get("figure")
        if figure is None or shape is None:
            if shape != self._shape:
                self._ranges = None
            self._shape = shape
            self._rebuild()
            return
        if bool(self._grid.get("ok")) != bool(had_grid):
            self._set_tooltips(figure)
        if shape != self._shape:
            # Another frame size: show the whole of it. The figure stays (building
            # one costs seconds on the page's loop and in the browser); its ranges move.
            self._shape = shape
            rows, cols = shape
            self.show_ranges((0, cols), (0, rows), reset=True)
        else:
            self._frame.event(token=self._frame.token + 1)

    def show_ranges(self, x_range, y_range, reset: bool = False) -> None:
        """Show the plot ranges ``x_range`` and ``y_range`` (each ``(low, high)``), square pixels kept.

        Drawn already, the figure's ranges move at once; otherwise the first
        drawing starts there. With ``reset`` the toolbar's reset returns there.
        """
        self._ranges = (tuple(sorted(x_range)), tuple(sorted(y_range)))
        figure = self._handles.get("figure")
        if figure is None:
            if self._pane.object is not None:
                self._rebuild()  # built but not drawn yet: build it again, starting there
            return
        (x0, x1), (y0, y1) = self._ranges
        if not self.session.fits_orientation:
            y0, y1 = y1, y0  # row 0 at the top: the y axis is inverted
        x_update, y_update = dict(start=x0, end=x1), dict(start=y0, end=y1)
        if reset:
            x_update.update(reset_start=x0, reset_end=x1)
            y_update.update(reset_start=y0, reset_end=y1)
        figure.y_range.update(**y_update)
        figure.x_range.update(**x_update)
        # Ranges set here reach the stream only from the page: rasterize for them now.
        self._range_stream.event(x_range=(x0, x1), y_range=tuple(sorted((y0, y1))))
        # Last in the same patch: the page widens one range to square pixels (ASPECT_JS).
        figure.tags = [*[tag for tag in figure.tags if not str(tag).startswith("qa-view-")],
                       f"qa-view-{next(_VIEW_COUNTER)}"]

    def _set_tooltips(self, figure) -> None:
        for tool in figure.tools:
            if isinstance(tool, HoverTool) and tool.description == _HOVER_DESCRIPTION:
                tool.tooltips = self._tooltips()

    def _on_orientation(self, event):
        self._rebuild()

    def _on_loading(self, event):
        self._pane.loading = bool(event.new)

    def _rebuild(self):
        self._pane.object = self._build()

    def __panel__(self):
        return self._pane


#: While a frame is read the image is veiled (Panel's loading overlay) but shows no spinner:
#: Panel's animated spinner over a large pane cost Chromium half a core (51 %, against 1 %
#: for the still veil, measured on this page), taken from the decoding on a shared machine.
#: The title says "loading…" meanwhile.
STILL_LOADING_CSS = ":host(.pn-loading)::before { display: none; }"


#: Colorbar labels padded to one width (figure spaces are as wide as digits), so a
#: new frame with longer numbers does not narrow the image and shift the view.
COLORBAR_LABEL_JS = r"""
const a = Math.abs(tick);
let text = (a >= 1e5 || (a > 0 && a < 1e-2)) ? tick.toExponential(2) : String(Number(tick.toPrecision(6)));
return text.padEnd(9, "\u2007");
"""


def _colorbar_formatter():
    from bokeh.models import CustomJSTickFormatter

    return CustomJSTickFormatter(code=COLORBAR_LABEL_JS)


def _colour(element, colour, override=None):
    """Apply the session's colour mapping (palette and limits), or the override, to the rasterized image."""
    colour = override or colour
    return element.opts(cmap=colour["palette"], clim=colour["limits"])


def _field(spec, default: str) -> str:
    """Column name of a Bokeh data spec (a plain string, a dict or a Field)."""
    if isinstance(spec, str):
        return spec
    if isinstance(spec, dict):
        return spec.get("field", default)
    return getattr(spec, "field", None) or default


def _tool_for(figure, renderer):
    for tool in figure.tools:
        renderers = getattr(tool, "renderers", None)
        if isinstance(renderers, (list, tuple)) and renderer in renderers and type(tool).__name__ in (
            "PointDrawTool", "BoxEditTool",
        ):
            return tool
    return None


def _finite(values) -> bool:
    return all(v is not None and math.isfinite(float(v)) for v in values)


def _line_from(data) -> tuple | None:
    """Session line from PointDraw data: the first and last of the (two) points."""
    if not data:
        return None
    xs, ys = list(data.get("x", [])), list(data.get("y", []))
    if len(xs) < 2 or len(ys) < 2:
        return None
    line = (float(xs[0]), float(ys[0]), float(xs[-1]), float(ys[-1]))
    return line if _finite(line) else None


def _box_from(data) -> tuple | None:
    """Session box from BoxEdit data (x0, y0, x1, y1 columns), the last box drawn."""
    if not data:
        return None
    columns = [list(data.get(name, [])) for name in ("x0", "y0", "x1", "y1")]
    if not all(columns):
        return None
    box = tuple(float(column[-1]) for column in columns)
    if not _finite(box):
        return None
    left, right = sorted((box[0], box[2]))
    bottom, top = sorted((box[1], box[3]))
    if right - left <= 0 or top - bottom <= 0:
        return None
    return (left, bottom, right, top)
