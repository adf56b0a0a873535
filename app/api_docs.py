"""The API's OpenAPI 3.1 document and its HTML rendering, built from the handlers' models.

Pydantic's JSON Schemas (draft 2020-12) are valid OpenAPI 3.1 schemas, so the
request models the handlers validate with become ``components.schemas`` as
they are. The /docs page is rendered here on the server from that document:
plain HTML and inline CSS, nothing loaded from anywhere else.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from app.api_models import (
    ErrorResponse,
    HeaderQuery,
    HeaderResponse,
    HealthResponse,
    HistogramRequest,
    HistogramResponse,
    ImageResponse,
    ImagesQuery,
    ImagesResponse,
    LineProfileDisplayRequest,
    LineProfileRequest,
    LineProfileResponse,
    QualityRequest,
    QualityResponse,
    SessionQualityQuery,
    SessionQualityResponse,
    StatisticsRequest,
    StatisticsResponse,
)

from app.sky_models import FocusQuery, FocusResponse

__all__ = ["Endpoint", "ENDPOINTS", "openapi_document", "render_docs_html"]

#: Placeholder replaced by the server's base URL in curl examples.
BASE = "{base}"


@dataclass(frozen=True)
class Endpoint:
    """One documented operation."""

    path: str
    method: str
    summary: str
    description: str
    response: type[BaseModel]
    example: str
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    #: Statuses other than 200; frame readers can answer all of FRAME_ERRORS.
    errors: tuple[int, ...] = (400, 404, 413, 500, 502)
    png: bool = False
    #: Also answers text/csv (format=csv).
    csv: bool = False
    tags: tuple[str, ...] = field(default=("analysis",))


ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint(
        "/lineprofile", "post", "Line profile",
        "Pixel values sampled along a line between two relative points (bilinear "
        "interpolation, samples at most one pixel apart, both ends included).",
        LineProfileResponse,
        f"curl -X POST {BASE}/lineprofile -H 'Content-Type: application/json' \\\n"
        "  -d '{\"full_filename\": \"frame.fits\", \"s3_directory\": \"data\", "
        "\"start\": {\"x\": 0.1, \"y\": 0.2}, \"end\": {\"x\": 0.9, \"y\": 0.8}}'",
        body=LineProfileRequest,
    ),
    Endpoint(
        "/statistics", "post", "Statistics of a frame or sub-region",
        "Median, mean, mode, min, max, standard deviation and median absolute deviation of "
        "the finite pixels of the frame, or of a rectangle given by two corners in any order.",
        StatisticsResponse,
        f"curl -X POST {BASE}/statistics -H 'Content-Type: application/json' \\\n"
        "  -d '{\"full_filename\": \"frame.fits\", \"s3_directory\": \"data\", "
        "\"subregion\": {\"x0\": 0.25, \"y0\": 0.25, \"x1\": 0.75, \"y1\": 0.75}}'",
        body=StatisticsRequest,
    ),
    Endpoint(
        "/histogram-clipped", "post", "Clipped histogram",
        "The original service's histogram of the pixels between two symmetric percentiles "
        "(numpy.percentile; whole-width bins from the lower one, fewer than 5000; the last bin "
        "closed), and the median, mean, mode, min and max of every pixel of the frame or sub-region.",
        HistogramResponse,
        f"curl -X POST {BASE}/histogram-clipped -H 'Content-Type: application/json' \\\n"
        "  -d '{\"full_filename\": \"frame.fits\", \"s3_directory\": \"data\", \"clip_percent\": 0.001}'",
        body=HistogramRequest,
    ),
    Endpoint(
        "/lineprofiledisplay", "get", "Line drawn on the frame (PNG)",
        "The frame (zscale stretch, strided to at most 800 pixels a side) with the line "
        "drawn on it and the profile plotted below. JSON with a data URL by default; raw "
        "image/png with format=png or an Accept header preferring image/png.",
        ImageResponse,
        f"curl -o profile.png '{BASE}/lineprofiledisplay?filename=frame.fits&s3_directory=data"
        "&x0=0.1&y0=0.2&x1=0.9&y1=0.8&format=png'",
        query=LineProfileDisplayRequest,
        png=True,
    ),
    Endpoint(
        "/lineprofiledisplay", "post", "Line drawn on the frame (PNG), fields as JSON",
        "Same as GET, with the fields in a JSON body.",
        ImageResponse,
        f"curl -X POST {BASE}/lineprofiledisplay -H 'Content-Type: application/json' \\\n"
        "  -d '{\"filename\": \"frame.fits\", \"s3_directory\": \"data\", "
        "\"x0\": 0.1, \"y0\": 0.2, \"x1\": 0.9, \"y1\": 0.8}'",
        body=LineProfileDisplayRequest,
        png=True,
    ),
    Endpoint(
        "/images", "get", "List frames",
        "Frames of a folder (or of every allowed folder), newest first.",
        ImagesResponse,
        f"curl '{BASE}/images?s3_directory=data&limit=20'",
        query=ImagesQuery,
        errors=(400, 404, 500, 502),
        tags=("frames",),
    ),
    Endpoint(
        "/header", "get", "FITS header",
        "The header of the HDU the frame's image is read from, as ordered cards and as a dict.",
        HeaderResponse,
        f"curl '{BASE}/header?full_filename=frame.fits&s3_directory=data'",
        query=HeaderQuery,
        tags=("frames",),
    ),
    Endpoint(
        "/quality", "post", "Quality of a frame",
        "Sky background and noise, saturated fraction, star count, FWHM (pixels and arcsec), "
        "half-flux radius and elongation of the frame or of a sub-region, each with a verdict, "
        "and the detected stars.",
        QualityResponse,
        f"curl -X POST {BASE}/quality -H 'Content-Type: application/json' \\\n"
        "  -d '{\"full_filename\": \"frame.fits\", \"s3_directory\": \"data\"}'",
        body=QualityRequest,
        tags=("quality",),
    ),
    Endpoint(
        "/session/quality", "get", "Quality history of the session",
        "The metrics recorded for every frame of the session, in observing order; CSV with format=csv.",
        SessionQualityResponse,
        f"curl '{BASE}/session/quality?s3_directory=data&format=csv'",
        query=SessionQualityQuery,
        errors=(400, 500),
        csv=True,
        tags=("quality",),
    ),
    Endpoint(
        "/session/focus", "get", "Focus curve of the session",
        "FWHM against focuser position (FOCPOS, or QA_FOCUS_KEYWORD) of the session's frames and "
        "the hyperbola fitted to them: best focus with its uncertainty; fit is null with too few points.",
        FocusResponse,
        f"curl '{BASE}/session/focus?s3_directory=data'",
        query=FocusQuery,
        errors=(400, 500),
        tags=("quality",),
    ),
    Endpoint(
        "/health", "get", "Liveness",
        "Answers 200 while the server is up; reads nothing.",
        HealthResponse,
        f"curl {BASE}/health",
        errors=(),
        tags=("service",),
    ),
)

_ERROR_TEXT = {
    400: "Client mistake: invalid JSON, a missing or invalid field, an unknown s3_directory, "
    "an unsafe key, a file that is not an image...",
    404: "The frame does not exist: 'Image does not exist: <s3_directory>/<full_filename>.'",
    413: "The frame decodes to more bytes than QA_MAX_FRAME_BYTES allows (refused before decoding).",
    500: "A bug in the server (reported as JSON too).",
    502: "The frame store (S3) is unreachable or failed: 'storage error: ...'; retry later.",
}

_REF = "#/components/schemas/{model}"


@lru_cache(maxsize=1)
def _schemas() -> tuple[dict[str, dict], dict[tuple[type, str], dict]]:
    """Component schemas of every model, and the reference of each (model, mode)."""
    inputs = {e.body for e in ENDPOINTS if e.body is not None}
    outputs = {e.response for e in ENDPOINTS} | {ErrorResponse}
    models = [(model, "validation") for model in sorted(inputs, key=lambda m: m.__name__)]
    models += [(model, "serialization") for model in sorted(outputs, key=lambda m: m.__name__)]
    references, top = models_json_schema(models, ref_template=_REF)
    return top.get("$defs", {}), references


def _parameters(model: type[BaseModel]) -> list[dict]:
    """Query parameters from a model's fields (the same model the handler validates with)."""
    schema = model.model_json_schema(mode="validation", ref_template=_REF)
    required = set(schema.get("required", []))
    parameters = []
    for name, prop in schema.get("properties", {}).items():
        prop = dict(prop)
        description = prop.pop("description", "")
        prop.pop("title", None)
        parameters.append(
            {"name": name, "in": "query", "required": name in required,
             "description": description, "schema": prop}
        )
    return parameters


