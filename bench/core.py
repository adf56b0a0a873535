"""Median time of each core function against the straightforward numpy/scipy equivalent.

Run: ``python -m bench.core`` (or ``python bench/core.py``). Frames are synthetic:
a 9576 x 6388 uint16 CMOS frame and a 4096 x 4096 float32 frame.
"""

from __future__ import annotations

import argparse
import statistics as pystats
import sys
import time
from pathlib import Path

import numpy as np
import scipy.stats

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from components.core import histogram_clipped, line_profile, statistics, subregion  # noqa: E402


def timed(function, repeat: int) -> float:
    """Median wall time of ``repeat`` calls, in seconds."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return pystats.median(times)


def straightforward_statistics(array):
    finite = array[np.isfinite(array)] if array.dtype.kind == "f" else array.ravel()
    return {
        "mean": finite.mean(),
        "median": np.median(finite),
        "mode": scipy.stats.mode(finite).mode,
        "min": finite.min(),
        "max": finite.max(),
        "std": finite.std(),
        "median_abs_deviation": scipy.stats.median_abs_deviation(finite),
    }


def straightforward_histogram(array, clip=0.001):
    finite = array[np.isfinite(array)] if array.dtype.kind == "f" else array.ravel()
    low, high = np.percentile(finite, [100 * clip, 100 * (1 - clip)])
    inside = finite[(finite >= low) & (finite <= high)]
    counts, edges = np.histogram(inside, bins=min(5000, int(np.sqrt(inside.size))))
    return counts, edges, np.median(inside), inside.mean(), scipy.stats.mode(inside).mode


def frames(seed: int = 0):
    rng = np.random.default_rng(seed)
    cmos = rng.normal(1000, 30, size=(6388, 9576)).astype(np.uint16)
    # A few saturated and hot pixels, as on a real frame.
    cmos.ravel()[rng.integers(0, cmos.size, 20000)] = 65535
    floats = rng.normal(100, 5, size=(4096, 4096)).astype(np.float32)
    floats.ravel()[rng.integers(0, floats.size, 1000)] = np.nan
    return {"uint16 9576x6388": cmos, "float32 4096x4096": floats}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=7, help="runs of each core function")
    parser.add_argument("--repeat-reference", type=int, default=3, help="runs of each reference")
    args = parser.parse_args(argv)

    print(f"numpy {np.__version__}, scipy {scipy.__version__}; median of {args.repeat} runs "
          f"(reference: {args.repeat_reference})")
    print(f"{'frame':<20} {'function':<26} {'core ms':>9} {'reference ms':>13} {'speed-up':>9}")
    for name, frame in frames().items():
        # Compile the numba kernels for this dtype outside the timings.
        statistics(frame[:8, :8])
        histogram_clipped(frame[:8, :8])
        rows = [
            ("statistics", lambda: statistics(frame), lambda: straightforward_statistics(frame)),
            ("histogram_clipped(0.001)", lambda: histogram_clipped(frame, 0.001),
             lambda: straightforward_histogram(frame)),
            ("statistics(box 1/4)", lambda: statistics(subregion(frame, 0.25, 0.25, 0.75, 0.75)),
             lambda: straightforward_statistics(subregion(frame, 0.25, 0.25, 0.75, 0.75))),
            ("line_profile(diagonal)", lambda: line_profile(frame, (0, 0), (1, 1)), None),
            ("line_profile(width=5)", lambda: line_profile(frame, (0, 0), (1, 1), width=5), None),
        ]
        for label, core, ref in rows:
            core_time = timed(core, args.repeat)
            if ref is None:
                print(f"{name:<20} {label:<26} {core_time * 1e3:9.1f} {'-':>13} {'-':>9}")
                continue
            ref_time = timed(ref, args.repeat_reference)
            print(f"{name:<20} {label:<26} {core_time * 1e3:9.1f} {ref_time * 1e3:13.1f} "
                  f"{ref_time / core_time:8.1f}x")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
