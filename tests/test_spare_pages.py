"""Spare pages (app/spare_pages.py): the next page's session is built before it is asked for.

A real Panel server in this process, over real HTTP; the app records every
session it builds and the query arguments it was built with.
"""

from __future__ import annotations

import asyncio
import re
import threading
import time

import panel as pn
import pytest
import requests
from bokeh.util.token import get_session_id, get_token_payload

from app.spare_pages import SparePages, install, spare_hooks
from tests.conftest import free_port

QUIET = 0.5


def _token(page: str) -> str:
    match = re.search(r'"token"\s*:\s*"([^"]+)"', page)
    assert match, "the page carries no session token"
    return match.group(1)


def _wait(condition, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


@pytest.fixture
def served():
    """``served(addresses) -> (url, pages, built)``: a server whose pages go through SparePages.

    Each entry of ``built`` is a session's query arguments, plus ``"spare": True`` and
    ``"handed out": True`` once :func:`spare_hooks` has called back for it.
    """
    started = []

    def start(addresses: int):
        built: list[dict] = []

        def app():
            arguments = {name: [v.decode() for v in values] for name, values in pn.state.session_args.items()}
            built.append(arguments)
            def kept():
                arguments["spare"] = True
                return arguments.get("folder") != ["broken"]  # as a page showing an error refuses

            def count(moment):
                arguments[moment] = arguments.get(moment, 0) + 1

            spare_hooks(pn.state.curdoc, built=kept, handed_out=lambda: arguments.update({"handed out": True}),
                        left=lambda: count("left"), returned=lambda: count("returned"))
            return pn.pane.Markdown(f"session {len(built)}")

        pages = SparePages(addresses=addresses, quiet=QUIET)
        uninstall = install(pages)
        port = free_port()
        try:
            server = pn.serve({"/": app}, port=port, address="127.0.0.1", show=False, threaded=True,
                              websocket_origin=[f"127.0.0.1:{port}"])
            started.append((server, pages))
            url = f"http://127.0.0.1:{port}"
            _wait(lambda: _get(url + "/favicon.ico") is not None)  # any answer: the server is up
        finally:
            uninstall()  # its routes are built (in its thread): later servers get Panel's own handlers
        return url, pages, built

    yield start
    for server, pages in started:
        server.stop()


def _get(url, **kwargs):
    try:
        return requests.get(url, timeout=30, **kwargs)
    except requests.RequestException:
        return None


def test_the_next_page_of_an_address_is_its_spare_session(served):
    url, pages, built = served(addresses=2)
    first = _get(url + "/?folder=a", headers={"Cookie": "observer=first"})
    assert first.status_code == 200 and len(built) == 1
    spare = _wait(lambda: pages.ready())
    assert len(built) == 2 and built[1] == {"folder": ["a"], "spare": True}  # built with no page asked for

    second = _get(url + "/?folder=a")
    assert second.status_code == 200
    token = _token(second.text)
    assert get_session_id(token) == next(iter(spare.values()))  # the page is the spare
    assert get_session_id(token) != get_session_id(_token(first.text))
    assert len(built) == 2 and pages.handed_out == 1
    assert built[1].get("handed out") and not built[0].get("handed out") and not built[0].get("spare")
    payload = get_token_payload(token)
    # The first observer's cookie and headers do not travel to the next one.
    assert payload["cookies"] == {} and payload["headers"] == {}
    assert "observer=first" not in repr(payload)


def test_another_address_is_built_on_request_and_gets_its_own_spare(served):
    url, pages, built = served(addresses=2)
    _get(url + "/?folder=a")
    _wait(lambda: len(pages.ready()) == 1)
    other = _get(url + "/?folder=b")
    assert other.status_code == 200
    assert built[-1] == {"folder": ["b"]} and pages.handed_out == 0  # not folder a's spare
    _wait(lambda: len(pages.ready()) == 2)
    assert sorted(arguments for _, arguments in pages.ready()) == [
        (("folder", (b"a",)),), (("folder", (b"b",)),),
    ]
    # A third address: the one opened longest ago gives up its spare.
    _get(url + "/?folder=c")
    _wait(lambda: {arguments for _, arguments in pages.ready()} == {
        (("folder", (b"b",)),), (("folder", (b"c",)),),
    })


def test_no_spare_is_built_when_spares_are_off(served):
    url, pages, built = served(addresses=0)
    assert _get(url + "/?folder=a").status_code == 200
    time.sleep(QUIET * 6)
    assert len(built) == 1 and pages.ready() == {}


def test_a_spare_that_refuses_is_not_kept_and_the_next_page_is_built_on_request(served):
    url, pages, built = served(addresses=2)
    assert _get(url + "/?folder=broken").status_code == 200
    _wait(lambda: len(built) >= 2)  # built in the quiet moment...
    time.sleep(QUIET * 6)
    assert pages.ready() == {} and len(built) == 2  # ...not kept, and not built again and again
    assert _get(url + "/?folder=broken").status_code == 200
    assert pages.handed_out == 0 and not any(b.get("handed out") for b in built)


class _PageSocket:
    """A page's WebSocket, opened as BokehJS opens it (subprotocol ``bokeh`` and the token),
    on a loop of its own; open once Bokeh's ACK has come (the connection then holds the session)."""

    def __init__(self, url: str, token: str):
        from tornado.websocket import websocket_connect

        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

        async def open_socket():
            socket = await websocket_connect(url.replace("http", "ws", 1) + "/ws", subprotocols=["bokeh", token])
            return socket, await socket.read_message()

        self.socket, ack = asyncio.run_coroutine_threadsafe(open_socket(), self.loop).result(30)
        assert ack is not None, "no ACK: the server did not take the connection"

    def close(self):
        self.loop.call_soon_threadsafe(self.socket.close)
        time.sleep(0.2)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


def test_a_session_hears_when_its_last_page_leaves_and_when_one_comes_back(served):
    url, pages, built = served(addresses=0)
    page = _get(url + "/?folder=a")
    token = _token(page.text)
    first = _PageSocket(url, token)
    _wait(lambda: built[0].get("returned") == 1)
    assert "left" not in built[0]
    first.close()
    _wait(lambda: built[0].get("left") == 1)
    # Two pages on one session: when one of them closes, the session still has a page.
    second, third = _PageSocket(url, token), _PageSocket(url, token)
    _wait(lambda: built[0].get("returned") == 3)
    second.close()
    time.sleep(0.5)
    assert built[0]["left"] == 1
    third.close()
    _wait(lambda: built[0].get("left") == 2)
