"""The REST API, served by the dashboard's Panel/Tornado server.

Photon Ranch's web app calls these endpoints with the original service's
request and response shapes; :func:`api_patterns` returns the Tornado routes
that ``app.server.serve`` passes to ``pn.serve(extra_patterns=...)``.

Every answer is JSON (except the PNG of /lineprofiledisplay when asked for):
client mistakes answer 400, a missing frame 404, and only a bug 500, each as
``{"success": false, "message": ...}``. Frame reads, decodes and the numpy
core run in a thread pool so the dashboard's websocket never waits on them.
"""

from __future__ import annotations

import base64
import datetime as _dt
import functools
import json
import logging
import math
from typing import Any, Callable

import numpy as np
import tornado.httputil
import tornado.ioloop
import tornado.web
from pydantic import ValidationError

from app.api_docs import openapi_document, render_docs_html
from app.api_models import (
    HeaderQuery,
    HistogramRequest,
    ImagesQuery,
    LineProfileDisplayRequest,
    LineProfileRequest,
    QualityRequest,
    SessionQualityQuery,
    StatisticsRequest,
    validation_message,
)
from app.profile_png import render_line_profile_png
from app.settings import get_settings
from components.core import histogram_clipped, line_profile, statistics, subregion
from components.core.header import header_cards, header_mapping
from components.errors import ImageNotFound, InvalidRequest, QuickAnalysisError
from components.sources.base import newest_first
from components.views.compute import region_histogram, region_statistics

__all__ = [
    "api_patterns",
    "ApiHandler",
    "LineProfileHandler",
    "StatisticsHandler",
    "HistogramHandler",
    "LineProfileDisplayHandler",
    "ImagesHandler",
    "HeaderHandler",
    "HealthHandler",
    "QualityHandler",
    "SessionQualityHandler",
    "OpenApiHandler",
    "DocsHandler",
    "json_endpoint",
    "to_jsonable",
    "dumps",
    "render_line_profile_png",
]

log = logging.getLogger("quickanalysis.api")

#: Keys of /statistics ``stats``, in the original's order.
STAT_FIELDS = ("median", "mean", "mode", "min", "max", "std", "median_abs_deviation")
#: Deepest nesting accepted in a JSON body (deeper bodies are refused, never echoed).
MAX_JSON_DEPTH = 32


# ------------------------------------------------------------------ JSON


def to_jsonable(value: Any) -> Any:
    """``value`` as plain JSON types: numpy scalars/arrays unwrapped, NaN and inf as None."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        number = float(value)
        return number if math.isfinite(number) else None
    if isinstance(value, dict):
        return {str(key): to_jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(item) for item in value]
    if isinstance(value, np.ndarray):
        return to_jsonable(value.tolist())
    return str(value)


def dumps(payload: Any) -> str:
    """Strict JSON text: NaN/inf become null first, and ``allow_nan=False`` proves none is left."""
    return json.dumps(to_jsonable(payload), allow_nan=False, separators=(",", ":"))


def _finite_list(values: np.ndarray) -> list:
    """Float samples as a list with NaN/inf replaced by None (fast path for long profiles)."""
    values = np.asarray(values, dtype=np.float64)
    if np.isfinite(values).all():
        return values.tolist()
    return [item if math.isfinite(item) else None for item in values.tolist()]


def _reject_constant(name: str):
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        # json.loads turns 1e999 into inf, which could never be echoed back as JSON.
        raise ValueError(f"number {text[:32]} is out of range")
    return number


def _depth(value: Any) -> int:
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        deepest = max(deepest, depth)
        if deepest > MAX_JSON_DEPTH:
            break
        if isinstance(item, dict):
            stack.extend((child, depth + 1) for child in item.values())
        elif isinstance(item, list):
            stack.extend((child, depth + 1) for child in item)
    return deepest


def parse_json_object(raw: bytes | str) -> dict:
    """Parse a request body that must be a JSON object; raise InvalidRequest otherwise."""
    if not raw or not raw.strip():
        raise InvalidRequest("request body is empty: expected a JSON object")
    try:
        value = json.loads(raw, parse_constant=_reject_constant, parse_float=_finite_float)
    except RecursionError:
        raise InvalidRequest("invalid JSON: nested too deeply") from None
    except ValueError as error:  # JSONDecodeError, UnicodeDecodeError, huge integers
        raise InvalidRequest(f"invalid JSON: {error}") from None
    if not isinstance(value, dict):
        raise InvalidRequest(f"request body must be a JSON object, got {type(value).__name__}")
    if _depth(value) > MAX_JSON_DEPTH:
        raise InvalidRequest(f"invalid JSON: nested deeper than {MAX_JSON_DEPTH} levels")
    return value


# ------------------------------------------------------------------ frames


def _store():
    # Imported lazily so importing app.api (e.g. to build /openapi.json) needs no source.
    from app.state import get_store

    return get_store()


def load_frame(s3_directory: str, full_filename: str):
    """The decoded frame (through the shared cache); ImageNotFound carries the original's message."""
    store = _store()
    try:
        key = store.key_for(s3_directory, full_filename)
        return store.load(key)
    except ImageNotFound:
        raise ImageNotFound(f"Image does not exist: {s3_directory}/{full_filename}.") from None


