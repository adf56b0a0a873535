"""Night reports and alarms through a real server: the SMTP server (aiosmtpd), /events, /alarms, /reports.

A night of synthetic frames with a bad-seeing streak and a cloudy spell is
written frame by frame into a served folder (a camera would); a good night
into another dataset's folder. The end of each night (``idle_minutes`` after
its last frame, a few seconds here) builds the reports and mails them.
"""

from __future__ import annotations

import io
import json
import textwrap

import pytest
import requests
from PIL import Image as PILImage

from components.sources.history import QualityHistory
from tests.reports_support import EventReader, night_frames, smtp_server, wait_until, write_frame  # noqa: F401

PUBLIC = "http://reports.example:8080"

CONFIG = textwrap.dedent('''\
    [[dataset]]
    name = "sim"
    directory = "data"
    plots = ["fwhm_arcsec", "background", "star_count", "elongation", "saturated_fraction"]
    recipients = ["observer@example.org", "lead@example.org"]
    end_of_night = true
    idle_minutes = 0.15

    [[dataset.alarm]]
    name = "bad-seeing"
    metric = "fwhm_arcsec"
    above = 3.0
    consecutive = 3
    [[dataset.alarm]]
    name = "clouds"
    metric = "star_count"
    below = 10
    consecutive = 2

    [[dataset]]
    name = "good"
    directory = "good"
    plots = ["fwhm_arcsec", "star_count"]
    recipients = ["observer@example.org"]
    idle_minutes = 0.15
    [[dataset.alarm]]
    name = "bad-seeing"
    metric = "fwhm_arcsec"
    above = 3.0
    consecutive = 3
    ''')


@pytest.fixture
def night_server(tmp_path, start_server, smtp_server):  # noqa: F811
    port, inbox = smtp_server
    config = tmp_path / "reports.toml"
    config.write_text(CONFIG)
    root = tmp_path / "root"
    (root / "data").mkdir(parents=True)
    server = start_server(root, env={
        "QA_REPORTS_CONFIG": str(config), "QA_SMTP_HOST": "127.0.0.1", "QA_SMTP_PORT": str(port),
        "QA_SMTP_FROM": "qa@example.org", "QA_PUBLIC_URL": PUBLIC, "QA_REPORTS_INTERVAL": "1",
    })
    events = EventReader(server.url)
    yield server, events, inbox
    events.close()


def _report(server, events, dataset, frames):
    """The report.json of ``dataset``'s night once it holds ``frames`` frames (a report event each build)."""
    def ready():
        built = [event for event in events.of("report") if event["dataset"] == dataset]
        if built:  # the latest build (an earlier one may have come during a pause of the camera)
            url = server.url + built[-1]["url"].removeprefix(PUBLIC)
            report = requests.get(url + "report.json", timeout=10).json()
            if report["frames"] == frames and len(report["alarms"]) == built[-1]["alarms"]:
                return built[-1], report
        return None
    return wait_until(ready, 120, f"the report of {dataset} with {frames} frames")


