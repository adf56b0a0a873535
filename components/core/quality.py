"""Per-frame quality: background, saturation, star count, FWHM, half-flux radius, elongation.

Source extraction uses `sep` (the SExtractor library): on the frames in
``../shared/data`` and on a 9576 x 6388 frame it measured the same FWHM as
photutils to within a few percent at a fraction of the time (``bench/quality.py``
prints the comparison). Frames over 16 megapixels are detected on a 2x2 binned
copy; every star's FWHM is then measured on full-resolution pixels, by fitting
a Moffat profile (which becomes a Gaussian as beta grows) to its radial profile.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping

import numpy as np
import numpy.typing as npt
import sep
from scipy.optimize import curve_fit

from components.core.wcs import pixel_scale as _pixel_scale

__all__ = [
    "QualityThresholds",
    "MoffatFit",
    "StarProfile",
    "quality",
    "star_profile",
    "moffat",
    "moffat_jacobian",
    "pixel_scale_of",
    "saturation_level_of",
]

# Frames larger than this are detected on a 2x2 binned copy.
_BIN_ABOVE_PIXELS = 16_000_000
# Stars whose radial profiles are fitted for the FWHM.
_FIT_STARS = 40
# Stars listed in the result (for the dashboard's overlay).
_LISTED_STARS = 2000
_DETECT_SIGMA = 5.0
_MIN_AREA = 5
# Narrower than this is a cosmic ray or a hot pixel, not a sampled PSF.
_MIN_FWHM_PX = 1.0
# Fewer finite pixels than this give no meaningful sky level or noise (sep
# answers e.g. twice the value of a lone pixel): those metrics are None.
_MIN_SKY_PIXELS = 9


@dataclass(frozen=True)
class QualityThresholds:
    """Limits of the verdicts: a value past ``*_warn`` is "warn", past ``*_bad`` is "bad"."""

    fwhm_arcsec_warn: float = 2.5
    fwhm_arcsec_bad: float = 4.0
    fwhm_px_warn: float = 5.0
    fwhm_px_bad: float = 8.0
    elongation_warn: float = 1.3
    elongation_bad: float = 1.6
    saturated_fraction_warn: float = 1e-4
    saturated_fraction_bad: float = 1e-3
    star_count_warn: int = 25
    star_count_bad: int = 5
    background_warn: float | None = None
    background_bad: float | None = None


@dataclass(frozen=True)
class MoffatFit:
    """``amplitude * (1 + (r / alpha)**2) ** -beta + background``."""

    amplitude: float
    alpha: float
    beta: float
    background: float

    @property
    def fwhm(self) -> float:
        return 2.0 * self.alpha * math.sqrt(2.0 ** (1.0 / self.beta) - 1.0)


@dataclass(frozen=True)
class StarProfile:
    """Radial profile of one star (background subtracted) and its Moffat fit."""

    x: float
    y: float
    radius: np.ndarray
    values: np.ndarray
    fit: MoffatFit | None
    hfr: float | None
    peak: float
    background: float

    @property
    def fwhm(self) -> float | None:
        return self.fit.fwhm if self.fit is not None else None


def moffat(r: npt.ArrayLike, amplitude: float, alpha: float, beta: float, background: float) -> np.ndarray:
    """The Moffat profile at radius ``r``.

    Examples
    --------
    >>> float(moffat(0.0, 10.0, 2.0, 3.0, 1.0))
    11.0
    """
    r = np.asarray(r, dtype=np.float64)
    return amplitude * (1.0 + (r / alpha) ** 2) ** (-beta) + background


def star_profile(
    image: npt.ArrayLike, x: float, y: float, radius: float = 12.0, background: float | None = None
) -> StarProfile:
    """Radial profile of the star near pixel ``(x, y)``, with a Moffat fit.

    The centre is refined by an intensity-weighted centroid; the background
    is the median of the outer annulus unless given.

    Examples
    --------
    >>> import numpy as np
    >>> yy, xx = np.mgrid[:41, :41]
    >>> star = 1000 * np.exp(-((xx - 20) ** 2 + (yy - 20) ** 2) / (2 * 2.0**2))
    >>> round(star_profile(star, 20, 20, radius=15).fwhm, 2)  # a Gaussian of FWHM 4.71: beta at its bound, 30
    4.66
    """
    array = np.asarray(image)
    height, width = array.shape
    radius = float(max(radius, 3.0))
    x0, x1 = int(max(0, math.floor(x - radius))), int(min(width, math.ceil(x + radius) + 1))
    y0, y1 = int(max(0, math.floor(y - radius))), int(min(height, math.ceil(y + radius) + 1))
    cutout = np.asarray(array[y0:y1, x0:x1], dtype=np.float64)
    yy, xx = np.mgrid[y0:y1, x0:x1]
    finite = np.isfinite(cutout)
    distance = np.hypot(xx - x, yy - y)
    if background is None:
        annulus = finite & (distance > 0.75 * radius) & (distance <= radius)
        background = float(np.median(cutout[annulus])) if annulus.any() else float(np.nanmedian(cutout))
    signal = cutout - background
    # Two rounds of centroiding in a shrinking window pull the centre onto the star.
    cx, cy = float(x), float(y)
    for window in (0.5 * radius, 0.3 * radius):
        inside = finite & (np.hypot(xx - cx, yy - cy) <= max(window, 2.0)) & (signal > 0)
        weight = signal[inside]
        if weight.sum() > 0:
            cx = float(np.dot(weight, xx[inside]) / weight.sum())
            cy = float(np.dot(weight, yy[inside]) / weight.sum())
    distance = np.hypot(xx - cx, yy - cy)
    use = finite & (distance <= radius)
    r, values = distance[use], signal[use]
    order = np.argsort(r)
    r, values = r[order], values[order]
    peak = float(values[: max(1, min(4, len(values)))].max()) if len(values) else 0.0
    return StarProfile(cx, cy, r, values, _fit_moffat(r, values, peak), _half_flux_radius(r, values), peak, background)


def moffat_jacobian(r: npt.ArrayLike, amplitude: float, alpha: float, beta: float, background: float) -> np.ndarray:
    """Partial derivatives of :func:`moffat` by its four parameters, one column each.

    Examples
    --------
    >>> moffat_jacobian([0.0], 10.0, 2.0, 3.0, 1.0).tolist()
    [[1.0, 0.0, -0.0, 1.0]]
    """
    r = np.asarray(r, dtype=np.float64)
    q = 1.0 + (r / alpha) ** 2
    power = q ** (-beta)
    jacobian = np.empty((r.size, 4))
    jacobian[:, 0] = power.ravel()
    jacobian[:, 1] = (amplitude * beta * 2.0 / alpha**3 * r**2 * power / q).ravel()
    jacobian[:, 2] = (-amplitude * power * np.log(q)).ravel()
    jacobian[:, 3] = 1.0
    return jacobian


def _fit_moffat(r: np.ndarray, values: np.ndarray, peak: float) -> MoffatFit | None:
    if len(r) < 8 or not peak > 0:
        return None
    # Start from the radius where the profile first falls below half the peak.
    below = np.flatnonzero(values < peak / 2)
    half = float(r[below[0]]) if len(below) else float(r[-1]) / 2
    beta0 = 3.0
    alpha0 = max(half / math.sqrt(2.0 ** (1.0 / beta0) - 1.0), 0.3)
    p0 = (peak, alpha0, beta0, 0.0)
    low = np.array([0.0, 0.05, 1.01, -abs(peak)])
    high = np.array([10 * peak + 1, 10 * r[-1] + 1, 30.0, abs(peak)])
    # The analytic Jacobian: scipy's numerical one took most of a fit's time (one fit
    # of a 2,800-pixel profile: 43.5 ms with it, 8.9 ms without); the answer is the same.
    try:
        params, _ = curve_fit(
            moffat, r, values, p0=p0, jac=moffat_jacobian, bounds=(low, high), maxfev=400,
        )
    except (RuntimeError, ValueError):
        return None
    fit = MoffatFit(*map(float, params))
    return fit if math.isfinite(fit.fwhm) and fit.fwhm > 0 else None


def _half_flux_radius(r: np.ndarray, values: np.ndarray) -> float | None:
    cumulative = np.cumsum(values)
    if len(cumulative) == 0 or not cumulative[-1] > 0:
        return None
    index = int(np.searchsorted(cumulative, cumulative[-1] / 2))
    return float(r[min(index, len(r) - 1)])


def pixel_scale_of(header: Mapping | None = None, wcs=None, default: float | None = None) -> float | None:
    """Arcsec per pixel: :func:`components.core.wcs.pixel_scale`, the rule the profile pane uses too."""
    return _pixel_scale(header, wcs, default)


def saturation_level_of(image: np.ndarray, header: Mapping | None = None, default: float | None = None) -> float | None:
    """SATURATE from the header, else ``default``, else the maximum of an integer dtype."""
    if header is not None and "SATURATE" in header:
        try:
            level = float(header["SATURATE"])
            if math.isfinite(level) and level > 0:
                return level
        except (TypeError, ValueError):
            pass
    if default is not None:
        return float(default)
    if np.issubdtype(image.dtype, np.integer):
        return float(np.iinfo(image.dtype).max)
    return None


def _verdict(value, warn, bad, higher_is_worse: bool = True) -> str:
    if value is None or warn is None:
        return "unknown"
    if higher_is_worse:
        return "bad" if bad is not None and value >= bad else "warn" if value >= warn else "ok"
    return "bad" if bad is not None and value <= bad else "warn" if value <= warn else "ok"


def _detection_image(image: np.ndarray) -> tuple[np.ndarray, int]:
    data = np.asarray(image)
    if data.size > _BIN_ABOVE_PIXELS and min(data.shape) >= 2:
        rows, cols = (data.shape[0] // 2) * 2, (data.shape[1] // 2) * 2
        binned = data[:rows:2, :cols:2].astype(np.float32)
        binned += data[1:rows:2, :cols:2]
        binned += data[:rows:2, 1:cols:2]
        binned += data[1:rows:2, 1:cols:2]
        binned *= 0.25
        return binned, 2
    # Always a copy at full resolution: sep subtracts the background in place,
    # and the caller's array may be a read-only cached frame ("buffer source
    # array is read-only") or one it still uses. Frames above _BIN_ABOVE_PIXELS
    # never get here (the binned array is new), so a 61 MP frame is not copied.
    return np.array(data, dtype=np.float32, order="C"), 1


def _subtract_sky(detect: np.ndarray, mask: np.ndarray) -> tuple[float | None, float | None]:
    """sep's global sky level and noise, the background map subtracted from ``detect`` in place.

    (None, None), and ``detect`` untouched, when the frame has too few finite
    pixels, or when sep found no background box at least half unmasked (it
    then answers a level of 0 and a noise of 1, which would read as measured).
    """
    if detect.size - int(np.count_nonzero(mask)) < _MIN_SKY_PIXELS:
        return None, None
    background = sep.Background(detect, mask=mask if mask.any() else None, bw=64, bh=64)
    sky, noise = float(background.globalback), float(background.globalrms)
    if mask.any() and sky == 0.0 and noise == 1.0:
        return None, None
    background.subfrom(detect)
    return sky, noise


def quality(
    image: npt.ArrayLike,
    header: Mapping | None = None,
    *,
    wcs=None,
    saturation: float | None = None,
    pixel_scale: float | None = None,
    thresholds: QualityThresholds | None = None,
) -> dict:
    """Quality metrics of a frame, each with a verdict.

    Parameters
    ----------
    image : array_like
        2-D frame.
    header : mapping, optional
        FITS header: SATURATE and the pixel scale keywords of
        :func:`components.core.wcs.pixel_scale` are used when present.
    wcs : astropy.wcs.WCS, optional
        Celestial WCS giving the pixel scale.
    saturation, pixel_scale : float, optional
        Fallbacks when the header and WCS say nothing.
    thresholds : QualityThresholds, optional
        Limits of the verdicts.

    Returns
    -------
    dict
        ``background`` and ``background_rms`` (sigma-clipped, ADU),
        ``saturation_level``, ``saturated_pixels``, ``saturated_fraction``,
        ``star_count``, ``fwhm_px``, ``fwhm_arcsec``, ``hfr_px``,
        ``elongation`` (median a/b), ``pixel_scale``, ``stars_measured``,
        ``verdicts`` (ok / warn / bad / unknown per metric) and ``stars``
        (x, y, flux, a, b of up to 2000 brightest detections, in pixels).
        Values that cannot be measured are None.

    Examples
    --------
    >>> from components.core.synthetic import star_field
    >>> frame = star_field(shape=(256, 256), n_stars=40, fwhm=3.0, seed=1)
    >>> result = quality(frame.data, frame.header)
    >>> abs(result["fwhm_px"] - 3.0) < 0.3
    True
    """
    data = np.asarray(image)
    if data.ndim != 2 or data.size == 0:
        from components.errors import InvalidRequest

        raise InvalidRequest(f"quality needs a non-empty 2-D image, got shape {data.shape}")
    if not data.dtype.isnative:
        data = data.astype(data.dtype.newbyteorder("="))
    thresholds = thresholds or QualityThresholds()
    level = saturation_level_of(data, header, saturation)
    scale = pixel_scale_of(header, wcs, pixel_scale)

    detect, binning = _detection_image(data)
    mask = ~np.isfinite(detect)
    if mask.any():
        detect = np.where(mask, 0, detect).astype(np.float32)
    sky, noise = _subtract_sky(detect, mask)
    objects = np.zeros(0, dtype=[("x", "f8"), ("y", "f8"), ("flux", "f8"), ("a", "f8"), ("b", "f8"),
                                 ("peak", "f8"), ("flag", "i4"), ("npix", "i4")])
    if sky is not None:
        sep.set_extract_pixstack(max(300_000, detect.size // 10))
        sep.set_sub_object_limit(4096)
        try:
            objects = sep.extract(
                detect, _DETECT_SIGMA, err=max(noise, 1e-12), minarea=_MIN_AREA,
                mask=mask if mask.any() else None,
            )
        except Exception:
            # sep gives up on pathological frames (e.g. a whole frame above threshold).
            pass
    x = (objects["x"] + 0.5) * binning - 0.5
    y = (objects["y"] + 0.5) * binning - 0.5
    a, b = objects["a"] * binning, objects["b"] * binning
    # A star is extended beyond a single hot pixel or cosmic ray.
    star = (objects["npix"] >= _MIN_AREA) & (b > 0.35 * binning)

    saturated_pixels = 0
    if level is not None:
        with np.errstate(invalid="ignore"):
            saturated_pixels = int(np.count_nonzero(data >= level))
    fwhm_px, hfr_px, measured = _measure_fwhm(data, x, y, a, b, objects["flux"], star, level, sky or 0.0)
    good = star & (objects["flag"] == 0)
    elongation = float(np.median(a[good] / b[good])) if good.sum() else None

    fwhm_arcsec = fwhm_px * scale if fwhm_px is not None and scale is not None else None
    # No sky, no detection: the star count is unknown, not zero.
    star_count = int(star.sum()) if sky is not None else None
    order = np.argsort(objects["flux"][star])[::-1][:_LISTED_STARS]
    listed = {name: np.round(values[star][order], 3).tolist() for name, values in
              (("x", x), ("y", y), ("flux", objects["flux"]), ("a", a), ("b", b))}
    if fwhm_arcsec is not None:
        fwhm_verdict = _verdict(fwhm_arcsec, thresholds.fwhm_arcsec_warn, thresholds.fwhm_arcsec_bad)
    else:
        fwhm_verdict = _verdict(fwhm_px, thresholds.fwhm_px_warn, thresholds.fwhm_px_bad)
    # With no finite pixel at all, the fraction is unknown rather than zero.
    measurable = not mask.all() or bool(np.isfinite(data).any())
    fraction = saturated_pixels / data.size if measurable else None
    return {
        "background": sky,
        "background_rms": noise * binning if binning > 1 and noise is not None else noise,
        "saturation_level": level,
        "saturated_pixels": saturated_pixels,
        "saturated_fraction": fraction,
        "star_count": star_count,
        "fwhm_px": fwhm_px,
        "fwhm_arcsec": fwhm_arcsec,
        "hfr_px": hfr_px,
        "elongation": elongation,
        "pixel_scale": scale,
        "stars_measured": measured,
        "verdicts": {
            "fwhm": fwhm_verdict,
            "elongation": _verdict(elongation, thresholds.elongation_warn, thresholds.elongation_bad),
            "saturation": _verdict(fraction, thresholds.saturated_fraction_warn, thresholds.saturated_fraction_bad)
            if level is not None else "unknown",
            "star_count": _verdict(star_count, thresholds.star_count_warn, thresholds.star_count_bad, higher_is_worse=False),
            "background": _verdict(sky, thresholds.background_warn, thresholds.background_bad)
            if thresholds.background_warn is not None else "ok",
        },
        "stars": listed,
    }


def _measure_fwhm(data, x, y, a, b, flux, star, level, sky):
    """Median FWHM and half-flux radius of the brightest clean, isolated stars."""
    height, width = data.shape
    candidates = np.flatnonzero(star)
    candidates = candidates[np.argsort(flux[candidates])[::-1][: 4 * _FIT_STARS]]
    fwhms, hfrs = [], []
    positions = np.column_stack([x[candidates], y[candidates]])
    for index, candidate in enumerate(candidates):
        # Thresholded moments underestimate the width: aim wide.
        guess = 2.355 * math.sqrt(max(a[candidate] * b[candidate], 0.25))
        radius = float(np.clip(4.0 * guess, 8.0, 30.0))
        cx, cy = x[candidate], y[candidate]
        if not (radius <= cx < width - radius and radius <= cy < height - radius):
            continue
        # A neighbour inside the fitted core would widen the profile.
        others = np.delete(positions, index, axis=0)
        if len(others) and np.min(np.hypot(*(others - (cx, cy)).T)) < 0.6 * radius:
            continue
        cutout = data[int(cy - radius): int(cy + radius) + 1, int(cx - radius): int(cx + radius) + 1]
        if level is not None and np.nanmax(cutout) >= 0.9 * level:
            continue
        profile = star_profile(data, cx, cy, radius)
        if profile.fwhm is None or not _MIN_FWHM_PX <= profile.fwhm <= radius:
            continue
        fwhms.append(profile.fwhm)
        if profile.hfr is not None:
            hfrs.append(profile.hfr)
        if len(fwhms) >= _FIT_STARS:
            break
    if not fwhms:
        return None, None, 0
    return float(np.median(fwhms)), (float(np.median(hfrs)) if hfrs else None), len(fwhms)
