"""Quality in a real browser: cards, the timeline, clicking a point, clicking a star.

Reuses the harness of ``test_browser.py`` (Debian's Chromium, one real
``quickanalysis serve`` for the module, a page per test that must log no
console error). Each test works in its own folder of the server's root, with
frames observed minutes apart, so the tests do not depend on each other.
"""

from __future__ import annotations

import os
import time
from datetime import datetime, timedelta, timezone

import pytest
import requests

from components.core.synthetic import star_field, write_fits
from test_browser import (  # noqa: F401  (fixtures: pytest finds them by name)
    TIMEOUT,
    chromium,
    dash,
    pytest_runtest_makereport,
    server,
)

pytestmark = pytest.mark.browser

# Slow machines measure slowly: the history, the session and the page each take a turn.
QUALITY_TIMEOUT = 60_000

# JavaScript: the timeline's data source, and the page position of one of its points.
_TIMELINE_JS = """
() => {
  for (const doc of Bokeh.documents) {
    for (const model of doc._all_models.values()) {
      if (model.name == "qa-timeline") {
        return {keys: [...model.data.key], time: [...model.data.time]};
      }
    }
  }
  return null;
}
"""
_POINT_JS = """
([metric, key]) => {
  for (const doc of Bokeh.documents) {
    const models = [...doc._all_models.values()];
    const figure = models.find((m) => m.name == "qa-timeline-" + metric);
    const source = models.find((m) => m.name == "qa-timeline");
    if (figure == null || source == null) { continue; }
    const view = Bokeh.index.find_one(figure);
    const i = source.data.key.lastIndexOf(key);
    if (view == null || i < 0) { return null; }
    const box = view.canvas_view.events_el.getBoundingClientRect();
    return [box.left + view.frame.x_scale.compute(source.data.time[i]),
            box.top + view.frame.y_scale.compute(source.data[metric][i])];
  }
  return null;
}
"""
_CURRENT_JS = """
() => {
  for (const doc of Bokeh.documents) {
    for (const model of doc._all_models.values()) {
      if (model.name == "qa-timeline-current") { return [...model.data.time]; }
    }
  }
  return null;
}
"""


def _series(server, folder: str, count: int, start: datetime, **kwargs) -> list[str]:
    """``count`` frames in ``folder`` observed 5 minutes apart (file times in the same order)."""
    keys = []
    now = time.time()
    for index in range(count):
        path = server.root / folder / f"s{index}.fits"
        path.parent.mkdir(parents=True, exist_ok=True)
        frame = star_field((300, 400), n_stars=60, seed=100 + index, fwhm=3.0 + 0.4 * index,
                           date_obs=start + timedelta(minutes=5 * index), **kwargs)
        write_fits(frame, path)
        os.utime(path, (now - 600 + 10 * index, now - 600 + 10 * index))
        keys.append(f"{folder}/{path.name}")
    return keys


def _timeline(page) -> dict | None:
    return page.page.evaluate(_TIMELINE_JS)


def _wait_timeline(page, predicate, timeout: float = QUALITY_TIMEOUT / 1000) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        value = _timeline(page)
        if value is not None and predicate(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"the timeline never matched; last {value!r}")
        time.sleep(0.2)


def _quality(page) -> dict:
    return page.meta("[data-quality]", "data-quality")


