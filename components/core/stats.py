"""Region statistics and clipped histograms, fast enough for 61-megapixel frames.

Integer frames are reduced to a count per value in one pass over the pixels;
min, max, mean, std, median, percentiles, mode, MAD and the histogram all come
from those counts. Float frames are never sorted: a fine histogram locates
each order statistic in one bin and only that bin's pixels are partitioned,
which gives exact medians and percentiles in a few linear passes.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from components.core import _kernels as k
from components.errors import InvalidRequest

__all__ = ["statistics", "histogram_clipped", "STAT_KEYS", "MAX_BINS"]

#: Keys of the dict returned by :func:`statistics`.
STAT_KEYS = ("mean", "median", "mode", "min", "max", "std", "median_abs_deviation", "count", "nonfinite")
#: Upper bound on the number of histogram bins.
MAX_BINS = 5000
# Integer frames whose value range exceeds this use the float path.
_MAX_INT_VALUES = 1 << 24
# Bins of the locating histogram of float data.
_FINE_BINS = 1 << 16
# Bins of the histogram whose fullest bin gives the mode of float data.
_MODE_BINS = 1024


def _as_2d(array: npt.ArrayLike) -> np.ndarray:
    a = np.asarray(array)
    if a.ndim == 0:
        a = a.reshape(1, 1)
    elif a.ndim == 1:
        a = a.reshape(1, -1)
    elif a.ndim > 2:
        a = a.reshape(-1, a.shape[-1])
    if not a.dtype.isnative:
        a = a.astype(a.dtype.newbyteorder("="))
    if a.dtype == np.bool_:
        a = a.view(np.uint8)
    if not (np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.floating)):
        raise InvalidRequest(f"cannot compute statistics of {a.dtype} data")
    if a.dtype == np.float16:
        a = a.astype(np.float32)
    return a


class _IntegerDistribution:
    """Pixel values of an integer image as ``counts[i]`` pixels equal to ``offset + i``."""

    def __init__(self, counts: np.ndarray, offset: int):
        nonzero = np.flatnonzero(counts)
        if len(nonzero):
            counts = counts[nonzero[0] : nonzero[-1] + 1]
            offset += int(nonzero[0])
        else:
            counts = counts[:0]
        self.counts = counts
        self.offset = offset
        self.cumulative = np.cumsum(counts)
        self.count = int(self.cumulative[-1]) if len(counts) else 0
        self.values = np.arange(len(counts), dtype=np.float64) + offset

    @classmethod
    def from_image(cls, image: np.ndarray) -> "_IntegerDistribution | None":
        if image.size == 0:
            return cls(np.zeros(0, np.int64), 0)
        if image.dtype.itemsize <= 2:
            info = np.iinfo(image.dtype)
            return cls(k.value_counts(image, info.min, 1 << (8 * image.dtype.itemsize)), info.min)
        if image.dtype == np.uint64 and image.max() > np.iinfo(np.int64).max:
            return None
        low, high = k.int_range(image)
        if high - low + 1 > _MAX_INT_VALUES:
            return None
        return cls(k.value_counts(image, low, high - low + 1), low)

    @property
    def min(self) -> int:
        return self.offset

    @property
    def max(self) -> int:
        return self.offset + len(self.counts) - 1

    def mean(self) -> float:
        return float(np.dot(self.counts, self.values) / self.count)

    def std(self) -> float:
        deviation = self.values - self.mean()
        return math.sqrt(float(np.dot(self.counts, deviation * deviation)) / self.count)

    def at_ranks(self, ranks: np.ndarray) -> np.ndarray:
        return self.values[np.searchsorted(self.cumulative, ranks, side="right")]

    def median(self) -> float:
        return _median_of(self.at_ranks, self.count)

    def percentiles(self, fractions) -> np.ndarray:
        return _percentiles_of(self.at_ranks, self.count, fractions)

    def mode(self) -> int:
        # argmax returns the first maximum: the smallest value on ties.
        return int(self.offset + np.argmax(self.counts))

    def mad(self, median: float) -> float:
        deviation = np.abs(self.values - median)
        order = np.argsort(deviation, kind="stable")
        cumulative = np.cumsum(self.counts[order])
        sorted_deviation = deviation[order]
        return _median_of(
            lambda ranks: sorted_deviation[np.searchsorted(cumulative, ranks, side="right")],
            self.count,
        )

    def clip(self, low: int, high: int) -> "_IntegerDistribution":
        first = max(low - self.offset, 0)
        last = min(high - self.offset, len(self.counts) - 1)
        return _IntegerDistribution(self.counts[first : last + 1], self.offset + first)

    def histogram(self) -> tuple[list, list]:
        nvalues = len(self.counts)
        if nvalues == 0:
            return [], []
        # Integer-aligned bins: width 1 unless that makes MAX_BINS or more.
        width = 1 if nvalues < MAX_BINS else math.ceil(nvalues / (MAX_BINS - 1))
        nbins = math.ceil(nvalues / width)
        padded = np.zeros(nbins * width, dtype=np.int64)
        padded[:nvalues] = self.counts
        counts = padded.reshape(nbins, width).sum(axis=1)
        edges = self.offset + width * np.arange(nbins + 1, dtype=np.int64)
        return edges.tolist(), counts.tolist()


class _FloatDistribution:
    """Finite pixel values ``t`` in [low, high], located by a histogram of ``nbins``.

    ``t`` is the pixel value, or ``|value - center|`` when ``absolute``.
    """

    def __init__(self, image, low, high, nbins=_FINE_BINS, center=0.0, absolute=False, shift=0.0):
        self.image, self.low, self.high, self.nbins = image, float(low), float(high), int(nbins)
        self.center, self.absolute = float(center), bool(absolute)
        self.counts, sums, squares = k.float_histogram(image, low, high, nbins, center, absolute, shift)
        self.cumulative = np.cumsum(self.counts)
        self.count = int(self.cumulative[-1])
        self._shift, self._sums, self._squares = shift, sums, squares

    @property
    def edges(self) -> np.ndarray:
        return np.linspace(self.low, self.high, self.nbins + 1)

    def at_ranks(self, ranks: np.ndarray) -> np.ndarray:
        """Exact order statistics (0-based ranks) from one collecting pass."""
        ranks = np.asarray(ranks, dtype=np.int64)
        if self.low == self.high:
            return np.full(ranks.shape, self.low)
        bins = np.searchsorted(self.cumulative, ranks, side="right")
        wanted = np.zeros(self.nbins, dtype=np.bool_)
        wanted[bins] = True
        # Values of the wanted bins, in bin order, are consecutive runs of the
        # sorted data: a rank's place among them follows from the bin counts.
        kept = np.where(wanted, self.counts, 0)
        kept_before = np.cumsum(kept) - kept
        starts = self.cumulative - self.counts
        local = ranks - starts[bins] + kept_before[bins]
        values = k.float_collect(
            self.image, self.low, self.high, wanted, int(kept.sum()), self.center, self.absolute
        )
        return np.partition(values, local)[local]

    def median(self) -> float:
        return _median_of(self.at_ranks, self.count)

    def percentiles(self, fractions) -> np.ndarray:
        return _percentiles_of(self.at_ranks, self.count, fractions)

    def mean(self) -> float:
        return self._shift + self._sums / self.count

    def std(self) -> float:
        offset = self._sums / self.count
        variance = self._squares / self.count - offset * offset
        return math.sqrt(max(variance, 0.0))

    def mode(self) -> float:
        """Centre of the fullest of 1024 equal bins over the central 99% of values."""
        low, high = self._approximate_range(0.005)
        if low == high:
            return low
        counts, _, _ = k.float_histogram(self.image, low, high, _MODE_BINS, self.center, self.absolute)
        peak = int(np.argmax(counts))
        return low + (peak + 0.5) * (high - low) / _MODE_BINS

    def _approximate_range(self, fraction: float) -> tuple[float, float]:
        ranks = np.array([fraction * (self.count - 1), (1 - fraction) * (self.count - 1)])
        bins = np.searchsorted(self.cumulative, ranks, side="right")
        edges = self.edges
        return float(edges[bins[0]]), float(edges[min(bins[1] + 1, self.nbins)])


def _median_of(at_ranks, count: int) -> float:
    middle = at_ranks(np.array([(count - 1) // 2, count // 2]))
    return float((middle[0] + middle[1]) / 2)


def _bracketing_values(at_ranks, count: int, clip: float) -> tuple[float, float]:
    """The pixel values just outside the ``clip`` and ``1 - clip`` percentiles."""
    positions = np.array([clip, 1 - clip]) * (count - 1)
    ranks = np.array([math.floor(positions[0]), math.ceil(positions[1])])
    low, high = at_ranks(ranks)
    return float(low), float(high)


def _percentiles_of(at_ranks, count: int, fractions) -> np.ndarray:
    """Percentiles with numpy's default linear interpolation between ranks."""
    positions = np.asarray(fractions, dtype=np.float64) * (count - 1)
    below = np.floor(positions).astype(np.int64)
    above = np.minimum(below + 1, count - 1)
    values = at_ranks(np.concatenate([below, above]))
    low, high = values[: len(below)], values[len(below) :]
    return low + (positions - below) * (high - low)


