"""The process-wide event bus: "frame K, version V, arrived / was measured / raised an alarm".

One :class:`EventBus` per process (:func:`bus`). Producers (the frame feed, the
quality service, alarms, reports, jobs) :meth:`~EventBus.publish` an
:class:`Event`; consumers (dashboard sessions, the ``/events`` stream, alarm
rules, reports) :meth:`~EventBus.subscribe` a callback. Callbacks run in the
publisher's thread and must return quickly (hand heavy work to an executor);
one that raises is logged and never stops the others.

Topics in use: ``frame`` (``{"event": "added"|"changed"|"removed", "key",
"version", "directory", ...}``), ``quality`` (a frame's quality was recorded),
``alarm`` (raised or cleared), ``report`` (a night report was written),
``job`` (a job changed state or progress), ``storage`` (the source became
unreachable or reachable again).
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

__all__ = ["Event", "EventBus", "bus"]

log = logging.getLogger("quickanalysis.events")

_sequence = itertools.count(1)


@dataclass(frozen=True)
class Event:
    """One thing that happened: ``topic`` and JSON-ready ``data``."""

    topic: str
    data: dict[str, Any]
    time: float = field(default_factory=time.time)
    id: int = field(default_factory=lambda: next(_sequence))


class EventBus:
    """Thread-safe publish/subscribe by topic (``None`` subscribes to every topic).

    Examples
    --------
    >>> events = EventBus()
    >>> seen = []
    >>> unsubscribe = events.subscribe(seen.append, "frame")
    >>> _ = events.publish("frame", {"key": "data/a.fits"})
    >>> seen[0].data["key"]
    'data/a.fits'
    >>> unsubscribe()
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._subscribers: list[tuple[str | None, Callable[[Event], None]]] = []

    def subscribe(self, callback: Callable[[Event], None], topic: str | None = None) -> Callable[[], None]:
        """Call ``callback(event)`` for every event of ``topic``; returns the unsubscribe function."""
        entry = (topic, callback)
        with self._lock:
            self._subscribers.append(entry)

        def unsubscribe() -> None:
            with self._lock:
                if entry in self._subscribers:
                    self._subscribers.remove(entry)

        return unsubscribe

    def publish(self, topic: str, data: dict[str, Any]) -> Event:
        """Deliver an event to the subscribers of its topic, in this thread."""
        event = Event(topic, dict(data))
        with self._lock:
            targets = [cb for wanted, cb in self._subscribers if wanted is None or wanted == topic]
        for callback in targets:
            try:
                callback(event)
            except Exception:  # one broken subscriber must not silence the others
                log.exception("subscriber of %r failed", topic)
        return event

    def subscriber_count(self) -> int:
        with self._lock:
            return len(self._subscribers)


_bus = EventBus()


def bus() -> EventBus:
    """The event bus of this process."""
    return _bus
