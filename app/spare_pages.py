"""Spare pages: the next observer's session is built before the page is asked for.

Building one observer's session (the dashboard's Python objects, its Bokeh
models) takes about 2 s of the server's event loop on a 2-core machine, and
Bokeh builds it while ``GET /`` waits. :class:`SparePages` builds one more
session for each address recently opened (path and query arguments), when the
server has been quiet for a while, and the next ``GET`` of that address is
answered with it at once. Like Voilà's pre-heated kernels, or Panel's own
``--reuse-sessions warm`` (which starts the next session only when its page is
asked for, so the page still waits for it).

A spare session is an ordinary Bokeh server session that nobody has connected
to yet. Its expiration is blocked until it is handed out; its token carries
the query arguments of its address but no request headers or cookies of the
observer whose visit asked for it. Through :func:`spare_hooks` the app lets
it doze (no following of new frames, which would cost the open pages a
rasterization each) and wake when it is handed out.

The same hooks let a session whose last page has closed doze too (``left``):
Bokeh discards it only after its unused lifetime (15 to 32 s by default), and
meanwhile it would render every new frame for nobody, while the observer who
reloaded waits for the new page. It wakes should a page connect to it again
(``returned``).

A spare is built only after ``quiet`` seconds without a page served, a message
from a page, or a new frame. Building it holds up the pages in use for as
long as a ``GET /`` built on request does, so it waits for a moment when
nobody is waiting for the server.

:func:`install` puts the two handlers in Bokeh's per-application routes, as
Panel itself does for its own handlers (``panel/io/server.py``).
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from typing import Callable

from bokeh.server.urls import per_app_patterns
from bokeh.util.token import generate_jwt_token, generate_session_id, get_token_payload
from panel.io.server import DocHandler, WSHandler
from tornado.ioloop import IOLoop, PeriodicCallback

__all__ = ["SparePages", "install", "spare_hooks"]

log = logging.getLogger("quickanalysis")

#: Seconds a spare waits, unused, before it is replaced by a fresh one.
SPARE_LIFETIME = 6 * 3600
#: Seconds a handed-out session stays protected from Bokeh's clean-up while its page connects.
CONNECT_GRACE = 60


_hooks: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()  # document -> {moment: [callbacks]}


def spare_hooks(document, built: Callable[[], None], handed_out: Callable[[], None],
                left: Callable[[], None] | None = None, returned: Callable[[], None] | None = None) -> None:
    """Callbacks (on the server's loop) for the session of ``document``.

    Should it be a spare: ``built`` once it is built as one (returning False: do
    not keep it, e.g. it shows an error), ``handed_out`` when it answers a
    request. A spare without hooks is not kept. Whatever it is: ``left`` each
    time its last page closes, ``returned`` each time a page connects to it.
    """
    if document is not None:
        _hooks[document] = {"built": [built], "handed_out": [handed_out],
                            "left": [left] if left else [], "returned": [returned] if returned else []}


def _run_hooks(document, moment: str, once: bool = True) -> bool:
    """Run the ``moment`` callbacks of ``document``; False if there were none or one refused."""
    hooks = _hooks.get(document)
    if hooks is None:
        return False  # the app registered nothing: it did not finish building the page
    keep = True
    for callback in (hooks.pop(moment, ()) if once else list(hooks.get(moment, ()))):
        try:
            keep = callback() is not False and keep
        except Exception:
            log.exception("spare page: a %s callback failed", moment)
            keep = False
    return keep


def address_key(request) -> tuple:
    """What makes two page requests ask for the same session: path and query arguments."""
    arguments = tuple(sorted(
        (name, tuple(values)) for name, values in (request.arguments or {}).items()
        if not name.startswith("bokeh-")
    ))
    return request.path, arguments


class SparePages:
    """At most one spare session for each of the ``addresses`` last opened.

    Parameters
    ----------
    addresses : int
        How many distinct addresses (path and query) keep a spare; 0 turns spares off.
    quiet : float
        Seconds without a page served, a page's message or a new frame before one is built.
    """

    def __init__(self, addresses: int = 2, quiet: float = 8.0):
        self.addresses = addresses
        self.quiet = quiet
        self._wanted: dict[tuple, dict] = {}  # key -> what building its spare needs, newest last
        self._spares: dict[tuple, tuple] = {}  # key -> (ServerSession, built at)
        self._building: set[tuple] = set()
        self._last_activity = time.monotonic()
        self._timer: PeriodicCallback | None = None
        self._lock = threading.Lock()
        self.handed_out = 0

    # ---------------------------------------------------------------- signals

    def activity(self, *args) -> None:
        """Something happened that a build must not hold up (any thread)."""
        self._last_activity = time.monotonic()

    def take(self, key: tuple):
        """The spare session of ``key`` (None without one), now the caller's."""
        with self._lock:
            spare = self._spares.pop(key, None)
        if spare is None:
            return None
        session = spare[0]
        expiry = get_token_payload(session.token).get("session_expiry") or 0
        # The token expires by the wall clock, the spare's age is counted on the monotonic one.
        if session.destroyed or expiry - time.time() < 2 * CONNECT_GRACE:
            session.unblock_expiration()
            return None
        self.handed_out += 1
        _run_hooks(session.document, "handed_out")
        # Until its page connects; Bokeh then keeps it as long as it is connected.
        IOLoop.current().call_later(CONNECT_GRACE, session.unblock_expiration)
        log.info("spare page handed out for %s", key[0])
        return session

    def want(self, key: tuple, handler) -> None:
        """A page of ``key`` was served: keep a spare ready for the next one."""
        if self.addresses <= 0:
            return
        request = handler.request
        # What Bokeh puts in a page's token, but no headers or cookies: the next observer
        # must not find this one's in the page.
        payload = {"headers": {}, "cookies": {}, "arguments": dict(request.arguments or {})}
        payload.update(handler.application_context.application.process_request(request))
        with self._lock:
            self._wanted.pop(key, None)
            self._wanted[key] = {
                "context": handler.application_context, "application": handler.application,
                "request": handler.request, "payload": payload,
            }
            while len(self._wanted) > self.addresses:
                old = next(iter(self._wanted))
                del self._wanted[old]
                self._discard(old)
        if self._timer is None:
            self._timer = PeriodicCallback(self._tick, 1000)
            self._timer.start()

    def ready(self) -> dict:
        """``{key: session id}`` of the spare sessions waiting to be handed out."""
        with self._lock:
            return {key: session.id for key, (session, _) in self._spares.items()}

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.stop()
            self._timer = None
        with self._lock:
            for key in list(self._spares):
                self._discard(key)

    # ---------------------------------------------------------------- building

    def _discard(self, key: tuple) -> None:
        spare = self._spares.pop(key, None)
        if spare is not None:
            spare[0].unblock_expiration()  # Bokeh's clean-up destroys it (nobody connected)

    def _tick(self) -> None:
        now = time.monotonic()
        with self._lock:
            for key, (session, built) in list(self._spares.items()):
                if now - built > SPARE_LIFETIME or session.destroyed:
                    self._discard(key)
            if self._building or now - self._last_activity < self.quiet:
                return
            missing = [key for key in reversed(self._wanted) if key not in self._spares]
            if not missing:
                return
            key = missing[0]
            self._building.add(key)
        IOLoop.current().spawn_callback(self._build, key)

    async def _build(self, key: tuple) -> None:
        try:
            wanted = self._wanted.get(key)
            if wanted is None:
                return
            application = wanted["application"]
            session_id = generate_session_id(
                secret_key=application.secret_key, signed=application.sign_sessions,
            )
            token = generate_jwt_token(
                session_id, secret_key=application.secret_key, signed=application.sign_sessions,
                expiration=SPARE_LIFETIME + 2 * CONNECT_GRACE, extra_payload=wanted["payload"],
            )
            started = time.monotonic()
            session = await wanted["context"].create_session_if_needed(session_id, wanted["request"], token)
            session.block_expiration()
            keep = _run_hooks(session.document, "built")
            with self._lock:
                if keep and key in self._wanted and key not in self._spares:
                    self._spares[key] = (session, time.monotonic())
                    session = None
            if session is not None:  # refused, or no longer wanted while it was built
                session.unblock_expiration()
                if not keep:  # not again until the address is asked for again
                    with self._lock:
                        self._wanted.pop(key, None)
                log.info("spare page for %s built and not kept", key[0])
                return
            log.info("spare page ready for %s in %.2f s", key[0], time.monotonic() - started)
        except Exception:  # a spare is an optimisation: the next page is then built as usual
            log.exception("spare page for %s not built", key)
            with self._lock:
                self._wanted.pop(key, None)
        finally:
            self._building.discard(key)
            self.activity()  # the next build waits for a quiet moment again


def install(pages: SparePages) -> Callable[[], None]:
    """Serve pages through ``pages`` (before ``pn.serve`` builds its routes).

    Returns the function that puts Panel's own handlers back (for servers started after it).
    """

    class SpareDocHandler(DocHandler):
        async def get_session(self):
            pages.activity()
            request = self.request
            if any(name.startswith("bokeh-") for name in request.arguments or {}) or \
                    "Bokeh-Session-Id" in request.headers:
                return await super().get_session()  # a given session: Bokeh's own checks
            key = address_key(request)
            session = pages.take(key)
            if session is None:
                session = await super().get_session()
            pages.want(key, self)
            return session

    class ActivityWSHandler(WSHandler):
        async def on_message(self, fragment):
            pages.activity()
            return await super().on_message(fragment)

        async def _async_open(self, token):
            await super()._async_open(token)
            connection = self.connection
            session = connection._session if connection is not None else None
            if session is not None and not session.destroyed:
                _run_hooks(session.document, "returned", once=False)

        def on_close(self):
            connection = self.connection
            session = connection._session if connection is not None else None
            super().on_close()
            if session is not None and session.connection_count == 0 and not session.destroyed:
                _run_hooks(session.document, "left", once=False)

    original = list(per_app_patterns)
    per_app_patterns[:] = [
        (pattern, ActivityWSHandler if handler is WSHandler else SpareDocHandler if handler is DocHandler else handler)
        for pattern, handler in original
    ]

    def uninstall() -> None:
        per_app_patterns[:] = original

    return uninstall
