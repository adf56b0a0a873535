"""Quality views: the current frame's quality cards, the session's timeline, a star's profile.

* :class:`QualityCards`: FWHM, HFR, background, saturation, star count and
  elongation of the frame shown (:attr:`Session.quality`), each tile coloured
  by its verdict, with a legend; "measuring…" while the frame is measured.
* :class:`QualityTimeline`: FWHM, background, star count and elongation of
  every frame of the session's folder (:attr:`Session.history`, the quality
  service's SQLite history) against observation time, four small plots side
  by side sharing their time axis. The frame shown is ringed; clicking a
  point opens that frame (:meth:`Session.pick`).
* :class:`StarProfilePane`: the radial profile of the star last clicked on
  the image (:attr:`Session.star_result`), its Moffat fit, FWHM, HFR, beta
  and peak, like ginga's Pick or IRAF imexam's ``r``.

The numbers come from :mod:`components.core.quality` through the process's
:class:`~app.quality_service.QualityService`; nothing here measures anything.
"""

from __future__ import annotations

import html
import json
import math
from datetime import datetime, timezone

import holoviews as hv
import numpy as np
import panel as pn
import param
from bokeh.models import (
    BasicTicker,
    ColumnDataSource,
    DatetimeTicker,
    DatetimeTickFormatter,
    HoverTool,
    Range1d,
    Span,
    TapTool,
)
from bokeh.plotting import figure as bokeh_figure

from components.core.quality import moffat
from components.views.state import Session
from components.views.style import STYLESHEET
from components.views.sync import resend, resend_pane

__all__ = [
    "QualityCards",
    "QualityTimeline",
    "StarProfilePane",
    "VERDICT_COLORS",
    "TIMELINE_METRICS",
    "time_format",
    "quality_tiles",
    "cards_html",
    "timeline_data",
    "current_point",
    "star_summary",
]

#: Colour of each verdict (tiles, timeline points).
VERDICT_COLORS = {"ok": "#3fb950", "warn": "#d29922", "bad": "#f85149", "unknown": "#8b949e"}
#: What each verdict means (the cards' legend).
VERDICT_MEANINGS = {
    "ok": "within limits",
    "warn": "past the warning limit",
    "bad": "past the bad limit",
    "unknown": "not measurable",
}
#: Colour of the frame shown in the timeline, and of the clicked star's profile.
CURRENT_COLOR = "#58a6ff"
STAR_FIT_COLOR = "#ffdc00"


# ---------------------------------------------------------------- cards


def _number(value, digits: int = 2) -> str | None:
    if value is None:
        return None
    value = float(value)
    if not math.isfinite(value):
        return None
    return f"{value:.{digits}f}"


def _limits(thresholds, metric: str, arcsec: bool) -> str:
    """The limits of a verdict in words (the tile's tooltip)."""
    if thresholds is None:
        return ""
    if metric == "fwhm":
        if arcsec:
            return f"warn from {thresholds.fwhm_arcsec_warn:g}″, bad from {thresholds.fwhm_arcsec_bad:g}″"
        return f"warn from {thresholds.fwhm_px_warn:g} px, bad from {thresholds.fwhm_px_bad:g} px"
    if metric == "elongation":
        return f"warn from {thresholds.elongation_warn:g}, bad from {thresholds.elongation_bad:g}"
    if metric == "saturation":
        return (f"warn from {thresholds.saturated_fraction_warn * 100:g} %, "
                f"bad from {thresholds.saturated_fraction_bad * 100:g} %")
    if metric == "star_count":
        return f"warn at {thresholds.star_count_warn} or fewer, bad at {thresholds.star_count_bad} or fewer"
    if metric == "background":
        if thresholds.background_warn is None:
            return "no limit set"
        bad = f", bad from {thresholds.background_bad:g}" if thresholds.background_bad is not None else ""
        return f"warn from {thresholds.background_warn:g}{bad}"
    return ""