def _operation(endpoint: Endpoint, base_url: str) -> dict:
    _, references = _schemas()
    ok_content = {"application/json": {"schema": references[(endpoint.response, "serialization")]}}
    if endpoint.png:
        ok_content["image/png"] = {"schema": {"type": "string", "contentMediaType": "image/png"}}
    if endpoint.csv:
        ok_content["text/csv"] = {"schema": {"type": "string", "contentMediaType": "text/csv"}}
    responses = {"200": {"description": endpoint.response.__doc__.strip(), "content": ok_content}}
    error_schema = references[(ErrorResponse, "serialization")]
    for status in endpoint.errors:
        responses[str(status)] = {
            "description": _ERROR_TEXT[status],
            "content": {"application/json": {"schema": error_schema}},
        }
    operation: dict[str, Any] = {
        "operationId": f"{endpoint.method}_{endpoint.path.strip('/').replace('-', '_')}",
        "summary": endpoint.summary,
        "description": endpoint.description,
        "tags": list(endpoint.tags),
        "responses": responses,
        "x-codeSamples": [{"lang": "Shell", "label": "curl", "source": endpoint.example.replace(BASE, base_url)}],
    }
    if endpoint.query is not None:
        operation["parameters"] = _parameters(endpoint.query)
    if endpoint.body is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": references[(endpoint.body, "validation")]}},
        }
    return operation


