"""The focus curve: FWHM against focuser position for the session, the fitted hyperbola and best focus.

Fed from :attr:`Session.history` (each row carries the frame's ``focus``
position, see ``QA_FOCUS_KEYWORD``); the fit is :func:`components.core.focus.fit_focus`.
"""

from __future__ import annotations

import html
import math

import numpy as np
import panel as pn
import param
from bokeh.models import BoxAnnotation, ColumnDataSource, HoverTool, Span
from bokeh.plotting import figure as bokeh_figure

from components.core.focus import FocusFit, fit_focus
from components.views.state import Session
from components.views.style import STYLESHEET
from components.views.sync import resend

__all__ = ["FocusPane", "focus_points", "focus_curve"]

POINT_COLOR = "#58a6ff"
FIT_COLOR = "#ffdc00"


def focus_points(rows: list[dict], last: int = 0) -> dict:
    """Columns (key, name, focus, fwhm_px) of the history rows with a focus position and a FWHM.

    ``last`` > 0 keeps only the last ``last`` such frames (a focus run).
    """
    picked = [r for r in rows if r.get("focus") is not None and r.get("fwhm_px") is not None]
    if last and last > 0:
        picked = picked[-last:]
    return {
        "key": [r["key"] for r in picked],
        "name": [r.get("name") or r["key"] for r in picked],
        "focus": np.asarray([float(r["focus"]) for r in picked], dtype=np.float64),
        "fwhm_px": np.asarray([float(r["fwhm_px"]) for r in picked], dtype=np.float64),
    }


def focus_curve(fit: FocusFit | None, focus: np.ndarray, samples: int = 200) -> dict:
    """The fitted curve over the positions measured (and a margin), or empty columns."""
    if fit is None or not len(focus):
        return {"focus": [], "fwhm_px": []}
    low, high = float(np.min(focus)), float(np.max(focus))
    margin = 0.05 * (high - low or 1.0)
    xs = np.linspace(low - margin, high + margin, samples)
    return {"focus": xs, "fwhm_px": fit.curve(xs)}


def describe_fit(fit: FocusFit | None, points: int) -> str:
    if fit is None:
        need = max(0, 5 - points)
        more = f" ({need} more needed)" if need else " (no minimum among them)"
        return (f'<span class="qa-sub">Focus curve: {points} frame(s) with a focuser position{more}.</span>'
                if points else '<span class="qa-sub">No frame with a focuser position yet.</span>')
    error = f"{fit.best_focus_error:.2g}" if math.isfinite(fit.best_focus_error) else "?"
    return (
        f'<b class="qa-best-focus" style="color:#ffdc00">Best focus {fit.best_focus:.0f} ± {html.escape(error)}</b> '
        f'<span class="qa-sub">· FWHM {fit.fwhm_min_px:.2f} px there · {fit.points} frames</span>'
    )


class FocusPane(pn.viewable.Viewer):
    """FWHM against focuser position, with the fitted hyperbola and the best focus ± its error."""

    session = param.ClassSelector(class_=Session)
    last = param.Integer(default=0, bounds=(0, None), doc="Only the last N frames (0: the whole session).")
    height = param.Integer(default=220)

    def __init__(self, **params):
        super().__init__(**params)
        self.source = ColumnDataSource({"key": [], "name": [], "focus": [], "fwhm_px": []}, name="qa-focus-points")
        self.curve = ColumnDataSource({"focus": [], "fwhm_px": []}, name="qa-focus-curve")
        fig = bokeh_figure(
            name="qa-focus", title="FWHM against focuser position", height=self.height,
            sizing_mode="stretch_width", tools=[], toolbar_location=None,
            x_axis_label="focuser position", y_axis_label="FWHM (px)",
        )
        fig.title.text_font_size = "11px"
        fig.xgrid.grid_line_alpha = fig.ygrid.grid_line_alpha = 0.25
        points = fig.scatter("focus", "fwhm_px", source=self.source, size=7, color=POINT_COLOR)
        fig.line("focus", "fwhm_px", source=self.curve, line_color=FIT_COLOR, line_width=2)
        self.best = Span(dimension="height", line_color=FIT_COLOR, line_dash="dashed", location=None)
        self.band = BoxAnnotation(fill_color=FIT_COLOR, fill_alpha=0.12, left=None, right=None, visible=False)
        fig.add_layout(self.band)
        fig.add_layout(self.best)
        fig.add_tools(HoverTool(renderers=[points], tooltips=[("frame", "@name"), ("focus", "@focus{0}"),
                                                             ("FWHM", "@fwhm_px{0.00} px")]))
        self.figure = fig
        self.fit: FocusFit | None = None
        self._caption = pn.pane.HTML("", sizing_mode="stretch_width", margin=(0, 10), stylesheets=[STYLESHEET])
        self._last = pn.widgets.IntInput.from_param(
            self.param.last, label="Last frames (0 = session)", width=170, margin=(0, 10),
        )
        self._plot = pn.pane.Bokeh(fig, sizing_mode="stretch_width", height=self.height)
        self.session.param.watch(self._update, "history")
        self.param.watch(self._update, "last")
        self._update()

    def _update(self, *events) -> None:
        columns = focus_points(self.session.history, self.last)
        self.fit = fit_focus(columns["focus"], columns["fwhm_px"])
        self.source.data = columns
        self.curve.data = focus_curve(self.fit, columns["focus"])
        fit = self.fit
        self.best.location = fit.best_focus if fit is not None else None
        if fit is not None and math.isfinite(fit.best_focus_error):
            self.band.update(left=fit.best_focus - fit.best_focus_error,
                             right=fit.best_focus + fit.best_focus_error, visible=True)
        else:
            self.band.visible = False
        self._caption.object = describe_fit(fit, len(columns["key"]))

    def resync(self) -> None:
        """Send the plain Bokeh models again once the page is connected (components.views.sync)."""
        resend(self.source, "data")
        resend(self.curve, "data")
        resend(self.best, "location")
        resend(self.band, "left", "right", "visible")

    def __panel__(self):
        return pn.Column(self._caption, self._plot, self._last, sizing_mode="stretch_width")
