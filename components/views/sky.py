"""The sky panes of the dashboard, and the link that reopens the same view.

:class:`SkyPanes` bundles the pinned-regions, compare, focus and drift panes
so the dashboard wires them with a few lines (tabs, a row beside the quality
timeline, page-ready re-sends).

The link: the frame, folder, follow, zoom and pan, interval, stretch, colour
map, line, box, pinned regions and compare mode are written to the page's
query string as the observer works (once a second at most, with
``pn.state.location``), and :func:`link_options` parses them back (called by
``app.main.query_options``), so a copied link opened elsewhere shows the
same view. Query names:

``image`` (frame key; only while not following), ``dir``, ``follow`` (0/1),
``interval``, ``stretch``, ``cmap``, ``line`` and ``box`` (``x0,y0,x1,y1``
plot coordinates), ``view`` (``x0,x1,y0,y1`` plot ranges), ``pinned`` (JSON
list of PinnedRegion dicts), ``compare`` (off/blink/difference), ``ref``
(reference frame key), ``blink`` (seconds).
"""

from __future__ import annotations

import json
import logging
import math
from urllib.parse import urlencode

import panel as pn
import param

from components.core.regions import PinnedRegion
from components.errors import QuickAnalysisError
from components.views import display
from components.views.compare import ComparePane
from components.views.drift import DriftPane
from components.views.focus import FocusPane
from components.views.regions import RegionsPane
from components.views.state import Session

__all__ = ["SkyPanes", "link_options", "link_query", "query_argument", "COPY_LINK_JS"]

log = logging.getLogger("quickanalysis.views")

# Milliseconds between two looks at the state the link must hold.
_LINK_PERIOD = 1000
#: Width of the pointing-drift card beside the quality timeline (pixels).
DRIFT_WIDTH = 330

#: Copies the page's address (the link) to the clipboard, and says so on the button.
COPY_LINK_JS = """
const url = window.location.href;
const done = () => { button.label = "Link copied"; setTimeout(() => { button.label = "Copy link"; }, 2000); };
if (navigator.clipboard && window.isSecureContext) {
  navigator.clipboard.writeText(url).then(done, () => { window.prompt("Copy this link", url); });
} else {
  window.prompt("Copy this link", url);
}
"""


def query_argument(arguments: dict, name: str) -> str | None:
    """The last value of query argument ``name`` as stripped text, or None (absent or empty)."""
    values = arguments.get(name) or []
    if not values:
        return None
    value = values[-1]
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    value = str(value).strip()
    return value or None


def _numbers(text: str, count: int, name: str) -> tuple[float, ...]:
    try:
        values = tuple(float(part) for part in text.split(","))
    except ValueError:
        raise ValueError(f"{name} must be {count} comma-separated numbers, got {text!r}") from None
    if len(values) != count or not all(math.isfinite(v) for v in values):
        raise ValueError(f"{name} must be {count} comma-separated finite numbers, got {text!r}")
    return values


def parse_view(arguments: dict) -> tuple | None:
    """The ``view`` argument as ((x0, x1), (y0, y1)) plot ranges, or None (absent or bad)."""
    text = query_argument(arguments, "view")
    if text is None:
        return None
    try:
        x0, x1, y0, y1 = _numbers(text, 4, "view")
    except ValueError:
        return None
    if x1 <= x0 or y1 <= y0:
        return None
    return (x0, x1), (y0, y1)


def link_options(arguments: dict, errors: list[str]) -> dict:
    """Session parameters of the link's query arguments (``{name: [bytes]}``).

    Unusable arguments are reported in ``errors`` and left out.
    """
    options: dict = {}
    for name, choices in (
        ("interval", list(display.INTERVALS.values())),
        ("stretch", list(display.STRETCHES.values())),
        ("cmap", list(display.COLORMAPS)),
        ("compare", ["off", "blink", "difference"]),
    ):
        value = query_argument(arguments, name)
        if value is None:
            continue
        if value in choices:
            options[name] = value
        else:
            errors.append(f"{name} must be one of {', '.join(map(str, choices))}, got {value!r}")
    for name in ("line", "box"):
        value = query_argument(arguments, name)
        if value is not None:
            try:
                options[name] = _numbers(value, 4, name)
            except ValueError as error:
                errors.append(str(error))
    reference = query_argument(arguments, "ref")
    if reference is not None:
        options["reference_key"] = reference.strip("/")
    blink = query_argument(arguments, "blink")
    if blink is not None:
        try:
            seconds = float(blink)
            if not 0.25 <= seconds <= 30.0:
                raise ValueError
            options["blink_interval"] = seconds
        except ValueError:
            errors.append(f"blink must be seconds between 0.25 and 30, got {blink!r}")
    pinned = query_argument(arguments, "pinned")
    if pinned is not None:
        try:
            listed = json.loads(pinned)
            if not isinstance(listed, list):
                raise ValueError("not a list")
            options["pinned"] = [PinnedRegion.from_dict(item).to_dict() for item in listed]
        except (ValueError, QuickAnalysisError, AttributeError, TypeError) as error:
            errors.append(f"pinned: {error}")
    return options


