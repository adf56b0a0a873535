"""What observers wait for comes first: background work yields to frames being shown.

On a 2-core server one process decodes a new frame, computes what its pages
show, renders it for each of them, and measures its quality. Measuring holds
Python's GIL for long stretches (``sep.Background`` does not release it: the
server's loop made 9 % of its progress while it ran, measured), so measured
alongside it every page showed the new frame later. Pages mark the reading
and showing of a frame as foreground work (:meth:`Foreground.busy` /
:meth:`Foreground.done`); the quality service waits for none to be in flight
(:meth:`Foreground.wait_quiet`), never longer than its ``timeout``.
"""

from __future__ import annotations

import threading
import time
import weakref

__all__ = ["Foreground", "foreground"]


class Foreground:
    """A count of foreground tasks in flight, each held by one token (held weakly: a
    token that is garbage-collected holds nothing).

    Examples
    --------
    >>> gate = Foreground()
    >>> class Page: pass
    >>> token = Page()
    >>> gate.busy(token); gate.in_flight
    1
    >>> gate.wait_quiet(timeout=0.01)
    False
    >>> gate.done(token); gate.wait_quiet(timeout=0.01)
    True
    """

    def __init__(self):
        self._holders: weakref.WeakSet = weakref.WeakSet()
        self._condition = threading.Condition()

    @property
    def in_flight(self) -> int:
        with self._condition:
            return len(self._holders)

    def busy(self, token) -> None:
        """``token`` (one frame read by a page, say) is foreground work in flight; idempotent."""
        with self._condition:
            self._holders.add(token)

    def done(self, token) -> None:
        """``token``'s foreground work is over (also when it had none)."""
        with self._condition:
            self._holders.discard(token)
            if not self._holders:
                self._condition.notify_all()

    def wait_quiet(self, timeout: float) -> bool:
        """Block until no foreground work is in flight, at most ``timeout`` seconds; whether it is quiet."""
        deadline = time.monotonic() + timeout
        with self._condition:
            while len(self._holders):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._condition.wait(min(left, 0.5))  # a token collected meanwhile notifies nobody
            return True


#: The process's gate.
foreground = Foreground()
