"""The dashboard: controls, the image, and the panes, for one session."""

from __future__ import annotations

import functools
import html
import logging
from datetime import timezone

import holoviews as hv
import panel as pn
import param

from components.views import display
from components.views.batch import adopt_stylesheets, held
from components.views.alarms import AlarmPanel  # issue 10: alarm banner, timeline marks, postMessage
from components.views.style import STYLESHEET
from components.views.header import HeaderPane
from components.views.histogram import HistogramPane
from components.views.image import ImageView
from components.views.jobs import JobsPane
from components.views.profile import ProfilePane
from components.views.quality import QualityCards, QualityTimeline, StarProfilePane
from components.views.sky import SkyPanes
from components.views.state import Session
from components.views.stats import StatisticsPane
from components.views.summary import SummaryPane, frame_summary

__all__ = ["Dashboard", "STYLESHEET", "frame_options", "directory_options"]

log = logging.getLogger("quickanalysis.views")

#: Most frames offered by the frame selector (the newest).
MAX_FRAME_OPTIONS = 1000
# Milliseconds after the quality shown last changed before it is sent to the page once more.
_RESEND_AFTER_MS = 1000
# Milliseconds a new-frame notice stays visible.
NOTICE_MS = 5000

_CARD_STYLES = {
    "border": "1px solid rgba(127,127,127,0.25)",
    "border-radius": "6px",
    "padding": "4px 2px 6px 2px",
    "margin": "0 0 8px 0",
}


#: The side column's tabs, legible on the dark theme.
_TABS_STYLE = """
.bk-header { border-bottom-color: rgba(127,127,127,0.35); }
.bk-tab { color: #8b949e; font-size: 13px; padding: 4px 12px; }
.bk-tab:hover { color: #e6edf3; }
.bk-tab.bk-active { color: #e6edf3; background-color: rgba(88,166,255,0.14);
                    border-color: rgba(127,127,127,0.35); border-bottom-color: #58a6ff; }
"""


def frame_options(frames, directory: str = "") -> dict:
    """Select options (label -> key) of frames, newest first."""
    options = {}
    prefix = f"{directory}/" if directory else ""
    for info in frames[:MAX_FRAME_OPTIONS]:
        name = info.key[len(prefix):] if info.key.startswith(prefix) else info.key
        when = info.modified.astimezone(timezone.utc).strftime("%H:%M:%S")
        options[f"{name}  ·  {when}"] = info.key
    return options


def directory_options(directories) -> dict:
    options = {"(every folder)": ""}
    options.update({directory: directory for directory in directories})
    return options


def _drag_hint(mode: str) -> str:
    text = {
        "pan": "Drag to pan, scroll to zoom, click a star for its radial profile. "
               "Hover for pixel values and sky position.",
        "line": "Drag on the image to draw the profile line; drag an end to move it.",
        "box": "Drag on the image to draw the statistics box; drag the box to move it.",
    }[mode]
    return f'<span class="qa-hint">{text}</span>'


