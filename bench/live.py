"""Benchmark: the live dashboard as observers meet it, with the real server and Debian's chromium.

Prints, for a server over a local folder:

* page ready (frame drawn, statistics, histogram and quality filled) for a
  first observer on a warm server (a spare page, built in a quiet moment: see
  app/spare_pages.py) and a second one right after (no spare: built on request);
* box drawn -> statistics pane; line drawn -> profile pane; wheel zoom -> new raster;
* a 9576 x 6388 uint16 ``.fits.fz`` moved into the folder -> its name shown,
  and -> every pane updated (statistics, histogram, profile, quality);
* with 1 and with 10 tabs open: the server's CPU while idle (psutil) and its
  storage listings per minute, for the local folder and for S3 through
  moto_server.

Aims (issue 9, on a 2-core machine): page ready <= 1.5 s warm; box ->
statistics <= 100 ms; new 61 MP frame -> every pane <= 0.6 s; idle CPU with
10 tabs <= 5 % of a core; S3 listings per minute the same with 10 tabs as with 1.

Run::

    .venv/bin/python bench/live.py [--idle 30] [--tabs 10] [--no-s3] [--no-big]

The server runs as ``python bench/live.py --serve ...`` (the normal server,
plus a SIGUSR1 handler that writes its source's listing count to a file), so
nothing in the app is there for the benchmark's sake.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
if str(PROJECT) not in sys.path:
    sys.path.insert(0, str(PROJECT))

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--no-first-run"]
VIEWPORT = {"width": 1600, "height": 1000}
BIG = (6388, 9576)
TIMEOUT = 180_000

_FIGURE_JS = """
() => {
  for (const doc of Bokeh.documents) {
    for (const model of doc._all_models.values()) {
      if (model.js_event_callbacks && model.js_event_callbacks["pan"]) {
        const view = Bokeh.index.find_one(model);
        if (view != null) { return [model, view]; }
      }
    }
  }
  return [null, null];
}
"""
_TO_SCREEN_JS = f"""
([x, y]) => {{
  const [figure, view] = ({_FIGURE_JS})();
  const box = view.canvas_view.events_el.getBoundingClientRect();
  return [box.left + view.frame.x_scale.compute(x), box.top + view.frame.y_scale.compute(y)];
}}
"""
_RANGE_JS = f"""() => {{ const [f, v] = ({_FIGURE_JS})(); return f ? [f.x_range.start, f.x_range.end,
  f.y_range.start, f.y_range.end] : null; }}"""
# The image glyph's current array (a new raster replaces it).
_RASTER_JS = """
() => {
  for (const doc of Bokeh.documents) {
    for (const model of doc._all_models.values()) {
      if (model.type == "GlyphRenderer" && model.glyph && model.glyph.type == "Image") {
        return model.data_source.data.image[0];
      }
    }
  }
  return null;
}
"""
# Mean of the profile curve's values (its data source has "value" and "column").
_PROFILE_MEAN_JS = """
() => {
  for (const doc of Bokeh.documents) {
    for (const model of doc._all_models.values()) {
      if (model.type == "ColumnDataSource" && model.data.value && model.data.column && model.data.value.length) {
        const v = model.data.value; let s = 0; for (let i = 0; i < v.length; i++) { s += v[i]; }
        return s / v.length;
      }
    }
  }
  return null;
}
"""
_READY_JS = f"""() => {{ const [figure, view] = ({_FIGURE_JS})(); return figure != null; }}"""
# Panel renders into shadow roots: the panes are found with Playwright's selectors, which pierce them.
_READY_SELECTORS = (".qa-stat-count", ".qa-frame-name", "[data-histogram]")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_http(url: str, process, timeout: float = 300.0) -> None:
    import requests

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{url}: the process exited")
        try:
            requests.get(url, timeout=5)
            return
        except requests.RequestException:
            time.sleep(0.3)
    raise TimeoutError(url)


# ---------------------------------------------------------------- the server side


def serve(argv: list[str], counts: Path) -> None:
    """The normal server, plus: SIGUSR1 writes the source's listing count to ``counts``."""
    from app import cli
    from app.state import get_store

    def dump(signum, frame):
        source = get_store().source
        counts.write_text(json.dumps({"listings": int(getattr(source, "listings", -1))}))

    signal.signal(signal.SIGUSR1, dump)
    cli.main(argv)


