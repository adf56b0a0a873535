"""A stylesheet of a model updated with no document stays on the server's /static (app/offline.py)."""

from __future__ import annotations

import panel as pn
from bokeh.models import ImportedStyleSheet
from panel.io.resources import CDN_DIST, LOCAL_DIST

import app.main  # noqa: F401 - installs the workaround, as the served app does
from panel.io import resources


def test_the_cdn_fallback_keeps_local_stylesheets_local():
    sheet = ImportedStyleSheet(url=f"{LOCAL_DIST}css/loading.css")
    resources.patch_stylesheet(sheet, CDN_DIST)  # what Panel does for a model with no document
    assert sheet.url.startswith(LOCAL_DIST) and "cdn.holoviz.org" not in sheet.url


def test_a_detached_pane_update_does_not_move_its_stylesheets_to_the_cdn():
    pane = pn.pane.HTML("<p>one</p>")
    properties = pane._get_properties(None)  # no document: Panel's fallback is CDN_DIST
    urls = [s.url for s in properties["stylesheets"] if isinstance(s, ImportedStyleSheet)]
    assert urls and not [u for u in urls if u.startswith("http")], urls