class _FloatFrame:
    """Whole-frame float distribution: a summary pass, then a locating histogram."""

    def __init__(self, image: np.ndarray):
        self.count, total, self.low, self.high = k.float_summary(image)
        self.nonfinite = image.size - self.count
        self.image = image
        self.mean_value = total / self.count if self.count else math.nan
        if self.count:
            self.distribution = _FloatDistribution(
                image, self.low, self.high, shift=self.mean_value
            )


def _empty_statistics(nonfinite: int) -> dict:
    result = dict.fromkeys(STAT_KEYS)
    result.update(count=0, nonfinite=int(nonfinite))
    return result


def statistics(array: npt.ArrayLike) -> dict:
    """Summary statistics of the finite pixels of ``array``.

    Parameters
    ----------
    array : array_like
        Pixels (any shape; usually a 2-D frame or sub-region).

    Returns
    -------
    dict
        ``mean``, ``median``, ``mode``, ``min``, ``max``, ``std`` (ddof 0),
        ``median_abs_deviation`` (unscaled, about the median), ``count``
        (pixels used) and ``nonfinite`` (NaN/inf pixels ignored), all plain
        Python numbers. With no finite pixel every value is None.

    Notes
    -----
    The mode of integer data is the most frequent value (the smallest on
    ties). The mode of float data, whose values rarely repeat, is the centre
    of the fullest of 1024 equal bins spanning the central 99% of the pixels
    (from the 0.5th to the 99.5th percentile), so a few outliers cannot widen
    the bins.

    Examples
    --------
    >>> import numpy as np
    >>> s = statistics(np.array([[1, 2, 2], [3, 4, 100]], dtype=np.uint16))
    >>> s["median"], s["mode"], s["max"], s["count"]
    (2.5, 2, 100, 6)
    """
    image = _as_2d(array)
    if np.issubdtype(image.dtype, np.integer):
        dist = _IntegerDistribution.from_image(image)
        if dist is not None:
            if dist.count == 0:
                return _empty_statistics(0)
            median = dist.median()
            return {
                "mean": dist.mean(),
                "median": median,
                "mode": dist.mode(),
                "min": int(dist.min),
                "max": int(dist.max),
                "std": dist.std(),
                "median_abs_deviation": dist.mad(median),
                "count": dist.count,
                "nonfinite": 0,
            }
    frame = _FloatFrame(image)
    if frame.count == 0:
        return _empty_statistics(frame.nonfinite)
    dist = frame.distribution
    median = dist.median()
    spread = max(frame.high - median, median - frame.low)
    deviations = _FloatDistribution(image, 0.0, spread, center=median, absolute=True)
    return {
        "mean": frame.mean_value,
        "median": median,
        "mode": float(dist.mode()),
        "min": frame.low,
        "max": frame.high,
        "std": dist.std(),
        "median_abs_deviation": deviations.median(),
        "count": frame.count,
        "nonfinite": frame.nonfinite,
    }


