"""Benchmark: the server-side path of a new frame, as the dashboard meets it.

A 9576 x 6388 uint16 frame, tile-compressed (.fits.fz, RICE_1), arrives in
the watched folder; the server decodes it (through the FrameStore, as a
session does), computes the whole-frame statistics and histogram and the
display limits, and rasterizes the first view at 1200 x 800. The kernels are
warmed up first, as the server does at start-up (``app/warmup.py``).

Run::

    .venv/bin/python bench/new_frame.py [--repeat 3] [--keep]

Each step's time and the total are printed for every run; the target is under
1 s in total.
"""

from __future__ import annotations

import argparse
import statistics as stats_module
import sys
import tempfile
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
if str(PROJECT) not in sys.path:
    sys.path.insert(0, str(PROJECT))

SHAPE = (6388, 9576)  # rows, columns
VIEW = (1200, 800)  # width, height of the first view, in screen pixels
TARGET = 1.0  # seconds


def frame_path(folder: Path) -> Path:
    """The benchmark frame (written once, then reused: writing it takes seconds)."""
    from components.core.synthetic import star_field, write_fits

    path = folder / "data" / f"bench-{SHAPE[1]}x{SHAPE[0]}-uint16.fits.fz"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        print(f"writing {path} ...", flush=True)
        frame = star_field(SHAPE, n_stars=4000, seed=2024, dtype="uint16", saturate_stars=5)
        write_fits(frame, path, compress=True)
    return path


def run_once(root: Path, key: str) -> dict[str, float]:
    """Time one new frame: a fresh store and cache, so nothing is decoded already."""
    import holoviews as hv

    from components.sources import FrameStore, ImageCache, LocalSource
    from components.views import compute
    from components.views.display import make_palette
    from components.views.image import image_element, rasterize_view

    compute.clear()
    store = FrameStore(LocalSource(root, settle=0), ImageCache(2 * 1024**3))
    times: dict[str, float] = {}

    started = time.perf_counter()
    image = store.load(key)
    times["decode (.fits.fz -> uint16 array)"] = time.perf_counter() - started

    step = time.perf_counter()
    compute.region_statistics(image)
    times["statistics (whole frame)"] = time.perf_counter() - step

    step = time.perf_counter()
    compute.region_histogram(image, None, 0.001)
    times["histogram (clip 0.1 % each end)"] = time.perf_counter() - step

    step = time.perf_counter()
    low, high = compute.display_limits(image, "zscale")
    make_palette("grey", "linear", False)
    times["display limits (zscale) + palette"] = time.perf_counter() - step

    step = time.perf_counter()
    width, height = VIEW
    view = rasterize_view(image_element(image), None, None, width, height)
    shape = view.dimension_values(2, flat=False).shape
    times[f"first view: rasterize to {width} x {height}"] = time.perf_counter() - step
    assert shape[0] <= height and shape[1] <= width, shape

    step = time.perf_counter()
    plot = hv.renderer("bokeh").get_plot(
        view.opts(clim=(low, high), cmap=make_palette("grey"), colorbar=True, width=width, height=height)
    )
    assert plot.handles["source"].data["image"][0].shape == shape
    times["first view: Bokeh image + colour mapper"] = time.perf_counter() - step

    times["TOTAL"] = time.perf_counter() - started
    return times


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs (each with a cold cache)")
    parser.add_argument(
        "--folder", type=Path, default=Path(tempfile.gettempdir()) / "quickanalysis-bench",
        help="where the benchmark frame is written (reused between runs)",
    )
    args = parser.parse_args(argv)

    path = frame_path(args.folder)
    key = path.relative_to(args.folder).as_posix()
    print(f"frame: {path} ({path.stat().st_size / 1e6:.1f} MB, {SHAPE[1]} x {SHAPE[0]} uint16)")

    started = time.perf_counter()
    import holoviews as hv

    hv.extension("bokeh", logo=False)
    from app.warmup import warm_up

    warm_up()
    print(f"warm-up (server start, not counted): {time.perf_counter() - started:.2f} s\n")

    runs = [run_once(args.folder, key) for _ in range(max(1, args.repeat))]
    names = list(runs[0])
    width = max(len(name) for name in names)
    header = "".join(f"{f'run {i + 1}':>10}" for i in range(len(runs)))
    print(f"{'step':<{width}}{header}{'median':>10}")
    for name in names:
        values = [run[name] for run in runs]
        cells = "".join(f"{value:>9.3f}s" for value in values)
        print(f"{name:<{width}}{cells}{stats_module.median(values):>9.3f}s")
    total = stats_module.median(run["TOTAL"] for run in runs)
    verdict = "under" if total < TARGET else "OVER"
    print(f"\nmedian total {total:.3f} s: {verdict} the {TARGET:.0f} s target")
    return 0


if __name__ == "__main__":
    sys.exit(main())
