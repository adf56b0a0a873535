"""Compare the frame shown with a reference frame: blink between them, or show their difference.

The reference is :attr:`Session.reference_key`, or the frame before the one
shown (the previous one) when that is None. Blinking swaps the array the
image view rasterizes (:attr:`ImageView.display_source`) at
:attr:`Session.blink_interval`; the plot, its zoom and pan, and the drawn
shapes are untouched, so they stay put. The difference view shows
:func:`components.core.compare.difference` (aligned through the WCS) with a
diverging colour map and symmetric limits (:attr:`ImageView.colour_override`).
The reference frame is read from the session's store in a worker thread.
"""

from __future__ import annotations

import functools
import html
import logging
from types import SimpleNamespace

import panel as pn
import param
from bokeh.palettes import RdBu11
from bokeh.palettes import interp_palette

from components.core.compare import difference
from components.views.state import Session
from components.views.style import STYLESHEET

__all__ = ["ComparePane", "DIVERGING", "previous_key"]

log = logging.getLogger("quickanalysis.views")

#: Diverging palette of the difference view: blue negative, white zero, red positive.
DIVERGING = list(interp_palette(tuple(reversed(RdBu11)), 256))


def previous_key(frames: list, key: str | None) -> str | None:
    """The frame before ``key`` in a newest-first listing (None when it is the oldest or unknown)."""
    keys = [info.key for info in frames]
    if key in keys:
        index = keys.index(key)
        return keys[index + 1] if index + 1 < len(keys) else None
    return None