def test_the_timeline_gains_a_point_when_a_frame_arrives(dash, server):
    page = dash
    start = datetime.now(timezone.utc) - timedelta(hours=1)
    keys = _series(server, "data/tl-a", 2, start)
    page.open("?dir=data/tl-a")
    before = _wait_timeline(page, lambda t: t["keys"] == keys)
    caption = page.wait_meta("[data-timeline]", "data-timeline", lambda m: m["count"] == 2)
    assert caption["current"] == keys[-1]

    frame = star_field((300, 400), n_stars=60, seed=7, fwhm=3.2, date_obs=start + timedelta(minutes=30))
    write_fits(frame, server.root / "data" / "tl-a" / "arrived.fits")
    after = _wait_timeline(page, lambda t: len(t["keys"]) == 3)
    assert after["keys"] == keys + ["data/tl-a/arrived.fits"]  # in observing order
    assert after["time"][:2] == before["time"]
    expected = (start + timedelta(minutes=30)).timestamp() * 1000
    assert after["time"][2] == pytest.approx(expected, abs=1000)
    page.wait_meta("[data-timeline]", "data-timeline", lambda m: m["count"] == 3)
    # The session followed the new frame: it is the ringed point, and its cards are shown.
    page.page.locator(".qa-frame-name", has_text="arrived.fits").wait_for(timeout=TIMEOUT)
    page.page.wait_for_function(f"() => {{ const t = ({_CURRENT_JS})(); return t && t.length == 1 && "
                                f"Math.abs(t[0] - {expected}) < 1000; }}", timeout=QUALITY_TIMEOUT)
    page.wait_meta("[data-quality]", "data-quality", lambda m: m["key"] == "data/tl-a/arrived.fits",
                   timeout=QUALITY_TIMEOUT / 1000)


def test_clicking_a_timeline_point_opens_that_frame(dash, server):
    page = dash
    keys = _series(server, "data/tl-b", 3, datetime.now(timezone.utc) - timedelta(hours=2))
    page.open("?dir=data/tl-b")
    _wait_timeline(page, lambda t: t["keys"] == keys)
    assert page.page.locator(".qa-frame-name").inner_text() == keys[-1]
    for metric, key in (("fwhm", keys[0]), ("star_count", keys[1])):
        point = page.page.evaluate(_POINT_JS, [metric, key])
        assert point is not None
        page.page.mouse.click(*point)
        page.page.locator(".qa-frame-name", has_text=key).wait_for(timeout=TIMEOUT)
        # The frame selector says so, and the ring moved to that point.
        name = key.rsplit("/", 1)[1]
        deadline = time.monotonic() + TIMEOUT / 1000
        while not any(v.startswith(name + " ") for v in page.page.locator("select").evaluate_all(
                "(els) => els.map((e) => e.options[e.selectedIndex] ? e.options[e.selectedIndex].text : '')")):
            assert time.monotonic() < deadline, "the frame selector did not follow the click"
            time.sleep(0.1)
        page.wait_meta("[data-timeline]", "data-timeline", lambda m: m["current"] == key)
        page.wait_meta("[data-quality]", "data-quality", lambda m: m["key"] == key,
                       timeout=QUALITY_TIMEOUT / 1000)
    follow = page.page.locator(".bk-Checkbox", has_text="Follow newest").locator("input")
    assert not follow.is_checked()
    assert "paused" in page.page.locator(".qa-paused").inner_text()


