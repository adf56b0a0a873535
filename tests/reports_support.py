"""Helpers of the reports tests: a real SMTP server (aiosmtpd), an /events reader, synthetic nights."""

from __future__ import annotations

import email
import email.policy
import json
import socket
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import requests

from components.core.synthetic import star_field, write_fits
from tests.conftest import free_port

__all__ = ["smtp_server", "EventReader", "write_frame", "night_frames", "wait_until", "NIGHT_START"]

#: The synthetic night: 2026-11-29, frames from 01:00 UTC on 2026-11-30, five minutes apart.
NIGHT_START = datetime(2026, 11, 30, 1, 0, tzinfo=timezone.utc)


class _Inbox:
    def __init__(self):
        self.messages: list[email.message.EmailMessage] = []
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self.lock:
            self.messages.append(message)
        return "250 OK"

    def received(self) -> list:
        with self.lock:
            return list(self.messages)


@pytest.fixture
def smtp_server():
    """A real SMTP server on 127.0.0.1 (aiosmtpd); yields ``(port, inbox)``."""
    from aiosmtpd.controller import Controller

    inbox = _Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield controller.port, inbox
    finally:
        controller.stop()


def wait_until(predicate, timeout: float = 90.0, what: str = "condition", interval: float = 0.2):
    """Poll ``predicate`` until it returns a true value (returned) or fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}")


class EventReader:
    """Reads a server's ``/events`` stream in a thread into ``events`` (``(topic, data)``)."""

    def __init__(self, url: str, **params):
        self.events: list[tuple[str, dict]] = []
        self.comments: list[str] = []
        self._lock = threading.Lock()
        self._response = requests.get(url + "/events", params=params, stream=True, timeout=(5, 120))
        self._response.raise_for_status()
        self.content_type = self._response.headers["Content-Type"]
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self):
        topic, data = None, []
        try:
            for line in self._response.iter_lines(decode_unicode=True):
                if line is None:
                    continue
                if line.startswith(":"):
                    with self._lock:
                        self.comments.append(line)
                elif line.startswith("event:"):
                    topic = line[6:].strip()
                elif line.startswith("data:"):
                    data.append(line[5:].strip())
                elif line == "" and topic is not None:
                    with self._lock:
                        self.events.append((topic, json.loads("\n".join(data))))
                    topic, data = None, []
        except (requests.RequestException, AttributeError, ValueError):
            pass  # closed

    def of(self, topic: str) -> list[dict]:
        with self._lock:
            return [data for name, data in self.events if name == topic]

    def close(self):
        # response.close() would wait for the reading thread's next line (up to a
        # keep-alive period): shut the socket down under it instead.
        try:
            self._response.raw._fp.fp.raw._sock.shutdown(socket.SHUT_RDWR)
        except (AttributeError, OSError):
            pass
        self._thread.join(timeout=5)
        self._response.close()


def write_frame(root: Path, folder: str, index: int, fwhm: float = 3.0, n_stars: int = 60,
                start: datetime = NIGHT_START, name: str = "f") -> str:
    """One synthetic frame observed ``index`` * 5 minutes after ``start``; returns its key."""
    frame = star_field(shape=(256, 320), n_stars=n_stars, fwhm=fwhm, seed=index + 7,
                       date_obs=start + timedelta(minutes=5 * index))
    path = root / folder / f"{name}{index:03d}.fits"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_fits(frame, path)
    return f"{folder}/{path.name}"


def night_frames() -> list[dict]:
    """A night with a bad-seeing streak (4 frames) and a cloudy spell (2 frames)."""
    good = dict(fwhm=3.0, n_stars=60)
    return [good, good, *[dict(fwhm=8.0, n_stars=60)] * 4, good, good,
            *[dict(fwhm=3.0, n_stars=3)] * 2, good, good]
