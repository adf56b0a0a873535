"""The pinned-regions pane: boxes and circles kept on the sky, measured on every frame the session shows.

Pinning takes the statistics box (or a circle around the star clicked) and
keeps it as a sky region through the frame's WCS
(:mod:`components.core.regions`); :attr:`Session.pinned` holds them as dicts
(so they travel in links). On every frame shown, each region is placed
through that frame's WCS and measured in a worker thread: statistics and the
quality of the stars inside. The pane shows a table (current values and the
change against the reference frame), a small plot of median and FWHM against
time per region, and DS9 import/export. The regions are outlined on the image.

A view never reads files: the DS9 file comes from the browser (FileInput),
and the reference frame from the session's store.
"""

from __future__ import annotations

import functools
import html
import io
import json
import logging
import math

import panel as pn
import param
from bokeh.models import ColumnDataSource
from bokeh.plotting import figure as bokeh_figure

from components.core.regions import Box, Circle, PinnedRegion, from_ds9, measure_region, pin, to_ds9
from components.errors import QuickAnalysisError
from components.views.state import Session, profile_radius
from components.views.style import STYLESHEET
from components.views.sync import resend

__all__ = ["RegionsPane", "plot_box_to_shape", "shape_outline", "REGION_COLORS"]

log = logging.getLogger("quickanalysis.views")

REGION_COLORS = ("#ff851b", "#b10dc9", "#01ff70", "#f012be", "#7fdbff", "#ffdc00")


def plot_box_to_shape(box) -> Box:
    """The core Box (pixel centres) of the pixels a plot-coordinate box covers."""
    x0, y0, x1, y1 = box
    return Box(x0 - 0.5, y0 - 0.5, x1 - 0.5, y1 - 0.5)


def shape_outline(shape) -> dict:
    """Plot-coordinate outline of a shape: kind, centre, width and height."""
    if isinstance(shape, Circle):
        return {"kind": "circle", "x": shape.x + 0.5, "y": shape.y + 0.5, "w": 2 * shape.r, "h": 2 * shape.r}
    cx, cy = shape.center
    # A box holds whole pixels: outline their edges.
    return {"kind": "box", "x": cx + 0.5, "y": cy + 0.5, "w": shape.x1 - shape.x0 + 1, "h": shape.y1 - shape.y0 + 1}


def _number(value) -> float:
    return float(value) if value is not None and math.isfinite(float(value)) else math.nan