def quality_tiles(quality: dict | None, thresholds=None) -> list[dict]:
    """The six tiles of a quality result: ``{name, label, value, sub, verdict, limits}``.

    ``value`` and ``sub`` are display strings (None when not measured);
    HFR shares the FWHM's verdict (both measure the stars' size).
    """
    q = quality or {}
    verdicts = q.get("verdicts") or {}
    scale = q.get("pixel_scale")
    arcsec = q.get("fwhm_arcsec") is not None

    def with_unit(value, unit, digits=2):
        text = _number(value, digits)
        return None if text is None else f"{text}{unit}"

    hfr_arcsec = q["hfr_px"] * scale if q.get("hfr_px") is not None and scale else None
    fraction = q.get("saturated_fraction")
    saturated = None if fraction is None else f"{fraction * 100:.3g} %"
    if q.get("saturation_level") is None and q:
        saturated_sub = "no saturation level"
    elif q.get("saturated_pixels") is not None:
        saturated_sub = f"{q['saturated_pixels']:,} px ≥ {q['saturation_level']:g}".replace(",", "\u2009")
    else:
        saturated_sub = None
    rms = _number(q.get("background_rms"), 1)
    measured = q.get("stars_measured")
    tiles = [
        ("fwhm", "FWHM", with_unit(q.get("fwhm_px"), " px"),
         with_unit(q.get("fwhm_arcsec"), "″") or ("no pixel scale" if q else None), "fwhm"),
        ("hfr", "HFR", with_unit(q.get("hfr_px"), " px"), with_unit(hfr_arcsec, "″"), "fwhm"),
        ("background", "Background", _number(q.get("background"), 1),
         None if rms is None else f"± {rms} rms (ADU)", "background"),
        ("saturation", "Saturated", saturated, saturated_sub, "saturation"),
        ("stars", "Stars", None if q.get("star_count") is None else f"{q['star_count']}",
         None if measured is None else f"{measured} fitted", "star_count"),
        ("elongation", "Elongation", _number(q.get("elongation"), 2), "a / b", "elongation"),
    ]
    return [
        {
            "name": name, "label": label, "value": value, "sub": sub,
            "verdict": verdicts.get(verdict, "unknown") if verdicts.get(verdict) in VERDICT_COLORS else "unknown",
            "limits": _limits(thresholds, verdict, arcsec),
        }
        for name, label, value, sub, verdict in tiles
    ]


def cards_html(quality: dict | None, pending: bool = False, error: str = "", thresholds=None,
               has_image: bool = True) -> str:
    """The quality cards of the frame shown, as HTML (``data-quality`` holds the numbers)."""
    if not has_image:
        return '<div class="qa-hint">No frame yet.</div>'
    state = "measuring" if pending else "failed" if error else "ready" if quality else "none"
    if state == "none":
        return '<div class="qa-hint">Quality is not measured on this server.</div>'
    tiles = quality_tiles(quality if state == "ready" else None, thresholds)
    meta = {"state": state, "key": (quality or {}).get("key") if state == "ready" else None}
    if state == "ready":
        meta.update({name: quality.get(name) for name in (
            "fwhm_px", "fwhm_arcsec", "hfr_px", "background", "background_rms",
            "saturated_fraction", "star_count", "elongation",
        )})
        meta["verdicts"] = {tile["name"]: tile["verdict"] for tile in tiles}
    cells = []
    for tile in tiles:
        verdict = tile["verdict"] if state == "ready" else "unknown"
        classes = f"qa-tile qa-{verdict}" + ("" if state == "ready" else " qa-pending")
        value = tile["value"] if state == "ready" and tile["value"] is not None else (
            "…" if state == "measuring" else "–")
        sub = tile["sub"] if state == "ready" and tile["sub"] else "&nbsp;"
        title = f'{tile["label"]}: {verdict}' + (f' ({tile["limits"]})' if tile["limits"] else "")
        verdict_text = verdict if state == "ready" else ""
        cells.append(
            f'<div class="{classes}" data-metric="{tile["name"]}" data-verdict="{verdict}" '
            f'title="{html.escape(title, quote=True)}">'
            f'<div class="qa-tile-label"><span>{tile["label"]}</span>'
            f'<span class="qa-verdict qa-{verdict}">{verdict_text}</span></div>'
            f'<div class="qa-tile-value">{html.escape(value)}</div>'
            f'<div class="qa-tile-sub">{html.escape(sub) if sub != "&nbsp;" else sub}</div></div>'
        )
    legend = "".join(
        f'<span class="qa-dot qa-{name}"></span><b>{name}</b> {meaning}'
        for name, meaning in VERDICT_MEANINGS.items()
    )
    if state == "measuring":
        status = '<div class="qa-hint qa-measuring">measuring…</div>'
    elif state == "failed":
        status = f'<div class="qa-hint">Cannot measure this frame: {html.escape(error)}</div>'
    else:
        status = ""
    data = html.escape(json.dumps(meta), quote=True)
    return (
        f'<div class="qa-quality" data-quality="{data}">{status}'
        f'<div class="qa-tiles">{"".join(cells)}</div>'
        f'<div class="qa-legend">{legend}. Hover a card for its limits.</div></div>'
    )


