"""GET /session/focus: the session's focus curve (FWHM against focuser position) and its fit.

Registered by one line in :func:`app.api.api_patterns`; follows the
:class:`app.api.ApiHandler` conventions (JSON answers, 4xx for bad input).
"""

from __future__ import annotations

from app.api import ApiHandler, _iso, _quality_service, json_endpoint
from app.sky_models import FocusQuery
from components.core.focus import fit_focus

__all__ = ["FocusHandler", "session_focus"]


def session_focus(directory: str | None, last: int | None = None) -> dict:
    """Points (frames with a focuser position and a FWHM) and the hyperbola fitted to them."""
    points = [
        {"key": row["key"], "focus": row["focus"], "fwhm_px": row["fwhm_px"], "observed": _iso(row["observed"])}
        for row in _quality_service().history.rows(directory)
        if row.get("focus") is not None and row.get("fwhm_px") is not None
    ]
    if last is not None:
        points = points[-last:]
    fit = fit_focus([p["focus"] for p in points], [p["fwhm_px"] for p in points])
    return {"success": True, "points": points, "fit": fit.to_dict() if fit is not None else None}


class FocusHandler(ApiHandler):
    """GET /session/focus?s3_directory=: FWHM against focuser position, with the best focus."""

    @json_endpoint
    async def get(self) -> None:
        query = FocusQuery.model_validate(self.query())
        self.send_json(await self.compute(session_focus, query.s3_directory, query.last))