def test_a_night_with_bad_seeing_and_clouds(night_server):
    server, events, inbox = night_server
    assert events.content_type.startswith("text/event-stream")
    # A quiet stream keeps the connection alive with comments; a client leaving is no trouble.
    quiet = EventReader(server.url, topics="report", keepalive="1")
    wait_until(lambda: ": keep-alive" in quiet.comments, 30, "a keep-alive comment")
    assert quiet.comments[0] == ": connected" and quiet.events == []
    quiet.close()
    for bad in ({"topics": "frames"}, {"keepalive": "0"}, {"keepalive": "nan"}):
        assert requests.get(server.url + "/events", params=bad, timeout=10).status_code == 400
    # A good night in the other dataset, all at once.
    good_keys = [write_frame(server.root, "good", i, name="g") for i in range(4)]
    # The camera's night, frame by frame: each written when the previous one was measured.
    keys = []
    for index, kwargs in enumerate(night_frames()):
        key = write_frame(server.root, "data", index, **kwargs)
        keys.append(key)
        if index == 0:
            # /events delivers the new frame (published when the server first sees it).
            frame = wait_until(lambda: [e for e in events.of("frame") if e["key"] == key], 60, "a frame event")[0]
            assert frame["event"] == "added" and frame["directory"] == "data" and frame["name"] == "f000.fits"
        wait_until(lambda: [e for e in events.of("quality") if e["key"] == key], 90, f"the quality of {key}")

    # Alarms, live: both raised with the frames that raised them, both cleared.
    alarms = [e for e in events.of("alarm") if e["dataset"] == "sim"]
    assert [(a["name"], a["state"]) for a in alarms] == [
        ("bad-seeing", "raised"), ("bad-seeing", "cleared"), ("clouds", "raised"), ("clouds", "cleared")]
    assert alarms[0]["frames"] == keys[2:5] and alarms[2]["frames"] == keys[8:10]
    listed = requests.get(server.url + "/alarms", params={"state": "cleared"}, timeout=10).json()["alarms"]
    assert {(a["name"], tuple(a["frames"])) for a in listed} == {("bad-seeing", tuple(keys[2:6])),
                                                                ("clouds", tuple(keys[8:10]))}
    assert requests.get(server.url + "/alarms", params={"state": "raised"}, timeout=10).json() == {"alarms": []}
    assert requests.get(server.url + "/alarms", params={"state": "maybe"}, timeout=10).status_code == 400

    # The end of the night: the report folder.
    event, report = _report(server, events, "sim", len(keys))
    assert event == {"dataset": "sim", "night": "2026-11-29", "alarms": 2,
                     "url": f"{PUBLIC}/reports/sim/2026-11-29/"}
    folder = server.root / ".quickanalysis" / "reports" / "sim" / "2026-11-29"
    plots = ["fwhm_arcsec", "background", "star_count", "elongation", "saturated_fraction"]
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [f"{p}.png" for p in plots] + [f"{p}.json" for p in plots] + ["report.json", "index.html"])
    history = {row["key"]: row for row in QualityHistory(server.root / ".quickanalysis" / "quality.sqlite3").rows()}
    for plot in plots:
        image = PILImage.open(io.BytesIO((folder / f"{plot}.png").read_bytes()))
        image.load()
        assert image.size[0] >= 300 and image.size[1] >= 100
        data = json.loads((folder / f"{plot}.json").read_text())
        assert data["frames"] == keys and data["tag"] == plot
        assert data["y"] == [history[key][plot] for key in keys]
    assert [(a["name"], a["frames"]) for a in report["alarms"]] == [("bad-seeing", keys[2:6]),
                                                                   ("clouds", keys[8:10])]
    assert all(a["raised"] and a["cleared"] for a in report["alarms"])
    assert report["metrics"]["star_count"]["p10"] < 10 < report["metrics"]["star_count"]["p90"]
    page = requests.get(server.url + "/reports/sim/2026-11-29/", timeout=10)
    assert page.headers["Content-Type"].startswith("text/html") and f"{PUBLIC}/?image={keys[8]}" in page.text
    assert page.text.count("data:image/png;base64,") == len(plots) + len(keys)  # plots and thumbnails
    png = requests.get(server.url + "/reports/sim/2026-11-29/fwhm_arcsec.png", timeout=10)
    assert png.headers["Content-Type"] == "image/png" and png.content == (folder / "fwhm_arcsec.png").read_bytes()
    for escape in ("..%2F..%2Fquality.sqlite3", "%2e%2e/index.html", ".hidden.json", "report.json%00.png"):
        assert requests.get(server.url + "/reports/sim/2026-11-29/" + escape, timeout=10).status_code == 404

    # The good night.
    _, good = _report(server, events, "good", len(good_keys))
    assert good["alarms"] == [] and good["frames"] == 4

    # The repository.
    def listing(view):
        answer = requests.get(f"{server.url}/reports/{view}", params={"format": "json"}, timeout=10).json()
        return [(r["dataset"], r["night"], r["alarms"]) for r in answer["reports"]]

    assert listing("recent-with-alarms") == [("sim", "2026-11-29", 2)]
    assert listing("recent-without-alarms") == [("good", "2026-11-29", 0)]
    assert sorted(listing("recent")) == sorted(listing("")) == [("good", "2026-11-29", 0), ("sim", "2026-11-29", 2)]
    html_page = requests.get(server.url + "/reports/recent-with-alarms", timeout=10)
    assert html_page.headers["Content-Type"].startswith("text/html")
    assert "/reports/sim/2026-11-29/" in html_page.text and "/good/" not in html_page.text

    # The mail: one per raised alarm, one per report (the last build of each night is complete).
    def mails():
        received = inbox.received()
        subjects = [m["Subject"] for m in received]
        done = (any("sim night 2026-11-29: 2 alarms, 12 frames" in s for s in subjects)
                and any("good night 2026-11-29: 0 alarms, 4 frames" in s for s in subjects))
        return received if done else None

    received = wait_until(mails, 60, "the report mails")
    alarm_mails = [m for m in received if m["Subject"].startswith("QuickAnalysis alarm")]
    assert sorted(m["Subject"] for m in alarm_mails) == [
        "QuickAnalysis alarm bad-seeing raised on sim", "QuickAnalysis alarm clouds raised on sim"]
    assert all(m["To"] == "observer@example.org, lead@example.org" for m in alarm_mails)
    report_mail = [m for m in received if "sim night 2026-11-29: 2 alarms, 12 frames" in m["Subject"]][-1]
    body = report_mail.get_content()
    assert f"{PUBLIC}/reports/sim/2026-11-29/" in body and f"{PUBLIC}/reports/recent-with-alarms" in body
    assert "bad-seeing: raised" in body and "clouds: raised" in body and report_mail["From"] == "qa@example.org"
