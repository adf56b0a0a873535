"""Pydantic models of the REST API: what the handlers validate and what /openapi.json shows.

Request models ignore unknown fields, because Photon Ranch's web app sends
fields the original service never read (``site``, ``subregion.shape``...).
Response models are not used to build responses (the handlers write plain
dicts, cleaned of NaN/inf); they document the shapes and let the tests check
every answer against the same schema the OpenAPI document publishes.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from annotated_types import Ge, Le, Lt

from pydantic import (
    AliasChoices,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)
from typing import Annotated

__all__ = [
    "Coordinate",
    "Point",
    "Subregion",
    "LineProfileRequest",
    "StatisticsRequest",
    "HistogramRequest",
    "LineProfileDisplayRequest",
    "ImagesQuery",
    "HeaderQuery",
    "LineProfileResponse",
    "Statistics",
    "StatisticsResponse",
    "HistogramStats",
    "Histogram",
    "HistogramResponse",
    "ImageResponse",
    "FrameItem",
    "ImagesResponse",
    "HeaderCard",
    "HeaderResponse",
    "HealthResponse",
    "ErrorResponse",
    "validation_message",
]


def _not_boolean(value: Any) -> Any:
    # Pydantic's lax mode turns true/false into 1.0/0.0; a boolean where a
    # coordinate belongs is a client mistake, not a coordinate.
    if isinstance(value, bool):
        raise ValueError("must be a number, not a boolean")
    return value


def _clean_text(value: Any) -> Any:
    # NUL bytes and lone surrogates cannot name a file or an S3 key; refusing
    # them here keeps them from reaching the sources as OS-level errors.
    if isinstance(value, str):
        if "\x00" in value:
            raise ValueError("must not contain NUL characters")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("must be valid Unicode text") from None
    return value


#: A relative image coordinate in [0, 1] (numbers, or numeric strings from query strings).
# Constraints come before the BeforeValidator so that the validator wraps a
# constrained float and the JSON Schema shows minimum/maximum.
Coordinate = Annotated[
    float,
    Field(ge=0.0, le=1.0, allow_inf_nan=False),
    BeforeValidator(_not_boolean),
]

#: A fraction clipped at each end of a histogram, in [0, 0.5).
ClipFraction = Annotated[float, Ge(0.0), Lt(0.5), BeforeValidator(_not_boolean)]

#: A non-empty file or folder name.
Name = Annotated[str, Field(min_length=1, max_length=1024), BeforeValidator(_clean_text)]


class _Request(BaseModel):
    """Base of request models: unknown fields are accepted and ignored."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class Point(_Request):
    """A point in relative coordinates: x along columns, y along rows, (0, 0) the top-left pixel."""

    x: Coordinate = Field(description="Column, as a fraction of the width, in [0, 1].")
    y: Coordinate = Field(description="Row, as a fraction of the height, in [0, 1]; 0 is the top row.")


class Subregion(_Request):
    """A rectangle between two relative corners, given in any order.

    The original's ``shape`` field (always ``"rect"``) is accepted and ignored.
    """

    x0: Coordinate = Field(description="Column of one corner, in [0, 1].")
    y0: Coordinate = Field(description="Row of one corner, in [0, 1].")
    x1: Coordinate = Field(description="Column of the opposite corner, in [0, 1].")
    y1: Coordinate = Field(description="Row of the opposite corner, in [0, 1].")

    @model_validator(mode="after")
    def _has_area(self) -> "Subregion":
        # Checked before the frame is read, so a zero-area box costs nothing.
        if self.x0 == self.x1 or self.y0 == self.y1:
            raise ValueError(
                f"subregion has zero area (x0={self.x0}, x1={self.x1}, y0={self.y0}, y1={self.y1})"
            )
        return self

    @property
    def corners(self) -> tuple[float, float, float, float]:
        """``(x0, y0, x1, y1)`` as :func:`components.core.subregion` takes them."""
        return self.x0, self.y0, self.x1, self.y1


class _FrameRequest(_Request):
    full_filename: Name = Field(
        description="File name inside s3_directory, with its extensions (e.g. 'tst-20201112-00000058-EX01.fits.bz2')."
    )
    s3_directory: Name = Field(
        description="Folder holding the frame: one of the server's s3_directories (default 'data', 'info-images', 'allsky')."
    )


class LineProfileRequest(_FrameRequest):
    """Body of POST /lineprofile."""

    start: Point = Field(description="Start of the line.")
    end: Point = Field(description="End of the line.")


class StatisticsRequest(_FrameRequest):
    """Body of POST /statistics."""

    subregion: Subregion | None = Field(
        default=None, description="Rectangle to analyse; absent or null means the whole frame."
    )