def _check_clip(clip_percent) -> float:
    if clip_percent is None:
        return 0.0
    try:
        clip = float(clip_percent)
    except (TypeError, ValueError):
        raise InvalidRequest(f"clip_percent must be a number or null, got {clip_percent!r}") from None
    if not (0.0 <= clip < 0.5):
        raise InvalidRequest(f"clip_percent must be in [0, 0.5), got {clip_percent!r}")
    return clip


def histogram_clipped(array: npt.ArrayLike, clip_percent: float | None = 0.001) -> dict:
    """Histogram of the pixels between two symmetric percentiles.

    Parameters
    ----------
    array : array_like
        Pixels; NaN and inf are ignored.
    clip_percent : float or None
        Fraction clipped at each end: 0.001 keeps the pixels from the 0.1th
        to the 99.9th percentile. None (or 0) keeps min to max.

    Returns
    -------
    dict
        ``edges`` and ``counts`` (``len(counts) == len(edges) - 1``) and
        ``stats`` (``median``, ``mean``, ``mode``, ``min``, ``max``) of the
        pixels the histogram counts. Integer data get integer-aligned bins of
        width 1, or the smallest integer width giving fewer than 5000 bins,
        and the percentiles widen to whole values; float data get at most
        5000 equal bins (``sqrt(count)`` of them, at least one).

    Examples
    --------
    >>> import numpy as np
    >>> h = histogram_clipped(np.array([0, 1, 1, 2, 2, 2], dtype=np.uint8), None)
    >>> h["edges"], h["counts"], h["stats"]["mode"]
    ([0, 1, 2, 3], [1, 2, 3], 2)
    """
    clip = _check_clip(clip_percent)
    image = _as_2d(array)
    empty = {"edges": [], "counts": [], "stats": dict.fromkeys(("median", "mean", "mode", "min", "max"))}
    if np.issubdtype(image.dtype, np.integer):
        dist = _IntegerDistribution.from_image(image)
        if dist is not None:
            if dist.count == 0:
                return empty
            if clip > 0:
                low, high = dist.percentiles([clip, 1 - clip])
                clipped = dist.clip(math.floor(low), math.ceil(high))
                if clipped.count == 0:
                    # No pixel between the percentiles: widen to the pixel
                    # values that bracket them.
                    low, high = _bracketing_values(dist.at_ranks, dist.count, clip)
                    clipped = dist.clip(int(low), int(high))
                dist = clipped
            edges, counts = dist.histogram()
            return {
                "edges": edges,
                "counts": counts,
                "stats": {
                    "median": dist.median(),
                    "mean": dist.mean(),
                    "mode": dist.mode(),
                    "min": int(dist.min),
                    "max": int(dist.max),
                },
            }
    frame = _FloatFrame(image)
    if frame.count == 0:
        return empty
    low, high = minimum, maximum = frame.low, frame.high
    if clip > 0:
        # One collecting pass gives the order statistics around both
        # percentiles: the percentiles interpolate between them, and the
        # clipped extremes are the ones inside the range.
        positions = np.array([clip, 1 - clip]) * (frame.count - 1)
        below = np.floor(positions).astype(np.int64)
        above = np.minimum(below + 1, frame.count - 1)
        values = frame.distribution.at_ranks(np.concatenate([below, above]))
        low, high = (float(v) for v in values[:2] + (positions - below) * (values[2:] - values[:2]))
        minimum = values[0] if values[0] >= low else values[2]
        maximum = values[3] if values[3] <= high else values[1]
    expected = frame.count if clip == 0 else max(1, round(frame.count * (1 - 2 * clip)))
    nbins = 1 if low == high else int(min(MAX_BINS, max(1, math.ceil(math.sqrt(expected)))))
    clipped = _FloatDistribution(image, low, high, nbins=nbins, shift=frame.mean_value)
    if clipped.count == 0:
        # No pixel between the percentiles: widen to the values that bracket them.
        low, high = minimum, maximum = float(values[0]), float(values[3])
        nbins = 1 if low == high else 2
        clipped = _FloatDistribution(image, low, high, nbins=nbins, shift=frame.mean_value)
    # A constant frame gets one bin around its value, wide enough to stay
    # distinct from the value in float64 however large it is.
    half = max(0.5, abs(low) * 2.0**-20)
    edges = clipped.edges if low < high else np.array([low - half, high + half])
    # The mode of the clipped pixels is the centre of the histogram's fullest bin.
    peak = int(np.argmax(clipped.counts))
    mode = low if low == high else low + (peak + 0.5) * (high - low) / nbins
    stats = {
        "median": clipped.median(),
        "mean": clipped.mean(),
        "mode": float(mode),
        "min": float(minimum),
        "max": float(maximum),
    }
    return {"edges": edges.tolist(), "counts": clipped.counts.tolist(), "stats": stats}
