"""Mail through a real SMTP server (aiosmtpd): delivery, retries after a failure, the alarm-mail limit; the CLI."""

import logging
import subprocess
import sys
import textwrap
import time

from components.reports.mail import Mailer, MailSettings, RateLimit, alarm_mail
from tests.conftest import PROJECT, free_port
from tests.reports_support import smtp_server, wait_until, write_frame  # noqa: F401


def test_a_message_reaches_the_server(smtp_server):  # noqa: F811
    port, inbox = smtp_server
    mailer = Mailer(MailSettings("127.0.0.1", port, sender="qa@example.org"))
    try:
        subject, body = alarm_mail({"dataset": "sim", "name": "clouds", "metric": "star_count",
                                    "frames": ["data/a.fits"], "raised": "2026-11-30T01:00:00Z"},
                                   "http://qa.example", "http://qa.example/alarms?state=raised")
        mailer.send(["observer@example.org"], subject, body)
        (message,) = wait_until(inbox.received, 30, "the message")
        assert message["Subject"] == "QuickAnalysis alarm clouds raised on sim"
        assert "http://qa.example/?image=data/a.fits" in message.get_content()
        assert mailer.send([], "nobody", "") is None
    finally:
        mailer.stop()


def test_a_failure_is_logged_and_retried_until_the_server_answers(caplog):
    port = free_port()  # nothing listens yet
    mailer = Mailer(MailSettings("127.0.0.1", port, timeout=2), attempts=6, backoff=0.5)
    from aiosmtpd.controller import Controller
    from tests.reports_support import _Inbox

    inbox = _Inbox()
    with caplog.at_level(logging.WARNING, "quickanalysis.mail"):
        mailer.send(["observer@example.org"], "late", "body")
        wait_until(lambda: any("retrying" in r.getMessage() for r in caplog.records), 30, "a failed try")
        controller = Controller(inbox, hostname="127.0.0.1", port=port)
        controller.start()
        try:
            (message,) = wait_until(inbox.received, 60, "the retried message")
            assert message["Subject"] == "late" and mailer.sent == 1 and mailer.failed == 0
        finally:
            controller.stop()
            mailer.stop()


def test_a_message_given_up_is_counted_and_the_mailer_goes_on(smtp_server, caplog):  # noqa: F811
    mailer = Mailer(MailSettings("127.0.0.1", free_port(), timeout=2), attempts=2, backoff=0.1)
    with caplog.at_level(logging.ERROR, "quickanalysis.mail"):
        mailer.send(["a@example.org"], "lost", "body")
        wait_until(lambda: mailer.failed == 1, 30, "the message given up")
    assert any("not delivered after 2 tries" in r.getMessage() for r in caplog.records)
    port, inbox = smtp_server
    mailer.settings = MailSettings("127.0.0.1", port)
    mailer.send(["a@example.org"], "next", "body")
    assert wait_until(inbox.received, 30, "the next message")[0]["Subject"] == "next"
    mailer.stop()


def test_alarm_mail_at_most_once_per_rule_per_window():
    limit = RateLimit(30 * 60)
    now = time.time()
    assert limit.allow(("sim", "clouds"), now)
    assert not limit.allow(("sim", "clouds"), now + 29 * 60)
    assert limit.allow(("sim", "bad-seeing"), now + 60)
    assert limit.allow(("sim", "clouds"), now + 30 * 60)


def test_the_report_command_builds_a_report_from_the_history(tmp_path, smtp_server):  # noqa: F811
    port, inbox = smtp_server
    from app.quality_service import QualityService
    from components.sources import FrameStore, ImageCache, LocalSource
    from components.sources.history import QualityHistory

    root = tmp_path / "root"
    keys = [write_frame(root, "data", i, fwhm=8.0 if i in (1, 2) else 3.0) for i in range(4)]
    history = QualityHistory(root / ".quickanalysis" / "quality.sqlite3")
    service = QualityService(FrameStore(LocalSource(root, settle=0), ImageCache(10**9)), history)
    for key in keys:
        service.record(key)
    history.close()
    config = tmp_path / "reports.toml"
    config.write_text(textwrap.dedent('''\
        [[dataset]]
        name = "sim"
        directory = "data"
        recipients = ["observer@example.org"]
        [[dataset.alarm]]
        name = "bad-seeing"
        metric = "fwhm_arcsec"
        above = 3.0
        consecutive = 2
        '''))
    env = {"QA_REPORTS_CONFIG": str(config), "QA_SMTP_HOST": "127.0.0.1", "QA_SMTP_PORT": str(port),
           "PATH": "/usr/bin:/bin"}
    command = [sys.executable, "-m", "app.cli", "report", "--root", str(root), "--dataset", "sim"]
    done = subprocess.run([*command, "--night", "2026-11-29", "--mail"], cwd=PROJECT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "4 frames, 1 alarms" in done.stdout
    folder = root / ".quickanalysis" / "reports" / "sim" / "2026-11-29"
    assert (folder / "index.html").is_file() and (folder / "fwhm_arcsec.png").is_file()
    (message,) = wait_until(inbox.received, 30, "the report mail")
    assert message["Subject"] == "QuickAnalysis sim night 2026-11-29: 1 alarm, 4 frames"
    for night, words in (("2026-02-30", "invalid"), ("tonight", "YYYY-MM-DD")):
        bad = subprocess.run([*command, "--night", night], cwd=PROJECT, env=env, capture_output=True, text=True,
                             timeout=300)
        assert bad.returncode == 2 and words in bad.stderr
    unknown = subprocess.run([*command[:-1], "nope", "--night", "2026-11-29"], cwd=PROJECT, env=env,
                             capture_output=True, text=True, timeout=300)
    assert unknown.returncode == 2 and "no dataset 'nope'" in unknown.stderr and "datasets: sim" in unknown.stderr
