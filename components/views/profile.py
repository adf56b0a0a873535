"""The line profile pane: pixel value against distance along the drawn line."""

from __future__ import annotations

import html
import json

import holoviews as hv
import panel as pn
import param

from components.views import compute, coords
from components.views.style import STYLESHEET
from components.views.state import Session

__all__ = ["ProfilePane", "profile_summary"]


def profile_summary(session: Session) -> dict | None:
    """The profile of the session's line as plain numbers (None without a line or frame).

    ``start``/``end`` are the API's relative points (``POST /lineprofile``
    with them returns exactly ``values``).
    """
    image, line = session.image, session.line
    if image is None or line is None:
        return None
    shape = image.data.shape
    result = compute.profile(image, line)
    scale = session.pixel_scale()
    length = float(result.distance[-1]) if len(result) else 0.0
    start = [float(v) for v in result.start]
    end = [float(v) for v in result.end]
    return {
        "start": start,
        "end": end,
        "pixel_start": coords.relative_to_plot_point(*result.start, shape),
        "pixel_end": coords.relative_to_plot_point(*result.end, shape),
        "count": len(result),
        "values": result.values,
        "distance": result.distance,
        "length": length,
        "scale": scale,
        "x": result.x,
        "y": result.y,
    }


class ProfilePane(pn.viewable.Viewer):
    """Values along the line; distance in pixels, or arcsec when the frame has a scale."""

    session = param.ClassSelector(class_=Session)

    def __init__(self, **params):
        super().__init__(**params)
        self._unit = pn.widgets.RadioButtonGroup.from_param(
            self.session.param.profile_unit, color="default",
            label="", width=130, margin=(0, 5),
        )
        self._clear = pn.widgets.Button(
            label="Clear line", color="light", width=90, height=30, margin=(0, 5),
        )
        self._clear.on_click(lambda event: setattr(self.session, "line", None))
        self._plot = pn.pane.HoloViews(
            hv.DynamicMap(pn.bind(self._curve, self.session.param.image, self.session.param.line,
                                  self.session.param.profile_unit)),
            sizing_mode="stretch_width", height=190, linked_axes=False,
        )
        self._caption = pn.pane.HTML(
            pn.bind(self._describe, self.session.param.image, self.session.param.line),
            sizing_mode="stretch_width", margin=(0, 10), stylesheets=[STYLESHEET],
        )

    def summary(self) -> dict | None:
        return profile_summary(self.session)

    def _curve(self, image, line, unit):
        summary = self.summary()
        if summary is None:
            curve = hv.Curve([], "distance", "value")
            xlabel = "distance (pixels)"
        else:
            distance = summary["distance"]
            xlabel = "distance (pixels)"
            if unit == "arcsec" and summary["scale"]:
                distance = distance * summary["scale"]
                xlabel = "distance (arcsec)"
            curve = hv.Curve(
                (distance, summary["values"], summary["x"], summary["y"]),
                "distance", ["value", "column", "row"],
            )
        return curve.opts(
            responsive=True, height=180, xlabel=xlabel, ylabel="value", color="#ff4136",
            tools=["hover"], line_width=1.5, default_tools=["pan", "wheel_zoom", "reset"],
            backend_opts={"plot.toolbar.autohide": True},
            active_tools=["wheel_zoom"], title="", framewise=True, show_grid=True,
        )

    def _describe(self, image, line) -> str:
        summary = self.summary()
        if image is None:
            return '<div class="qa-hint">No frame yet.</div>'
        if summary is None:
            return (
                '<div class="qa-hint">Pick the <b>Line</b> tool and drag on the image '
                "to draw a profile.</div>"
            )
        (x0, y0), (x1, y1) = summary["pixel_start"], summary["pixel_end"]
        length = summary["length"]
        scale = summary["scale"]
        arcsec = f" = {length * scale:.2f}&Prime;" if scale else ""
        meta = html.escape(json.dumps({
            "start": summary["start"], "end": summary["end"], "count": summary["count"],
        }), quote=True)
        return (
            f'<div class="qa-profile" data-profile="{meta}">'
            f"({x0 - 0.5:.1f}, {y0 - 0.5:.1f}) &rarr; ({x1 - 0.5:.1f}, {y1 - 0.5:.1f}) px, "
            f"length {length:.1f} px{arcsec}, "
            f'<span class="qa-profile-count">{summary["count"]}</span> samples'
            "</div>"
        )

    def __panel__(self):
        return pn.Column(
            pn.Row(
                pn.pane.HTML(stylesheets=[STYLESHEET], object="<h3>Line profile</h3>", margin=(0, 10)),
                pn.layout.HSpacer(), self._unit, self._clear,
                sizing_mode="stretch_width",
            ),
            self._caption,
            self._plot,
            sizing_mode="stretch_width",
            css_classes=["qa-card"],
        )
