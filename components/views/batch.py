"""One held batch of changes to a served page, walking the document's models only if needed.

Bokeh keeps the set of a document's models by walking every model from the
roots (``DocumentModelManager.recompute``). On this dashboard's page (about
580 models) one walk takes 0.09-0.23 s of the server's loop, measured. Bokeh
walks after every change that touches a model reference, unless the document
is frozen; ``doc.models.freeze()`` (what ``pn.io.hold(..., freeze=True)``
uses) then walks once when it ends, *whether or not* anything changed the
model graph. Most of this dashboard's updates change values only (a text, a
data source's columns, a colour mapper's limits): with a new frame shown in
two tabs, five of those walks were made for nothing (1 s of the loop).

:func:`held` freezes the same way, notes whether Bokeh asked for a walk
(``Model.trigger`` calls ``doc.models.invalidate()`` exactly when a value or
reference it replaces holds a model) and walks once at the end only then.
Upstream: bokeh/bokeh#11707 (open: the walk scales with the whole document).
"""

from __future__ import annotations

import contextlib
import threading

import panel as pn

__all__ = ["adopt_stylesheets", "held", "models_frozen"]


@contextlib.contextmanager
def models_frozen(doc):
    """Freeze ``doc``'s model graph; recompute it at the end only if a change invalidated it.

    Nested freezes (Panel's ``freeze_doc``, HoloViews' plot updates, another
    :func:`models_frozen`) end inside this one and so never walk.

    Examples
    --------
    >>> from bokeh.document import Document
    >>> from bokeh.models import Div, Column
    >>> doc = Document(); column = Column(); doc.add_root(column)
    >>> with models_frozen(doc):
    ...     column.children = [Div(text="new")]   # a new model: walked at the end
    >>> len(doc.models)
    2
    """
    models = getattr(doc, "models", None)
    if models is None or not hasattr(models, "_push_freeze"):
        yield
        return
    if "invalidate" in vars(models):  # nested in another models_frozen: it walks at its end
        models._push_freeze()
        try:
            yield
        finally:
            models._pop_freeze()
        return
    if threading.get_ident() != _loop_thread():
        with models.freeze():  # the note on invalidate below is not thread-safe: Bokeh's own freeze
            yield
        return
    base = models._freeze_count
    dirty = []
    try:
        models.invalidate = lambda: dirty.append(True)
        # Adding or removing a root freezes and walks without invalidating: compare them.
        roots = list(doc.roots)
        models._push_freeze()
        yield
    finally:
        vars(models).pop("invalidate", None)
        # Also after an error in a nested Panel or Bokeh freeze, which does not unfreeze.
        models._freeze_count = base
        # Inside a plain freeze (count > 0) that freeze walks at its own end.
        if base == 0 and (dirty or list(doc.roots) != roots):
            models.recompute()


def _loop_thread() -> int | None:
    """The thread of the server's event loop (Panel's), where sessions' documents are changed."""
    return pn.state._thread_id or threading.main_thread().ident


@contextlib.contextmanager
def held(doc):
    """:func:`models_frozen` (at most one walk) inside ``pn.io.hold(doc)`` (one message to the page).

    The walk comes before the message, as without a freeze: models new in the
    batch are then synced with it, not sent whole again in later messages.
    """
    with pn.io.hold(doc), models_frozen(doc):
        yield


def adopt_stylesheets(doc) -> int:
    """Let Panel reuse the stylesheet models a page was built with; returns how many it adopted.

    Panel's design applies its stylesheets to a page's models before the page
    is added to its document, from a cache of its own it then forgets
    (``Design._apply_hooks`` in ``panel/theme/base.py``, ``root.document`` is
    None). The first update of each pane then swapped three stylesheet models
    for the document's cached ones: a new model graph (one walk, 0.06-0.2 s
    each, eight of them on one page's first frame, measured) and stylesheets
    the browser applies again. Filling the document's cache with the models
    in place ends that. Upstream: holoviz/panel#5278 ("Avoid needlessly
    updating stylesheets") fixed the other cases; this one remains in Panel 1.9.4.
    """
    from bokeh.models import ImportedStyleSheet
    from panel.io.resources import CDN_DIST, get_dist_path
    from panel.io.state import state

    local = get_dist_path(cdn=False)

    if doc is None or not hasattr(doc, "models"):
        return 0
    cache = state._stylesheets.get(doc)
    if cache is None:
        state._stylesheets[doc] = cache = {}
    adopted = 0
    for model in list(doc.models):
        for sheet in getattr(model, "stylesheets", None) or ():
            if not isinstance(sheet, ImportedStyleSheet):
                continue
            url = str(sheet.url)
            # Panel looks its own sheets up by their URL before it adds "?v=<version>",
            # and the design's by their CDN URL before it makes them local.
            bare = url.split("?", 1)[0]
            keys = [url, bare] + ([CDN_DIST + bare[len(local):]] if bare.startswith(local) else [])
            for key in keys:
                if key not in cache:
                    cache[key] = sheet
                    adopted += 1
    return adopted