class QualityCards(pn.viewable.Viewer):
    """Quality of the frame shown, one tile per metric coloured by its verdict."""

    session = param.ClassSelector(class_=Session)

    def __init__(self, **params):
        super().__init__(**params)
        session = self.session
        self._cards = pn.pane.HTML(
            pn.bind(self._render, session.param.quality, session.param.quality_pending,
                    session.param.quality_error, session.param.image),
            sizing_mode="stretch_width", margin=(0, 10), stylesheets=[STYLESHEET],
        )
        self._stars = pn.widgets.Checkbox.from_param(
            session.param.show_stars, label="Mark stars", width=100, margin=(6, 10, 0, 5),
        )

    def resync(self) -> None:
        """Send the cards to the page again (see :mod:`components.views.sync`)."""
        resend_pane(self._cards, "text")

    def _render(self, quality, pending, error, image) -> str:
        service = self.session.quality_service
        thresholds = getattr(service, "thresholds", None)
        if service is None and image is not None:
            return '<div class="qa-hint">Quality is not measured on this server.</div>'
        return cards_html(quality, pending, error, thresholds, has_image=image is not None)

    def __panel__(self):
        return pn.Column(
            pn.Row(
                pn.pane.HTML(stylesheets=[STYLESHEET], object="<h3>Quality</h3>", margin=(0, 10)),
                pn.layout.HSpacer(), self._stars, sizing_mode="stretch_width",
            ),
            self._cards,
            sizing_mode="stretch_width",
            css_classes=["qa-card"],
        )


# ---------------------------------------------------------------- timeline

#: (column, title, history field(s), verdict) of the timeline's plots.
TIMELINE_METRICS = (
    ("fwhm", "FWHM", "fwhm", "fwhm"),
    ("background", "Background (ADU)", "background", "background"),
    ("star_count", "Stars", "star_count", "star_count"),
    ("elongation", "Elongation (a/b)", "elongation", "elongation"),
)


def _float(value) -> float:
    if value is None:
        return math.nan
    value = float(value)
    return value if math.isfinite(value) else math.nan