def _iso(value: Any) -> str:
    if isinstance(value, _dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=_dt.timezone.utc)
        return value.astimezone(_dt.timezone.utc).isoformat()
    if isinstance(value, (int, float)):
        return _dt.datetime.fromtimestamp(value, _dt.timezone.utc).isoformat()
    return str(value)


def list_images(s3_directory: str | None, limit: int) -> list[dict]:
    """Frames of one allowed folder (or all of them), newest first."""
    allowed = list(get_settings().s3_directories)
    if s3_directory is not None and s3_directory not in allowed:
        # Worded like components.sources.frame_key's refusal of the other endpoints.
        raise InvalidRequest(f"Unknown s3_directory {s3_directory!r}; allowed: {', '.join(allowed)}")
    store = _store()
    frames = []
    for directory in [s3_directory] if s3_directory is not None else allowed:
        # A folder nobody has written to is listed empty by the sources; their
        # ImageNotFound (a missing bucket) is not swallowed here.
        infos = store.list_frames(directory)
        prefix = directory + "/"
        for info in infos:
            name = info.key[len(prefix):] if info.key.startswith(prefix) else info.name
            frames.append((info, directory, name))
    # Merging folders: the sources' own ordering, by the FrameInfo of each row.
    frames = newest_first(frames, info=lambda item: item[0])
    return [
        {
            "full_filename": name,
            "s3_directory": directory,
            "size": int(info.size),
            "modified": _iso(info.modified),
        }
        for info, directory, name in frames[:limit]
    ]


def header_payload(query: HeaderQuery) -> dict:
    """The FITS header of the HDU a frame's image came from, as cards and as a dict."""
    image = load_frame(query.s3_directory, query.full_filename)
    # The header pane's cards too (components.core.header): one reading of a header.
    cards = header_cards(image.header)
    return {
        "success": True,
        "full_filename": query.full_filename,
        "s3_directory": query.s3_directory,
        "hdu": int(image.hdu),
        "shape": [int(n) for n in np.shape(image.data)],
        "header": header_mapping(cards),
        "cards": [{"keyword": c.keyword, "value": c.value, "comment": c.comment} for c in cards],
    }


# ------------------------------------------------------------------ plot


def _prefers_png(accept: str) -> bool:
    """Whether an Accept header ranks image/png above application/json (``*/*`` counts for neither)."""
    png, json_ = 0.0, 0.0
    for part in accept.split(","):
        media, _, parameters = part.partition(";")
        media = media.strip().lower()
        quality = 1.0
        for parameter in parameters.split(";"):
            name, _, value = parameter.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if not math.isfinite(quality):
            quality = 0.0
        if media in ("image/png", "image/*"):
            png = max(png, quality)
        elif media in ("application/json", "application/*"):
            json_ = max(json_, quality)
    return png > json_


# ------------------------------------------------------------------ handlers


def json_endpoint(method: Callable) -> Callable:
    """Answer every exception raised by a handler method as JSON with the right status."""

    @functools.wraps(method)
    async def wrapper(self: "ApiHandler", *args, **kwargs):
        try:
            await method(self, *args, **kwargs)
        except Exception as error:  # noqa: BLE001 - every error must become JSON
            self.fail(error)

    return wrapper