class HistogramRequest(StatisticsRequest):
    """Body of POST /histogram-clipped."""

    clip_percent: ClipFraction | None = Field(
        default=0.001,
        description=(
            "Fraction of pixels clipped at each end, in [0, 0.5): 0.001 keeps the 0.1th to 99.9th "
            "percentile. null (or 0) means no clipping; absent means 0.001."
        ),
    )


class QualityRequest(StatisticsRequest):
    """Body of POST /quality: the frame, and optionally a sub-region."""


class SessionQualityQuery(_Request):
    """Query of GET /session/quality."""

    s3_directory: Name | None = Field(
        default=None, description="Only frames under this folder; absent means every frame recorded."
    )
    format: Literal["json", "csv"] = Field(default="json", description="'csv' answers text/csv.")


class LineProfileDisplayRequest(_Request):
    """Query of GET /lineprofiledisplay (or JSON body of POST): the line to draw on a frame."""

    filename: Name = Field(
        validation_alias=AliasChoices("filename", "full_filename"),
        description="File name inside s3_directory (full_filename is accepted too).",
    )
    s3_directory: Name = Field(description="Folder holding the frame.")
    x0: Coordinate = Field(description="Column of the line's start, in [0, 1].")
    y0: Coordinate = Field(description="Row of the line's start, in [0, 1].")
    x1: Coordinate = Field(description="Column of the line's end, in [0, 1].")
    y1: Coordinate = Field(description="Row of the line's end, in [0, 1].")
    format: Literal["json", "png"] | None = Field(
        default=None,
        description=(
            "'png' answers raw image/png; 'json' (or absent, unless the Accept header prefers "
            "image/png) answers a data URL in JSON."
        ),
    )


class ImagesQuery(_Request):
    """Query of GET /images."""

    s3_directory: Name | None = Field(
        default=None, description="Folder to list; absent lists every allowed folder."
    )
    limit: Annotated[int, Ge(1), Le(100_000), BeforeValidator(_not_boolean)] = Field(
        default=1000, description="Most frames to return (the newest)."
    )


class HeaderQuery(_FrameRequest):
    """Query of GET /header."""


# ---------------------------------------------------------------- responses


class LineProfileResponse(BaseModel):
    """Answer of POST /lineprofile."""

    success: Literal[True]
    data: list[float | None] = Field(
        description=(
            "Bilinearly interpolated values along the line, at most one pixel apart, both ends "
            "included (null where a NaN pixel contributes)."
        )
    )
    start: list[float] = Field(description="[x, y] of the start, as requested.")
    end: list[float] = Field(description="[x, y] of the end, as requested.")


class Statistics(BaseModel):
    """Statistics of the finite pixels (null when there is none)."""

    median: float | None
    mean: float | None
    mode: float | None = Field(description="Most frequent value (integer data) or centre of the fullest bin (float data).")
    min: float | None
    max: float | None
    std: float | None = Field(description="Standard deviation (ddof 0).")
    median_abs_deviation: float | None = Field(description="Median absolute deviation about the median (unscaled).")


class StatisticsResponse(BaseModel):
    """Answer of POST /statistics."""

    success: Literal[True]
    stats: Statistics
    params: dict[str, Any] = Field(description="The request body, as received.")


class HistogramStats(BaseModel):
    """Statistics of ALL the finite pixels of the frame or sub-region, as the original service's.

    The clip limits only the histogram's range, not these numbers.
    """

    median: float | None
    mean: float | None
    mode: float | None
    min: float | None
    max: float | None


class Histogram(BaseModel):
    """A histogram: ``len(counts) == len(edges) - 1`` (both empty without finite pixels)."""

    edges: list[float] = Field(
        description=(
            "Bin edges, ascending: the original's, from the lower percentile in whole-width steps "
            "(the width the smallest giving fewer than 5000 bins); the last bin includes its top edge."
        )
    )
    counts: list[int] = Field(description="Pixels per bin.")
    stats: HistogramStats


class HistogramResponse(BaseModel):
    """Answer of POST /histogram-clipped."""

    success: Literal[True]
    histogram: Histogram
    params: dict[str, Any] = Field(description="The request body, as received.")


class ImageResponse(BaseModel):
    """Answer of /lineprofiledisplay in JSON."""

    success: Literal[True]
    image: str = Field(description="The plot as a data URL: 'data:image/png;base64,...'.")


class FrameItem(BaseModel):
    """One stored frame."""

    full_filename: str = Field(description="Name to pass as full_filename (relative to s3_directory).")
    s3_directory: str = Field(description="Folder to pass as s3_directory.")
    size: int = Field(description="File size in bytes.")
    modified: str = Field(description="Last modification, ISO 8601 UTC.")


class ImagesResponse(BaseModel):
    """Answer of GET /images."""

    success: Literal[True]
    images: list[FrameItem] = Field(description="Frames, newest first.")