def timeline_data(rows: list[dict]) -> dict:
    """Columns of the timeline's plots from history rows (observing order).

    ``time`` is the observation time in milliseconds since the epoch (what
    Bokeh's datetime axis takes). FWHM is in arcsec when every measured frame
    has a pixel scale, else in pixels (``unit``). Unmeasured values are NaN;
    ``<metric>_color`` is the colour of the metric's verdict.
    """
    measured = [row for row in rows if row.get("fwhm_px") is not None]
    arcsec = bool(measured) and all(row.get("fwhm_arcsec") is not None for row in measured)
    columns: dict[str, list] = {name: [] for name in ("key", "name", "time", "when", "error")}
    for metric, *_ in TIMELINE_METRICS:
        columns[metric] = []
        columns[f"{metric}_color"] = []
    for row in rows:
        observed = float(row["observed"])
        columns["key"].append(row["key"])
        columns["name"].append(row.get("name") or row["key"])
        columns["time"].append(observed * 1000.0)
        columns["when"].append(datetime.fromtimestamp(observed, timezone.utc).strftime("%Y-%m-%d %H:%M:%S"))
        columns["error"].append(row.get("error") or "")
        verdicts = row.get("verdicts") or {}
        for metric, _, field, verdict in TIMELINE_METRICS:
            if metric == "fwhm":
                value = row.get("fwhm_arcsec") if arcsec else row.get("fwhm_px")
            else:
                value = row.get(field)
            columns[metric].append(_float(value))
            columns[f"{metric}_color"].append(VERDICT_COLORS.get(verdicts.get(verdict), VERDICT_COLORS["unknown"]))
    columns["time"] = np.asarray(columns["time"], dtype=np.float64)
    for metric, *_ in TIMELINE_METRICS:
        columns[metric] = np.asarray(columns[metric], dtype=np.float64)
    return {"columns": columns, "unit": "arcsec" if arcsec else "px"}


def axis_range(values, pad: float = 0.08, minimum: float = 0.0) -> tuple[float, float]:
    """``(start, end)`` around the finite ``values`` with a margin (markers stay inside the frame)."""
    finite = np.asarray(values, dtype=np.float64)
    finite = finite[np.isfinite(finite)]
    if not len(finite):
        return 0.0, 1.0
    low, high = float(finite.min()), float(finite.max())
    margin = max((high - low) * pad, minimum)
    if margin <= 0:  # one value: a few percent around it
        margin = max(abs(high) * 0.05, 1e-3)
    return low - margin, high + margin


def current_point(columns: dict, key: str | None) -> int | None:
    """Index of the frame ``key`` in the timeline's columns (its latest row), or None."""
    if key is None:
        return None
    for index in range(len(columns["key"]) - 1, -1, -1):
        if columns["key"][index] == key:
            return index
    return None


def time_format() -> DatetimeTickFormatter:
    """Times of day (UTC) on the axis (a new model per page: models belong to one page)."""
    return DatetimeTickFormatter(
        seconds="%H:%M:%S", minsec="%H:%M:%S", minutes="%H:%M", hourmin="%H:%M", hours="%H:%M",
        days="%m-%d", months="%Y-%m", years="%Y", context=None, boundary_scaling=False,
    )


def one_look(*renderers) -> None:
    """Draw each renderer alike whatever is selected, and never muted.

    Bokeh's glyph methods give every renderer its own selection, non-selection
    and muted glyph models (three more per line or scatter); these plots need
    none, and each model is built, sent and laid out on every page.
    """
    for renderer in renderers:
        renderer.selection_glyph = renderer.nonselection_glyph = renderer.glyph
        renderer.muted_glyph = None