class Server:
    def __init__(self, root: Path, env: dict | None = None, log: Path | None = None):
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.counts = Path(tempfile.mkdtemp()) / "counts.json"
        self.log = log or Path(tempfile.mkdtemp()) / "server.log"
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--serve", str(self.counts), "serve", "--root", str(root),
             "--port", str(self.port), "--address", "127.0.0.1", "--no-demo"],
            cwd=PROJECT, env={**os.environ, **(env or {})},
            stdout=self.log.open("w"), stderr=subprocess.STDOUT,
        )
        _wait_http(self.url + "/health", self.process)
        import psutil

        self.psutil = psutil.Process(self.process.pid)

    def warmed_up(self, timeout: float = 300.0) -> None:
        deadline = time.monotonic() + timeout
        while "warm-up done" not in self.log.read_text() and time.monotonic() < deadline:
            time.sleep(0.5)

    def logged(self, text: str) -> int:
        """How many times the server's log has said ``text``."""
        return self.log.read_text(errors="replace").count(text)

    def spare_built(self, before: int, timeout: float = 120.0) -> bool:
        """Wait for a spare page (app/spare_pages.py) built after ``before`` of them were."""
        deadline = time.monotonic() + timeout
        while self.logged("spare page ready") <= before and time.monotonic() < deadline:
            time.sleep(0.2)
        return self.logged("spare page ready") > before

    def listings(self) -> int:
        self.counts.unlink(missing_ok=True)
        self.process.send_signal(signal.SIGUSR1)
        deadline = time.monotonic() + 30
        while not self.counts.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.05)
        return json.loads(self.counts.read_text())["listings"]

    def idle(self, seconds: float) -> tuple[float, float]:
        """(CPU % of one core, listings per minute) over ``seconds`` of nobody doing anything."""
        listed = self.listings()
        before = self.psutil.cpu_times()
        started = time.monotonic()
        time.sleep(seconds)
        after = self.psutil.cpu_times()
        wall = time.monotonic() - started
        cpu = (after.user + after.system - before.user - before.system) / wall * 100
        return cpu, (self.listings() - listed) * 60.0 / wall

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()


# ---------------------------------------------------------------- the observer side


def _frame(path: Path, seed: int, shape, **kwargs) -> Path:
    from components.core.synthetic import star_field, write_fits

    path.parent.mkdir(parents=True, exist_ok=True)
    frame = star_field(shape, n_stars=kwargs.pop("n_stars", 300), seed=seed, dtype="uint16", **kwargs)
    return write_fits(frame, path, compress=path.name.endswith(".fz"))


def _meta(page, selector: str, attribute: str):
    value = page.locator(selector).first.get_attribute(attribute, timeout=TIMEOUT)
    return json.loads(value) if value else None


def _wait_meta(page, selector, attribute, predicate, timeout: float = 180.0):
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = _meta(page, selector, attribute)
            if value is not None and predicate(value):
                return value
        except Exception:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{selector}[{attribute}]")
        time.sleep(0.01)


def open_page(browser, url: str, query: str = "?dir=data"):
    page = browser.new_page(viewport=VIEWPORT)
    page.set_default_timeout(TIMEOUT)
    started = time.monotonic()
    page.goto(url + "/" + query, timeout=TIMEOUT)
    for selector in _READY_SELECTORS:
        page.wait_for_selector(selector, timeout=TIMEOUT)
    page.wait_for_function(_READY_JS, timeout=TIMEOUT, polling=20)
    return page, time.monotonic() - started


def _drag(page, start, end) -> float:
    (x0, y0), (x1, y1) = page.evaluate(_TO_SCREEN_JS, list(start)), page.evaluate(_TO_SCREEN_JS, list(end))
    page.mouse.move(x0, y0)
    page.mouse.down()
    page.mouse.move((x0 + x1) / 2, (y0 + y1) / 2)
    page.mouse.move(x1, y1)
    page.mouse.up()
    return time.monotonic()