class ApiHandler(tornado.web.RequestHandler):
    """Base of the API handlers: CORS, JSON bodies and answers, error mapping."""

    #: Methods announced in the CORS preflight answer.
    cors_methods: tuple[str, ...] = ("GET",)

    def set_default_headers(self) -> None:
        # Called again by send_error after clear(), so errors carry CORS headers too.
        origins = get_settings().cors_origins
        origin = self.request.headers.get("Origin")
        if "*" in origins:
            self.set_header("Access-Control-Allow-Origin", "*")
        elif origin and origin in origins:
            self.set_header("Access-Control-Allow-Origin", origin)
            self.add_header("Vary", "Origin")

    def check_xsrf_cookie(self) -> None:
        # The API authenticates nobody through cookies, and other sites' pages
        # are meant to call it (CORS decides which may read the answers).
        return None

    def options(self, *args, **kwargs) -> None:
        """CORS preflight."""
        self.set_header("Access-Control-Allow-Methods", ", ".join((*self.cors_methods, "OPTIONS")))
        requested = self.request.headers.get("Access-Control-Request-Headers")
        self.set_header("Access-Control-Allow-Headers", requested or "Content-Type")
        self.set_header("Access-Control-Max-Age", "86400")
        self.set_status(204)
        self.finish()

    # -- input

    def json_body(self) -> dict:
        """The body as a JSON object (or the original's form field ``data`` holding one)."""
        try:
            return parse_json_object(self.request.body)
        except InvalidRequest:
            # The original's docs show `curl -F 'data={...}'`: accept that form too.
            form = self.request.body_arguments.get("data")
            if form:
                return parse_json_object(form[-1])
            raise

    def query(self) -> dict[str, str]:
        """Query parameters, last value wins (tornado answers 400 on invalid UTF-8)."""
        return {name: self.get_query_argument(name) for name in self.request.query_arguments}

    async def compute(self, function: Callable, *args) -> Any:
        """Run CPU-bound work (reads, decodes, numpy) off the IOLoop."""
        return await tornado.ioloop.IOLoop.current().run_in_executor(
            None, functools.partial(function, *args)
        )

    # -- output

    def send_json(self, payload: Any, status: int = 200) -> None:
        text = dumps(payload)
        self.set_status(status)
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        self.finish(text)

    def fail(self, error: BaseException) -> None:
        """Answer ``error``: its status for QuickAnalysisError, 400 for validation, else 500."""
        if self._finished:
            return
        if isinstance(error, QuickAnalysisError):
            status, message = error.status, str(error)
        elif isinstance(error, ValidationError):
            status, message = 400, validation_message(error)
        elif isinstance(error, tornado.web.HTTPError):
            status, message = error.status_code, _http_error_message(error)
        elif _is_storage_error(error):
            status, message = 502, f"storage error: {error}"
            log.warning("storage error on %s %s: %s", self.request.method, self.request.uri, error)
        else:
            status, message = 500, f"internal error: {type(error).__name__}: {error}"
            log.error(
                "bug answering %s %s", self.request.method, self.request.uri,
                exc_info=(type(error), error, error.__traceback__),
            )
        self.clear()
        self.send_json({"success": False, "message": message}, status)

    def write_error(self, status_code: int, **kwargs) -> None:
        # Errors tornado raises itself (405 for an unsupported method, 400 for a
        # malformed request) are answered as JSON too.
        message = self._reason
        exc_info = kwargs.get("exc_info")
        if exc_info and isinstance(exc_info[1], tornado.web.HTTPError):
            message = _http_error_message(exc_info[1]) or message
        elif status_code >= 500 and exc_info:
            message = f"internal error: {exc_info[0].__name__}: {exc_info[1]}"
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        self.finish(dumps({"success": False, "message": message}))


def _http_error_message(error: tornado.web.HTTPError) -> str:
    if error.log_message:
        return error.log_message % error.args if error.args else error.log_message
    return error.reason or tornado.httputil.responses.get(error.status_code, "error")


def _is_storage_error(error: BaseException) -> bool:
    # S3 being unreachable is neither the client's mistake nor a bug: 502.
    try:
        from botocore.exceptions import BotoCoreError, ClientError
    except ImportError:  # pragma: no cover - boto3 is a dependency
        return False
    return isinstance(error, (BotoCoreError, ClientError))


class HealthHandler(ApiHandler):
    """GET /health: answers while the server is up, touching nothing else."""

    async def get(self) -> None:
        self.send_json({"success": True, "status": "ok"})


class LineProfileHandler(ApiHandler):
    """POST /lineprofile."""

    cors_methods = ("POST",)

    @json_endpoint
    async def post(self) -> None:
        request = LineProfileRequest.model_validate(self.json_body())
        self.send_json(await self.compute(self._profile, request))

    @staticmethod
    def _profile(request: LineProfileRequest) -> dict:
        image = load_frame(request.s3_directory, request.full_filename)
        start = (request.start.x, request.start.y)
        end = (request.end.x, request.end.y)
        profile = line_profile(image.data, start, end)
        return {
            "success": True,
            "data": _finite_list(profile.values),
            "start": list(start),
            "end": list(end),
        }