class QualityTimeline(pn.viewable.Viewer):
    """FWHM, background, star count and elongation of the session's frames against time."""

    session = param.ClassSelector(class_=Session)
    height = param.Integer(default=120, doc="Height of the plots (pixels).")

    def __init__(self, **params):
        super().__init__(**params)
        session = self.session
        self._data = timeline_data(session.history)
        self.source = ColumnDataSource(self._data["columns"], name="qa-timeline")
        self.current = ColumnDataSource(self._current_columns(), name="qa-timeline-current")
        self.source.selected.on_change("indices", self._on_select)
        self._x_range = Range1d(0, 1)
        self._y_ranges = {metric: Range1d(0, 1) for metric, *_ in TIMELINE_METRICS}
        # One ticker and one formatter per axis kind for the four plots: a datetime
        # ticker alone is 15 Bokeh models, each one built, sent and laid out per page.
        self._x_ticker = DatetimeTicker(desired_num_ticks=4)
        self._y_ticker = BasicTicker(desired_num_ticks=4)
        self._x_format = time_format()
        self.figures = []
        self._spans = []
        for metric, title, _, _ in TIMELINE_METRICS:
            self.figures.append(self._figure(metric, title, self._x_range, self._y_ranges[metric]))
        self._update_ranges()
        self._panes = [
            pn.pane.Bokeh(fig, sizing_mode="stretch_width", height=self.height, margin=(0, 4))
            for fig in self.figures
        ]
        self._caption = pn.pane.HTML(
            pn.bind(self._describe, session.param.history, session.param.key),
            sizing_mode="stretch_width", margin=(0, 10), stylesheets=[STYLESHEET],
        )
        session.param.watch(self._history_changed, "history")
        session.param.watch(self._key_changed, "key")

    # ---------------------------------------------------------------- plots

    def _figure(self, metric: str, title: str, x_range, y_range):
        fig = bokeh_figure(
            name=f"qa-timeline-{metric}", title=title, x_axis_type="datetime", x_range=x_range,
            y_range=y_range, height=self.height, sizing_mode="stretch_width",
            tools=[], toolbar_location=None, min_border_left=40, min_border_right=8,
            min_border_top=4, min_border_bottom=4,
        )
        fig.title.text_font_size = "11px"
        fig.title.text_font_style = "normal"
        fig.xaxis.formatter = self._x_format
        fig.xaxis.major_label_text_font_size = "10px"
        fig.yaxis.major_label_text_font_size = "10px"
        fig.xaxis.ticker = fig.xgrid.ticker = self._x_ticker
        fig.yaxis.ticker = fig.ygrid.ticker = self._y_ticker
        fig.xgrid.grid_line_alpha = 0.25
        fig.ygrid.grid_line_alpha = 0.25
        line = fig.line("time", metric, source=self.source, line_color="#8b949e", line_alpha=0.6, line_width=1)
        points = fig.scatter(
            "time", metric, source=self.source, size=8, fill_color=f"{metric}_color",
            line_color=f"{metric}_color", name=f"qa-timeline-points-{metric}",
        )  # the selection is only a click: it must not dim the other points (below)
        current = fig.scatter(
            "time", metric, source=self.current, size=15, fill_alpha=0.0, line_color=CURRENT_COLOR,
            line_width=2.5,
        )
        one_look(line, points, current)
        span = Span(dimension="height", line_color=CURRENT_COLOR, line_alpha=0.5, line_dash="dashed",
                    location=None)
        fig.add_layout(span)
        self._spans.append(span)
        tap = TapTool(renderers=[points], description="Click a point to open its frame")
        hover = HoverTool(
            renderers=[points],
            tooltips=[("frame", "@name"), ("time (UTC)", "@when"), (title, f"@{{{metric}}}{{0.[00]}}")],
        )
        fig.add_tools(tap, hover)
        fig.toolbar.active_tap = tap
        return fig

    def _update_ranges(self):
        """Axes around the data (the whole session; a minute at least), and the FWHM's unit."""
        columns = self._data["columns"]
        now = datetime.now(timezone.utc).timestamp() * 1000.0
        times = columns["time"] if len(columns["time"]) else np.asarray([now])
        start, end = axis_range(times, pad=0.04, minimum=30_000.0)
        self._x_range.update(start=start, end=end)
        for metric, *_ in TIMELINE_METRICS:
            start, end = axis_range(columns[metric], pad=0.15, minimum=0.5 if metric == "star_count" else 0.0)
            self._y_ranges[metric].update(start=start, end=end)
        unit = "″" if self._data["unit"] == "arcsec" else "px"
        self.figures[0].title.text = f"FWHM ({unit})"

    def _current_columns(self) -> dict:
        columns = self._data["columns"]
        index = current_point(columns, self.session.key)
        picked = [] if index is None else [index]
        return {
            "time": [columns["time"][i] for i in picked],
            **{metric: [columns[metric][i] for i in picked] for metric, *_ in TIMELINE_METRICS},
        }

    def _update_current(self):
        current = self._current_columns()
        self.current.data = current
        location = current["time"][0] if current["time"] else None
        for span in self._spans:
            span.location = location

    # ---------------------------------------------------------------- updates

    def _history_changed(self, event):
        self._data = timeline_data(self.session.history)
        self.source.data = self._data["columns"]
        self._update_ranges()
        self._update_current()

    def _key_changed(self, event):
        self._update_current()

    def resync(self) -> None:
        """Send the plots' current data again (see :mod:`components.views.sync`)."""
        resend(self.source, "data")
        resend(self.current, "data")
        resend(self._x_range, "start", "end")
        for y_range in self._y_ranges.values():
            resend(y_range, "start", "end")
        for span in self._spans:
            resend(span, "location")
        resend(self.figures[0].title, "text")

    def _on_select(self, attr, old, new):
        """A point was clicked: open its frame."""
        if not new:
            return
        self.click(new[-1])
        self.source.selected.indices = []  # a click, not a lasting selection

    def click(self, index: int) -> None:
        """Open the frame of the timeline's point ``index``."""
        keys = self.source.data["key"]
        if 0 <= index < len(keys):
            self.session.pick(keys[index])

    def _describe(self, history, key) -> str:
        data = timeline_data(history)  # from the arguments: watchers may run in any order
        columns = data["columns"]
        count = len(columns["key"])
        index = current_point(columns, key)
        meta = html.escape(json.dumps({"count": count, "current": key if index is not None else None,
                                       "unit": data["unit"]}), quote=True)
        if not count:
            text = "No frame measured yet in this folder: each new frame adds a point."
        else:
            last = columns["when"][-1][11:]
            text = (f"{count} frame{'s' if count != 1 else ''}, last at {last} UTC · "
                    "click a point to open its frame · the ringed point is the frame shown")
        return f'<div class="qa-hint" data-timeline="{meta}">{text}</div>'

    def __panel__(self):
        return pn.Column(
            pn.Row(
                pn.pane.HTML(stylesheets=[STYLESHEET], object="<h3>Quality timeline</h3>", margin=(0, 10)),
                self._caption, sizing_mode="stretch_width",
            ),
            pn.Row(*self._panes, sizing_mode="stretch_width"),
            sizing_mode="stretch_width",
            css_classes=["qa-card"],
        )


