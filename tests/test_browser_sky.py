"""The sky features in a real browser (Debian chromium via Playwright): pinned regions, compare, the link.

Frames: ``first.fits``, then ``second.fits`` whose pointing moved 40 px along +x
(same stars, same pixels, a WCS saying so), and ``other.fits`` on the first
frame's WCS with other noise. Run with ``-m browser``.
"""

from __future__ import annotations

import json
import re
import os
import subprocess
import sys
import time
from urllib.parse import parse_qs, urlparse

import numpy as np
import pytest

from components.core.synthetic import crop, star_field, write_fits
from conftest import PROJECT, free_port, wait_for_http
from test_browser import LOAD_TIMEOUT, Page, chromium  # noqa: F401 - the fixture is used by name

pytestmark = pytest.mark.browser

SHIFT = 40
SHAPE = (450, 600)

_OUTLINES_JS = """
(name) => {
  for (const doc of Bokeh.documents) {
    for (const model of doc._all_models.values()) {
      if (model.name === name && model.data) { return {x: [...model.data.x], y: [...model.data.y]}; }
    }
  }
  return null;
}
"""


@pytest.fixture(scope="module")
def frames():
    wide = star_field((SHAPE[0], SHAPE[1] + SHIFT), n_stars=160, fwhm=3.5, seed=21)
    first, second = crop(wide, 0, 0, SHAPE[1], SHAPE[0]), crop(wide, SHIFT, 0, SHAPE[1], SHAPE[0])
    other = star_field(SHAPE, n_stars=0, seed=5)
    other.header = first.header.copy()  # the first frame's WCS: pixel to pixel
    return {"first": first, "second": second, "other": other}


@pytest.fixture(scope="module")
def server(tmp_path_factory, frames):
    root = tmp_path_factory.mktemp("sky-root")
    now = time.time()
    (root / "data").mkdir()
    for index, name in enumerate(("other", "first", "second")):
        path = write_fits(frames[name], root / "data" / f"{name}.fits")
        os.utime(path, (now - 60 + index, now - 60 + index))
    port = free_port()
    log = tmp_path_factory.mktemp("log") / "server.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "serve", "--root", str(root), "--port", str(port),
         "--address", "127.0.0.1", "--no-demo"],
        cwd=PROJECT, stdout=log.open("w"), stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(url + "/health", process)
    except Exception as error:
        process.kill()
        raise RuntimeError(f"{error}\n--- server log ---\n{log.read_text()}") from error

    class Server:
        pass

    server = Server()
    server.root, server.port, server.url, server.log = root, port, url, log
    yield server
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()


@pytest.fixture
def dash(chromium, server):  # noqa: F811 - the chromium fixture of test_browser
    page = Page(chromium, server)
    yield page
    page.close()


def open_page(page: Page, query: str) -> Page:
    """Page.open with the first-load timeout for the navigation too (a loaded machine is slow)."""
    page.page.goto(f"{page.server.url}/{query}", timeout=LOAD_TIMEOUT)
    page.wait_ready(page.page)
    return page


