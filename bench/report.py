"""How long a night report of 200 frames takes to build.

Run: ``python bench/report.py [--frames 200] [--shape 1024x1536]``. Writes that
many synthetic FITS frames into a temporary folder, records a quality history
for them (with a bad-seeing streak and a cloudy spell), then times, separately:
replaying the alarm rules, drawing the five plots, the thumbnails (each frame
decoded from disk through a cold cache), and writing the folder; and the whole
``build_report`` + ``write_report`` as the server runs it.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from components.core.synthetic import star_field, write_fits  # noqa: E402
from components.reports.alarms import replay  # noqa: E402
from components.reports.config import parse_config  # noqa: E402
from components.reports.report import build_report, write_report  # noqa: E402
from components.sources import FrameStore, ImageCache, LocalSource  # noqa: E402
from components.sources.history import QualityHistory  # noqa: E402

CONFIG = '''
[[dataset]]
name = "bench"
directory = "data"
plots = ["fwhm_arcsec", "background", "star_count", "elongation", "saturated_fraction"]
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
'''


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--shape", default="1024x1536", help="ROWSxCOLUMNS of each frame")
    args = parser.parse_args()
    rows_, cols = map(int, args.shape.lower().split("x"))
    dataset = parse_config(CONFIG).dataset[0]
    folder = Path(tempfile.mkdtemp(prefix="qa-bench-report-"))
    try:
        start = datetime(2026, 11, 30, 1, 0, tzinfo=timezone.utc)
        template = write_fits(star_field((rows_, cols), n_stars=150, seed=1), folder / "template.fits")
        (folder / "data").mkdir()
        history = QualityHistory(folder / ".quickanalysis" / "quality.sqlite3")
        for index in range(args.frames):
            key = f"data/f{index:04d}.fits"
            shutil.copyfile(template, folder / key)  # distinct files: each decoded on its own
            bad, cloudy = 60 <= index < 70, 120 <= index < 125
            history.record(key, "v", (start + timedelta(minutes=2 * index)).timestamp(), {
                "fwhm_arcsec": 3.6 if bad else 1.5 + 0.001 * index, "fwhm_px": 7.2 if bad else 3.0,
                "star_count": 4 if cloudy else 140, "background": 500.0 + index,
                "elongation": 1.1, "saturated_fraction": 0.0,
            })
        rows = [row for row in history.rows("data")]
        store = FrameStore(LocalSource(folder, settle=0), ImageCache(2 * 1024**3))

        # matplotlib's import and font cache: once per process, not per report.
        build_report(dataset.name, "2026-11-29", rows[:2], [], list(dataset.plots))
        t0 = time.perf_counter()
        alarms = replay(list(dataset.alarm), rows)
        t_alarms = time.perf_counter() - t0

        t0 = time.perf_counter()
        build_report(dataset.name, "2026-11-29", rows, alarms, list(dataset.plots))
        t_plots = time.perf_counter() - t0

        store_cold = FrameStore(LocalSource(folder, settle=0), ImageCache(2 * 1024**3))
        t0 = time.perf_counter()
        report, files = build_report(dataset.name, "2026-11-29", rows, alarms, list(dataset.plots),
                                     thumbnail=lambda key: store_cold.load(key).data)
        t_full = time.perf_counter() - t0
        t0 = time.perf_counter()
        write_report(folder / "reports" / dataset.name / "2026-11-29", files)
        t_write = time.perf_counter() - t0

        t0 = time.perf_counter()
        build_report(dataset.name, "2026-11-29", rows, alarms, list(dataset.plots),
                     thumbnail=lambda key: store.load(key).data)
        t_warm_first = time.perf_counter() - t0
        t0 = time.perf_counter()
        build_report(dataset.name, "2026-11-29", rows, alarms, list(dataset.plots),
                     thumbnail=lambda key: store.load(key).data)
        t_warm = time.perf_counter() - t0

        size = sum(len(content) for content in files.values())
        print(f"report of {args.frames} frames of {rows_}x{cols} ({len(report['alarms'])} alarms, "
              f"{len(dataset.plots)} plots, folder {size / 1e6:.1f} MB, index.html "
              f"{len(files['index.html']) / 1e6:.1f} MB)")
        print(f"  alarm replay                      {t_alarms * 1000:8.1f} ms")
        print(f"  plots and JSON, no thumbnails     {t_plots:8.2f} s")
        print(f"  whole report, frames decoded cold {t_full:8.2f} s  (+ writing the folder {t_write:.2f} s)")
        print(f"  whole report, frames in the cache {t_warm:8.2f} s  (filling it: {t_warm_first:.2f} s)")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