# ---------------------------------------------------------------- star profile


def star_summary(result, scale: float | None = None) -> dict | None:
    """The clicked star's numbers (None without one): centre, FWHM, HFR, Moffat parameters."""
    if result is None:
        return None
    fit = result.fit
    fwhm = result.fwhm
    radius, values = np.asarray(result.radius), np.asarray(result.values)
    outer = values[radius > 0.6 * radius.max()] if len(radius) else values
    noise = float(1.4826 * np.median(np.abs(outer - np.median(outer)))) if len(outer) else math.nan
    # Light well above the sky's noise, or this is no star (a click on empty sky).
    star = bool(fit is not None and result.peak > 5.0 * noise) if math.isfinite(noise) else fit is not None
    if not star:
        fwhm = None
    return {
        "star": star,
        "noise": noise if math.isfinite(noise) else None,
        "x": float(result.x),
        "y": float(result.y),
        "fwhm_px": fwhm,
        "fwhm_arcsec": fwhm * scale if fwhm is not None and scale else None,
        "hfr_px": result.hfr,
        "peak": float(result.peak),
        "background": float(result.background),
        "beta": fit.beta if star else None,
        "alpha": fit.alpha if star else None,
        "amplitude": fit.amplitude if star else None,
        "samples": int(len(result.radius)),
    }


