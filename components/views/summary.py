"""The frame summary: object, filter, exposure, time, size, and the HDU shown."""

from __future__ import annotations

import html

import panel as pn
import param

from components.views.style import STYLESHEET
from components.views.state import Session

__all__ = ["SummaryPane", "frame_summary", "hdu_options"]

# Header keywords tried, in order, for each field.
_KEYWORDS = {
    "object": ("OBJECT", "OBJNAME", "TARGET"),
    "filter": ("FILTER", "FILTER1", "FILTNAME", "FILT"),
    "exposure": ("EXPTIME", "EXPOSURE", "ITIME"),
    "time": ("DATE-OBS", "DATE_OBS", "DATE"),
    "telescope": ("TELESCOP", "TELID"),
    "instrument": ("INSTRUME",),
}


def _first(header, keywords):
    if header is None:
        return None
    for keyword in keywords:
        try:
            value = header[keyword]
        except (KeyError, IndexError, TypeError, ValueError):
            continue
        if value is None:
            continue
        text = str(value).strip()
        if text:
            return value
    return None


def frame_summary(image, info=None) -> dict:
    """The summary fields of a frame as plain values (missing ones None)."""
    if image is None:
        return {}
    header = image.header
    height, width = image.data.shape
    exposure = _first(header, _KEYWORDS["exposure"])
    try:
        exposure = float(exposure) if exposure is not None else None
    except (TypeError, ValueError):
        pass
    hdu_name = next((h.name for h in image.hdus if h.index == image.hdu), "")
    return {
        "name": info.name if info is not None else image.name,
        "key": info.key if info is not None else image.name,
        "object": _first(header, _KEYWORDS["object"]),
        "filter": _first(header, _KEYWORDS["filter"]),
        "exposure": exposure,
        "time": _first(header, _KEYWORDS["time"]),
        "telescope": _first(header, _KEYWORDS["telescope"]),
        "instrument": _first(header, _KEYWORDS["instrument"]),
        "width": width,
        "height": height,
        "dtype": str(image.data.dtype),
        "hdu": image.hdu,
        "hdu_name": hdu_name,
        "hdu_count": len(image.hdus),
        "wcs": image.wcs is not None,
        "modified": info.modified if info is not None else None,
    }


def hdu_options(image) -> dict:
    """Label -> HDU index of every image HDU of the frame."""
    if image is None:
        return {}
    options = {}
    for hdu in image.hdus:
        shape = " × ".join(str(n) for n in reversed(hdu.shape)) if hdu.shape else "?"
        name = f" {hdu.name}" if hdu.name else ""
        options[f"{hdu.index}{name} ({shape}, {hdu.dtype})"] = hdu.index
    return options


class SummaryPane(pn.viewable.Viewer):
    """What the frame is, and a choice of HDU for multi-extension files."""

    session = param.ClassSelector(class_=Session)

    def __init__(self, **params):
        super().__init__(**params)
        self._hdu = pn.widgets.Select(label="HDU", options={}, width=260, visible=False, margin=(0, 10))
        self._hdu.param.watch(self._hdu_chosen, "value")
        self._table = pn.pane.HTML(
            pn.bind(self._render, self.session.param.image, self.session.param.info),
            sizing_mode="stretch_width", margin=(0, 10), stylesheets=[STYLESHEET],
        )
        self.session.param.watch(self._image_changed, "image")
        self._image_changed()

    def _image_changed(self, *events):
        image = self.session.image
        options = hdu_options(image)
        self._updating = True
        try:
            self._hdu.options = options
            self._hdu.visible = len(options) > 1
            if image is not None and image.hdu in options.values():
                self._hdu.value = image.hdu
        finally:
            self._updating = False

    def _hdu_chosen(self, event):
        if getattr(self, "_updating", False) or event.new is None:
            return
        image = self.session.image
        if image is not None and event.new != image.hdu:
            self.session.hdu = int(event.new)

    def _render(self, image, info) -> str:
        summary = frame_summary(image, info)
        if not summary:
            return '<div class="qa-hint">No frame yet.</div>'

        def cell(value, suffix=""):
            return "&ndash;" if value is None else html.escape(f"{value}{suffix}")

        exposure = summary["exposure"]
        exposure_text = (
            f"{exposure:g} s" if isinstance(exposure, float) else cell(exposure)
        )
        hdu = f"{summary['hdu']}"
        if summary["hdu_name"]:
            hdu += f" ({html.escape(str(summary['hdu_name']))})"
        hdu += f" of {summary['hdu_count']} image HDU{'s' if summary['hdu_count'] != 1 else ''}"
        wide = [
            ("Frame", f'<span class="qa-frame-name">{html.escape(summary["key"])}</span>'),
            ("Time", cell(summary["time"])),
        ]
        if summary["telescope"] or summary["instrument"]:
            wide.append(("Telescope", " / ".join(
                html.escape(str(v)) for v in (summary["telescope"], summary["instrument"]) if v
            )))
        wide += [
            ("Size", f"{summary['width']} &times; {summary['height']} px, {summary['dtype']}"),
            ("HDU", hdu),
        ]
        pairs = [
            ("Object", cell(summary["object"])), ("Filter", cell(summary["filter"])),
            ("Exposure", exposure_text), ("WCS", "yes" if summary["wcs"] else "no"),
        ]
        body = "".join(
            f'<tr><th>{label}</th><td colspan="3">{value}</td></tr>' for label, value in wide
        )
        body += "".join(
            f"<tr><th>{a}</th><td>{va}</td><th>{b}</th><td>{vb}</td></tr>"
            for (a, va), (b, vb) in zip(pairs[::2], pairs[1::2])
        )
        return f'<table class="qa-table qa-summary">{body}</table>'


    def __panel__(self):
        return pn.Column(
            pn.pane.HTML(stylesheets=[STYLESHEET], object="<h3>Frame</h3>", margin=(0, 10)),
            self._table,
            self._hdu,
            sizing_mode="stretch_width",
            css_classes=["qa-card"],
        )
