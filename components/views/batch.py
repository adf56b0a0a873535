"""Changes to a served page in one batch, walking the document's models only if needed.

Bokeh keeps the set of a document's models by walking every model from the
roots (``DocumentModelManager.recompute``). On this dashboard's page (about
500 models) one walk takes 0.06-0.23 s of the server's loop, measured. Bokeh
walks after every change that replaces a model reference, unless the document
is frozen; a freeze (``doc.models.freeze()``: ``pn.io.hold(..., freeze=True)``,
HoloViews' plot updates, Panel's model updates) then walks once when it ends,
*whether or not* anything changed the model graph. Most of this dashboard's
updates change values only (a text, a data source's columns, a colour
mapper's limits): with a new frame shown in two tabs, five of those walks were
made for nothing (1 s of the loop).

* :func:`lazy_freezes`, called once by the app, gives every freeze the rule:
  it notes whether Bokeh asked for a walk (``Model.trigger`` calls
  ``doc.models.invalidate()`` exactly when a value or reference it replaces
  holds a model; adding or removing a root changes the roots) and walks once
  at the end only then.
* :func:`held` (the dashboard's batches) and :func:`models_frozen` freeze
  that way, and close a nested freeze an error left open.
* :func:`adopt_stylesheets` keeps Panel from swapping a page's stylesheet
  models on the first update of each pane (a graph change, and so a walk).

Upstream: bokeh/bokeh#11707 (open: the walk scales with the whole document).
"""

from __future__ import annotations

import contextlib

import panel as pn

__all__ = ["adopt_stylesheets", "held", "lazy_freezes", "models_frozen"]


@contextlib.contextmanager
def models_frozen(doc):
    """Freeze ``doc``'s model graph; recompute it at the end only if a change invalidated it.

    Bokeh's own freeze with :func:`lazy_freezes`' rule (installed on first
    use), plus a repair: a nested freeze that an error left open (Bokeh's and
    Panel's do not unfreeze on an error) is closed too, so the document walks
    again. Nested freezes (Panel's ``freeze_doc``, HoloViews' plot updates,
    another :func:`models_frozen`) end inside this one and so never walk.

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
    lazy_freezes()
    base = models._freeze_count
    models._push_freeze()
    try:
        yield
    finally:
        models._freeze_count = base + 1
        models._pop_freeze()


def lazy_freezes() -> None:
    """Make every freeze of a document walk at its end only if the graph changed (idempotent).

    Not only this dashboard's batches: the freezes of HoloViews' plot updates
    (``hold_render``) and of Panel's model updates (``freeze_doc``) walked
    every time they ended, five to eight walks while a page connected, one per
    wheel zoom. The rule (a change that replaces a model reference, or the
    roots changing, needs a walk; nothing else does) is patched into Bokeh's
    ``DocumentModelManager``. Measured with
    one page on this 2-core machine: 14 walks in a page load, two drawn shapes
    and a new frame before, 6 after; box drawn -> statistics 0.14-0.17 s before,
    0.035-0.04 s after. Upstream: bokeh/bokeh#11707.
    """
    from bokeh.document.models import DocumentModelManager as Manager

    if getattr(Manager, "_qa_lazy", False):
        return

    def _push_freeze(self):
        if self._freeze_count == 0:
            self._qa_dirty = False
            document = self._document()
            self._qa_roots = list(document.roots) if document is not None else None
        self._freeze_count += 1

    def invalidate(self):
        if self._freeze_count == 0:
            self.recompute()
        else:
            self._qa_dirty = True

    def _pop_freeze(self):
        self._freeze_count -= 1
        if self._freeze_count == 0:
            document = self._document()
            if (getattr(self, "_qa_dirty", True) or document is None
                    or list(document.roots) != getattr(self, "_qa_roots", None)):
                self.recompute()

    Manager._push_freeze, Manager._pop_freeze, Manager.invalidate = _push_freeze, _pop_freeze, invalidate
    Manager._qa_lazy = True


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
    for the document's cached ones: a new model graph (one walk of 0.06-0.2 s
    each; eight while one page showed its first frame, measured) and
    stylesheets the browser applies again. Filling the document's cache with the models
    in place ends that. Upstream: holoviz/panel#5278 ("Avoid needlessly
    updating stylesheets") fixed the other cases; this one remains in Panel 1.9.4.
    """
    from bokeh.models import ImportedStyleSheet
    from panel.io.resources import CDN_DIST, get_dist_path
    from panel.io.state import state

    if doc is None or not hasattr(doc, "models"):
        return 0
    local = get_dist_path(cdn=False)
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