class StarProfilePane(pn.viewable.Viewer):
    """Radial profile of the star last clicked on the image, with its Moffat fit."""

    session = param.ClassSelector(class_=Session)

    def __init__(self, **params):
        super().__init__(**params)
        session = self.session
        self._clear = pn.widgets.Button(label="Clear star", color="light", width=90, height=30, margin=(0, 5))
        self._clear.on_click(lambda event: setattr(self.session, "star", None))
        self._plot = pn.pane.HoloViews(
            hv.DynamicMap(pn.bind(self._profile, session.param.star_result)),
            sizing_mode="stretch_width", height=220, linked_axes=False,
        )
        self._caption = pn.pane.HTML(
            pn.bind(self._describe, session.param.star_result, session.param.star, session.param.image),
            sizing_mode="stretch_width", margin=(0, 10), stylesheets=[STYLESHEET],
        )

    def summary(self) -> dict | None:
        return star_summary(self.session.star_result, self.session.pixel_scale())

    def resync(self) -> None:
        """Send the caption and the plot to the page again (see :mod:`components.views.sync`)."""
        resend_pane(self._caption, "text")
        if isinstance(self._plot.object, hv.DynamicMap):
            self._plot.object.event()

    def _profile(self, result):
        opts = dict(
            responsive=True, height=210, show_grid=True, framewise=True,
            default_tools=["pan", "wheel_zoom", "reset"], active_tools=["wheel_zoom"],
            backend_opts={"plot.toolbar.autohide": True},
            xlabel="radius (pixels)", ylabel="value above sky",
        )
        if result is None or not len(result.radius):
            radius, values = [], []
        else:
            radius, values = result.radius, result.values
        points = hv.Scatter((radius, values), "radius", "value").opts(
            color="#79b8ff", size=4, alpha=0.75, tools=["hover"], **opts,
        )
        fit = None if result is None or not star_summary(result)["star"] else result.fit
        if fit is not None:
            r = np.linspace(0.0, float(np.max(radius)), 200)
            fitted = moffat(r, fit.amplitude, fit.alpha, fit.beta, fit.background)
            half = [fit.fwhm / 2, fit.fwhm / 2], [fit.background, fit.background + fit.amplitude / 2]
        else:
            r, fitted, half = [], [], ([], [])
        curve = hv.Curve((r, fitted), "radius", "value").opts(color=STAR_FIT_COLOR, line_width=1.5, alpha=0.9)
        marker = hv.Curve(half, "radius", "value").opts(color=STAR_FIT_COLOR, line_dash="dashed", line_width=1)
        # Always the same three layers: the plot updates in place.
        return points * curve * marker

    def _describe(self, result, star, image) -> str:
        if image is None:
            return '<div class="qa-hint">No frame yet.</div>'
        summary = self.summary()
        if summary is None:
            if star is not None:
                return '<div class="qa-hint">Measuring the star…</div>'
            return ('<div class="qa-hint">In <b>Pan / zoom</b> mode, click a star on the image for its '
                    "radial profile, Moffat fit and FWHM.</div>")
        meta = html.escape(json.dumps(summary), quote=True)
        where = f"Star at x {summary['x']:.1f}, y {summary['y']:.1f} px"
        if summary["fwhm_px"] is None:
            return (f'<div class="qa-star" data-star="{meta}">{where}: no star stands out of the '
                    "sky's noise here (no fit).</div>")
        arcsec = f" = {summary['fwhm_arcsec']:.2f}″" if summary["fwhm_arcsec"] is not None else ""
        hfr = f"{summary['hfr_px']:.2f} px" if summary["hfr_px"] is not None else "–"
        return (
            f'<div class="qa-star" data-star="{meta}">{where}<br>'
            f'FWHM <b class="qa-star-fwhm">{summary["fwhm_px"]:.2f} px{arcsec}</b> · HFR <b>{hfr}</b> · '
            f'β <b>{summary["beta"]:.2f}</b> · peak <b>{summary["peak"]:.0f}</b> above sky '
            f'{summary["background"]:.0f}</div>'
        )

    def __panel__(self):
        return pn.Column(
            pn.Row(
                pn.pane.HTML(stylesheets=[STYLESHEET], object="<h3>Star profile</h3>", margin=(0, 10)),
                pn.layout.HSpacer(), self._clear, sizing_mode="stretch_width",
            ),
            self._caption,
            self._plot,
            sizing_mode="stretch_width",
            css_classes=["qa-card"],
        )
