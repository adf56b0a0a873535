"""One Panel/Tornado server for the dashboard and the REST API."""

from __future__ import annotations

import html
import json
import logging
import re

import panel as pn
import tornado.httputil
import tornado.web

from app.settings import Settings, set_settings

__all__ = ["serve", "tornado_settings", "JsonErrors"]

log = logging.getLogger("quickanalysis")


def _websocket_origins(settings: Settings) -> list[str]:
    origins = {f"localhost:{settings.port}", f"127.0.0.1:{settings.port}"}
    if settings.address not in ("localhost", "127.0.0.1", "0.0.0.0", "::"):
        origins.add(f"{settings.address}:{settings.port}")
    origins.update(settings.allow_websocket_origin)
    return sorted(origins)


class JsonErrors(tornado.web.OutputTransform):
    """Turn the HTML error pages of Panel's, Bokeh's and tornado's own handlers into JSON.

    Their handlers (static files, the websocket, autoload.js, the page's 405...)
    answer errors with tornado's HTML page; the API's clients expect
    ``{"success": false, "message": ...}``. Only error answers (status 400 and
    up) in HTML are rewritten, and never ``GET /`` (the dashboard page itself).
    """

    def __init__(self, request: tornado.httputil.HTTPServerRequest):
        super().__init__(request)
        self._page = request.method == "GET" and request.path == "/"
        self._rewritten = False

    def transform_first_chunk(self, status_code, headers, chunk, finishing):
        content_type = headers.get("Content-Type", "text/html")
        if status_code < 400 or self._page or not content_type.startswith("text/html"):
            return status_code, headers, chunk
        text = chunk.decode("utf-8", "replace")
        title = re.search(r"<title>\s*\d*:?\s*(.*?)</title>", text, re.S)
        message = html.unescape(title.group(1) if title else re.sub(r"<[^>]+>", " ", text)).strip()
        body = json.dumps({
            "success": False,
            "message": message or tornado.httputil.responses.get(status_code, "error"),
        }).encode()
        headers["Content-Type"] = "application/json; charset=UTF-8"
        if "Content-Length" in headers:
            headers["Content-Length"] = str(len(body))
        self._rewritten = True
        return status_code, headers, body

    def transform_chunk(self, chunk: bytes, finishing: bool) -> bytes:
        return b"" if self._rewritten else chunk


def tornado_settings() -> dict:
    """Settings of the tornado Application that Panel and Bokeh create for ``pn.serve``.

    ``pn.serve`` hands keywords it does not know to Bokeh's Server, which hands
    those to ``BokehTornado``, a ``tornado.web.Application``: a path no route
    matches (neither Panel's and Bokeh's own routes -- the page, /static, /ws,
    autoload.js, ... -- nor the API's) is answered by ``default_handler_class``,
    a JSON 404 like the API's own errors instead of tornado's HTML page; and
    :class:`JsonErrors` rewrites the HTML errors of Panel's and Bokeh's routes.
    """
    from app.api import ApiHandler

    class NotFoundHandler(ApiHandler):
        """Any unknown path, any method: JSON 404 (with the API's CORS headers)."""

        def prepare(self) -> None:
            raise tornado.web.HTTPError(404, "no such path: %s", self.request.path)

    # Bokeh sets no transforms (tornado would add gzip only with compress_response).
    return {"default_handler_class": NotFoundHandler, "transforms": [JsonErrors]}


#: The views' static files (``components/views/static``), served under this path.
STATIC_SLUG = "qa-static"


def page_scripts() -> dict:
    """Scripts every page loads after BokehJS (``pn.config.js_files``), relative to the page."""
    import hashlib

    from components.views import STATIC_DIR

    scripts = {}
    for path in sorted(STATIC_DIR.glob("*.js")):
        version = hashlib.sha256(path.read_bytes()).hexdigest()[:12]  # a new file, a new URL
        scripts[f"qa_{path.stem}"] = f"{STATIC_SLUG}/{path.name}?v={version}"
    return scripts


def serve(settings: Settings, show: bool = False) -> None:
    """Serve the dashboard at ``/`` and the REST API beside it, until interrupted."""
    set_settings(settings)
    from app.api import api_patterns
    from app.main import create_app, start_process_services

    camera = start_process_services()
    from app.spare_pages import SparePages, install
    from app.state import get_feed

    spares = SparePages(addresses=settings.spare_pages, quiet=settings.spare_quiet_seconds)
    install(spares)
    get_feed().subscribe(spares.activity)  # no spare is built while a new frame is being shown
    log.info("QuickAnalysis on http://%s:%d/ (root %s)", settings.address, settings.port, settings.root)
    from components.views import STATIC_DIR

    pn.config.js_files.update(page_scripts())
    try:
        pn.serve(
            {"/": create_app},
            port=settings.port,
            address=settings.address,
            websocket_origin=_websocket_origins(settings),
            show=show,
            title="QuickAnalysis",
            extra_patterns=api_patterns(),
            static_dirs={STATIC_SLUG: str(STATIC_DIR)},
            **tornado_settings(),
        )
    finally:
        spares.stop()
        if camera is not None:
            camera.stop()
