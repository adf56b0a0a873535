"""The cards of a FITS header, read once for the header pane and the REST API's ``/header``.

Real headers carry cards astropy cannot parse (a bad value, an unterminated
string). Such a card is kept, verbatim, rather than dropped or "fixed":
astropy's ``Card.image`` rewrites an unparsable card the first time it is read,
so the text shown would no longer be what the file holds.

Pure astropy: nothing here knows where the header came from.
"""

from __future__ import annotations

import math
import warnings
from typing import Any, NamedTuple

__all__ = ["HeaderCard", "header_cards", "header_mapping"]

# Keywords whose cards accumulate rather than replace each other.
_COMMENTARY = ("COMMENT", "HISTORY")


class HeaderCard(NamedTuple):
    """One card: ``text`` is its 80 characters (right-stripped) as shown in a header listing."""

    keyword: str
    value: Any
    comment: str
    text: str


def _plain(value: Any) -> Any:
    """A card value as None, bool, int, float or str (astropy's Undefined is None)."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if type(value).__name__ == "Undefined":  # astropy.io.fits.card.Undefined: "KEY =" and no value
        return None
    if hasattr(value, "item") and not isinstance(value, complex):  # numpy scalars
        value = value.item()
    if isinstance(value, (bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    return str(value)  # complex values and anything unusual: as astropy prints them


def _verbatim(card) -> str:
    # The 80 characters as read from the file (None for a card built in memory);
    # read before .value or .image, which may rewrite an unparsable card.
    raw = getattr(card, "_image", None)
    if raw:
        return str(raw)
    try:
        return str(card.image)
    except Exception:  # nothing better to show than the keyword
        return str(card.keyword)


def _card(card) -> HeaderCard:
    raw = _verbatim(card)
    try:
        keyword = str(card.keyword)
        value, comment = _plain(card.value), str(card.comment or "")
        text = str(card.image)
    except Exception:  # an unparsable card: its raw 80 characters, split where FITS puts the fields
        return HeaderCard(raw[:8].strip(), raw[10:].strip(), "", raw.rstrip())
    return HeaderCard(keyword, value, comment, text.rstrip())


def header_cards(header) -> list[HeaderCard]:
    """Every card of ``header``, in order (an empty list for None).

    Examples
    --------
    >>> from astropy.io import fits
    >>> [tuple(c[:3]) for c in header_cards(fits.Header({"OBJECT": "M31"}))]
    [('OBJECT', 'M31', '')]
    """
    if header is None:
        return []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # real headers carry non-standard cards
        return [_card(card) for card in header.cards]


def header_mapping(cards: list[HeaderCard]) -> dict[str, Any]:
    """Keyword -> value of ``cards``: COMMENT and HISTORY as lists of strings, the last card wins on repeats.

    Blank keywords (separator cards) are left out.

    Examples
    --------
    >>> header_mapping([HeaderCard("A", 1, "", ""), HeaderCard("A", 2, "", ""), HeaderCard("HISTORY", "x", "", "")])
    {'A': 2, 'HISTORY': ['x']}
    """
    mapping: dict[str, Any] = {}
    for card in cards:
        if card.keyword in _COMMENTARY:
            mapping.setdefault(card.keyword, []).append("" if card.value is None else str(card.value))
        elif card.keyword:
            mapping[card.keyword] = card.value
    return mapping
