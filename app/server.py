"""One Panel/Tornado server for the dashboard and the REST API."""

from __future__ import annotations

import logging

import panel as pn

from app.settings import Settings, set_settings

__all__ = ["serve"]

log = logging.getLogger("quickanalysis")


def _websocket_origins(settings: Settings) -> list[str]:
    origins = {f"localhost:{settings.port}", f"127.0.0.1:{settings.port}"}
    if settings.address not in ("localhost", "127.0.0.1", "0.0.0.0", "::"):
        origins.add(f"{settings.address}:{settings.port}")
    origins.update(settings.allow_websocket_origin)
    return sorted(origins)


def serve(settings: Settings, show: bool = False) -> None:
    """Serve the dashboard at ``/`` and the REST API beside it, until interrupted."""
    set_settings(settings)
    from app.api import api_patterns
    from app.main import create_app, start_process_services

    camera = start_process_services()
    log.info("QuickAnalysis on http://%s:%d/ (root %s)", settings.address, settings.port, settings.root)
    try:
        pn.serve(
            {"/": create_app},
            port=settings.port,
            address=settings.address,
            websocket_origin=_websocket_origins(settings),
            show=show,
            title="QuickAnalysis",
            extra_patterns=api_patterns(),
        )
    finally:
        if camera is not None:
            camera.stop()