def region_rows(page: Page, key: str, predicate=lambda rows: True, timeout: float = 60.0) -> list[dict]:
    """The pinned-regions table's rows once it shows frame ``key`` and ``predicate`` holds."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        table = page.page.locator("table.qa-regions").first
        try:
            if table.get_attribute("data-key", timeout=1000) == key:
                last = json.loads(table.get_attribute("data-rows"))
                if predicate(last):
                    return last
        except Exception:  # not rendered yet
            pass
        time.sleep(0.2)
    raise AssertionError(f"the regions table never matched for {key}; last {last!r}")


def outlines(page: Page, name: str = "qa-pinned-boxes") -> dict | None:
    return page.page.evaluate(_OUTLINES_JS, name)


def open_tab(page: Page, name: str, shows: str | None = None) -> None:
    """Open a side-column tab; with ``shows``, wait until that selector is on screen in it.

    Tabs are drawn when opened: the tab's content comes from the server, and
    the page lays itself out again when it lands.
    """
    page.page.get_by_text(name, exact=True).first.click()
    page.page.locator(".bk-tab.bk-active", has_text=name).first.wait_for(timeout=60_000)
    if shows is not None:
        page.page.locator(shows).first.wait_for(timeout=60_000)


def pick_frame(page: Page, name: str) -> None:
    select = page.page.locator("select").nth(1)
    label = next(o for o in select.locator("option").all_inner_texts() if o.startswith(name))
    select.select_option(label=label)


def test_pinned_region_stays_on_the_same_stars_when_the_pointing_shifts(dash, frames):
    page = open_page(dash, "?dir=data&image=data/first.fits")
    page.mode("Box", "Statistics box")
    page.drag((200, 150), (321, 251))
    page.box_stats((200, 150), (321, 251), SHAPE)
    open_tab(page, "Pinned")
    page.page.get_by_role("button", name="Pin box", exact=True).click()
    rows = region_rows(page, "data/first.fits", lambda r: len(r) == 1 and r[0]["median"] is not None)
    first_median, first_stars = rows[0]["median"], rows[0]["stars"]
    assert rows[0]["on sky"] == "sky" and first_stars > 0
    # The region's pixels on the first frame, as numpy sees them (box edges at 200..321 plot units).
    assert first_median == pytest.approx(float(np.median(frames["first"].data[150:251, 200:321])))
    box_x = outlines(page)["x"][0]
    pick_frame(page, "second.fits")
    rows = region_rows(page, "data/second.fits", lambda r: r[0]["median"] is not None)
    # Same stars, same pixels: the statistics follow the region, not the screen.
    assert rows[0]["median"] == first_median and rows[0]["stars"] == first_stars
    assert rows[0]["Δ median"] == 0
    page.page.wait_for_function(f"() => ({_OUTLINES_JS})('qa-pinned-boxes').x[0] < {box_x - SHIFT / 2}")
    assert outlines(page)["x"][0] == pytest.approx(box_x - SHIFT, abs=1e-6)
    assert not [e for e in page.errors if "Failed to load resource" not in e]


def test_ds9_region_file_round_trips(dash, chromium, server, tmp_path):  # noqa: F811
    page = open_page(dash, "?dir=data&image=data/first.fits")
    page.page.locator(".bk-events").first.click(position={"x": 300, "y": 250})  # pick a star
    # The dashboard answers a picked star by showing the Star tab. Wait for that answer:
    # a tab opened before it arrives is switched away from, and the Export DS9 button is then
    # hidden (visibility: hidden) with the rest of the Pinned tab.
    page.page.locator(".bk-tab.bk-active", has_text="Star").wait_for()
    open_tab(page, "Pinned")
    page.page.get_by_role("button", name="Pin star circle", exact=True).click()
    region_rows(page, "data/first.fits", lambda r: len(r) == 1)
    with page.page.expect_download() as download:
        # Panel's FileDownload renders <button><a>Export DS9</a></button>: the click lands on the
        # <a>, whose listener asks the server for the file, then clicks the <a> again to download it.
        page.page.get_by_role("button", name="Export DS9", exact=True).click()
    path = tmp_path / "regions.reg"
    download.value.save_as(path)
    text = path.read_text()
    assert "circle(" in text and "text={star 1}" in text
    circle = outlines(page, "qa-pinned-circles")
    other = open_page(Page(chromium, server), "?dir=data&image=data/first.fits")
    try:
        open_tab(other, "Pinned")
        other.page.locator("input[type=file]").set_input_files(str(path))
        # The row comes first, its measurement on the frame a moment later.
        rows = region_rows(other, "data/first.fits", lambda r: len(r) == 1 and r[0]["median"] is not None)
        assert rows[0]["region"] == "star 1" and rows[0]["kind"] == "circle"
        other.page.wait_for_function(f"() => ({_OUTLINES_JS})('qa-pinned-circles').x.length == 1")
        again = outlines(other, "qa-pinned-circles")
        assert again["x"][0] == pytest.approx(circle["x"][0], abs=1e-3)
        assert again["y"][0] == pytest.approx(circle["y"][0], abs=1e-3)
    finally:
        other.close()


def _showing(page: Page) -> str | None:
    try:
        return page.page.locator(".qa-compare-showing").first.get_attribute("data-showing", timeout=500)
    except Exception:
        return None


def test_blink_alternates_the_shown_frame_and_keeps_the_view(dash):
    page = open_page(dash, "?dir=data&image=data/second.fits&compare=blink&blink=1")
    open_tab(page, "Compare", shows=".qa-compare-showing")
    before = page.settled_state()
    seen, changes = [], []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and len(changes) < 4:
        shown = _showing(page)
        if shown is not None and (not seen or shown != seen[-1]):
            seen.append(shown)
            changes.append(time.monotonic())
        time.sleep(0.05)
    assert len(changes) >= 4, seen
    assert set(seen) == {"current", "reference"}
    assert all(a != b for a, b in zip(seen, seen[1:]))
    # No bound on the interval here: the page is polled, so a late look makes the next gap
    # look short (no timed assertions in tests); the interval is the server's periodic callback.
    after = page.state()
    assert after["x_range"] == before["x_range"] and after["y_range"] == before["y_range"]


def test_difference_equals_the_pixel_difference(dash, frames):
    page = open_page(dash, "?dir=data&image=data/other.fits&compare=difference&ref=data/first.fits")
    open_tab(page, "Compare")
    page.page.wait_for_selector('.qa-compare-showing[data-showing="difference"]', timeout=60_000)
    # Same WCS: pixel to pixel, no interpolation.
    assert "(shift," in page.page.locator(".qa-compare-showing").first.inner_text()
    page.zoom_in((300.5, 200.5), below=60)
    column, row = 300, 200
    page.page.mouse.move(*page.screen(column + 0.5, row + 0.5))
    tip = page.tooltip()
    expected = float(frames["other"].data[row, column]) - float(frames["first"].data[row, column])
    assert float(tip["value"]) == pytest.approx(expected)


def test_a_copied_link_restores_the_view_in_another_browser(dash, chromium, server):  # noqa: F811
    page = open_page(dash, "?dir=data&image=data/first.fits")
    page.mode("Box", "Statistics box")
    page.drag((200, 150), (321, 251))
    page.box_stats((200, 150), (321, 251), SHAPE)
    open_tab(page, "Pinned")
    page.page.get_by_role("button", name="Pin box", exact=True).click()
    region_rows(page, "data/first.fits", lambda r: len(r) == 1)
    page.page.locator("select").nth(4).select_option(label="viridis")  # colour map
    page.mode("Pan / zoom", "Pan")
    zoomed = page.zoom_in((260.0, 200.0), below=300)
    page.page.wait_for_function(
        "() => { const q = new URLSearchParams(window.location.search);"
        " return q.get('cmap') === 'viridis' && q.get('pinned') && q.get('box') && q.get('view'); }",
        timeout=30_000,
    )
    # The link is written by a periodic look at the view: wait until it holds the zoom itself
    # (a 'view' of the frame before zooming made the other browser show the whole frame).
    page.page.wait_for_function(
        "([x0, x1]) => { const v = new URLSearchParams(window.location.search).get('view');"
        " if (!v) return false; const [a, b] = v.split(',').slice(0, 2).map(Number).sort((p, q) => p - q);"
        " return Math.abs(a - x0) <= 2 && Math.abs(b - x1) <= 2; }",
        arg=sorted(zoomed["x_range"]), timeout=30_000,
    )
    query = parse_qs(urlparse(page.page.url).query)
    assert query["image"] == ["data/first.fits"] and query["follow"] == ["0"] and query["dir"] == ["data"]
    link = page.page.url
    other = Page(chromium, server)
    try:
        other.page.goto(link, timeout=LOAD_TIMEOUT)
        other.wait_ready(other.page)
        assert other.page.locator("select").nth(4).input_value() == "viridis"
        stats = other.settled(".qa-stats", "data-stats", lambda s: s.get("subregion") is not None)
        assert stats["subregion"] is not None
        open_tab(other, "Pinned")
        rows = region_rows(other, "data/first.fits", lambda r: len(r) == 1)
        assert rows[0]["region"] == "box 1"
        restored = other.settled_state()
        assert restored["x_range"] == pytest.approx(zoomed["x_range"], abs=2)
        assert restored["y_range"] == pytest.approx(zoomed["y_range"], abs=2)
    finally:
        other.close()


SKY_SCREENSHOT = PROJECT / "docs" / "sky.png"
_UNSCROLL_JS = """
() => {
  const walk = (root) => root.querySelectorAll("*").forEach((el) => {
    if (el.scrollLeft > 0) { el.scrollLeft = 0; }
    if (el.shadowRoot) { walk(el.shadowRoot); }
  });
  walk(document);
}
"""
#: The synthetic focus run of the screenshot: FWHM = hyperbola(position, 2.8, 0.01, BEST_FOCUS).
BEST_FOCUS = 5030.0


def test_screenshot_of_a_pinned_region_and_the_focus_curve(dash, server):
    """docs/sky.png: a focus run then a drifting pointing, a pinned box, the focus tab open."""
    from datetime import datetime, timedelta, timezone

    from components.core.focus import hyperbola

    positions = [4430 + 150 * i for i in range(9)] + [5030] * 3
    first = datetime.now(timezone.utc) - timedelta(minutes=2 * len(positions))
    now = time.time()
    folder = server.root / "focus"
    folder.mkdir(exist_ok=True)
    for index, position in enumerate(positions):
        frame = star_field(
            (600, 900), n_stars=220, seed=77, fwhm=float(hyperbola(position, 2.8, 0.01, BEST_FOCUS)),
            ra=83.8 + 0.0002 * index, dec=-5.4 + 0.0001 * index,  # the mount drifts: about 0.7" a frame
            object="M42 field", filter="R", exptime=20.0, date_obs=first + timedelta(minutes=2 * index),
        )
        frame.header["FOCPOS"] = (position, "[step] Focuser position")
        path = write_fits(frame, folder / f"focus-{index + 1:03d}.fits")
        os.utime(path, (now - 100 + index, now - 100 + index))
    page = open_page(dash, "?dir=focus")
    page.page.locator(".qa-frame-name", has_text="focus-012.fits").wait_for(timeout=LOAD_TIMEOUT)
    page.wait_meta("[data-timeline]", "data-timeline", lambda m: m["count"] == len(positions), timeout=120)
    page.mode("Box", "Statistics box")
    page.drag((380, 220), (560, 360))
    page.box_stats((380, 220), (560, 360), (600, 900))
    open_tab(page, "Pinned")
    page.page.get_by_role("button", name="Pin box", exact=True).click()
    region_rows(page, "focus/focus-012.fits", lambda r: len(r) == 1 and r[0]["median"] is not None)
    open_tab(page, "Region")
    page.page.get_by_role("button", name="Clear box").click()  # the pinned outline alone on the image
    page.mode("Pan / zoom", "Pan")
    open_tab(page, "Focus")
    best = page.page.locator(".qa-best-focus")
    best.wait_for(timeout=60_000)
    # The fit of the run (the three frames at best focus included) finds the truth within 2 %.
    shown = float(re.search(r"Best focus (-?[\d.]+)", best.inner_text()).group(1))
    assert shown == pytest.approx(BEST_FOCUS, rel=0.02)
    page.page.wait_for_function(f"() => ({_OUTLINES_JS})('qa-pinned-boxes').x.length == 1")
    # Seven tabs are wider than the side column: opening the last one scrolled the column sideways.
    page.page.evaluate(_UNSCROLL_JS)
    time.sleep(0.5)
    page.page.screenshot(path=str(SKY_SCREENSHOT))
    assert SKY_SCREENSHOT.stat().st_size > 50_000
