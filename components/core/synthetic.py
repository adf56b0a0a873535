"""Synthetic star fields with a known PSF, known stars and a celestial WCS.

The frames feed the simulated camera, the tests and the benchmarks: every star
is listed with its true position and flux, the PSF width is exact, and the
header carries the keywords a real camera writes.

Pure numpy/astropy: nothing here imports Panel or Bokeh.
"""

from __future__ import annotations

import math
import os
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import numpy.typing as npt
from astropy.io import fits
from astropy.time import Time
from astropy.wcs import WCS

__all__ = ["SyntheticFrame", "STAR_DTYPE", "star_field", "crop", "write_fits"]

#: Fields of :attr:`SyntheticFrame.stars`: 0-based pixel column ``x`` and row
#: ``y`` of the centre, total ``flux`` in ADU, ``peak`` (flux per pixel at the
#: centre, before noise and clipping), ``ra``/``dec`` in degrees and whether
#: the star was made brighter than the saturation level.
STAR_DTYPE = np.dtype(
    [
        ("x", np.float64),
        ("y", np.float64),
        ("flux", np.float64),
        ("peak", np.float64),
        ("ra", np.float64),
        ("dec", np.float64),
        ("saturated", np.bool_),
    ]
)

# Pixels per rendering batch: bounds the temporary stamp arrays (~32 MB).
_BATCH_PIXELS = 4_000_000
# Flux fraction a Moffat stamp may leave outside its radius.
_MOFFAT_TAIL = 0.003


@dataclass(eq=False)
class SyntheticFrame:
    """A synthetic frame and the truth it was made from.

    Attributes
    ----------
    data : ndarray
        2-D image, row 0 first (FITS ``NAXIS2`` rows of ``NAXIS1`` columns).
    header : astropy.io.fits.Header
        Header with a celestial TAN WCS and the usual observing keywords.
    stars : numpy.recarray
        One record per star with the fields of :data:`STAR_DTYPE`.
    """

    data: np.ndarray
    header: fits.Header
    stars: np.recarray

    @property
    def shape(self) -> tuple[int, int]:
        return self.data.shape


def _sigma(fwhm: float) -> float:
    return fwhm / (2.0 * math.sqrt(2.0 * math.log(2.0)))


def _moffat_alpha(fwhm: float, beta: float) -> float:
    return fwhm / (2.0 * math.sqrt(2.0 ** (1.0 / beta) - 1.0))


def _stamp_radius(fwhm: float, psf: str, beta: float, elongation: float) -> int:
    """Half-size of a star's stamp, large enough to hold nearly all its flux."""
    major = fwhm * elongation
    radius = 4.0 * major
    if psf == "moffat":
        # Radius enclosing all but _MOFFAT_TAIL of the flux (wide wings for small beta).
        alpha = _moffat_alpha(major, beta)
        radius = max(radius, alpha * math.sqrt(_MOFFAT_TAIL ** (1.0 / (1.0 - beta)) - 1.0))
    return max(2, int(math.ceil(radius)))


def _profile(
    dx: np.ndarray,
    dy: np.ndarray,
    fwhm: float,
    psf: str,
    beta: float,
    elongation: float,
    angle: float,
) -> np.ndarray:
    """Unnormalised PSF at offsets ``dx, dy`` (pixels) from the centre."""
    if elongation != 1.0:
        theta = math.radians(angle)
        cos, sin = np.float32(math.cos(theta)), np.float32(math.sin(theta))
        along = (dx * cos + dy * sin) * np.float32(1.0 / elongation)
        across = -dx * sin + dy * cos
        r2 = along * along + across * across
    else:
        r2 = dx * dx + dy * dy
    if psf == "gaussian":
        return np.exp(r2 * np.float32(-0.5 / _sigma(fwhm) ** 2))
    return (1.0 + r2 * np.float32(1.0 / _moffat_alpha(fwhm, beta) ** 2)) ** np.float32(-beta)