def _region(request: StatisticsRequest) -> np.ndarray:
    image = load_frame(request.s3_directory, request.full_filename)
    if request.subregion is None:
        return image.data
    return subregion(image.data, *request.subregion.corners)


def _statistics(request: StatisticsRequest) -> dict:
    if request.subregion is None:
        # Whole frame: the numbers every dashboard tab shows, computed once per decoded frame
        # (the quality service prepares them as soon as the feed announces the frame).
        return region_statistics(load_frame(request.s3_directory, request.full_filename))
    return statistics(_region(request))


def _histogram(request: HistogramRequest) -> dict:
    if request.subregion is None:  # once per decoded frame and clip, shared with the dashboard
        image = load_frame(request.s3_directory, request.full_filename)
        return region_histogram(image, None, request.clip_percent)
    # The original answers no clipped statistics: skip their passes.
    return histogram_clipped(_region(request), request.clip_percent, with_clipped_stats=False)


class StatisticsHandler(ApiHandler):
    """POST /statistics."""

    cors_methods = ("POST",)

    @json_endpoint
    async def post(self) -> None:
        body = self.json_body()
        request = StatisticsRequest.model_validate(body)
        stats = await self.compute(_statistics, request)
        self.send_json(
            {"success": True, "stats": {key: stats[key] for key in STAT_FIELDS}, "params": body}
        )


class HistogramHandler(ApiHandler):
    """POST /histogram-clipped."""

    cors_methods = ("POST",)

    @json_endpoint
    async def post(self) -> None:
        body = self.json_body()
        request = HistogramRequest.model_validate(body)
        result = await self.compute(_histogram, request)
        histogram = {"edges": result["edges"], "counts": result["counts"], "stats": result["stats"]}
        self.send_json({"success": True, "histogram": histogram, "params": body})


class LineProfileDisplayHandler(ApiHandler):
    """GET (query) or POST (JSON) /lineprofiledisplay: the line drawn on the frame, as PNG."""

    cors_methods = ("GET", "POST")

    @json_endpoint
    async def get(self) -> None:
        await self._answer(self.query())

    @json_endpoint
    async def post(self) -> None:
        # format may come in the query string of a POST too.
        body = self.json_body()
        if "format" not in body and "format" in self.request.query_arguments:
            body = {**body, "format": self.get_query_argument("format")}
        await self._answer(body)

    async def _answer(self, fields: dict) -> None:
        request = LineProfileDisplayRequest.model_validate(fields)
        png = await self.compute(self._render, request)
        wants_png = request.format == "png" or (
            request.format is None and _prefers_png(self.request.headers.get("Accept", ""))
        )
        if wants_png:
            self.set_header("Content-Type", "image/png")
            self.finish(png)
        else:
            encoded = base64.b64encode(png).decode("ascii")
            self.send_json({"success": True, "image": f"data:image/png;base64,{encoded}"})

    @staticmethod
    def _render(request: LineProfileDisplayRequest) -> bytes:
        image = load_frame(request.s3_directory, request.filename)
        title = f"{request.s3_directory}/{request.filename}"
        return render_line_profile_png(
            image.data, (request.x0, request.y0), (request.x1, request.y1), title
        )


class ImagesHandler(ApiHandler):
    """GET /images: frames newest first."""

    @json_endpoint
    async def get(self) -> None:
        query = ImagesQuery.model_validate(self.query())
        images = await self.compute(list_images, query.s3_directory, query.limit)
        self.send_json({"success": True, "images": images})


class HeaderHandler(ApiHandler):
    """GET /header: the FITS header of a frame."""

    @json_endpoint
    async def get(self) -> None:
        query = HeaderQuery.model_validate(self.query())
        self.send_json(await self.compute(header_payload, query))


def _quality_service():
    from app.state import get_quality_service

    return get_quality_service()


class QualityHandler(ApiHandler):
    """POST /quality: quality metrics of a frame or a sub-region."""

    cors_methods = ("POST",)

    @json_endpoint
    async def post(self) -> None:
        body = self.json_body()
        request = QualityRequest.model_validate(body)
        result = await self.compute(self._measure, request)
        self.send_json({"success": True, "quality": result, "params": body})

    @staticmethod
    def _measure(request: QualityRequest) -> dict:
        # Reading the frame first gives the original's 404 message for a missing one.
        load_frame(request.s3_directory, request.full_filename)
        key = _store().key_for(request.s3_directory, request.full_filename)
        region = request.subregion.corners if request.subregion is not None else None
        result = dict(_quality_service().measure(key, region=region))
        for internal in ("key", "version", "hdu"):
            result.pop(internal, None)
        return result


