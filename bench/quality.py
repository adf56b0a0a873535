"""Quality metrics: speed on a 61 MP frame, and sep against photutils on accuracy and speed.

Run: ``python bench/quality.py``. Prints, for synthetic fields of known FWHM and
for the frames in ../shared/data (when present), the FWHM that
``components.core.quality`` (sep detection + Moffat fits) measures next to
photutils (DAOStarFinder detection + the same Moffat fits), with each one's time.
"""

from __future__ import annotations

import statistics as pystats
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from components.core.quality import quality, star_profile  # noqa: E402
from components.core.synthetic import star_field  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"


def photutils_fwhm(data: np.ndarray) -> tuple[float | None, int]:
    """FWHM with photutils: sigma-clipped background, DAOStarFinder, the same Moffat fits."""
    from astropy.stats import sigma_clipped_stats
    from photutils.detection import DAOStarFinder

    finite = np.where(np.isfinite(data), data, np.nan).astype(np.float32)
    _, median, std = sigma_clipped_stats(finite[::4, ::4], sigma=3.0)
    finder = DAOStarFinder(fwhm=3.0, threshold=5.0 * std, exclude_border=True)
    sources = finder(np.nan_to_num(finite - median))
    if sources is None or len(sources) == 0:
        return None, 0
    sources.sort("flux", reverse=True)
    fwhms = []
    for row in sources[:160]:
        profile = star_profile(finite, float(row["x_centroid"]), float(row["y_centroid"]), 15.0)
        if profile.fwhm is not None and 1.0 <= profile.fwhm <= 15:
            fwhms.append(profile.fwhm)
        if len(fwhms) >= 40:
            break
    return (float(np.median(fwhms)) if fwhms else None), len(sources)


def timed(function, repeat=3):
    times, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - started)
    return result, pystats.median(times)


def cases():
    for psf in ("gaussian", "moffat"):
        for fwhm in (2.5, 4.0):
            frame = star_field(shape=(1024, 1536), n_stars=200, fwhm=fwhm, psf=psf, seed=5)
            yield f"synthetic {psf} fwhm={fwhm}", frame.data, fwhm
    if SHARED.is_dir():
        from components.sources import load_image

        for path in sorted(SHARED.glob("*")):
            if path.suffix == ".md":
                continue
            yield path.name, load_image(path).data, None


def main() -> None:
    print(f"{'frame':<44} {'truth':>6} {'sep fwhm':>9} {'stars':>6} {'ms':>7} | {'photutils':>9} {'stars':>6} {'ms':>7}")
    for name, data, truth in cases():
        q, sep_time = timed(lambda: quality(data))
        (p_fwhm, p_count), p_time = timed(lambda: photutils_fwhm(data), repeat=1)
        fmt = lambda v: f"{v:9.2f}" if v is not None else f"{'-':>9}"  # noqa: E731
        print(f"{name[:44]:<44} {truth if truth else '-':>6} {fmt(q['fwhm_px'])} {q['star_count']:6d} "
              f"{sep_time * 1e3:7.0f} | {fmt(p_fwhm)} {p_count:6d} {p_time * 1e3:7.0f}")
        sys.stdout.flush()
    big = star_field(shape=(6388, 9576), n_stars=3000, fwhm=3.5, seed=1)
    quality(big.data[:256, :256])
    q, sep_time = timed(lambda: quality(big.data, big.header))
    print(f"\n61 MP 9576x6388 uint16, fwhm 3.5: quality() median {sep_time * 1e3:.0f} ms "
          f"(fwhm {q['fwhm_px']:.2f} px, {q['star_count']} stars)")
    (p_fwhm, p_count), p_time = timed(lambda: photutils_fwhm(big.data), repeat=1)
    print(f"61 MP photutils path: {p_time * 1e3:.0f} ms (fwhm {p_fwhm:.2f} px, {p_count} stars)")


if __name__ == "__main__":
    main()
