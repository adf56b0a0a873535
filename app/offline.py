"""Keep every Panel stylesheet on the server's own ``/static`` (no request leaves 127.0.0.1).

Panel rewrites a stylesheet's URL for the document it belongs to
(``panel.io.resources.patch_stylesheet(stylesheet, dist_url)``), with
``dist_url`` taken from ``doc._template_variables["dist_url"]``. That variable
is only set when the page's HTML is rendered, and a model updated while it is
detached (``model.document is None``: e.g. a pane's old model re-rendered from
a session callback) has no document at all: Panel then falls back to
``CDN_DIST`` and rewrites the URL to ``https://cdn.holoviz.org/...``. The
stylesheet objects are shared through the document's cache
(``state._stylesheets[doc]``), so one such update moves the ``loading.css`` /
theme stylesheets of every model of the page to the CDN, which the browser
then requests. The sky panes (compare, regions) update widgets from session
callbacks often enough to hit this race; the dashboard before them rarely did.

Workaround for holoviz/panel#7073 (stylings loaded from the CDN when the
server is offline; the fallback to ``CDN_DIST`` in
``Reactive._get_properties`` / ``Design._apply_params`` is the cause here):
while Panel serves its resources itself (``use_cdn()`` false, the default
for ``pn.serve``), a ``CDN_DIST`` fallback is read as the local dist path.
"""

from __future__ import annotations

import functools

__all__ = ["keep_stylesheets_local"]


def keep_stylesheets_local() -> None:
    """Make Panel's CDN fallback for stylesheet URLs the server's local dist path (idempotent)."""
    import panel.io.resources as resources
    import panel.reactive as reactive

    original = resources.patch_stylesheet
    if getattr(original, "_qa_local", False):
        return

    @functools.wraps(original)
    def patch_stylesheet(stylesheet, dist_url):
        if dist_url == resources.CDN_DIST and not resources.use_cdn():
            dist_url = resources.get_dist_path(cdn=False)
        return original(stylesheet, dist_url)

    patch_stylesheet._qa_local = True
    # theme/base.py imports it from the module at call time; reactive.py bound the name at import.
    resources.patch_stylesheet = patch_stylesheet
    reactive.patch_stylesheet = patch_stylesheet