def _render_stars(
    image: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    flux: np.ndarray,
    fwhm: float,
    psf: str,
    beta: float,
    elongation: float,
    angle: float,
    oversample: int,
) -> np.ndarray:
    """Add every star to ``image`` in place; return each star's central peak per unit flux."""
    height, width = image.shape
    radius = _stamp_radius(fwhm, psf, beta, elongation)
    size = 2 * radius + 1
    # float32 stamps: half the memory traffic, far more precise than the noise.
    offsets = np.arange(-radius, radius + 1, dtype=np.float32)
    # Sub-pixel sample positions (pixel-integrated PSF when oversample > 1).
    sub = ((np.arange(oversample) + 0.5) / oversample - 0.5).astype(np.float32)
    peaks = np.empty(len(x))
    batch = max(1, _BATCH_PIXELS // (size * size * oversample * oversample))
    for start in range(0, len(x), batch):
        stop = min(len(x), start + batch)
        cx = np.rint(x[start:stop]).astype(np.intp)
        cy = np.rint(y[start:stop]).astype(np.intp)
        fx = (cx - x[start:stop]).astype(np.float32)[:, None, None, None, None]
        fy = (cy - y[start:stop]).astype(np.float32)[:, None, None, None, None]
        dx = fx + offsets[None, None, :, None, None] + sub[None, None, None, None, :]
        dy = fy + offsets[None, :, None, None, None] + sub[None, None, None, :, None]
        stamps = _profile(dx, dy, fwhm, psf, beta, elongation, angle)
        stamps = stamps[..., 0, 0] if oversample == 1 else stamps.mean(axis=(3, 4))
        # Normalise the whole stamp (also the part off the frame) so flux is exact.
        stamps /= stamps.sum(axis=(1, 2), keepdims=True, dtype=np.float64).astype(np.float32)
        peaks[start:stop] = stamps[:, radius, radius]
        stamps = (stamps * flux[start:stop, None, None]).astype(image.dtype, copy=False)
        for stamp, col, row in zip(stamps, cx, cy):
            r0, c0 = row - radius, col - radius
            rr0, cc0 = max(r0, 0), max(c0, 0)
            rr1, cc1 = min(r0 + size, height), min(c0 + size, width)
            if rr0 < rr1 and cc0 < cc1:
                image[rr0:rr1, cc0:cc1] += stamp[rr0 - r0 : rr1 - r0, cc0 - c0 : cc1 - c0]
    return peaks


def _peak_per_flux(fwhm: float, psf: str, beta: float, elongation: float, angle: float, oversample: int) -> float:
    """Central pixel value of a unit-flux star centred on a pixel."""
    probe = np.zeros((1, 1), dtype=np.float64)
    return float(
        _render_stars(probe, np.zeros(1), np.zeros(1), np.ones(1), fwhm, psf, beta, elongation, angle, oversample)[0]
    )


def _cloud_pattern(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """Smooth, lumpy field of mean ~1 (a gradient and a few broad patches), float32."""
    height, width = shape
    u = np.linspace(-1.0, 1.0, width, dtype=np.float32)
    v = np.linspace(-1.0, 1.0, height, dtype=np.float32)[:, None]
    gx, gy = rng.uniform(-0.4, 0.4, 2).astype(np.float32)
    field = 1.0 + gx * u + gy * v
    # Separable patches: each costs one broadcast multiply-add over the frame.
    for _ in range(3):
        kx, ky = rng.uniform(1.0, 4.0, 2)
        px, py = rng.uniform(0, 2 * np.pi, 2)
        amplitude = np.float32(rng.uniform(0.1, 0.3))
        field = field + amplitude * np.cos(kx * u + px).astype(np.float32) * np.cos(ky * v + py).astype(np.float32)
    return np.clip(field, 0.2, None, out=field)


def _wcs_cards(shape: tuple[int, int], ra: float, dec: float, pixel_scale: float) -> list[tuple]:
    height, width = shape
    scale = pixel_scale / 3600.0
    return [
        ("WCSAXES", 2, "Number of WCS axes"),
        ("CTYPE1", "RA---TAN", "Gnomonic projection"),
        ("CTYPE2", "DEC--TAN", "Gnomonic projection"),
        ("CUNIT1", "deg", ""),
        ("CUNIT2", "deg", ""),
        ("CRPIX1", (width + 1) / 2.0, "Reference pixel (1-based column)"),
        ("CRPIX2", (height + 1) / 2.0, "Reference pixel (1-based row)"),
        ("CRVAL1", float(ra), "[deg] RA at the reference pixel"),
        ("CRVAL2", float(dec), "[deg] Dec at the reference pixel"),
        # East to the left (decreasing column), north up (increasing row).
        ("CD1_1", -scale, ""),
        ("CD1_2", 0.0, ""),
        ("CD2_1", 0.0, ""),
        ("CD2_2", scale, ""),
        ("RADESYS", "ICRS", ""),
        ("EQUINOX", 2000.0, ""),
    ]


def _date_obs(date_obs: str | datetime | None) -> Time:
    if date_obs is None:
        return Time(datetime.now(timezone.utc))
    return Time(date_obs)


_NORMAL_TABLE: np.ndarray | None = None
# Rows per block of the final pass: keeps its temporaries in the CPU cache.
_BLOCK_ROWS = 128


def _normal_table() -> np.ndarray:
    """The 65536 equal-probability quantiles of a standard normal (float32)."""
    global _NORMAL_TABLE
    if _NORMAL_TABLE is None:
        from scipy.special import ndtri

        _NORMAL_TABLE = ndtri((np.arange(65536) + 0.5) / 65536).astype(np.float32)
    return _NORMAL_TABLE


def _finish(
    model: np.ndarray,
    dtype: np.dtype,
    saturation: float,
    read_noise: float | None,
    rng: np.random.Generator,
) -> np.ndarray:
    """Add noise, clip at saturation and convert, one cache-sized block at a time.

    Normal deviates come from a 16-bit lookup table of quantiles (exact to
    the table's resolution, tails cut at ~4.3 sigma): drawing 16-bit integers
    is several times faster than ``standard_normal`` on 60-megapixel frames.
    """
    out = np.empty(model.shape, dtype=dtype)
    integer = np.issubdtype(dtype, np.integer)
    low, high = (np.iinfo(dtype).min, np.iinfo(dtype).max) if integer else (None, None)
    table = _normal_table() if read_noise is not None else None
    for start in range(0, model.shape[0], _BLOCK_ROWS):
        block = model[start : start + _BLOCK_ROWS]
        if table is not None:
            deviates = table[rng.integers(0, 65536, size=block.shape, dtype=np.uint16)]
            sigma = np.maximum(block, 0.0)
            sigma += np.float32(read_noise**2)
            np.sqrt(sigma, out=sigma)
            sigma *= deviates
            block = block + sigma
        else:
            block = block.copy()
        np.minimum(block, saturation, out=block)
        if integer:
            np.rint(block, out=block)
            np.clip(block, low, high, out=block)
        out[start : start + _BLOCK_ROWS] = block
    return out


def star_field(
    shape: tuple[int, int] = (1024, 1536),
    n_stars: int = 200,
    fwhm: float = 3.0,
    psf: str = "gaussian",
    beta: float = 3.0,
    background: float = 500.0,
    noise: bool = True,
    read_noise: float = 5.0,
    elongation: float = 1.0,
    angle: float = 0.0,
    saturate_stars: int = 0,
    saturation: float = 65535,
    cloud: float = 0.0,
    dtype: npt.DTypeLike = np.uint16,
    seed: int | np.random.Generator | None = None,
    ra: float = 83.8,
    dec: float = -5.4,
    pixel_scale: float = 0.5,
    object: str = "SIMULATED",
    filter: str = "V",
    exptime: float = 30.0,
    date_obs: str | datetime | None = None,
    oversample: int = 1,
) -> SyntheticFrame:
    """A frame of stars with a known PSF on a flat (or cloudy) sky.

    Star positions are uniform over the frame; peak heights follow a power
    law (many faint stars, few bright ones) from about 5 sigma of the sky
    noise to half the headroom below ``saturation``.

    Parameters
    ----------
    shape : (int, int)
        Rows and columns.
    n_stars : int
        Number of ordinary (unsaturated) stars.
    fwhm : float
        PSF full width at half maximum in pixels (across the trail when
        ``elongation > 1``). A fitted Gaussian (or Moffat) recovers it exactly:
        the PSF is sampled at pixel centres, or integrated over each pixel
        with ``oversample > 1``.
    psf : {"gaussian", "moffat"}
        PSF model; ``beta`` is the Moffat power index.
    background : float
        Sky level in ADU (gain 1).
    noise : bool
        Add photon noise (Gaussian approximation of Poisson, variance =
        signal in ADU) and read noise of ``read_noise`` ADU.
    elongation, angle : float
        Stretch of the PSF (major/minor FWHM ratio) along ``angle`` degrees,
        measured from the +x (column) axis towards +y (row): tracking
        errors or wind shake.
    saturate_stars : int
        Extra stars 2-20 times brighter than ``saturation`` (flat-topped).
    saturation : float
        Level at which pixels clip; written as ``SATURATE`` (at most the
        dtype's maximum for integer types).
    cloud : float
        Fraction of starlight lost to cloud (0 clear .. 1 overcast). Cloud
        also raises the sky and makes it lumpy and sloped.
    dtype : dtype
        Output type; integers are rounded and clipped to their range.
    seed : int, Generator or None
        Random seed for reproducible frames.
    ra, dec, pixel_scale : float
        Sky position of the frame centre (degrees) and arcsec per pixel of the
        TAN WCS.
    object, filter, exptime, date_obs
        Values of ``OBJECT``, ``FILTER``, ``EXPTIME`` and ``DATE-OBS``
        (default: now, UTC).
    oversample : int
        Sub-samples per pixel side; 1 samples the PSF at pixel centres.

    Returns
    -------
    SyntheticFrame

    Examples
    --------
    >>> frame = star_field((64, 96), n_stars=5, seed=1)
    >>> frame.data.shape, frame.data.dtype.name, len(frame.stars)
    ((64, 96), 'uint16', 5)
    >>> frame.header["CTYPE1"], frame.header["SATURATE"]
    ('RA---TAN', 65535)
    """
    height, width = (int(n) for n in shape)
    if height < 1 or width < 1:
        raise ValueError(f"shape must be positive, got {shape}")
    if psf not in ("gaussian", "moffat"):
        raise ValueError(f"psf must be 'gaussian' or 'moffat', got {psf!r}")
    if fwhm <= 0 or elongation < 1 or (psf == "moffat" and beta <= 1):
        raise ValueError("fwhm must be > 0, elongation >= 1 and Moffat beta > 1")
    if not 0.0 <= cloud <= 1.0:
        raise ValueError(f"cloud must be in [0, 1], got {cloud}")
    dtype = np.dtype(dtype)
    if np.issubdtype(dtype, np.integer):
        saturation = min(float(saturation), float(np.iinfo(dtype).max))
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    oversample = max(1, int(oversample))

    # Peak heights: N(>p) ~ p**-0.7 between ~5 sigma of the sky noise and
    # half the headroom under saturation (clear-sky values, dimmed below).
    sky_noise = math.sqrt(max(background, 0.0) + read_noise**2) if noise else 1.0
    low = max(5.0 * sky_noise, 1.0)
    high = max(low * 2.0, 0.5 * (saturation - background))
    index = 0.7
    u = rng.uniform(0.0, 1.0, int(n_stars))
    peaks = (low**-index - u * (low**-index - high**-index)) ** (-1.0 / index)
    n_bright = int(saturate_stars)
    peaks = np.concatenate([peaks, saturation * rng.uniform(2.0, 20.0, n_bright)])
    n = len(peaks)
    xs = rng.uniform(0.0, width - 1.0, n)
    ys = rng.uniform(0.0, height - 1.0, n)
    # Stars are drawn first: one seed gives the same field, clear or cloudy.
    # Cloud scatters moon/city light: a brighter, lumpy, sloped sky.
    sky = background * (1.0 + 2.0 * cloud)
    model = np.full((height, width), sky, dtype=np.float32)
    if cloud > 0:
        model *= _cloud_pattern((height, width), rng)
    per_flux = _peak_per_flux(fwhm, psf, beta, elongation, angle, oversample)
    fluxes = peaks / per_flux * (1.0 - cloud)
    central = _render_stars(model, xs, ys, fluxes, fwhm, psf, beta, elongation, angle, oversample)

    stars = np.zeros(n, dtype=STAR_DTYPE).view(np.recarray)
    stars.x, stars.y, stars.flux = xs, ys, fluxes
    stars.peak = central * fluxes
    stars.saturated[len(peaks) - n_bright :] = True

    data = _finish(model, dtype, saturation, read_noise if noise else None, rng)
    del model

    when = _date_obs(date_obs)
    cards = [
        ("OBJECT", str(object), "Target"),
        ("FILTER", str(filter), "Filter"),
        ("EXPTIME", float(exptime), "[s] Exposure time"),
        ("DATE-OBS", when.utc.isot, "UTC start of exposure"),
        ("MJD-OBS", float(when.utc.mjd), "MJD start of exposure"),
        ("SATURATE", int(saturation) if float(saturation).is_integer() else float(saturation), "[ADU] Saturation level"),
        ("GAIN", 1.0, "[e-/ADU]"),
        ("RDNOISE", float(read_noise) if noise else 0.0, "[ADU] Read noise"),
        ("PIXSCALE", float(pixel_scale), "[arcsec/pixel]"),
        ("SIMFWHM", float(fwhm), "[pixel] True PSF FWHM (across any trail)"),
        ("SIMPSF", psf, "True PSF model"),
        ("SIMELONG", float(elongation), "True PSF elongation"),
        ("SIMANGLE", float(angle), "[deg] Elongation angle from +x"),
        ("SIMCLOUD", float(cloud), "Fraction of light lost to cloud"),
        ("SIMNSTAR", n, "Number of stars"),
        *_wcs_cards((height, width), ra, dec, pixel_scale),
    ]
    # A PrimaryHDU writes the structural cards (BITPIX, and BZERO for uint16).
    header = fits.PrimaryHDU(data=data).header
    header.extend(cards)
    if psf == "moffat":
        header.insert("SIMELONG", ("SIMBETA", float(beta), "True Moffat beta"))

    sky_ra, sky_dec = WCS(header).all_pix2world(xs, ys, 0)
    stars.ra, stars.dec = sky_ra, sky_dec
    return SyntheticFrame(data=data, header=header, stars=stars)


def crop(frame: SyntheticFrame, x0: int, y0: int, width: int, height: int) -> SyntheticFrame:
    """The part of a frame from column ``x0``, row ``y0``, with its WCS and stars moved along.

    Two crops of one wide field at different offsets are frames of a
    telescope whose pointing shifted: the same stars, at pixels differing by
    the offset, with WCS that say so.

    Examples
    --------
    >>> wide = star_field((32, 80), n_stars=10, seed=2)
    >>> a, b = crop(wide, 0, 0, 40, 32), crop(wide, 40, 0, 40, 32)
    >>> a.header["CRPIX1"] - b.header["CRPIX1"]
    40.0
    """
    x0, y0, width, height = int(x0), int(y0), int(width), int(height)
    data = frame.data[y0 : y0 + height, x0 : x0 + width].copy()
    header = frame.header.copy()
    header["NAXIS1"], header["NAXIS2"] = data.shape[1], data.shape[0]
    header["CRPIX1"] = float(header["CRPIX1"]) - x0
    header["CRPIX2"] = float(header["CRPIX2"]) - y0
    stars = frame.stars.copy()
    stars.x -= x0
    stars.y -= y0
    keep = (stars.x >= -0.5) & (stars.x < data.shape[1] - 0.5) & (stars.y >= -0.5) & (stars.y < data.shape[0] - 0.5)
    header["SIMNSTAR"] = int(keep.sum())
    return SyntheticFrame(data=data, header=header, stars=stars[keep].view(np.recarray))


def _compressed_hdus(data: np.ndarray, header: fits.Header) -> fits.HDUList:
    image_header = header.copy()
    for key in ("SIMPLE", "EXTEND", "BZERO", "BSCALE"):
        image_header.remove(key, ignore_missing=True)
    if np.issubdtype(data.dtype, np.integer):
        hdu = fits.CompImageHDU(data=data, header=image_header, compression_type="RICE_1")
    else:
        # Float pixels: lossless (no quantisation), so read-back equals written.
        hdu = fits.CompImageHDU(
            data=data, header=image_header, compression_type="GZIP_2", quantize_level=0.0
        )
    return fits.HDUList([fits.PrimaryHDU(), hdu])


def write_fits(frame: SyntheticFrame, path: str | os.PathLike, compress: bool = False) -> Path:
    """Write a frame atomically: readers see the whole file or none of it.

    The file is written under a hidden temporary name in the same folder and
    renamed into place, so folder watchers never meet a half-written frame.

    Parameters
    ----------
    frame : SyntheticFrame
        Anything with ``data`` and ``header``.
    path : path-like
        Destination (conventionally ``.fits``, or ``.fits.fz`` when compressed).
    compress : bool
        Tile-compress the image into a ``CompImageHDU`` after an empty
        primary HDU (RICE_1 for integers, lossless GZIP_2 for floats).

    Returns
    -------
    Path
        The destination.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> write_fits(star_field((32, 32), n_stars=2, seed=0), folder / "a.fits.fz", compress=True).name
    'a.fits.fz'
    """
    path = Path(path)
    if compress:
        hdus = _compressed_hdus(frame.data, frame.header)
    else:
        hdus = fits.HDUList([fits.PrimaryHDU(data=frame.data, header=frame.header)])
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(descriptor, "wb") as stream:
            hdus.writeto(stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        try:
            os.unlink(temporary)
        except FileNotFoundError:
            pass
        raise
    return path
