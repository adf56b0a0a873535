"""In a real browser: the dashboard embedded in another site's page posts the alarm to it, and shows the banner.

The host page is served on another port (another origin); the server allows
that origin in ``QA_POSTMESSAGE_ORIGINS``. A bad-seeing frame arriving raises
the alarm: the host page receives it with ``postMessage`` from the dashboard's
origin, and the embedded dashboard shows the alarm banner.
"""

from __future__ import annotations

import functools
import http.server
import json
import textwrap
import threading

import pytest

from test_browser import CHROMIUM, LOAD_TIMEOUT, chromium  # noqa: F401  (fixture found by name)
from tests.conftest import free_port
from tests.reports_support import write_frame

pytestmark = pytest.mark.browser

CONFIG = textwrap.dedent('''\
    [[dataset]]
    name = "sim"
    directory = "data"
    [[dataset.alarm]]
    name = "bad-seeing"
    metric = "fwhm_arcsec"
    above = 3.0
    consecutive = 1
    ''')

HOST_PAGE = """<!DOCTYPE html><html><head><meta charset="utf-8"><title>host</title><link rel="icon" href="data:,"></head><body>
<script>
  window.received = [];
  window.addEventListener("message", (event) => {
    window.received.push({origin: event.origin, message: event.data});
  });
</script>
<iframe id="qa" src="%s/" width="1500" height="950"></iframe>
</body></html>"""


@pytest.fixture
def host_page(tmp_path):
    """A page of another origin embedding ``url`` in an iframe; yields ``(set_url, origin)``."""
    folder = tmp_path / "host"
    folder.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *args: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    origin = f"http://127.0.0.1:{httpd.server_address[1]}"

    def embed(url):
        (folder / "index.html").write_text(HOST_PAGE % url)
        return origin + "/index.html"

    try:
        yield embed, origin
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_the_host_page_receives_the_alarm(tmp_path, start_server, host_page, chromium):  # noqa: F811
    embed, origin = host_page
    config = tmp_path / "reports.toml"
    config.write_text(CONFIG)
    root = tmp_path / "root"
    (root / "data").mkdir(parents=True)
    server = start_server(root, env={"QA_REPORTS_CONFIG": str(config), "QA_POSTMESSAGE_ORIGINS": origin})
    page = chromium.new_page(viewport={"width": 1600, "height": 1000})
    errors = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    try:
        page.goto(embed(server.url), timeout=LOAD_TIMEOUT)
        frame = page.frame_locator("#qa")
        frame.locator(".qa-title").wait_for(timeout=LOAD_TIMEOUT)

        def received(kind, predicate=lambda data: True, timeout=90_000):
            page.wait_for_function(
                f"() => window.received.some(r => r.message && r.message.type === {json.dumps(kind)})",
                timeout=timeout,
            )
            return [r for r in page.evaluate("window.received")
                    if r["message"]["type"] == kind and predicate(r["message"]["data"])]

        # The bridge is live once a frame's event reaches the host page.
        good = write_frame(root, "data", 0, fwhm=3.0)
        frames = received("frame")
        assert frames[0]["origin"] == server.url and frames[0]["message"]["source"] == "quickanalysis"
        assert frames[0]["message"]["data"]["key"] == good
        bad = write_frame(root, "data", 1, fwhm=8.0)
        (alarm,) = received("alarm")
        data = alarm["message"]["data"]
        assert alarm["origin"] == server.url
        assert (data["dataset"], data["name"], data["state"], data["frames"]) == ("sim", "bad-seeing", "raised", [bad])
        # The embedded dashboard's banner shows it too.
        frame.locator(".qa-alarm[data-alarm='bad-seeing']").wait_for(timeout=30_000)
        qualities = [r["message"]["data"]["key"] for r in received("quality")]
        assert good in qualities and bad in qualities
    finally:
        page.close()
    assert errors == [], f"console errors: {errors}"
