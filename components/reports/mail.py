"""E-mail of reports and alarms: smtplib in a background thread, retried with backoff.

Sending never blocks nor stops the server: messages are queued, a worker
thread delivers them (STARTTLS and login when configured), a failure is logged
and retried after ``backoff * 2**attempt`` seconds, up to ``attempts`` times.
:class:`RateLimit` keeps alarm mail to at most one per rule per window.
"""

from __future__ import annotations

import logging
import queue
import smtplib
import ssl
import threading
import time
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

__all__ = ["MailSettings", "Mailer", "RateLimit", "report_mail", "alarm_mail"]

log = logging.getLogger("quickanalysis.mail")


@dataclass(frozen=True)
class MailSettings:
    host: str
    port: int = 25
    sender: str = "quickanalysis@localhost"
    starttls: bool = False
    user: str | None = None
    password: str | None = None
    timeout: float = 20.0


class Mailer:
    """Delivers :class:`EmailMessage` objects from a queue in a daemon thread.

    Parameters
    ----------
    settings : MailSettings
        The SMTP server.
    attempts : int
        Tries per message before it is given up (logged).
    backoff : float
        Seconds before the second try; doubled each time.
    """

    def __init__(self, settings: MailSettings, attempts: int = 5, backoff: float = 2.0):
        self.settings, self.attempts, self.backoff = settings, attempts, backoff
        self._queue: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="mail", daemon=True)
        self._stop = threading.Event()
        self.sent = 0
        self.failed = 0
        self._thread.start()

    def send(self, recipients: list[str], subject: str, body: str) -> EmailMessage | None:
        """Queue a plain-text message to ``recipients`` (nothing without recipients)."""
        if not recipients:
            return None
        message = EmailMessage()
        message["From"] = self.settings.sender
        message["To"] = ", ".join(recipients)
        message["Subject"] = subject
        message["Date"] = formatdate(localtime=False, usegmt=True)
        message["Message-ID"] = make_msgid(domain="quickanalysis")
        message.set_content(body)
        self._queue.put(message)
        return message

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._queue.put(None)
        self._thread.join(timeout)

    def _deliver(self, message: EmailMessage) -> None:
        s = self.settings
        with smtplib.SMTP(s.host, s.port, timeout=s.timeout) as smtp:
            if s.starttls:
                smtp.starttls(context=ssl.create_default_context())
            if s.user:
                smtp.login(s.user, s.password or "")
            smtp.send_message(message)

    def _run(self) -> None:
        while not self._stop.is_set():
            message = self._queue.get()
            if message is None:
                break
            for attempt in range(self.attempts):
                try:
                    self._deliver(message)
                    self.sent += 1
                    break
                except (OSError, smtplib.SMTPException) as error:
                    delay = self.backoff * 2**attempt
                    log.warning("mail %r to %s failed (%s); %s", message["Subject"], message["To"], error,
                                f"retrying in {delay:g} s" if attempt + 1 < self.attempts else "giving up")
                    if attempt + 1 < self.attempts and self._stop.wait(delay):
                        break
            else:
                self.failed += 1
                log.error("mail %r to %s not delivered after %d tries", message["Subject"], message["To"],
                          self.attempts)


class RateLimit:
    """At most one event per key per ``window`` seconds."""

    def __init__(self, window: float = 30 * 60):
        self.window = window
        self._last: dict = {}
        self._lock = threading.Lock()

    def allow(self, key, now: float | None = None) -> bool:
        now = time.time() if now is None else now
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self.window:
                return False
            self._last[key] = now
            return True


def report_mail(report: dict, url: str, recent_url: str) -> tuple[str, str]:
    """Subject and body of a night report's mail."""
    count = len(report["alarms"])
    subject = (f"QuickAnalysis {report['dataset']} night {report['night']}: "
               f"{count} alarm{'s' if count != 1 else ''}, {report['frames']} frames")
    lines = [f"Night report of {report['dataset']} for the night of {report['night']}: "
             f"{report['frames']} frames.", ""]
    if count:
        lines.append("Alarms:")
        for alarm in report["alarms"]:
            lines.append(f"  - {alarm['name']}: raised {alarm['raised']}, "
                         f"{'cleared ' + alarm['cleared'] if alarm['cleared'] else 'not cleared'}, "
                         f"{len(alarm['frames'])} frame(s)")
    else:
        lines.append("No alarm.")
    lines += ["", f"Report: {url}", f"Recent reports with alarms: {recent_url}", ""]
    return subject, "\n".join(lines)


def alarm_mail(event: dict, dashboard_url: str, alarms_url: str) -> tuple[str, str]:
    """Subject and body of the mail sent when an alarm is raised."""
    subject = f"QuickAnalysis alarm {event['name']} raised on {event['dataset']}"
    frames = event.get("frames") or []
    lines = [f"Alarm {event['name']} ({event.get('metric') or 'no frames'}) raised on {event['dataset']} "
             f"at {event.get('raised') or event.get('time')}.", ""]
    if frames:
        lines.append(f"Frames: {', '.join(frames[:10])}{' …' if len(frames) > 10 else ''}")
        lines.append(f"Latest in the dashboard: {dashboard_url.rstrip('/')}/?image={frames[-1]}")
    lines += [f"Alarms: {alarms_url}", ""]
    return subject, "\n".join(lines)
