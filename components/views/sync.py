"""Re-sending the state of plain Bokeh models once a served page is connected.

Some views feed plain Bokeh models directly (the star circles on the image,
the quality timeline's data sources), not through Panel's parameters. Panel
drops Bokeh model changes made between the moment the browser pulls the
document and the moment the page reports itself ready (it assumes the full
document is serialized afterwards; it was serialized before). A change that
lands in that window, e.g. the first frame's quality or the first reading of
the history, would never reach the page, so each such view re-sends its
models' current values from ``pn.state.onload`` (see ``Dashboard.start``).

Upstream: holoviz/panel#8692 (events left on a Document that is not
connected yet), fixed for held events by holoviz/panel#8698 in Panel 1.9.4,
which this project runs. Changes to plain Bokeh models in that window are
still lost with it: without this re-send (tried in this project with Panel
1.9.4), ``tests/test_browser_quality.py::test_clicking_a_star_shows_its_profile_and_fwhm``
waits in vain for the star circles of the first frame's measurement.
"""

from __future__ import annotations

__all__ = ["resend", "resend_pane"]


def resend(model, *names: str) -> None:
    """Send the current value of each property ``names`` of a Bokeh ``model`` to the page.

    ``Model.trigger`` emits the change event even when the value is unchanged
    (an assignment of an equal value would send nothing).
    """
    if model is None:
        return
    for name in names:
        value = getattr(model, name)
        model.trigger(name, value, value)


def resend_pane(pane, *names: str) -> None:
    """:func:`resend` the properties ``names`` of every Bokeh model a Panel pane renders."""
    for model, _ in list(getattr(pane, "_models", {}).values()):
        resend(model, *names)