class ComparePane(pn.viewable.Viewer):
    """Blink and difference controls, driving the image view."""

    session = param.ClassSelector(class_=Session)
    image_view = param.Parameter(default=None, doc="The ImageView the comparison is shown in.")
    showing = param.Selector(default="current", objects=["current", "reference", "difference"])
    reference = param.Parameter(default=None, doc="The reference Image (read from the store).")
    reference_info = param.String(default=None, allow_None=True, doc="Key of the reference read.")
    result = param.Parameter(default=None, doc="components.core.compare.Difference of the frames.")
    message = param.String(default="")

    def __init__(self, **params):
        super().__init__(**params)
        session = self.session
        self._callback = None
        self._difference_image = None
        self.mode = pn.widgets.RadioButtonGroup.from_param(
            session.param.compare, options={"Off": "off", "Blink": "blink", "Difference": "difference"},
            color="primary", variant="outline", margin=(0, 10, 4, 10),
        )
        self.reference_select = pn.widgets.Select(label="Reference frame", options={}, width=260)
        self.interval = pn.widgets.FloatSlider.from_param(
            session.param.blink_interval, label="Blink every (s)", start=0.25, end=30.0, step=0.25, width=200,
        )
        self._caption = pn.pane.HTML("", sizing_mode="stretch_width", margin=(0, 10), stylesheets=[STYLESHEET])
        self.reference_select.param.watch(self._reference_chosen, "value")
        session.param.watch(self._frames_changed, ["frames", "key"])
        session.param.watch(self._target_changed, ["key", "reference_key", "frames", "image"])
        session.param.watch(self._mode_changed, "compare")
        session.param.watch(self._interval_changed, "blink_interval")
        self.param.watch(self._caption_changed, ["showing", "reference_info", "message", "result"])
        if self.image_view is not None:
            self.image_view.display_source = self.display
        self._frames_changed()
        self._target_changed()
        self._caption_changed()
        if session.compare == "blink":  # opened from a link
            self._start_blinking()

    # ---------------------------------------------------------------- what to show

    def reference_key(self) -> str | None:
        """The reference frame's key: the chosen one, else the previous frame."""
        session = self.session
        if session.reference_key is not None:
            return session.reference_key
        return previous_key(session.frames, session.key)

    def display(self):
        """What the image view shows now (None: the session's image)."""
        if self.session.compare == "difference" and self.result is not None:
            return self._difference_image
        if self.session.compare == "blink" and self.showing == "reference" and self.reference is not None:
            return self.reference
        return None

    def _redraw(self):
        if self.image_view is not None:
            self.image_view.resync()

    def blink_step(self) -> str:
        """Swap current and reference (one blink); returns what is shown now."""
        if self.session.compare != "blink":
            return self.showing
        self.showing = "reference" if self.showing == "current" and self.reference is not None else "current"
        self._redraw()
        return self.showing

    # ---------------------------------------------------------------- reference and difference

    def _frames_changed(self, *events):
        options = {"(previous frame)": None}
        for info in self.session.frames[:500]:
            if info.key != self.session.key:
                options[info.key] = info.key
        if self.session.reference_key is not None:
            options.setdefault(self.session.reference_key, self.session.reference_key)
        self._updating = True
        try:
            self.reference_select.options = options
            self.reference_select.value = self.session.reference_key
        finally:
            self._updating = False

    def _reference_chosen(self, event):
        if not getattr(self, "_updating", False) and event.new != self.session.reference_key:
            self.session.reference_key = event.new

    def _target_changed(self, *events):
        key = self.reference_key()
        if self.session.compare == "off":
            return  # read the reference only when it is used
        if key is None:
            self.param.update(reference=None, reference_info=None, result=None,
                              message="No reference frame: pick one, or wait for a second frame.")
            self._apply()
            return
        if key == self.reference_info and self.reference is not None:
            self._compute_difference()
            return
        store = self.session.store
        self.session._submit(functools.partial(store.load, key), functools.partial(self._reference_read, key))

    def _reference_read(self, key, image, error):
        if error is not None:
            self.param.update(reference=None, reference_info=None, message=f"Cannot read {key}: {error}")
            return
        if key != self.reference_key():
            return  # another reference was chosen meanwhile
        self.param.update(reference=image, reference_info=key, message="")
        self._compute_difference()

    def _compute_difference(self):
        current, reference = self.session.image, self.reference
        if self.session.compare != "difference" or current is None or reference is None:
            self._apply()
            return

        def work():
            return difference(current.data, reference.data, current.wcs, reference.wcs)

        def done(result, error):
            if error is not None:
                self.message = f"Cannot subtract: {error}"
                result = None
            if current is self.session.image:
                # One object per difference: the image view builds its element once for it.
                self._difference_image = SimpleNamespace(data=result.data) if result is not None else None
                self.result = result
            self._apply()

        self.session._submit(work, done)

    def _apply(self):
        """Hand the image view the colours of the mode and redraw it."""
        view = self.image_view
        if view is not None:
            if self.session.compare == "difference" and self.result is not None:
                view.colour_override = {"palette": DIVERGING, "limits": self.result.limits}
            elif view.colour_override is not None:
                view.colour_override = None
        mode = self.session.compare
        if mode == "difference":
            self.showing = "difference"
        elif mode != "blink" or self.showing == "difference":
            self.showing = "current"
        self._redraw()

    # ---------------------------------------------------------------- blinking

    def _mode_changed(self, event):
        self._stop_blinking()
        if event.new == "blink":
            self._start_blinking()
        self._target_changed()
        self._apply()

    def _interval_changed(self, event):
        if self.session.compare == "blink":
            self._stop_blinking()
            self._start_blinking()

    def _start_blinking(self):
        doc = pn.state.curdoc
        if doc is None or doc.session_context is None:
            return  # no page: blink_step() is called by hand
        self._callback = pn.state.add_periodic_callback(
            self.blink_step, period=int(round(self.session.blink_interval * 1000)),
        )

    def _stop_blinking(self):
        if self._callback is not None:
            try:
                self._callback.stop()
            except Exception:  # the session is closing
                pass
            self._callback = None

    # ---------------------------------------------------------------- layout

    def _caption_changed(self, *events):
        mode = self.session.compare
        parts = []
        if mode == "blink":
            shown = self.reference_info if self.showing == "reference" else self.session.key
            parts.append(f'<span class="qa-compare-showing" data-showing="{self.showing}">'
                         f'Showing the {self.showing} frame: {html.escape(str(shown))}</span>')
        elif mode == "difference" and self.result is not None:
            parts.append(
                f'<span class="qa-compare-showing" data-showing="difference">Difference: '
                f'{html.escape(str(self.session.key))} − {html.escape(str(self.reference_info))} '
                f'({self.result.method}, ±{self.result.limit:.4g})</span>'
            )
        if self.message:
            parts.append(f'<span class="qa-sub">{html.escape(self.message)}</span>')
        self._caption.object = "<br>".join(parts)

    def __panel__(self):
        return pn.Column(
            self.mode, pn.Row(self.reference_select, self.interval), self._caption, sizing_mode="stretch_width",
        )
