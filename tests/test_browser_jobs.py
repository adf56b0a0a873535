"""The Jobs pane in a real browser: start a quality job for the folder, watch its bar move, to 100 %."""

from __future__ import annotations

import time

import pytest

from jobs_support import dask_cluster, write_frames  # noqa: F401  (fixture)
from test_browser import CHROMIUM, CHROMIUM_ARGS, LOAD_TIMEOUT, VIEWPORT, chromium  # noqa: F401

pytestmark = pytest.mark.browser

_BARS_JS = """
() => [...document.querySelectorAll('*')].flatMap((el) => el.shadowRoot ? [el.shadowRoot] : [])
  .flatMap(function walk(root) {
    const found = [...root.querySelectorAll('.qa-job')];
    for (const el of root.querySelectorAll('*')) { if (el.shadowRoot) { found.push(...walk(el.shadowRoot)); } }
    return found;
  })
  .map((el) => ({id: el.dataset.job, state: el.dataset.state, percent: el.dataset.percent,
                 bar: el.querySelector('progress') ? el.querySelector('progress').value : null,
                 text: el.innerText}))
"""


def test_jobs_pane_progress_bar_moves(chromium, start_server, dask_cluster, tmp_path):
    # Enough work that the job lasts several of the pane's 1 s refreshes on a quiet machine too.
    write_frames(tmp_path / "data", 48, shape=(1024, 1024))
    server = start_server(tmp_path, env={"QA_DASK_SCHEDULER": dask_cluster.address, "QA_QUALITY": "0"})
    context = chromium.new_context(viewport=VIEWPORT)
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(f"page error: {e}"))
    page.on("requestfailed", lambda r: errors.append(f"request failed: {r.url}"))
    try:
        page.goto(f"{server.url}/?dir=data", timeout=LOAD_TIMEOUT)
        page.wait_for_selector(".qa-frame-name", timeout=LOAD_TIMEOUT)
        page.get_by_text("Jobs", exact=True).click()
        page.get_by_role("button", name="Start").click()
        page.wait_for_function(f"() => ({_BARS_JS})().length > 0", timeout=LOAD_TIMEOUT)
        seen = []
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            bars = page.evaluate(_BARS_JS)
            assert len(bars) == 1, bars
            seen.append(bars[0])
            if bars[0]["state"] in ("complete", "failed", "cancelled"):
                break
            time.sleep(0.1)
        final = seen[-1]
        assert final["state"] == "complete", final
        values = [float(bar["bar"]) for bar in seen if bar["percent"]]
        # The bar moved: it showed part-way values, never went back, and ended full.
        assert values == sorted(values) and values[-1] == 100
        assert any(0 < value < 100 for value in values), values
        assert any("ETA" in bar["text"] for bar in seen if bar["state"] == "running"), seen
        assert "48/48" in final["text"] and "100 %" in final["text"]
        assert errors == [], errors
    finally:
        context.close()