class RegionsPane(pn.viewable.Viewer):
    """Pinned regions: table, per-region plot against time, DS9 import/export."""

    session = param.ClassSelector(class_=Session)
    measurements = param.Dict(default={}, doc="{(region name, frame key): measure_region() result + time}.")
    message = param.String(default="")

    def __init__(self, **params):
        super().__init__(**params)
        session = self.session
        self._outline_sources: list[ColumnDataSource] = []
        self._reference: dict = {}  # reference key -> {name: measurement}
        self.pin_box = pn.widgets.Button(label="Pin box", color="primary", width=90)
        self.pin_star = pn.widgets.Button(label="Pin star circle", width=120)
        self.clear = pn.widgets.Button(label="Clear", width=70)
        self.upload = pn.widgets.FileInput(accept=".reg,.txt", width=200)
        self.download = pn.widgets.FileDownload(
            callback=self.ds9_text_file, filename="quickanalysis.reg", label="Export DS9", width=120,
        )
        self.pin_box.on_click(lambda event: self.pin_current_box())
        self.pin_star.on_click(lambda event: self.pin_current_star())
        self.clear.on_click(lambda event: setattr(self.session, "pinned", []))
        self.upload.param.watch(self._uploaded, "value")
        # A plain HTML table (a Tabulator would load its theme from a CDN): rows also in data-rows.
        self.table = pn.pane.HTML("", sizing_mode="stretch_width", margin=(0, 10), stylesheets=[STYLESHEET])
        self.series = ColumnDataSource({"time": [], "median": [], "fwhm_px": [], "color": [], "name": []},
                                       name="qa-region-series")
        self.figures = [self._figure("median", "Median (ADU)"), self._figure("fwhm_px", "FWHM (px)")]
        self._note = pn.pane.HTML("", sizing_mode="stretch_width", margin=(0, 10), stylesheets=[STYLESHEET])
        session.param.watch(self._regions_changed, "pinned")
        session.param.watch(self._frame_changed, ["image", "quality"])
        session.param.watch(self._reference_changed, "reference_key")
        self.param.watch(self._refresh_views, ["measurements", "message"])
        self._refresh_views()

    # ---------------------------------------------------------------- regions

    def regions(self) -> list[PinnedRegion]:
        """The session's pinned regions as core objects (bad entries are dropped and reported)."""
        regions = []
        for data in self.session.pinned:
            try:
                regions.append(PinnedRegion.from_dict(data))
            except QuickAnalysisError as error:
                log.warning("dropping a pinned region: %s", error)
        return regions

    def _unique_name(self, base: str) -> str:
        names = {r.get("name") for r in self.session.pinned}
        index = len(names) + 1
        while f"{base} {index}" in names:
            index += 1
        return f"{base} {index}"

    def pin_shape(self, shape, name: str | None = None) -> PinnedRegion:
        """Pin ``shape`` (frame pixels of the frame shown) through its WCS."""
        image = self.session.image
        region = pin(shape, image.wcs if image is not None else None, name or self._unique_name(shape.kind))
        self.session.pinned = [*self.session.pinned, region.to_dict()]
        return region

    def pin_current_box(self) -> PinnedRegion | None:
        if self.session.box is None or self.session.image is None:
            self.message = "Draw a box first (Box tool), then pin it."
            return None
        return self.pin_shape(plot_box_to_shape(self.session.box))

    def pin_current_star(self) -> PinnedRegion | None:
        if self.session.star is None or self.session.image is None:
            self.message = "Click a star first (Pan / zoom), then pin it."
            return None
        x, y = self.session.star
        return self.pin_shape(Circle(x, y, profile_radius(self.session.quality)), self._unique_name("star"))

    def ds9_text(self) -> str:
        return to_ds9(self.regions())

    def ds9_text_file(self):
        return io.StringIO(self.ds9_text())

    def import_ds9(self, text: str) -> int:
        """Add the boxes and circles of a DS9 region file; returns how many were added."""
        image = self.session.image
        try:
            regions, skipped = from_ds9(text, image.wcs if image is not None else None)
        except QuickAnalysisError as error:
            self.message = f"Cannot import: {error}"
            return 0
        taken = {r.get("name") for r in self.session.pinned}
        added = []
        for region in regions:
            if region.name in taken:
                region.name = self._unique_name(region.name)
            taken.add(region.name)
            added.append(region.to_dict())
        self.session.pinned = [*self.session.pinned, *added]
        self.message = f"Imported {len(added)} region(s)" + (f", skipped {skipped} other shape(s)." if skipped else ".")
        return len(added)

    def _uploaded(self, event):
        if event.new:
            self.import_ds9(bytes(event.new).decode("utf-8", "replace"))

    # ---------------------------------------------------------------- measuring

    def _regions_changed(self, event):
        names = {r.get("name") for r in event.new}
        self.measurements = {k: v for k, v in self.measurements.items() if k[0] in names}
        self._reference = {}
        self.measure_shown()
        self._reference_changed()

    def _frame_changed(self, *events):
        self.measure_shown()

    def _reference_changed(self, *events):
        key = self.session.reference_key
        if key is None or key in self._reference or not self.session.pinned:
            self._refresh_views()
            return
        store, regions = self.session.store, self.regions()

        def work():
            image = store.load(key)
            return {r.name: measure_region(image.data, image.wcs, r) for r in regions}

        self.session._submit(work, functools.partial(self._reference_measured, key))

    def _reference_measured(self, key, result, error):
        if error is not None:
            self.message = f"Cannot measure the reference frame {key}: {error}"
            return
        self._reference[key] = result
        self._refresh_views()

    def measure_shown(self) -> None:
        """Measure every pinned region on the frame shown (worker thread)."""
        session = self.session
        image, info, quality = session.image, session.info, session.quality
        regions = self.regions()
        if image is None or info is None or not regions:
            self._refresh_views()
            return
        observed = (quality or {}).get("observed") or info.modified.timestamp()

        def work():
            return {r.name: measure_region(image.data, image.wcs, r, quality) for r in regions}

        self.session._submit(work, functools.partial(self._measured, info.key, observed))

    def _measured(self, key, observed, result, error):
        if error is not None:
            self.message = f"Cannot measure the pinned regions: {error}"
            return
        updated = dict(self.measurements)
        for name, measurement in result.items():
            updated[(name, key)] = dict(measurement, time=float(observed), key=key)
        self.measurements = updated

    # ---------------------------------------------------------------- views

    def reference_measurement(self, name: str) -> dict | None:
        """The region's measurement on the reference frame (the previous frame measured by default)."""
        key = self.session.reference_key
        if key is not None:
            return (self._reference.get(key) or {}).get(name) or self.measurements.get((name, key))
        shown = self.session.key
        earlier = sorted(
            (m for (n, k), m in self.measurements.items() if n == name and k != shown),
            key=lambda m: m["time"],
        )
        current = self.measurements.get((name, shown))
        if current is not None:
            earlier = [m for m in earlier if m["time"] <= current["time"]]
        return earlier[-1] if earlier else None

    def rows(self) -> list[dict]:
        """One row per pinned region: its values on the frame shown and the change against the reference."""
        out = []
        for region in self.regions():
            current = self.measurements.get((region.name, self.session.key)) or {}
            reference = self.reference_measurement(region.name) or {}
            stats = current.get("statistics") or {}
            quality = current.get("quality") or {}
            ref_stats = reference.get("statistics") or {}
            ref_quality = reference.get("quality") or {}
            median, fwhm = _number(stats.get("median")), _number(quality.get("fwhm_px"))
            out.append({
                "region": region.name,
                "kind": (current.get("shape") or (region.pixel.to_dict() if region.pixel else {})).get("kind", "?"),
                "on sky": "pixels only" if region.pixels_only or not current.get("on_sky", True) else "sky",
                "median": median,
                "mean": _number(stats.get("mean")),
                "stars": quality.get("star_count"),
                "FWHM px": fwhm,
                "Δ median": median - _number(ref_stats.get("median")),
                "Δ FWHM": fwhm - _number(ref_quality.get("fwhm_px")),
            })
        return out

    def table_html(self) -> str:
        rows = self.rows()
        columns = ["region", "kind", "on sky", "median", "mean", "stars", "FWHM px", "Δ median", "Δ FWHM"]

        def cell(value):
            if isinstance(value, float):
                return "–" if not math.isfinite(value) else f"{value:.4g}"
            return html.escape("–" if value is None else str(value))

        data = json.dumps([{k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                            for k, v in row.items()} for row in rows])
        head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
        body = "".join("<tr>" + "".join(f"<td>{cell(row[c])}</td>" for c in columns) + "</tr>" for row in rows)
        return (f'<table class="qa-regions" data-key="{html.escape(str(self.session.key))}" '
                f'data-rows="{html.escape(data)}" style="font-size:12px;width:100%">'
                f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")

    def _figure(self, field: str, title: str):
        fig = bokeh_figure(
            name=f"qa-region-{field}", title=title, x_axis_type="datetime", height=110,
            sizing_mode="stretch_width", tools=[], toolbar_location=None, min_border_left=40,
        )
        fig.title.text_font_size = "11px"
        fig.xgrid.grid_line_alpha = fig.ygrid.grid_line_alpha = 0.25
        fig.scatter("time", field, source=self.series, color="color", size=6)
        return fig

    def _series(self) -> dict:
        colors = {r.name: REGION_COLORS[i % len(REGION_COLORS)] for i, r in enumerate(self.regions())}
        items = sorted(self.measurements.items(), key=lambda item: item[1]["time"])
        return {
            "time": [m["time"] * 1000.0 for (n, _), m in items if n in colors],
            "median": [_number((m.get("statistics") or {}).get("median")) for (n, _), m in items if n in colors],
            "fwhm_px": [_number((m.get("quality") or {}).get("fwhm_px")) for (n, _), m in items if n in colors],
            "color": [colors[n] for (n, _), m in items if n in colors],
            "name": [n for (n, _), m in items if n in colors],
        }

    def _outlines(self) -> dict:
        image = self.session.image
        data = {"x": [], "y": [], "w": [], "h": [], "color": [], "name": []}
        circles = {name: [] for name in data}
        for index, region in enumerate(self.regions()):
            shape = region.place(image.wcs if image is not None else None)
            if shape is None:
                continue
            outline = shape_outline(shape)
            target = circles if outline["kind"] == "circle" else data
            for name in ("x", "y", "w", "h"):
                target[name].append(outline[name])
            target["color"].append(REGION_COLORS[index % len(REGION_COLORS)])
            target["name"].append(region.name)
        return {"box": data, "circle": circles}

    def draw_on(self, figure) -> None:
        """Outline the pinned regions on the image's figure (an ImageView figure hook)."""
        outlines = self._outlines()
        boxes = ColumnDataSource(outlines["box"], name="qa-pinned-boxes")
        circles = ColumnDataSource(outlines["circle"], name="qa-pinned-circles")
        figure.rect("x", "y", "w", "h", source=boxes, fill_alpha=0.0, line_color="color", line_width=2,
                    line_dash="dashed")
        figure.ellipse("x", "y", "w", "h", source=circles, fill_alpha=0.0, line_color="color", line_width=2,
                       line_dash="dashed")
        figure.text("x", "y", text="name", source=boxes, text_color="color", text_font_size="11px",
                    x_offset=4, y_offset=-4)
        figure.text("x", "y", text="name", source=circles, text_color="color", text_font_size="11px",
                    x_offset=4, y_offset=-4)
        self._outline_sources = [boxes, circles]

    def _refresh_views(self, *events) -> None:
        self.table.object = self.table_html()
        self.series.data = self._series()
        outlines = self._outlines()
        if self._outline_sources:
            self._outline_sources[0].data = outlines["box"]
            self._outline_sources[1].data = outlines["circle"]
        image = self.session.image
        notes = []
        if image is not None and image.wcs is None and self.session.pinned:
            notes.append("This frame has no WCS: regions stay in pixels only (no WCS).")
        elif any(r.pixels_only for r in self.regions()):
            notes.append("Regions drawn on a frame without WCS stay in pixels only (no WCS).")
        if self.message:
            notes.append(self.message)
        if not self.session.pinned:
            notes.append("Draw a box (or click a star) and pin it: it follows the field on every frame.")
        self._note.object = "<br>".join(f'<span class="qa-sub">{html.escape(n)}</span>' for n in notes)

    def resync(self) -> None:
        resend(self.series, "data")
        for source in self._outline_sources:
            resend(source, "data")

    def __panel__(self):
        return pn.Column(
            pn.Row(self.pin_box, self.pin_star, self.clear, sizing_mode="stretch_width"),
            pn.Row(self.upload, self.download, sizing_mode="stretch_width"),
            self._note,
            self.table,
            *[pn.pane.Bokeh(fig, sizing_mode="stretch_width", height=110) for fig in self.figures],
            sizing_mode="stretch_width",
        )
