"""The header pane: the FITS header of the HDU shown, searchable."""

from __future__ import annotations

import html

import panel as pn
import param

from components.core import header as core_header
from components.views.style import STYLESHEET
from components.views.state import Session

__all__ = ["HeaderPane", "header_cards", "filter_cards"]


def header_cards(header) -> list[str]:
    """The header's cards as 80-character strings (unparsable cards verbatim).

    The cards are :func:`components.core.header.header_cards`, as ``GET /header`` lists them.
    """
    return [card.text for card in core_header.header_cards(header)]


def filter_cards(cards: list[str], query: str) -> list[str]:
    """Cards containing every word of ``query`` (case-insensitive), in header order."""
    words = [word.lower() for word in (query or "").split()]
    if not words:
        return list(cards)
    return [card for card in cards if all(word in card.lower() for word in words)]


class HeaderPane(pn.viewable.Viewer):
    """Every card of the header, filtered as the observer types."""

    session = param.ClassSelector(class_=Session)

    def __init__(self, **params):
        super().__init__(**params)
        self._search = pn.widgets.TextInput(
            placeholder="Search the header (keyword, value or comment)",
            sizing_mode="stretch_width", margin=(0, 10),
        )
        self._cards = pn.pane.HTML(
            pn.bind(self._render, self.session.param.image, self._search.param.value_input),
            sizing_mode="stretch_width", margin=(0, 10), stylesheets=[STYLESHEET],
        )

    def _render(self, image, query) -> str:
        if image is None:
            return '<div class="qa-hint">No frame yet.</div>'
        cards = header_cards(image.header)
        shown = filter_cards(cards, query)
        body = "\n".join(html.escape(card) for card in shown) or "(no card matches)"
        return (
            f'<div class="qa-hint">{len(shown)} of {len(cards)} cards (HDU {image.hdu})</div>'
            f'<pre class="qa-header">{body}</pre>'
        )

    def __panel__(self):
        return pn.Column(
            pn.pane.HTML(stylesheets=[STYLESHEET], object="<h3>FITS header</h3>", margin=(0, 10)),
            self._search,
            self._cards,
            sizing_mode="stretch_width",
            css_classes=["qa-card"],
        )