class HeaderCard(BaseModel):
    """One header card."""

    keyword: str
    value: Any = Field(description="String, number, boolean or null (undefined value).")
    comment: str


class HeaderResponse(BaseModel):
    """Answer of GET /header."""

    success: Literal[True]
    full_filename: str
    s3_directory: str
    hdu: int = Field(description="Index of the HDU whose image and header were used.")
    shape: list[int] = Field(description="[rows, columns] of the image.")
    header: dict[str, Any] = Field(
        description="Keyword -> value (COMMENT and HISTORY as lists of strings; the last card wins on repeats)."
    )
    cards: list[HeaderCard] = Field(description="Every card, in order.")


class Verdicts(BaseModel):
    """Verdict of each metric against the server's thresholds: ok, warn, bad or unknown."""

    fwhm: str
    elongation: str
    saturation: str
    star_count: str
    background: str


class Stars(BaseModel):
    """Detected stars (up to 2000, brightest first), in frame pixels (x column, y row, 0 = top row)."""

    x: list[float]
    y: list[float]
    flux: list[float]
    a: list[float] = Field(description="Semi-major axis, pixels.")
    b: list[float] = Field(description="Semi-minor axis, pixels.")


class QualityMetrics(BaseModel):
    """Quality of one frame (null where a metric cannot be measured)."""

    background: float | None = Field(description="Sigma-clipped sky level, ADU.")
    background_rms: float | None = Field(description="Sky noise, ADU.")
    saturation_level: float | None = Field(description="Level counted as saturated (SATURATE, setting or dtype max).")
    saturated_pixels: int
    saturated_fraction: float | None = Field(description="Saturated pixels / all pixels (null when no pixel is finite).")
    star_count: int | None = Field(description="Stars detected (null when the sky cannot be measured).")
    fwhm_px: float | None = Field(description="Median FWHM of Moffat fits to the brightest clean stars, pixels.")
    fwhm_arcsec: float | None
    hfr_px: float | None = Field(description="Median half-flux radius, pixels.")
    elongation: float | None = Field(description="Median a/b of the stars (1 is round; trailing raises it).")
    pixel_scale: float | None = Field(description="Arcsec per pixel (WCS, header or setting).")
    stars_measured: int
    verdicts: Verdicts
    stars: Stars
    observed: float | None = Field(default=None, description="DATE-OBS (or file time) as Unix seconds.")


class QualityResponse(BaseModel):
    """Answer of POST /quality."""

    success: Literal[True]
    quality: QualityMetrics
    params: dict[str, Any] = Field(description="The request body, as received.")


class RecordedQuality(BaseModel):
    """One frame of the session's quality history."""

    key: str
    s3_directory: str | None = Field(description="The frame's folder as an API s3_directory (null if outside them).")
    full_filename: str
    observed: str = Field(description="DATE-OBS, or the file time, ISO 8601 UTC.")
    background: float | None
    background_rms: float | None
    saturated_fraction: float | None
    star_count: int | None
    fwhm_px: float | None
    fwhm_arcsec: float | None
    hfr_px: float | None
    elongation: float | None
    pixel_scale: float | None
    verdicts: dict[str, str] | None
    error: str | None = Field(description="Why the frame could not be measured.")


class SessionQualityResponse(BaseModel):
    """Answer of GET /session/quality (JSON)."""

    success: Literal[True]
    frames: list[RecordedQuality] = Field(description="Frames in observing order.")


class HealthResponse(BaseModel):
    """Answer of GET /health."""

    success: Literal[True]
    status: Literal["ok"]


class ErrorResponse(BaseModel):
    """Every error: 400 client mistake, 404 missing frame or path, 405 wrong method,
    413 frame too large, 502 storage unreachable, 500 a bug."""

    success: Literal[False]
    message: str = Field(description="What is wrong, for the person who made the request.")


def _short(value: Any, limit: int = 60) -> str:
    # JSON spelling (true, null, "text") reads naturally to a JSON client.
    try:
        text = json.dumps(value)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def validation_message(error: ValidationError) -> str:
    """One readable line naming every field that failed, e.g. ``start.x: ... (got 3)``."""
    parts = []
    for item in error.errors(include_url=False):
        location = ".".join(str(part) for part in item["loc"]) or "body"
        message = item["msg"]
        if item["type"] == "missing":
            parts.append(f"{location}: missing field")
        elif item["type"] == "value_error":
            # "Value error, must be ..." -> "must be ..."; a whole object's input says nothing new.
            message = message.removeprefix("Value error, ")
            got = "" if isinstance(item["input"], (dict, list)) else f" (got {_short(item['input'])})"
            parts.append(f"{location}: {message}{got}")
        else:
            parts.append(f"{location}: {message} (got {_short(item['input'])})")
    return "invalid request: " + "; ".join(parts)
