"""Pointing drift: the frames' centres as arcsec offsets (east, north) from the first frame, against time.

Fed from :attr:`Session.history` (each row carries ``center_ra``/``center_dec``
of the frame's centre, from its WCS); offsets by :func:`components.core.drift.pointing_offsets`.
"""

from __future__ import annotations

import numpy as np
import panel as pn
import param
from bokeh.models import ColumnDataSource, HoverTool, Legend
from bokeh.plotting import figure as bokeh_figure

from components.core.drift import pointing_offsets
from components.views.quality import one_look, time_format
from components.views.state import Session
from components.views.sync import resend

__all__ = ["DriftPane", "drift_data"]

EAST_COLOR = "#ff851b"
NORTH_COLOR = "#39cccc"


def drift_data(rows: list[dict]) -> dict:
    """Columns (key, name, time in ms, east, north, separation arcsec) of rows with a known centre."""
    rows = [r for r in rows if r.get("center_ra") is not None and r.get("center_dec") is not None]
    pointings = pointing_offsets([r["key"] for r in rows], [(r["center_ra"], r["center_dec"]) for r in rows])
    return {
        "key": [p.key for p in pointings],
        "name": [r.get("name") or r["key"] for r in rows],
        "time": np.asarray([float(r["observed"]) * 1000.0 for r in rows], dtype=np.float64),
        "east": np.asarray([p.east_arcsec for p in pointings], dtype=np.float64),
        "north": np.asarray([p.north_arcsec for p in pointings], dtype=np.float64),
        "separation": np.asarray([p.separation_arcsec for p in pointings], dtype=np.float64),
    }


class DriftPane(pn.viewable.Viewer):
    """East and north offsets (arcsec) of each frame's centre from the session's first frame."""

    session = param.ClassSelector(class_=Session)
    height = param.Integer(default=140)

    def __init__(self, **params):
        super().__init__(**params)
        self.source = ColumnDataSource(drift_data([]), name="qa-drift")
        fig = bokeh_figure(
            name="qa-drift-plot", title="Pointing drift from the first frame (arcsec)", x_axis_type="datetime",
            height=self.height, sizing_mode="stretch_width", tools=[], toolbar_location=None,
            min_border_left=40,
        )
        fig.title.text_font_size = "11px"
        fig.xaxis.formatter = time_format()  # times of day, as the timeline beside it
        fig.xaxis.ticker.desired_num_ticks = 3
        fig.xgrid.grid_line_alpha = fig.ygrid.grid_line_alpha = 0.25
        east = fig.line("time", "east", source=self.source, line_color=EAST_COLOR, line_width=2)
        north = fig.line("time", "north", source=self.source, line_color=NORTH_COLOR, line_width=2)
        dots = fig.scatter("time", "east", source=self.source, size=4, color=EAST_COLOR)
        one_look(east, north, dots, fig.scatter("time", "north", source=self.source, size=4, color=NORTH_COLOR))
        fig.add_layout(Legend(items=[("east", [east]), ("north", [north])], location="top_left",
                              label_text_font_size="10px", background_fill_alpha=0.3))
        fig.add_tools(HoverTool(renderers=[dots], tooltips=[
            ("frame", "@name"), ("east", '@east{0.00}"'), ("north", '@north{0.00}"'),
            ("total", '@separation{0.00}"')]))
        self.figure = fig
        self._plot = pn.pane.Bokeh(fig, sizing_mode="stretch_width", height=self.height)
        self.session.param.watch(self._update, "history")
        self._update()

    def _update(self, *events) -> None:
        self.source.data = drift_data(self.session.history)

    def resync(self) -> None:
        resend(self.source, "data")

    def __panel__(self):
        return self._plot
