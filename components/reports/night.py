"""The night of a frame: the local date at the start of the night.

The date of DATE-OBS shifted back by 12 hours (so a night's frames before and
after midnight share one date), in the dataset's time zone, or DAY-OBS when the
header has it. In UTC this is exactly "the date of DATE-OBS minus 12 h".
"""

from __future__ import annotations

import re
from datetime import date, datetime, time as dtime, timedelta, timezone, tzinfo

__all__ = ["night_of", "night_of_header", "night_bounds", "parse_night"]

_SHIFT = timedelta(hours=12)


def night_of(observed: float, zone: tzinfo = timezone.utc) -> str:
    """``YYYY-MM-DD`` of the night holding the epoch time ``observed``, in ``zone``.

    Examples
    --------
    >>> night_of(datetime(2026, 11, 30, 3, 0, tzinfo=timezone.utc).timestamp())
    '2026-11-29'
    >>> night_of(datetime(2026, 11, 29, 20, 0, tzinfo=timezone.utc).timestamp())
    '2026-11-29'
    """
    local = datetime.fromtimestamp(float(observed), zone)
    return (local - _SHIFT).date().isoformat()


def night_of_header(header, zone: tzinfo = timezone.utc) -> str | None:
    """The night of a FITS header: DAY-OBS when present, else from DATE-OBS; None without either."""
    if header is None:
        return None
    day = header.get("DAY-OBS")
    if day:
        text = str(day).strip()
        match = re.fullmatch(r"(\d{4})-?(\d{2})-?(\d{2})", text)
        if match:
            try:
                return date(*map(int, match.groups())).isoformat()
            except ValueError:
                pass
    value = header.get("DATE-OBS")
    if value:
        try:
            when = datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
        except ValueError:
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)  # FITS DATE-OBS is UTC
        return night_of(when.timestamp(), zone)
    return None


def parse_night(text: str) -> str:
    """Check a ``YYYY-MM-DD`` night (raises ValueError)."""
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", text or ""):
        raise ValueError(f"a night is YYYY-MM-DD, got {text!r}")
    try:
        return date.fromisoformat(text).isoformat()
    except ValueError as error:
        raise ValueError(f"invalid night {text!r}: {error}") from None


def night_bounds(night: str, zone: tzinfo = timezone.utc) -> tuple[float, float]:
    """Epoch seconds ``[start, end)`` of a night: local noon of its date to the next local noon."""
    day = date.fromisoformat(parse_night(night))
    start = datetime.combine(day, dtime(12, 0), zone)
    end = datetime.combine(day + timedelta(days=1), dtime(12, 0), zone)
    return start.timestamp(), end.timestamp()
