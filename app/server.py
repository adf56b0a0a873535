"""One Panel/Tornado server for the dashboard and the REST API."""

from __future__ import annotations

import logging
import threading

import panel as pn

from app.settings import Settings, set_settings

__all__ = ["serve", "warm_up"]

log = logging.getLogger("quickanalysis")


def warm_up() -> None:
    """Compile the numba and datashader kernels before the first observer arrives."""
    from app.warmup import warm_up as _warm_up

    _warm_up()


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
    from app.main import create_app
    from app.state import get_quality_service, get_store

    settings.root.mkdir(parents=True, exist_ok=True)
    get_store()
    if settings.quality:
        get_quality_service()
    camera = None
    if settings.demo and not settings.s3_bucket:
        from components.sources.camera import SimulatedCamera

        camera = SimulatedCamera(
            settings.root / "data",
            interval=settings.demo_interval,
            max_frames=settings.demo_max_frames,
        )
        camera.start()
    threading.Thread(target=warm_up, name="warm-up", daemon=True).start()
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