def test_clicking_a_star_shows_its_profile_and_fwhm(dash, server):
    page = dash
    truth = 3.6
    shape = (400, 600)
    frame = star_field(shape, n_stars=50, seed=321, fwhm=truth, object="STARS")
    (server.root / "data" / "tl-c").mkdir(parents=True, exist_ok=True)
    write_fits(frame, server.root / "data" / "tl-c" / "stars.fits")
    page.open("?image=data/tl-c/stars.fits&follow=0")
    # The detected stars are circled once the frame is measured.
    page.wait_meta("[data-quality]", "data-quality", lambda m: m["state"] == "ready",
                   timeout=QUALITY_TIMEOUT / 1000)
    page.page.wait_for_function(
        "() => { for (const d of Bokeh.documents) for (const m of d._all_models.values())"
        " if (m.name == 'qa-stars') return m.get_length() > 20; return false; }", timeout=TIMEOUT,
    )
    xs = [s["x"] for s in frame.stars]
    ys = [s["y"] for s in frame.stars]
    star = next(
        s for s in sorted(frame.stars, key=lambda s: -s["flux"])
        if not s["saturated"] and 40 < s["x"] < shape[1] - 40 and 40 < s["y"] < shape[0] - 40
        and sorted((x - s["x"]) ** 2 + (y - s["y"]) ** 2 for x, y in zip(xs, ys))[1] > 30 ** 2
    )
    # Pan / zoom mode (the default): a click on the star (1 px off its centre) picks it.
    page.page.mouse.click(*page.screen(star["x"] + 0.5 + 1.0, star["y"] + 0.5 - 1.0))
    profile = page.wait_meta("[data-star]", "data-star", lambda m: m.get("fwhm_px") is not None)
    assert profile["star"] is True
    assert profile["x"] == pytest.approx(star["x"], abs=0.5) and profile["y"] == pytest.approx(star["y"], abs=0.5)
    assert profile["fwhm_px"] == pytest.approx(truth, rel=0.10)
    assert profile["fwhm_arcsec"] == pytest.approx(truth * 0.5, rel=0.10)  # 0.5"/px WCS
    caption = page.page.locator(".qa-star-fwhm")
    caption.wait_for(state="visible")  # the Star tab came forward
    assert f"{profile['fwhm_px']:.2f} px" in caption.inner_text()
    # The profile's points and fitted curve are drawn, and the star is ringed on the image.
    page.page.wait_for_function(
        "() => { for (const d of Bokeh.documents) for (const m of d._all_models.values())"
        " if (m.name == 'qa-picked-star') return m.get_length() == 1; return false; }", timeout=TIMEOUT,
    )


def test_the_quality_cards_show_the_verdicts_of_the_frame(dash, server):
    page = dash
    # A trailed frame with saturated stars: not everything is "ok".
    frame = star_field((300, 400), n_stars=60, seed=55, fwhm=3.4, elongation=1.9, angle=30.0,
                       saturate_stars=3)
    (server.root / "data" / "tl-d").mkdir(parents=True, exist_ok=True)
    write_fits(frame, server.root / "data" / "tl-d" / "trailed.fits")
    page.open("?image=data/tl-d/trailed.fits&follow=0")
    meta = page.wait_meta("[data-quality]", "data-quality",
                          lambda m: m["state"] == "ready" and m["key"] == "data/tl-d/trailed.fits",
                          timeout=QUALITY_TIMEOUT / 1000)
    answer = requests.post(f"{server.url}/quality", json={"s3_directory": "data", "full_filename": "tl-d/trailed.fits"},
                           timeout=60)
    assert answer.status_code == 200, answer.text
    quality = answer.json()["quality"]
    verdicts = quality["verdicts"]
    expected = {"fwhm": verdicts["fwhm"], "hfr": verdicts["fwhm"], "background": verdicts["background"],
                "saturation": verdicts["saturation"], "stars": verdicts["star_count"],
                "elongation": verdicts["elongation"]}
    assert meta["verdicts"] == expected
    assert verdicts["elongation"] == "bad" and verdicts["saturation"] != "ok"
    assert meta["star_count"] == quality["star_count"] and meta["fwhm_px"] == pytest.approx(quality["fwhm_px"])
    for name, verdict in expected.items():
        tile = page.page.locator(f'.qa-tile[data-metric="{name}"]')
        assert tile.get_attribute("data-verdict") == verdict
        assert f"qa-{verdict}" in tile.get_attribute("class")
        assert tile.locator(".qa-verdict").inner_text().strip() == verdict
    # Verdicts are coloured: a bad tile's edge is red, an ok one's green.
    colours = page.page.evaluate("""() => {
      const found = {};
      const walk = (root) => root.querySelectorAll("*").forEach((el) => {
        if (el.classList && el.classList.contains("qa-tile")) {
          found[el.dataset.metric] = getComputedStyle(el).borderLeftColor;
        }
        if (el.shadowRoot) { walk(el.shadowRoot); }
      });
      walk(document);
      return found;
    }""")
    assert colours["elongation"] == "rgb(248, 81, 73)"
    assert colours["background"] == "rgb(63, 185, 80)"
    legend = page.page.locator(".qa-legend").inner_text()
    assert all(word in legend for word in ("ok", "warn", "bad", "unknown"))
