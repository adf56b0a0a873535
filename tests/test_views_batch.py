"""components.views.batch: a held batch walks the document's models only when the graph changed."""

from __future__ import annotations

import pytest
from bokeh.document import Document
from bokeh.models import Column, Div

from components.views.batch import held, models_frozen


@pytest.fixture()
def doc():
    document = Document()
    document.add_root(Column(children=[Div(text="a")]))
    walks = []
    original = document.models.recompute

    def counted():
        walks.append(1)
        original()

    document.models.recompute = counted
    document.walks = walks
    return document


def test_changing_values_only_walks_nothing(doc):
    column = doc.roots[0]
    column.children = [*column.children, Div(text="b")]
    doc.walks.clear()
    with models_frozen(doc):
        column.children[0].text = "changed"
        column.children[1].styles = {"color": "red"}
    assert doc.walks == []
    assert column.children[0].text == "changed"


def test_a_new_model_is_walked_once_at_the_end_and_belongs_to_the_document(doc):
    column = doc.roots[0]
    new = [Div(text=str(index)) for index in range(3)]
    with models_frozen(doc):
        for div in new:
            column.children = [*column.children, div]
        assert doc.walks == []  # not during the batch
    assert doc.walks == [1]
    assert all(doc.get_model_by_id(div.id) is div for div in new)


def test_a_removed_model_leaves_the_document(doc):
    column = doc.roots[0]
    gone = column.children[0]
    with models_frozen(doc):
        column.children = []
    assert doc.walks == [1]
    assert doc.get_model_by_id(gone.id) is None


def test_a_root_added_inside_is_walked(doc):
    extra = Div(text="root")
    with models_frozen(doc):
        doc.add_root(extra)
    assert doc.get_model_by_id(extra.id) is extra


def test_nested_batches_walk_once_at_the_outermost_end(doc):
    column = doc.roots[0]
    with models_frozen(doc):
        with models_frozen(doc):
            column.children = [*column.children, Div(text="inner")]
        assert doc.walks == []
        column.children[0].text = "outer"
    assert doc.walks == [1]
    assert "invalidate" not in vars(doc.models)  # Bokeh's own method is back


def test_inside_a_plain_freeze_the_plain_freeze_walks(doc):
    column = doc.roots[0]
    div = Div(text="x")
    with doc.models.freeze():
        with models_frozen(doc):
            column.children = [*column.children, div]
        assert doc.walks == []
    assert doc.walks == [1]
    assert doc.get_model_by_id(div.id) is div


def test_a_nested_freeze_left_open_by_an_error_is_closed_at_the_end(doc):
    column = doc.roots[0]
    with pytest.raises(RuntimeError):
        with models_frozen(doc):
            doc.models._push_freeze()  # as Panel's freeze_doc leaves it when its block raises
            raise RuntimeError("boom")
    assert doc.models._freeze_count == 0
    column.children = [*column.children, Div(text="after")]
    assert doc.walks == [1]  # Bokeh walks again on its own


def test_from_another_thread_a_new_model_is_walked_too(doc):
    import threading

    column = doc.roots[0]
    seen = []

    div = Div(text="from a thread")

    def other():
        with models_frozen(doc):
            seen.append("invalidate" in vars(doc.models))
            column.children = [*column.children, div]
    thread = threading.Thread(target=other)
    thread.start()
    thread.join()
    assert seen == [False]  # no note kept on the document itself: Bokeh's own freeze...
    assert doc.models._freeze_count == 0 and doc.get_model_by_id(div.id) is div  # ...which walked


def test_an_error_inside_still_unfreezes_and_walks(doc):
    column = doc.roots[0]
    div = Div(text="x")
    with pytest.raises(RuntimeError):
        with models_frozen(doc):
            column.children = [*column.children, div]
            raise RuntimeError("boom")
    assert doc.models._freeze_count == 0
    assert doc.get_model_by_id(div.id) is div
    column.children = [*column.children, Div(text="after")]  # unfrozen: Bokeh walks at once
    assert len(doc.walks) == 2


def test_held_holds_the_documents_events_and_walks_only_if_needed(doc):
    column = doc.roots[0]
    with held(doc):
        assert doc.callbacks.hold_value == "combine"  # Panel's hold: one message to the page
        assert doc.models._freeze_count == 1
        column.children[0].text = "one"
    assert doc.callbacks.hold_value is None
    assert doc.models._freeze_count == 0
    assert doc.walks == []
    walked_while_held = []
    original = doc.models.recompute
    doc.models.recompute = lambda: (walked_while_held.append(doc.callbacks.hold_value), original())
    with held(doc):
        column.children = [*column.children, Div(text="new")]
    assert walked_while_held == ["combine"]  # walked before the held message goes out


@pytest.mark.parametrize("adopted", [False, True])
def test_a_page_keeps_the_stylesheet_models_it_was_built_with_once_adopted(adopted):
    import panel as pn
    from bokeh.models import ImportedStyleSheet
    from panel.io.state import set_curdoc, state

    from app.offline import keep_stylesheets_local
    from components.views.batch import adopt_stylesheets

    keep_stylesheets_local()  # as the server runs (its own /static)
    document = Document()
    with set_curdoc(document):
        pane = pn.pane.HTML("first", stylesheets=["qa.css"])
        model = pane.get_root(document)
        document.add_root(model)
        # As Panel's design leaves a page built before it had a document: its own stylesheet
        # models, not the document's cached ones.
        model.stylesheets = [ImportedStyleSheet(url=sheet.url) if isinstance(sheet, ImportedStyleSheet) else sheet
                             for sheet in model.stylesheets]
        state._stylesheets.pop(document, None)
        built_with = [sheet for sheet in model.stylesheets if isinstance(sheet, ImportedStyleSheet)]
        assert len(built_with) >= 3  # loading.css, the theme's, the pane's own
        if adopted:
            assert adopt_stylesheets(document) >= len(built_with)
        pane.object = "second"
        assert model.text == "second"
        kept = [any(sheet is old for sheet in model.stylesheets) for old in built_with]
    # Without adoption Panel swaps them for new models on the first update (a new model graph).
    assert all(kept) if adopted else not all(kept)


def test_with_lazy_freezes_bokehs_own_freeze_walks_only_when_the_graph_changed(doc):
    from components.views.batch import lazy_freezes

    lazy_freezes()  # what the app does at start (also for HoloViews' and Panel's freezes)
    lazy_freezes()  # idempotent
    column = doc.roots[0]
    with doc.models.freeze():
        with doc.models.freeze():
            column.children[0].text = "values only"
    assert doc.walks == []
    div = Div(text="new")
    with doc.models.freeze():
        column.children = [*column.children, div]
    assert doc.walks == [1] and doc.get_model_by_id(div.id) is div
    root = Div(text="root")
    doc.add_root(root)  # freezes inside, without invalidating: the roots differ
    assert len(doc.walks) == 2 and doc.get_model_by_id(root.id) is root
    doc.remove_root(root)
    assert len(doc.walks) == 3 and doc.get_model_by_id(root.id) is None
    column.children = [column.children[0]]  # unfrozen: Bokeh walks at once, as ever
    assert len(doc.walks) == 4 and doc.get_model_by_id(div.id) is None
