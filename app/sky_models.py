"""Request and response models of the sky endpoints (GET /session/focus).

Kept apart from :mod:`app.sky_api` so :mod:`app.api_docs` can document them
without importing the handlers (which import the API module, which imports the docs).
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from app.api_models import Name, _Request

__all__ = ["FocusQuery", "FocusPoint", "FocusFitModel", "FocusResponse"]


class FocusQuery(_Request):
    """Query of GET /session/focus."""

    s3_directory: Name | None = Field(
        default=None, description="Only frames under this folder; absent means every frame recorded."
    )
    last: int | None = Field(
        default=None, ge=1, le=100_000,
        description="Only the last N frames with a focuser position (a focus run); absent means the session.",
    )


class FocusPoint(BaseModel):
    """One frame of the focus curve."""

    key: str = Field(description="The frame's key ('<s3_directory>/<full_filename>').")
    focus: float = Field(description="Focuser position (header keyword QA_FOCUS_KEYWORD, default FOCPOS).")
    fwhm_px: float = Field(description="Median FWHM of the frame's stars, in pixels.")
    observed: str = Field(description="UTC time of the exposure (ISO 8601).")


class FocusFitModel(BaseModel):
    """The hyperbola fwhm = sqrt(fwhm_min_px**2 + slope**2 * (focus - best_focus)**2)."""

    best_focus: float = Field(description="Focuser position of the smallest FWHM.")
    best_focus_error: float = Field(description="One-sigma uncertainty of best_focus (fit covariance).")
    fwhm_min_px: float = Field(description="FWHM at best focus, in pixels.")
    slope: float = Field(description="FWHM pixels per focuser step far from focus.")
    points: int = Field(description="Frames the fit used.")


class FocusResponse(BaseModel):
    """Answer of GET /session/focus."""

    success: bool
    points: list[FocusPoint] = Field(description="Frames with a focuser position and a FWHM, in observing order.")
    fit: FocusFitModel | None = Field(description="The fitted focus curve; null with too few points (fewer than 5).")