def _fmt(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".")


def link_query(session: Session, ranges=None) -> dict:
    """The query arguments that reopen this view (see the module's docstring)."""
    query: dict = {}
    if session.directory:
        query["dir"] = session.directory
    if not session.follow and session.key is not None:
        query["image"] = session.key
    query["follow"] = "1" if session.follow else "0"
    query["interval"] = session.interval
    query["stretch"] = session.stretch
    query["cmap"] = session.cmap
    if session.line is not None:
        query["line"] = ",".join(_fmt(v) for v in session.line)
    if session.box is not None:
        query["box"] = ",".join(_fmt(v) for v in session.box)
    if ranges is not None:
        (x0, x1), (y0, y1) = ranges
        query["view"] = ",".join(_fmt(v) for v in (x0, x1, y0, y1))
    if session.pinned:
        query["pinned"] = json.dumps(session.pinned, separators=(",", ":"))
    if session.compare != "off":
        query["compare"] = session.compare
    if session.reference_key is not None:
        query["ref"] = session.reference_key
    if session.blink_interval != 1.0:
        query["blink"] = _fmt(session.blink_interval)
    return query


class SkyPanes(param.Parameterized):
    """The pinned-regions, compare, focus and drift panes of one dashboard, and its link."""

    session = param.ClassSelector(class_=Session)
    image_view = param.Parameter(default=None)

    def __init__(self, **params):
        super().__init__(**params)
        session, view = self.session, self.image_view
        self.regions = RegionsPane(session=session)
        self.compare = ComparePane(session=session, image_view=view)
        self.focus = FocusPane(session=session)
        self.drift = DriftPane(session=session)
        if view is not None:
            view.figure_hooks.append(self.regions.draw_on)
        self.copy_link = pn.widgets.Button(label="Copy link", width=100, margin=(24, 10, 5, 10))
        self.copy_link.js_on_click(args={"button": self.copy_link}, code=COPY_LINK_JS)
        self._callback = None
        self._pending_view = None
        doc = pn.state.curdoc
        if doc is not None and doc.session_context is not None:
            self._pending_view = parse_view(pn.state.session_args or {})
            if self._pending_view is not None:
                session.param.watch(self._restore_view, "image")
            self._callback = pn.state.add_periodic_callback(self.write_link, period=_LINK_PERIOD)

    # ---------------------------------------------------------------- link

    def _restore_view(self, event):
        """Zoom and pan of the link, once the first frame is on screen (its size resets the view)."""
        if self._pending_view is None or event.new is None or self.image_view is None:
            return
        view, self._pending_view = self._pending_view, None
        self.image_view.show_ranges(*view)

    def ranges(self):
        return self._pending_view or (self.image_view._ranges if self.image_view is not None else None)

    def query(self) -> dict:
        return link_query(self.session, self.ranges())

    def write_link(self) -> None:
        """Put the view's state in the page's query string (when the page's differs)."""
        location = pn.state.location
        if location is None:
            return
        search = "?" + urlencode(self.query())
        # Compared with what the page reports, not with what was sent: a change sent
        # while the page was still connecting is sent again.
        if location.search != search:
            location.search = search

    # ---------------------------------------------------------------- layout

    def tabs(self, card: dict) -> tuple:
        """(name, pane) tabs for the dashboard's side column."""
        return (
            ("Pinned", pn.Column(pn.Column(self.regions, **card), sizing_mode="stretch_width")),
            ("Compare", pn.Column(pn.Column(self.compare, **card), sizing_mode="stretch_width")),
            ("Focus", pn.Column(pn.Column(self.focus, **card), sizing_mode="stretch_width")),
        )

    def beside_timeline(self, timeline, styles: dict):
        """The timeline card and the drift card in one row.

        Beside, not under: a plot under the timeline would take its height from
        the image, which then no longer shows a 900 x 600 frame one pixel per pixel.
        """
        return pn.Row(timeline, pn.Column(self.drift, styles=styles, width=DRIFT_WIDTH), sizing_mode="stretch_width")

    def controls(self) -> tuple:
        return (self.copy_link,)

    def resync(self) -> None:
        self.regions.resync()
        self.focus.resync()
        self.drift.resync()