def _mode(page, name: str, title: str) -> None:
    page.get_by_role("button", name=name, exact=True).click()
    page.wait_for_selector(f'.bk-OnOffButton.bk-active[title^="{title}"]')


def interactions(page, shape) -> dict:
    rows, cols = shape
    figures = {}
    _mode(page, "Box", "Statistics box")
    before = _meta(page, ".qa-stats", "data-stats")
    released = _drag(page, (cols * 0.3, rows * 0.3), (cols * 0.6, rows * 0.55))
    _wait_meta(page, ".qa-stats", "data-stats", lambda m: m.get("subregion") and m != before)
    figures["box drawn -> statistics pane"] = time.monotonic() - released

    _mode(page, "Line", "Line profile")
    released = _drag(page, (cols * 0.2, rows * 0.5), (cols * 0.8, rows * 0.6))
    _wait_meta(page, ".qa-profile", "data-profile", lambda m: m.get("count", 0) > 0)
    figures["line drawn -> profile pane"] = time.monotonic() - released

    _mode(page, "Pan / zoom", "Pan")
    page.evaluate(f"() => {{ window.__qa_raster = ({_RASTER_JS})(); }}")
    x, y = page.evaluate(_TO_SCREEN_JS, [cols * 0.5, rows * 0.5])
    page.mouse.move(x, y)
    started = time.monotonic()
    page.mouse.wheel(0, -400)
    page.wait_for_function(f"() => ({_RASTER_JS})() !== window.__qa_raster", timeout=TIMEOUT, polling=10)
    figures["wheel zoom -> new raster"] = time.monotonic() - started
    return figures


def new_big_frame(page, root: Path, staging: Path) -> dict:
    """Move a prepared 61 MP .fits.fz into the folder (as a camera's atomic rename) and time the panes."""
    name = f"big-{int(time.time())}.fits.fz"
    source = staging / "big.fits.fz"
    if not source.exists():
        print("writing the 9576 x 6388 .fits.fz (once) ...", flush=True)
        _frame(source, seed=61, shape=BIG, n_stars=3000, background=2000.0)
    target = root / "data" / name
    shutil.copy(source, staging / name)
    key = f"data/{name}"
    histogram_before = page.locator("[data-histogram]").first.inner_text()
    moved = time.monotonic()
    os.rename(staging / name, target)
    page.locator(".qa-frame-name", has_text=name).wait_for(timeout=TIMEOUT)
    named = time.monotonic() - moved
    _wait_meta(page, ".qa-stats", "data-stats", lambda m: (m.get("median") or 0) > 1500)
    stats_at = time.monotonic() - moved
    deadline = time.monotonic() + TIMEOUT / 1000
    while page.locator("[data-histogram]").first.inner_text() == histogram_before:
        if time.monotonic() > deadline:
            raise TimeoutError("the histogram pane never changed")
        time.sleep(0.01)
    histogram_at = time.monotonic() - moved
    page.wait_for_function(f"() => ({_PROFILE_MEAN_JS})() > 1500", timeout=TIMEOUT, polling=10)
    profile_at = time.monotonic() - moved
    _wait_meta(page, "[data-quality]", "data-quality", lambda m: m.get("key") == key and m.get("state") == "ready")
    quality_at = time.monotonic() - moved
    return {
        "new 61 MP .fits.fz -> its name shown": named,
        "new 61 MP .fits.fz -> statistics pane": stats_at,
        "new 61 MP .fits.fz -> histogram pane": histogram_at,
        "new 61 MP .fits.fz -> profile pane": profile_at,
        "new 61 MP .fits.fz -> quality cards": quality_at,
        "new 61 MP .fits.fz -> every pane updated": max(stats_at, histogram_at, profile_at, quality_at),
    }


