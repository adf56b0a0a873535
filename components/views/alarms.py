"""Alarms on the dashboard: a banner of raised alarms, marks on the quality timeline, and a postMessage bridge.

* :class:`AlarmPanel`: the banner (one line per raised alarm, with its
  frames) and red strips on the :class:`~components.views.quality.QualityTimeline`
  over the frames of each raised alarm; refreshed on every ``alarm`` event of
  the bus and when the session's history changes.
* :class:`PostMessageBridge`: when the page is embedded in an iframe, it opens
  ``EventSource('/events')`` in the page and re-posts each ``frame``,
  ``quality``, ``alarm`` and ``report`` event to ``window.parent`` with
  ``postMessage(message, origin)`` for each allowed origin only (the browser
  delivers it only if the host page has that origin); nothing when the list
  is empty.

The app installs where alarms come from and the allowed origins with
:func:`configure` (a view never reads the database itself).
"""

from __future__ import annotations

import html
import logging
from typing import Callable

import panel as pn
import param
from bokeh.models import ColumnDataSource

from components.events import bus
from components.views.style import STYLESHEET

__all__ = ["AlarmPanel", "PostMessageBridge", "configure", "banner_html", "alarm_strips"]

log = logging.getLogger("quickanalysis.views")

_source: Callable[[], list[dict]] = lambda: []  # noqa: E731 - replaced by configure()
_origins: list[str] = []


def configure(source: Callable[[], list[dict]] | None = None, origins: list[str] | None = None) -> None:
    """Install the raised-alarms provider and the postMessage origins (called once by the app)."""
    global _source, _origins
    if source is not None:
        _source = source
    if origins is not None:
        _origins = [origin.rstrip("/") for origin in origins if origin.strip()]


def set_alarm_source(source: Callable[[], list[dict]]) -> None:
    configure(source=source)


_BANNER_CSS = """
.qa-alarms { background: rgba(248,81,73,0.14); border: 1px solid rgba(248,81,73,0.6); border-radius: 6px;
             padding: 4px 10px; color: #ffdcd7; font-size: 13px; }
.qa-alarms b { color: #ff7b72; }
"""


def banner_html(alarms: list[dict]) -> str:
    """The banner's HTML ("" without raised alarms)."""
    if not alarms:
        return ""
    lines = []
    for alarm in alarms:
        frames = alarm.get("frames") or []
        last = html.escape(frames[-1].rpartition("/")[2]) if frames else ""
        what = html.escape(alarm.get("metric") or "no frames")
        lines.append(
            f"<div class='qa-alarm' data-alarm='{html.escape(alarm['name'], quote=True)}'>⚠ <b>"
            f"{html.escape(alarm['name'])}</b> on {html.escape(alarm['dataset'])} ({what}, "
            f"{len(frames)} frame{'s' if len(frames) != 1 else ''}{', last ' + last if last else ''})</div>"
        )
    return f"<div class='qa-alarms'>{''.join(lines)}</div>"


def alarm_strips(alarms: list[dict], rows: list[dict]) -> dict:
    """Columns ``x0``, ``x1`` (ms) and ``name`` of a strip per alarm over its frames present in ``rows``."""
    times = {row["key"]: float(row["observed"]) * 1000.0 for row in rows}
    columns: dict[str, list] = {"x0": [], "x1": [], "name": []}
    for alarm in alarms:
        marked = [times[key] for key in alarm.get("frames") or [] if key in times]
        if marked:
            # A minute's width at least, so a one-frame alarm stays visible.
            columns["x0"].append(min(marked) - 30_000.0)
            columns["x1"].append(max(marked) + 30_000.0)
            columns["name"].append(alarm["name"])
    return columns


class PostMessageBridge(pn.custom.JSComponent):
    """Re-posts the server's ``/events`` to ``window.parent`` for each allowed origin."""

    origins = param.List(default=[], doc="targetOrigin of each postMessage (none: nothing is posted).")
    url = param.String(default="./events", doc="The event stream, relative to the page.")
    topics = param.List(default=["frame", "quality", "alarm", "report"])

    _esm = """
    export function render({ model }) {
      const origins = model.origins || [];
      // Not embedded, or no host page allowed: open nothing, post nothing.
      if (!origins.length || window.parent === window) { return; }
      const source = new EventSource(model.url);
      for (const topic of model.topics) {
        source.addEventListener(topic, (event) => {
          let data;
          try { data = JSON.parse(event.data); } catch (error) { return; }
          const message = { source: "quickanalysis", type: topic, data: data };
          for (const origin of origins) {
            try { window.parent.postMessage(message, origin); } catch (error) { }
          }
        });
      }
      model.on("remove", () => source.close());
    }
    """


class AlarmPanel(pn.viewable.Viewer):
    """The raised alarms: a banner above the dashboard and strips on its quality timeline."""

    session = param.Parameter(doc="The dashboard's Session.")
    timeline = param.Parameter(default=None, doc="The QualityTimeline to mark (optional).")

    def __init__(self, **params):
        super().__init__(**params)
        self.alarms: list[dict] = []
        self.banner = pn.pane.HTML("", visible=False, sizing_mode="stretch_width", margin=(0, 10, 4, 10),
                                   stylesheets=[STYLESHEET, _BANNER_CSS], name="qa-alarm-banner")
        self.bridge = PostMessageBridge(origins=list(_origins), width=0, height=0, margin=0)
        self.marks = ColumnDataSource({"x0": [], "x1": [], "name": []}, name="qa-alarm-marks")
        if self.timeline is not None:
            for fig in getattr(self.timeline, "figures", []):
                fig.vstrip(x0="x0", x1="x1", source=self.marks, fill_color="#f85149", fill_alpha=0.18,
                           line_alpha=0.0, level="underlay")
        self._unsubscribe = bus().subscribe(self._on_alarm, "alarm")
        if self.session is not None:
            self.session.param.watch(lambda event: self._mark(), "history")
        if pn.state.curdoc is not None and pn.state.curdoc.session_context is not None:
            pn.state.on_session_destroyed(lambda context: self._unsubscribe())
        self.refresh()

    def _on_alarm(self, event) -> None:
        scheduler = getattr(self.session, "scheduler", None)
        if scheduler is not None:
            scheduler(self.refresh)  # on the page's own loop

    def refresh(self) -> None:
        """Read the raised alarms again and redraw the banner and the marks."""
        try:
            self.alarms = list(_source())
        except Exception:  # the banner must never break the dashboard
            log.exception("reading the raised alarms failed")
            return
        self.banner.object = banner_html(self.alarms)
        self.banner.visible = bool(self.alarms)
        self._mark()

    def _mark(self) -> None:
        rows = getattr(self.session, "history", None) or []
        self.marks.data = alarm_strips(self.alarms, rows)

    def __panel__(self):
        return pn.Column(self.banner, self.bridge, sizing_mode="stretch_width", margin=0)