@lru_cache(maxsize=16)
def _document(base_url: str) -> str:
    schemas, _ = _schemas()
    paths: dict[str, dict] = {}
    for endpoint in ENDPOINTS:
        paths.setdefault(endpoint.path, {})[endpoint.method] = _operation(endpoint, base_url)
    document = {
        "openapi": "3.1.0",
        "info": {
            "title": "QuickAnalysis API",
            "version": "1.0",
            "description": (
                "Quick-look analysis of telescope frames, compatible with Photon Ranch's "
                "quick-analysis service. Coordinates are relative: (x, y) in [0, 1], x along "
                "columns, y along rows, y = 0 the top row. Unknown fields are ignored. Errors "
                "answer {\"success\": false, \"message\": ...}. NaN and inf never appear: they "
                "are null."
            ),
        },
        "servers": [{"url": base_url}],
        "paths": paths,
        "components": {"schemas": schemas},
    }
    return json.dumps(document)


def openapi_document(base_url: str = "http://localhost:5006") -> dict:
    """The OpenAPI 3.1 document, with ``base_url`` as server and in the curl examples."""
    return json.loads(_document(base_url))


# ------------------------------------------------------------------ HTML

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#1d2330;background:#f6f7f9}
main{max-width:960px;margin:0 auto;padding:24px}
h1{margin:0 0 4px}h2{margin-top:40px;border-bottom:1px solid #d6dae1;padding-bottom:4px}
section.op{background:#fff;border:1px solid #d6dae1;border-radius:6px;padding:12px 18px;margin:16px 0}
.method{display:inline-block;min-width:52px;text-align:center;font-weight:700;color:#fff;border-radius:4px;padding:2px 6px;margin-right:8px}
.get{background:#2f7d32}.post{background:#1f5fa8}
code,pre{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:13px}
pre{background:#1d2330;color:#e8ebf0;padding:10px;border-radius:4px;overflow-x:auto}
table{border-collapse:collapse;width:100%;margin:8px 0}
th,td{border:1px solid #e1e4e9;padding:4px 8px;text-align:left;vertical-align:top;font-size:14px}
th{background:#f0f2f5}.req{color:#b3261e;font-weight:600}
nav a{margin-right:12px}
"""


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _ref_name(ref: str) -> str:
    return ref.rsplit("/", 1)[-1]


def _type_of(schema: dict) -> str:
    """A short, readable type of a JSON Schema (links to referenced components)."""
    if "$ref" in schema:
        name = _ref_name(schema["$ref"])
        return f'<a href="#schema-{_e(name)}">{_e(name)}</a>'
    if "anyOf" in schema:
        return " | ".join(_type_of(option) for option in schema["anyOf"])
    if "const" in schema:
        return f"<code>{_e(json.dumps(schema['const']))}</code>"
    if "enum" in schema:
        return " | ".join(f"<code>{_e(json.dumps(v))}</code>" for v in schema["enum"])
    kind = schema.get("type")
    if kind == "array":
        return f"array of {_type_of(schema.get('items', {}))}"
    if kind == "object" and "additionalProperties" in schema:
        return "object"
    return _e(kind or "any")


def _constraints(schema: dict) -> str:
    parts = []
    for option in schema.get("anyOf", [schema]):
        for key, label in (("minimum", ">="), ("exclusiveMinimum", ">"), ("maximum", "<="),
                           ("exclusiveMaximum", "<"), ("minLength", "length >="),
                           ("maxLength", "length <=")):
            if key in option:
                parts.append(f"{label} {option[key]}")
    if "default" in schema:
        parts.append(f"default {json.dumps(schema['default'])}")
    return _e(", ".join(parts))


def _fields_table(schema: dict) -> str:
    properties = schema.get("properties", {})
    if not properties:
        return "<p>(no fields)</p>"
    required = set(schema.get("required", []))
    rows = "".join(
        f"<tr><td><code>{_e(name)}</code>{' <span class=req>required</span>' if name in required else ''}</td>"
        f"<td>{_type_of(prop)}</td><td>{_constraints(prop)}</td><td>{_e(prop.get('description', ''))}</td></tr>"
        for name, prop in properties.items()
    )
    return f"<table><tr><th>field</th><th>type</th><th>constraints</th><th>description</th></tr>{rows}</table>"


def _parameters_table(parameters: list[dict]) -> str:
    rows = "".join(
        f"<tr><td><code>{_e(p['name'])}</code>{' <span class=req>required</span>' if p.get('required') else ''}</td>"
        f"<td>{_type_of(p['schema'])}</td><td>{_constraints(p['schema'])}</td><td>{_e(p.get('description', ''))}</td></tr>"
        for p in parameters
    )
    return f"<table><tr><th>parameter</th><th>type</th><th>constraints</th><th>description</th></tr>{rows}</table>"


def render_docs_html(document: dict) -> str:
    """A self-contained HTML page describing every operation and schema of ``document``."""
    info = document["info"]
    schemas = document.get("components", {}).get("schemas", {})
    out = [
        "<!DOCTYPE html><html lang=en><head><meta charset=utf-8>",
        f"<title>{_e(info['title'])}</title><style>{_CSS}</style></head><body><main>",
        f"<h1>{_e(info['title'])} <small>{_e(info['version'])}</small></h1>",
        f"<p>{_e(info.get('description', ''))}</p>",
        '<nav><a href="/openapi.json">openapi.json</a><a href="#schemas">schemas</a></nav>',
        "<h2>Endpoints</h2>",
    ]
    for path, operations in document["paths"].items():
        for method, op in operations.items():
            anchor = _e(op.get("operationId", f"{method}{path}"))
            out.append(f'<section class=op id="{anchor}">')
            out.append(
                f"<h3><span class='method {_e(method)}'>{_e(method.upper())}</span><code>{_e(path)}</code>"
                f" &mdash; {_e(op.get('summary', ''))}</h3>"
            )
            out.append(f"<p>{_e(op.get('description', ''))}</p>")
            if op.get("parameters"):
                out.append("<h4>Query parameters</h4>" + _parameters_table(op["parameters"]))
            body = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
            if body:
                name = _ref_name(body["$ref"])
                out.append(f"<h4>JSON body: {_type_of(body)}</h4>")
                out.append(_fields_table(schemas.get(name, {})))
                out.append("<p>Unknown fields are accepted and ignored.</p>")
            out.append("<h4>Responses</h4><table><tr><th>status</th><th>content</th><th>description</th></tr>")
            for status, response in op.get("responses", {}).items():
                content = ", ".join(
                    f"{_e(media)}: {_type_of(entry.get('schema', {}))}"
                    for media, entry in response.get("content", {}).items()
                )
                out.append(f"<tr><td>{_e(status)}</td><td>{content}</td><td>{_e(response.get('description', ''))}</td></tr>")
            out.append("</table>")
            for sample in op.get("x-codeSamples", []):
                out.append(f"<h4>Example</h4><pre>{_e(sample['source'])}</pre>")
            out.append("</section>")
    out.append('<h2 id="schemas">Schemas</h2>')
    for name, schema in schemas.items():
        out.append(f'<section class=op id="schema-{_e(name)}"><h3>{_e(name)}</h3>')
        out.append(f"<p>{_e(schema.get('description', ''))}</p>{_fields_table(schema)}</section>")
    out.append("</main></body></html>")
    return "".join(out)