#: Columns of GET /session/quality?format=csv, verdicts last.
SESSION_CSV_COLUMNS = (
    "key", "s3_directory", "full_filename", "observed", "background", "background_rms",
    "saturated_fraction", "star_count", "fwhm_px", "fwhm_arcsec", "hfr_px", "elongation",
    "pixel_scale", "verdict_fwhm", "verdict_elongation", "verdict_saturation",
    "verdict_star_count", "verdict_background", "error",
)


def session_quality(directory: str | None) -> list[dict]:
    """The recorded quality of the session's frames, in observing order."""
    allowed = set(get_settings().s3_directories)
    frames = []
    for row in _quality_service().history.rows(directory):
        folder, _, rest = row["key"].partition("/")
        in_api = folder in allowed and rest
        frames.append({
            "key": row["key"],
            "s3_directory": folder if in_api else None,
            "full_filename": rest if in_api else row["key"],
            "observed": _iso(row["observed"]),
            **{name: row[name] for name in (
                "background", "background_rms", "saturated_fraction", "star_count", "fwhm_px",
                "fwhm_arcsec", "hfr_px", "elongation", "pixel_scale", "verdicts", "error")},
        })
    return frames


def session_quality_csv(frames: list[dict]) -> str:
    import csv
    import io

    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(SESSION_CSV_COLUMNS)
    for frame in frames:
        verdicts = frame["verdicts"] or {}
        row = {**frame, **{f"verdict_{name}": value for name, value in verdicts.items()}}
        writer.writerow(["" if row.get(column) is None else row[column] for column in SESSION_CSV_COLUMNS])
    return out.getvalue()


class SessionQualityHandler(ApiHandler):
    """GET /session/quality: the session's quality history (JSON, or CSV with format=csv)."""

    @json_endpoint
    async def get(self) -> None:
        query = SessionQualityQuery.model_validate(self.query())
        frames = await self.compute(session_quality, query.s3_directory)
        if query.format == "csv":
            self.set_header("Content-Type", "text/csv; charset=UTF-8")
            self.set_header("Content-Disposition", 'attachment; filename="session-quality.csv"')
            self.finish(session_quality_csv(frames))
            return
        self.send_json({"success": True, "frames": frames})


def _base_url(handler: tornado.web.RequestHandler) -> str:
    return f"{handler.request.protocol}://{handler.request.host}"


class OpenApiHandler(ApiHandler):
    """GET /openapi.json: the OpenAPI 3.1 document built from the request/response models."""

    @json_endpoint
    async def get(self) -> None:
        self.send_json(openapi_document(_base_url(self)))


class DocsHandler(ApiHandler):
    """GET /docs: the OpenAPI document as a self-contained HTML page (no external scripts)."""

    @json_endpoint
    async def get(self) -> None:
        html = render_docs_html(openapi_document(_base_url(self)))
        self.set_header("Content-Type", "text/html; charset=UTF-8")
        # Nothing on the page may load from elsewhere; the CSP makes that a rule.
        self.set_header(
            "Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
        )
        self.finish(html)


def api_patterns() -> list[tuple]:
    """Tornado routes of the REST API (a trailing slash is tolerated)."""
    from app.jobs_api import jobs_patterns
    from app.reports_api import reports_patterns  # reports, alarms, /events (issue 10)
    from app.sky_api import FocusHandler  # it imports this module: import it once this one is loaded

    return [*reports_patterns(), *jobs_patterns(),
        (r"/health/?", HealthHandler),
        (r"/lineprofile/?", LineProfileHandler),
        (r"/statistics/?", StatisticsHandler),
        (r"/histogram-clipped/?", HistogramHandler),
        (r"/lineprofiledisplay/?", LineProfileDisplayHandler),
        (r"/images/?", ImagesHandler),
        (r"/header/?", HeaderHandler),
        (r"/quality/?", QualityHandler),
        (r"/session/quality/?", SessionQualityHandler),
        (r"/session/focus/?", FocusHandler),
        (r"/openapi\.json", OpenApiHandler),
        (r"/docs/?", DocsHandler),
    ]
