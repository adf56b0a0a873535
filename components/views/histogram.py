"""The histogram pane: clipped histogram of the box (or the whole frame)."""

from __future__ import annotations

import html
import json

import holoviews as hv
import numpy as np
import panel as pn
import param

from components.views import compute
from components.views.style import STYLESHEET
from components.views.state import CLIP_CHOICES, Session
from components.views.stats import format_number, region_label

__all__ = ["HistogramPane"]


def _stats_line(label: str, stats: dict) -> str:
    return f"{label}: " + ", ".join(
        f"{name} {format_number(stats.get(name))}" for name in ("median", "mean", "mode", "min", "max")
    )


class HistogramPane(pn.viewable.Viewer):
    """``components.core.histogram_clipped`` of the region, with clip and log-count controls."""

    session = param.ClassSelector(class_=Session)

    def __init__(self, **params):
        super().__init__(**params)
        session = self.session
        self._clip = pn.widgets.Select.from_param(
            session.param.clip_percent, label="", options=CLIP_CHOICES, width=150,
            margin=(0, 5),
        )
        self._log = pn.widgets.Checkbox.from_param(
            session.param.log_counts, label="log counts", width=95, margin=(8, 5),
        )
        depends = (session.param.image, session.param.box, session.param.clip_percent)
        # A DynamicMap updates the one plot in place (a new element would re-create it).
        self._plot = pn.pane.HoloViews(
            hv.DynamicMap(pn.bind(self._bars, *depends, session.param.log_counts)),
            sizing_mode="stretch_width", height=190, linked_axes=False,
        )
        self._caption = pn.pane.HTML(
            pn.bind(self._describe, *depends), sizing_mode="stretch_width", margin=(0, 10), stylesheets=[STYLESHEET],
        )

    def histogram(self) -> dict | None:
        """The region's histogram as the API returns it (None without a frame)."""
        if self.session.image is None:
            return None
        return compute.region_histogram(
            self.session.image, self.session.region_box(), self.session.clip_percent
        )

    def _bars(self, image, box, clip, log_counts):
        result = self.histogram()
        if result is None or not result["counts"]:
            element = hv.Histogram(([0, 1], [0]), kdims=["value"], vdims=["count"])
        else:
            edges = np.asarray(result["edges"], dtype=np.float64)
            counts = np.asarray(result["counts"], dtype=np.float64)
            if log_counts:
                counts = np.where(counts > 0, counts, np.nan)
            element = hv.Histogram((edges, counts), kdims=["value"], vdims=["count"])
        return element.opts(
            responsive=True, height=180, logy=bool(log_counts), color="#4f8ad8",
            line_color=None, tools=["hover"], default_tools=["pan", "wheel_zoom", "reset"],
            backend_opts={"plot.toolbar.autohide": True},
            active_tools=["wheel_zoom"], framewise=True, show_grid=True,
            xlabel="value", ylabel="count",
        )

    def _describe(self, image, box, clip) -> str:
        result = self.histogram()
        if result is None:
            return '<div class="qa-hint">No frame yet.</div>'
        stats = result["stats"]
        meta = html.escape(json.dumps({
            "subregion": result["subregion"], "clip_percent": clip,
            "bins": len(result["counts"]), "total": int(sum(result["counts"])),
        }), quote=True)
        # Both sets, labelled: "all pixels" are the numbers Photon Ranch shows
        # (the original's histogram.stats); "in histogram" the clipped pixels.
        return (
            f'<div class="qa-region" data-histogram="{meta}">{region_label(self.session)}: '
            f"{len(result['counts'])} bins, {format_number(int(sum(result['counts'])))} px, "
            f"{format_number(stats['min'])} &ndash; {format_number(stats['max'])}"
            f"<br>{_stats_line('all pixels', stats)}"
            f"<br>{_stats_line('in histogram', result.get('clipped_stats') or {})}</div>"
        )

    def __panel__(self):
        return pn.Column(
            pn.Row(
                pn.pane.HTML(stylesheets=[STYLESHEET], object="<h3>Histogram</h3>", margin=(0, 10)),
                pn.layout.HSpacer(), self._clip, self._log, sizing_mode="stretch_width",
            ),
            self._caption,
            self._plot,
            sizing_mode="stretch_width",
            css_classes=["qa-card"],
        )
