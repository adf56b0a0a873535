"""The statistics pane: the drawn box's numbers, or the whole frame's."""

from __future__ import annotations

import html
import json
import math

import panel as pn
import param

from components.views import compute, coords
from components.views.style import STYLESHEET
from components.views.state import Session

__all__ = ["StatisticsPane", "region_label", "format_number", "STAT_ROWS"]

#: (key of components.core.statistics, label shown).
STAT_ROWS = (
    ("mean", "Mean"),
    ("median", "Median"),
    ("mode", "Mode"),
    ("median_abs_deviation", "MAD"),
    ("min", "Min"),
    ("max", "Max"),
    ("std", "Std dev"),
    ("count", "Pixels"),
)


def format_number(value) -> str:
    """A statistic for display: integers whole, floats with 6 significant digits."""
    if value is None:
        return "&ndash;"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}".replace(",", "\u2009")
    number = float(value)
    if not math.isfinite(number):
        return str(number)
    if number == int(number) and abs(number) < 1e15:
        return f"{int(number)}"
    magnitude = abs(number)
    if magnitude != 0 and (magnitude < 1e-3 or magnitude >= 1e7):
        return f"{number:.5e}"
    return f"{number:.6g}" if magnitude >= 1 else f"{number:.6f}".rstrip("0")


def region_label(session: Session) -> str:
    """Which pixels the panes analyse, in words (columns/rows end-exclusive)."""
    image = session.image
    if image is None:
        return "no frame"
    height, width = image.data.shape
    box = session.region_box()
    if box is None:
        return f"whole frame, {width} &times; {height} px"
    slices = coords.box_pixel_slices(box, (height, width))
    if slices is None:
        return f"whole frame, {width} &times; {height} px"
    rows, cols = slices
    return (
        f"box x {cols.start}&ndash;{cols.stop - 1}, y {rows.start}&ndash;{rows.stop - 1} "
        f"({cols.stop - cols.start} &times; {rows.stop - rows.start} px)"
    )


class StatisticsPane(pn.viewable.Viewer):
    """Mean, median, mode, min, max, std, MAD and pixel count of the box (or frame)."""

    session = param.ClassSelector(class_=Session)

    def __init__(self, **params):
        super().__init__(**params)
        self._clear = pn.widgets.Button(
            label="Clear box", color="light", width=90, height=30, margin=(0, 5),
        )
        self._clear.on_click(lambda event: setattr(self.session, "box", None))
        self._table = pn.pane.HTML(
            pn.bind(self._render, self.session.param.image, self.session.param.box),
            sizing_mode="stretch_width", margin=(0, 10), stylesheets=[STYLESHEET],
        )

    def statistics(self) -> dict | None:
        """``components.core.statistics`` of the region (None without a frame)."""
        if self.session.image is None:
            return None
        return compute.region_statistics(self.session.image, self.session.region_box())

    def _render(self, image, box) -> str:
        stats = self.statistics()
        if stats is None:
            return '<div class="qa-hint">No frame yet.</div>'
        meta = html.escape(json.dumps({
            "subregion": stats["subregion"],
            **{key: stats[key] for key, _ in STAT_ROWS},
            "nonfinite": stats["nonfinite"],
        }), quote=True)
        cells = [
            f'<th>{label}</th><td class="qa-stat-{key}">{format_number(stats[key])}</td>'
            for key, label in STAT_ROWS
        ]
        if stats.get("nonfinite"):
            cells.append(f"<th>Non-finite</th><td>{format_number(stats['nonfinite'])}</td>")
        # Two statistics per row keeps the pane short.
        rows = "".join(
            f"<tr>{''.join(cells[i:i + 2])}</tr>" for i in range(0, len(cells), 2)
        )
        return (
            f'<div class="qa-region">{region_label(self.session)}</div>'
            f'<table class="qa-table qa-stats" data-stats="{meta}">{rows}</table>'
        )

    def __panel__(self):
        return pn.Column(
            pn.Row(
                pn.pane.HTML(stylesheets=[STYLESHEET], object="<h3>Statistics</h3>", margin=(0, 10)),
                pn.layout.HSpacer(), self._clear, sizing_mode="stretch_width",
            ),
            self._table,
            sizing_mode="stretch_width",
            css_classes=["qa-card"],
        )