def idle_figures(browser, server: Server, tabs: int, seconds: float, query="?dir=data") -> dict:
    pages = []
    figures = {}
    try:
        for count in (1, tabs):
            spares = server.logged("spare page ready")
            while len(pages) < count:
                pages.append(open_page(browser, server.url, query)[0])
            # Not idle yet: after pages are opened the server builds the next spare page once.
            server.spare_built(spares)
            time.sleep(3)  # let the pages settle
            cpu, listings = server.idle(seconds)
            figures[count] = (cpu, listings)
    finally:
        for page in pages:
            page.close()
    return figures


def _moto(port: int):
    executable = shutil.which("moto_server") or str(Path(sys.executable).with_name("moto_server"))
    process = subprocess.Popen([executable, "-H", "127.0.0.1", "-p", str(port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _wait_http(f"http://127.0.0.1:{port}", process, timeout=60)
    return process


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--idle", type=float, default=30.0, help="seconds of each idle measurement")
    parser.add_argument("--tabs", type=int, default=10)
    parser.add_argument("--no-s3", action="store_true", help="skip the S3 (moto_server) figures")
    parser.add_argument("--no-big", action="store_true", help="skip the 61 MP frame")
    args = parser.parse_args(argv)

    from playwright.sync_api import sync_playwright

    work = Path(tempfile.mkdtemp(prefix="qa-live-"))
    root, staging = work / "root", work / "staging"
    staging.mkdir(parents=True)
    shape = (2000, 3000)
    first = _frame(root / "data" / "first.fits", seed=1, shape=shape)
    os.utime(first, (time.time() - 60,) * 2)
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at start "
          "(shared with other work: figures are inflated by it)", flush=True)
    results: dict[str, float] = {}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        server = Server(root)
        try:
            server.warmed_up()
            spares = server.logged("spare page ready")
            warm, _ = open_page(browser, server.url)  # the warm-up page: kernels, first decode
            warm.close()
            # A warm server has served this address before and had a quiet moment: the page is
            # a spare (app/spare_pages.py). The observer right after gets one built on request.
            spare = server.spare_built(spares)
            page, results["page ready, first observer (warm server" + (", spare page)" if spare else ")")] = \
                open_page(browser, server.url)
            second, results["page ready, second observer right after (built on request)"] = \
                open_page(browser, server.url)
            second.close()
            results.update(interactions(page, shape))
            if not args.no_big:
                results.update(new_big_frame(page, root, staging))
            page.close()
            for label, value in results.items():
                print(f"{label:55s} {value * 1000:8.0f} ms", flush=True)
            local = idle_figures(browser, server, args.tabs, args.idle)
        finally:
            server.stop()
        for tabs, (cpu, listings) in local.items():
            print(f"local folder, {tabs:2d} tab(s) idle: server CPU {cpu:5.1f} % of a core, "
                  f"{listings:6.1f} storage listings/min", flush=True)

        if not args.no_s3:
            import boto3

            port = _free_port()
            moto = _moto(port)
            try:
                endpoint = f"http://127.0.0.1:{port}"
                client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                                      aws_access_key_id="testing", aws_secret_access_key="testing")
                client.create_bucket(Bucket="live")
                client.put_object(Bucket="live", Key="data/first.fits", Body=first.read_bytes())
                env = {"QA_S3_BUCKET": "live", "QA_S3_ENDPOINT_URL": endpoint, "QA_S3_REGION": "us-east-1",
                       "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "QA_QUALITY": "0"}
                s3_server = Server(work / "s3-root", env=env)
                try:
                    s3_server.warmed_up()  # idle means after the warm-up (kernels compiled)
                    s3 = idle_figures(browser, s3_server, args.tabs, args.idle)
                finally:
                    s3_server.stop()
            finally:
                moto.terminate()
                moto.wait(timeout=10)
            for tabs, (cpu, listings) in s3.items():
                print(f"S3 (moto_server), {tabs:2d} tab(s) idle: server CPU {cpu:5.1f} % of a core, "
                      f"{listings:6.1f} LIST requests/min", flush=True)
        browser.close()
    print(f"load average {os.getloadavg()[0]:.1f} at the end")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--serve":
        serve(sys.argv[3:], Path(sys.argv[2]))
    else:
        main()
