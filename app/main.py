"""The dashboard application: ``create_app()`` builds one observer's session.

``app/server.py`` serves ``{"/": create_app}`` beside the REST API; this file
also runs on its own with ``panel serve app/main.py`` (then it starts the
simulated camera once per process when ``QA_DEMO`` is on).

Query parameters (for embedding, e.g. Photon Ranch's iframe):

* ``image=<key>``: show that frame (a key relative to the root, or a file name
  inside ``dir``); following then starts off unless ``follow=1``;
* ``dir=<folder>``: list only that folder (and its subfolders);
* ``follow=0|1``: switch to every new frame as it arrives (default 1);
* ``interval``, ``stretch``, ``cmap``, ``line``, ``box``, ``view``, ``pinned``,
  ``compare``, ``ref``, ``blink``: the rest of the view (the dashboard's
  "Copy link"; see :mod:`components.views.sky`).
"""

from __future__ import annotations

import logging
import threading

import holoviews as hv
import panel as pn

from app.offline import keep_stylesheets_local
from app.settings import get_settings
from app.state import get_feed, get_quality_service, get_store
from components.errors import QuickAnalysisError
from components.sources.base import check_directory
from components.views.batch import lazy_freezes
from components.views.layout import Dashboard
from components.views.sky import link_options, query_argument as _argument
from components.views.state import Session

__all__ = ["create_app", "query_options"]

log = logging.getLogger("quickanalysis")

pn.extension(design="native", theme="dark", notifications=False)
keep_stylesheets_local()  # no stylesheet from cdn.holoviz.org (see app/offline.py)
lazy_freezes()  # Bokeh walks a page's models only when their graph changed (components/views/batch.py)
hv.extension("bokeh", logo=False)
hv.renderer("bokeh").theme = "dark_minimal"
# Canvas, not WebGL (HoloViews' default since holoviz/holoviews#5708): the plots are an
# image (not drawn by WebGL anyway) and small line and bar charts, and each paint of a
# WebGL plot is copied back onto its canvas. Measured with bench/live.py-style profiling
# of a new frame in Chromium: 1.7 s of the page's 6 s went to that copy (blit_webgl).
hv.renderer("bokeh").webgl = False

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def query_options(arguments: dict, store=None) -> dict:
    """Session parameters from the page's query arguments (``{name: [bytes]}``).

    Returns keyword arguments of :class:`Session`, plus ``error`` when an
    argument cannot be used (the page then says why and shows the rest).
    """
    options: dict = {}
    errors = []
    directory = _argument(arguments, "dir")
    if directory is not None:
        try:
            options["directory"] = check_directory(directory)
        except QuickAnalysisError as error:
            errors.append(f"dir: {error}")
    image = _argument(arguments, "image")
    if image is not None:
        key = image.strip("/")
        folder = options.get("directory", "")
        if folder and not key.startswith(folder + "/") and store is not None:
            # A file name inside ``dir`` (the original's s3_directory/full_filename).
            try:
                store.info(key)
            except QuickAnalysisError:
                key = f"{folder}/{key}"
        options["key"] = key
        options["follow"] = False
    follow = _argument(arguments, "follow")
    if follow is not None:
        if follow.lower() in _TRUE:
            options["follow"] = True
        elif follow.lower() in _FALSE:
            options["follow"] = False
        else:
            errors.append(f"follow must be 0 or 1, got {follow!r}")
    options.update(link_options(arguments, errors))  # the rest of the link (components.views.sky)
    if errors:
        options["error"] = "; ".join(errors)
    return options


def create_app():
    """The dashboard of one session (a new browser tab gets a new one)."""
    settings = get_settings()
    store = get_store()
    arguments = pn.state.session_args if pn.state.curdoc is not None else {}
    options = query_options(arguments or {}, store)
    session = Session(
        store=store, feed=get_feed(), quality_service=get_quality_service(),
        pixel_scale_fallback=settings.pixel_scale, **options,
    )
    from app.jobs_service import current_jobs_service

    dashboard = Dashboard(session=session, jobs=current_jobs_service())
    dashboard.start()
    if pn.state.curdoc is not None:
        from app.spare_pages import spare_hooks

        spare_hooks(pn.state.curdoc, built=dashboard.doze, handed_out=dashboard.wake,
                    left=dashboard.leave, returned=dashboard.come_back)
    layout = dashboard.__panel__()
    layout.dashboard = dashboard  # keep the session's objects alive with the page
    return layout


_process_lock = threading.Lock()
_camera = None
_process_started = False


def start_process_services():
    """Once per process: the store, the quality worker, the demo camera and the warm-up.

    Called by ``quickanalysis serve`` (app/server.py) and under
    ``panel serve app/main.py``. Returns the simulated camera (None when the
    demo is off or frames come from S3), for the caller to stop.
    """
    global _process_started, _camera
    with _process_lock:
        if _process_started:
            return _camera
        _process_started = True
        settings = get_settings()
        settings.root.mkdir(parents=True, exist_ok=True)
        get_store()
        get_feed()
        get_quality_service()  # subscribed to the feed; measures only when settings.quality
        from app.jobs_service import get_jobs_service

        get_jobs_service()  # the Dask client connects in the background
        if settings.demo and not settings.s3_bucket:
            from components.sources.camera import SimulatedCamera

            _camera = SimulatedCamera(
                settings.root / "data",
                interval=settings.demo_interval,
                max_frames=settings.demo_max_frames,
            )
            _camera.start()
        from app.reports_service import start_reports_service  # alarms and night reports (issue 10)

        start_reports_service(settings)
        threading.Thread(target=_warm_up, name="warm-up", daemon=True).start()
        return _camera


def _warm_up() -> None:
    from app.warmup import warm_up

    warm_up()


if __name__.startswith("bokeh"):
    start_process_services()
    create_app().servable(title="QuickAnalysis")