class Dashboard(pn.viewable.Viewer):
    """One observer's dashboard; :meth:`start` makes it live on a served page."""

    session = param.ClassSelector(class_=Session)
    jobs = param.Parameter(default=None, doc="The jobs service: a Jobs tab when given.")

    def __init__(self, **params):
        super().__init__(**params)
        session = self.session
        self.image_view = ImageView(session=session)
        self.profile = ProfilePane(session=session)
        self.statistics = StatisticsPane(session=session)
        self.histogram = HistogramPane(session=session)
        self.header = HeaderPane(session=session)
        self.summary = SummaryPane(session=session)
        self.quality = QualityCards(session=session)
        self.timeline = QualityTimeline(session=session)
        self.star_profile = StarProfilePane(session=session)
        self.sky = SkyPanes(session=session, image_view=self.image_view)
        self._build_controls()
        # Fixed heights: a notice coming and going must not resize the image.
        self._notice = pn.pane.HTML(
            "", margin=(6, 10, 0, 10), height=30, width=380, stylesheets=[STYLESHEET],
        )
        self._error = pn.pane.Alert(
            "", alert_type="danger", visible=False, sizing_mode="stretch_width", margin=(0, 10),
        )
        self._empty = pn.pane.Alert(
            "", alert_type="info", visible=False, sizing_mode="stretch_width", margin=(0, 10),
        )
        self._storage = pn.pane.Alert(
            pn.bind(lambda message: html.escape(message), session.param.storage),
            alert_type="warning", visible=pn.bind(bool, session.param.storage),
            sizing_mode="stretch_width", margin=(0, 10), css_classes=["qa-storage"],
        )
        self._title = pn.pane.HTML(
            pn.bind(self._title_html, session.param.info, session.param.image,
                    session.param.follow, session.param.loading),
            sizing_mode="stretch_width", height=30, margin=(4, 10), stylesheets=[STYLESHEET],
        )
        session.param.watch(self._error_changed, "error")
        session.param.watch(self._frames_changed, ["frames", "directories"])
        session.param.watch(self._key_changed, "key")
        session.param.watch(self._notice_changed, "notice")
        session.param.watch(self._region_drawn, ["line", "box"])
        session.param.watch(self._star_picked, "star")
        session.param.watch(self._quality_shown, ["quality", "quality_pending", "quality_error", "star_result"])
        self._resend_due = False
        self._doc = None
        self._events = None
        self._dozing = False
        self._changes = 0
        self._frames_changed()
        self._error_changed()

    # ---------------------------------------------------------------- controls

    def _build_controls(self):
        session = self.session
        self.directory_select = pn.widgets.Select(label="Folder", options={}, width=150)
        self.directory_select.param.watch(self._directory_chosen, "value")
        self.frame_select = pn.widgets.Select(label="Frame", options={}, width=320)
        self.frame_select.param.watch(self._frame_chosen, "value")
        self.follow = pn.widgets.Checkbox.from_param(
            session.param.follow, label="Follow newest", width=120, margin=(30, 20, 5, 10),
        )
        self.interval = pn.widgets.Select.from_param(
            session.param.interval, label="Interval", options=display.INTERVALS, width=100,
        )
        self.manual_low = pn.widgets.FloatInput.from_param(
            session.param.manual_low, label="Low", width=90, visible=False,
        )
        self.manual_high = pn.widgets.FloatInput.from_param(
            session.param.manual_high, label="High", width=90, visible=False,
        )
        self.stretch = pn.widgets.Select.from_param(
            session.param.stretch, label="Stretch", options=display.STRETCHES, width=145,
        )
        self.cmap = pn.widgets.Select.from_param(
            session.param.cmap, label="Colour map", options=list(display.COLORMAPS), width=105,
        )
        self.invert = pn.widgets.Checkbox.from_param(
            session.param.invert, label="Invert", width=70, margin=(30, 5, 5, 10),
        )
        self.orientation = pn.widgets.Checkbox.from_param(
            session.param.fits_orientation, label="FITS orientation (row 0 at bottom)",
            width=235, margin=(30, 5, 5, 10),
        )
        self.drag = pn.widgets.RadioButtonGroup.from_param(
            self.image_view.param.drag_mode, label="",
            options={"Pan / zoom": "pan", "Line": "line", "Box": "box"},
            color="primary", variant="outline", margin=(0, 10, 4, 10),
        )
        self._drag_hint = pn.pane.HTML(
            pn.bind(_drag_hint, self.image_view.param.drag_mode),
            stylesheets=[STYLESHEET], margin=(6, 10, 0, 0), sizing_mode="stretch_width",
        )
        session.param.watch(self._interval_changed, "interval")
        card = dict(styles=_CARD_STYLES, sizing_mode="stretch_width")
        # The right column: what the frame is and how good, then one tab at a time.
        tabs = (
            ("Region", pn.Column(
                pn.Column(self.statistics, **card), pn.Column(self.histogram, **card),
                pn.Column(self.profile, **card), sizing_mode="stretch_width",
            )),
            ("Star", pn.Column(pn.Column(self.star_profile, **card), sizing_mode="stretch_width")),
            ("Header", pn.Column(pn.Column(self.header, **card), sizing_mode="stretch_width")),
            *self.sky.tabs(card),
        )
        if self.jobs is not None:
            self.jobs_pane = JobsPane(session=session, service=self.jobs)
            tabs += (("Jobs", pn.Column(pn.Column(self.jobs_pane, **card), sizing_mode="stretch_width")),)
        self._tab_names = [name for name, _ in tabs]
        # dynamic: only the open tab is drawn, with the page and on each new frame; the
        # others are drawn when opened (the Star, Pinned and Focus plots are not laid
        # out and painted with the page; 8 figures instead of 11).
        self.tabs = pn.Tabs(
            *tabs, dynamic=True, sizing_mode="stretch_width", margin=(0, 0), stylesheets=[_TABS_STYLE],
        )

    def _region_drawn(self, *events):
        if any(event.new is not None for event in events):
            self.tabs.active = self._tab_names.index("Region")

    def _star_picked(self, event):
        if event.new is not None:
            self.tabs.active = self._tab_names.index("Star")

    def _directory_chosen(self, event):
        if getattr(self, "_updating_frames", False):
            return  # the options were being refreshed, not chosen
        if event.new is not None and event.new != self.session.directory:
            self.session.directory = event.new

    def _frame_chosen(self, event):
        if getattr(self, "_updating_frames", False) or event.new is None:
            return
        if event.new != self.session.key:
            self.session.pick(event.new)

    def _interval_changed(self, event):
        manual = event.new == "manual"
        if manual and self.session.manual_low is None and self.session.image is not None:
            low, high = self.session.limits()
            self.session.param.update(manual_low=round(low, 6), manual_high=round(high, 6))
        self.manual_low.visible = self.manual_high.visible = manual

    def _frames_changed(self, *events):
        session = self.session
        self._updating_frames = True
        try:
            options = frame_options(session.frames, session.directory)
            if session.key is not None and session.key not in options.values() and session.info is not None:
                options = {session.info.key: session.info.key, **options}
            self.frame_select.options = options
            if session.key in options.values():
                self.frame_select.value = session.key
            directories = list(session.directories)
            if session.directory and session.directory not in directories:
                directories.append(session.directory)  # asked for before it holds frames
            self.directory_select.options = directory_options(sorted(directories))
            self.directory_select.value = session.directory
        finally:
            self._updating_frames = False
        if not session.frames and session.image is None:
            where = f"folder “{session.directory}”" if session.directory else "the frames folder"
            self._empty.object = f"No frames in {html.escape(where)} yet: waiting for the camera…"
            self._empty.visible = True
        else:
            self._empty.visible = False

    def _key_changed(self, event):
        self._frames_changed()

    def _error_changed(self, *events):
        error = self.session.error
        self._error.object = html.escape(error)
        self._error.visible = bool(error)

    def _notice_changed(self, event):
        if not event.new:
            return
        self._notice.object = f'<span class="qa-notice">{html.escape(event.new)}</span>'
        if pn.state.curdoc is not None and pn.state.curdoc.session_context is not None:
            try:
                pn.state.curdoc.add_timeout_callback(self._clear_notice, NOTICE_MS)
            except Exception:  # the session is closing
                pass

    def _clear_notice(self):
        self._notice.object = ""
        self.session.notice = ""

    def _title_html(self, info, image, follow, loading) -> str:
        summary = frame_summary(image, info)
        parts = []
        if summary:
            bits = [summary.get("object"), summary.get("filter")]
            if isinstance(summary.get("exposure"), float):
                bits.append(f"{summary['exposure']:g} s")
            detail = " · ".join(html.escape(str(b)) for b in bits if b)
            parts.append(f'<span class="qa-sub">{html.escape(summary["key"])}</span>')
            if detail:
                parts.append(f'<span class="qa-sub">{detail}</span>')
        live = (
            '<span class="qa-status qa-live">● following newest</span>' if follow
            else '<span class="qa-status qa-paused">❚❚ paused on this frame</span>'
        )
        loading_text = ' <span class="qa-status">· loading…</span>' if loading else ""
        return (
            '<div style="display:flex;align-items:baseline;gap:4px;flex-wrap:wrap">'
            f'<span class="qa-title">QuickAnalysis</span>{"".join(parts)}'
            f'<span style="flex:1"></span>{live}{loading_text}</div>'
        )

    # ---------------------------------------------------------------- live

    def start(self, events=None) -> None:
        """Make the dashboard live on its served page: the session follows the process's events.

        No periodic callback: the frame feed pushes new frames (``frame``
        events), the quality service their measurements (``quality``), and
        the session marshals them onto this page's event loop, so an idle tab
        costs nothing.
        """
        session = self.session
        if events is None:
            events = getattr(session.feed, "events", None)
        doc = pn.state.curdoc
        if doc is None or doc.session_context is None:
            session.refresh()
            return
        from panel.io.state import set_curdoc
        from tornado.ioloop import IOLoop

        loop = IOLoop.current()  # start() runs on the page's loop, while the page is built
        # Once the page is in its document (the next tick), before any update reaches it.
        doc.add_next_tick_callback(functools.partial(adopt_stylesheets, doc))
        def schedule(callback):
            def run():
                # One held batch per update: the page gets one message, and Bokeh
                # walks the document's models at most once (components/views/batch.py).
                with set_curdoc(doc), held(doc):
                    try:
                        callback()
                    except Exception:  # never let one frame end the session
                        log.exception("session update failed")

            def add():
                try:
                    doc.add_next_tick_callback(run)
                except Exception:  # the session was destroyed meanwhile
                    pass

            # Bokeh documents add_next_tick_callback as safe from any thread, but the
            # SessionCallbackAdded event it emits is appended to the document's held
            # events when a callback on the loop holds the document (pn.io.hold) and
            # is lost if that hold is being released at the same moment (Panel's
            # unhold takes no lock: see the discussion in holoviz/panel#8692). Seen
            # here as quality rows that never reached a page under load. So the
            # callback is added from the loop's own thread: Tornado's add_callback is
            # the thread-safe step.
            loop.add_callback(add)

        self._doc = doc
        self._events = events
        session.scheduler = schedule
        if events is not None:
            session.connect(events)
        session.refresh()  # a frame decoded already is shown in the page's first document
        session.load_history()
        self._changes = 0
        session.param.watch(self._count_change, ["image", "quality", "history", "star_result"])
        pn.state.onload(self._page_ready)
        pn.state.on_session_destroyed(self._destroyed)

    def _quality_shown(self, *events):
        doc = self._doc
        if doc is None or self._resend_due:
            return
        self._resend_due = True

        def resend():
            self._resend_due = False
            with held(doc):
                self._resend_quality()

        try:
            doc.add_timeout_callback(resend, _RESEND_AFTER_MS)
        except Exception:  # the session is closing
            self._resend_due = False

    def _resend_quality(self):
        """Send the quality views once more, a moment after they changed.

        Under load Panel may write two quick successive updates to the page out
        of order (the frame's "measuring…" after its measurement, when the
        service had it memoised): the page would keep the stale one.
        """
        self.image_view.resync(raster=False)
        self.quality.resync()
        self.star_profile.resync()

    def _count_change(self, *events):
        self._changes += 1

    def doze(self) -> bool:
        """Built ahead of its page (a spare page): follow nothing until :meth:`wake`.

        Following would cost the pages in use a rasterization of each new frame.
        Returns False when the session shows an error: better built afresh for its page.
        """
        if self.session.error:
            return False
        self.leave()
        return True

    def leave(self) -> None:
        """The session's last page has closed: follow nothing until a page comes back.

        Bokeh keeps the session for its unused lifetime; meanwhile following would
        render every new frame for nobody, holding up the pages in use.
        """
        if not self._dozing:
            self._dozing = True
            self.session.disconnect()
            self.session.release_foreground()

    def come_back(self) -> None:
        """A page connected to this session: if it was left, catch up and follow again."""
        if self._dozing and self._events is not None:
            self._follow_again()

    def wake(self) -> None:
        """This session now answers a page's request: catch up, then follow again.

        What changed before now is in the document the page is about to pull;
        only later changes need :meth:`_page_ready`'s re-send.
        """
        self._changes = 0
        if self._dozing:
            self._follow_again()

    def _follow_again(self) -> None:
        self._dozing = False
        session = self.session
        if self._events is not None:
            session.connect(self._events)

        def catch_up():
            session.refresh()  # the index in memory: the newest frame, no storage listing
            session.load_history()

        if session.scheduler is not None:
            session.scheduler(catch_up)
        else:
            catch_up()

    def _page_ready(self):
        """The page is connected: re-send what plain Bokeh models got meanwhile (components.views.sync).

        Nothing to re-send when nothing changed since the document was built
        (a warm server shows the frame in the first document).
        """
        if not self._changes:
            return
        self.image_view.resync()
        self.timeline.resync()
        self.sky.resync()
        for pane in (self.histogram, self.profile, self.star_profile):
            plot = getattr(getattr(pane, "_plot", None), "object", None)
            if isinstance(plot, hv.DynamicMap):
                plot.event()  # draw it again, now that the page is listening

    def _destroyed(self, session_context):
        self.session.disconnect()
        self.session.release_foreground()
        self.session.scheduler = None
        self._doc = None

    # ---------------------------------------------------------------- layout

    def __panel__(self):
        card = dict(styles=_CARD_STYLES, sizing_mode="stretch_width")
        controls = pn.Row(
            self.directory_select, self.frame_select, self.follow,
            self.interval, self.manual_low, self.manual_high, self.stretch, self.cmap,
            self.invert, self.orientation, *self.sky.controls(),
            sizing_mode="stretch_width", styles={"flex-wrap": "wrap"},
        )
        side = pn.Column(
            pn.Column(self.summary, **card),
            pn.Column(self.quality, **card),
            self.tabs,
            width=450, sizing_mode="stretch_height", scroll=True,
        )
        image = pn.Column(
            pn.Row(self.drag, self._drag_hint, sizing_mode="stretch_width"),
            self.image_view,
            self.sky.beside_timeline(  # the pointing drift beside the timeline (issue 12)
                pn.Column(self.timeline, styles=dict(_CARD_STYLES, margin="4px 0 0 0"), sizing_mode="stretch_width"),
                dict(_CARD_STYLES, margin="4px 0 0 4px"),
            ),
            sizing_mode="stretch_both", min_height=560,
        )
        main = pn.Row(image, side, sizing_mode="stretch_both")
        return pn.Column(
            pn.Row(self._title, self._notice, sizing_mode="stretch_width", height=38),
            controls,
            AlarmPanel(session=self.session, timeline=self.timeline),  # issue 10
            self._error,
            self._storage,
            self._empty,
            main,
            sizing_mode="stretch_both",
        )
