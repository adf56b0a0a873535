"""Panel/HoloViews views of the dashboard: one :class:`~components.views.state.Session`
per observer, rendered by the panes of :mod:`components.views.layout`.

Views never read files: they get decoded images from the process-wide frame
store, and every number they show comes from :mod:`components.core`.
"""

import holoviews as _hv
import holoviews.plotting.bokeh  # noqa: F401  (registers the Bokeh backend the views use)

if _hv.Store.current_backend != "bokeh":
    _hv.Store.set_current_backend("bokeh")

from pathlib import Path as _Path

#: Scripts the served page loads after BokehJS (see app/server.py): workarounds in the browser.
STATIC_DIR = _Path(__file__).with_name("static")
