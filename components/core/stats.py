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

__all__ = ["statistics", "histogram_clipped", "STAT_KEYS", "HISTOGRAM_STAT_KEYS", "MAX_BINS"]

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

    def counts_in(self, edges: np.ndarray) -> np.ndarray:
        """``numpy.histogram``'s counts for these edges: half-open bins, the last closed."""
        edges = np.asarray(edges, dtype=np.float64)
        cumulative = np.concatenate([[0], self.cumulative])
        below = cumulative[np.searchsorted(self.values, edges, side="left")]
        below[-1] = cumulative[np.searchsorted(self.values, edges[-1], side="right")]
        return np.diff(below)


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


#: Keys of the ``stats`` and ``clipped_stats`` dicts of :func:`histogram_clipped`.
HISTOGRAM_STAT_KEYS = ("median", "mean", "mode", "min", "max")
# Float frames whose clipped range is narrower than this many values get
# sqrt(count) equal bins: the original service's whole-value bins would
# collapse them to a handful of bins (a single one for data in [0, 1]).
_MIN_UNIT_BIN_RANGE = 100.0


def _percentile_ranks(count: int, percent: float) -> tuple[list, float]:
    """The two ranks numpy interpolates between for ``percent``, and the weight."""
    q = np.true_divide(percent, 100)
    virtual = (count - 1) * q
    if virtual >= count - 1:
        return [count - 1, count - 1], float(virtual + 1)
    previous = int(np.floor(virtual))
    return [previous, previous + 1], float(virtual - previous)


def _numpy_lerp(a, b, gamma: float, dtype: np.dtype):
    """numpy's ``_lerp`` of two order statistics, in the pixels' dtype as numpy does it."""
    a, b = dtype.type(a), dtype.type(b)
    with np.errstate(over="ignore"):
        # numpy subtracts in the pixels' dtype (wrapping around on overflow).
        difference = b - a
    if gamma >= 0.5:
        result = b - difference * (1 - gamma)
    else:
        result = a + difference * gamma
    return result if np.issubdtype(dtype, np.floating) else np.float64(result)


def _clip_percentiles(at_ranks, count: int, dtype: np.dtype, clip: float, extra_ranks=()):
    """``numpy.percentile(pixels, [100 * clip, 100 - 100 * clip])`` bit for bit, in one pass.

    The same operations in the same order and types as numpy's own code
    (``numpy.lib._function_base_impl._quantile`` and ``_lerp``, linear method),
    from the order statistics around each percentile, so that the edges built
    from them agree to the last bit with the original service's. Returns
    numpy scalars (float32 for float32 pixels, float64 otherwise) and the
    values at ``extra_ranks``, located in the same pass.
    """
    percent = clip * 100
    (low_ranks, low_gamma), (high_ranks, high_gamma) = (
        _percentile_ranks(count, percent), _percentile_ranks(count, 100 - percent)
    )
    values = at_ranks(np.array([*low_ranks, *high_ranks, *extra_ranks], dtype=np.int64))
    low = _numpy_lerp(values[0], values[1], low_gamma, dtype)
    high = _numpy_lerp(values[2], values[3], high_gamma, dtype)
    return low, high, values[4:]


def _bin_size(value_range) -> int:
    """The original's bin size: the smallest whole width giving fewer than MAX_BINS bins."""
    # The original tries widths 1 to 19 only (and fails above); the same rule
    # continues past 19 here. Near the smallest fitting width the bin count
    # is checked as the original computes it (float rounding included).
    guess = max(1, int(value_range // (MAX_BINS - 1)))
    for size in range(max(1, guess - 1), guess + 3):
        if divmod(value_range, size)[0] + 1 < MAX_BINS:
            return size
    # Huge float ranges, where a unit step in width changes nothing: a width
    # that surely fits.
    return int(math.ceil(value_range / (MAX_BINS - 2)))


def _original_edges(low, high) -> np.ndarray:
    """The original service's bin edges from ``low`` to past ``high``.

    ``num_bins = (high - low) // size + 1`` bins of a whole ``size`` starting
    at ``low``: the last edge lies above ``high``, and numpy's last bin is
    closed, so pixels equal to it are counted too.
    """
    size = _bin_size(high - low)
    num_bins = divmod(high - low, size)[0] + 1
    return np.arange(low, low + (num_bins * size) + 1, size)


def _integer_summary(dist: _IntegerDistribution) -> dict:
    if dist.count == 0:
        return dict.fromkeys(HISTOGRAM_STAT_KEYS)
    return {
        "median": dist.median(),
        "mean": dist.mean(),
        "mode": dist.mode(),
        "min": int(dist.min),
        "max": int(dist.max),
    }


def _float_summary(frame: _FloatFrame, middle) -> dict:
    """The :func:`statistics` of a float frame whose two middle order statistics are known."""
    return {
        "median": float((middle[0] + middle[1]) / 2),
        "mean": frame.mean_value,
        "mode": float(frame.distribution.mode()),
        "min": frame.low,
        "max": frame.high,
    }


def _float_clipped_summary(image, low: float, high: float, counts, edges, shift: float) -> dict:
    """Statistics of the finite pixels in [low, high]; mode: centre of the fullest bin."""
    inside = _FloatDistribution(image, low, high, shift=shift)
    if inside.count == 0:
        return dict.fromkeys(HISTOGRAM_STAT_KEYS)
    c = inside.count
    smallest, middle_low, middle_high, largest = inside.at_ranks(np.array([0, (c - 1) // 2, c // 2, c - 1]))
    peak = int(np.argmax(counts))
    return {
        "median": float((middle_low + middle_high) / 2),
        "mean": inside.mean(),
        "mode": float((edges[peak] + edges[peak + 1]) / 2),
        "min": float(smallest),
        "max": float(largest),
    }


def histogram_clipped(
    array: npt.ArrayLike, clip_percent: float | None = 0.001, with_clipped_stats: bool = True
) -> dict:
    """The original service's clipped histogram, and the statistics of all the pixels.

    Parameters
    ----------
    array : array_like
        Pixels (a frame or a sub-region); NaN and inf are ignored.
    clip_percent : float or None
        Fraction clipped at each end of the histogram's range: 0.001 spans
        the 0.1th to the 99.9th percentile. None (or 0) spans min to max.
    with_clipped_stats : bool
        Compute ``clipped_stats`` (two more passes over float pixels); when
        false its values are None.

    Returns
    -------
    dict
        ``edges`` and ``counts`` (``len(counts) == len(edges) - 1``);
        ``stats`` (``median``, ``mean``, ``mode``, ``min``, ``max``) of ALL the
        finite pixels, as the original service returns them (the clip only
        limits the histogram's range); ``clipped_stats``: the same statistics
        of the pixels the histogram counts (None values when it counts none).

    Notes
    -----
    The bins are the original service's (``quickanalysis/analysis/histogram.py``
    of LCOGT/quickanalysis): ``low`` and ``high`` are ``numpy.percentile`` of the
    pixels at ``100 * clip_percent`` and ``100 - 100 * clip_percent`` (linear
    interpolation, so they may fall between whole values); the bin width is
    the smallest whole number giving fewer than 5000 bins of
    ``(high - low) // width + 1``; the edges are
    ``numpy.arange(low, low + bins * width + 1, width)`` and the counts are
    ``numpy.histogram``'s (half-open bins, the last one closed, so pixels equal
    to the top edge count). Two extensions: the original fails on ranges
    needing a width above 19, which continue here by the same rule; and float
    data spanning fewer than 100 values get ``sqrt(count)`` (at most 5000)
    equal bins over [low, high] instead of a few whole-value bins.
    The statistics follow :func:`statistics` (the mode of float data is the
    centre of the fullest of 1024 bins over the central 99%); the
    ``clipped_stats`` mode of float data is the centre of the fullest bin.

    Examples
    --------
    >>> import numpy as np
    >>> h = histogram_clipped(np.array([0, 1, 1, 2, 2, 2], dtype=np.uint8), None)
    >>> h["edges"], h["counts"], h["stats"]["mode"]
    ([0, 1, 2, 3], [1, 2, 3], 2)
    """
    clip = _check_clip(clip_percent)
    image = _as_2d(array)
    nothing = dict.fromkeys(HISTOGRAM_STAT_KEYS)
    empty = {"edges": [], "counts": [], "stats": nothing, "clipped_stats": dict(nothing)}
    if np.issubdtype(image.dtype, np.integer):
        dist = _IntegerDistribution.from_image(image)
        if dist is not None:
            if dist.count == 0:
                return empty
            if clip == 0:
                low, high = np.int64(dist.min), np.int64(dist.max)
            else:
                low, high, _ = _clip_percentiles(dist.at_ranks, dist.count, image.dtype, clip)
            edges = _original_edges(low, high)
            inside = dist.clip(math.ceil(edges[0]), math.floor(edges[-1]))
            return {
                "edges": edges.tolist(),
                "counts": dist.counts_in(edges).tolist(),
                "stats": _integer_summary(dist),
                "clipped_stats": _integer_summary(inside) if with_clipped_stats else dict(nothing),
            }
    frame = _FloatFrame(image)
    if frame.count == 0:
        return empty
    middle_ranks = [(frame.count - 1) // 2, frame.count // 2]
    dtype = image.dtype if np.issubdtype(image.dtype, np.floating) else np.dtype(np.float64)
    if clip == 0:
        middle = frame.distribution.at_ranks(np.array(middle_ranks))
        if np.issubdtype(image.dtype, np.integer):
            # Integer data too wide for value counts: whole-valued edges, as the original's.
            low, high = np.int64(frame.low), np.int64(frame.high)
        else:
            low, high = dtype.type(frame.low), dtype.type(frame.high)
    else:
        low, high, middle = _clip_percentiles(
            frame.distribution.at_ranks, frame.count, image.dtype, clip, middle_ranks
        )
        low, high = dtype.type(low), dtype.type(high)
    stats = _float_summary(frame, middle)
    with np.errstate(over="ignore"):
        span = high - low  # in the pixels' float type, as the original computes it
    if np.isfinite(span) and span >= _MIN_UNIT_BIN_RANGE:
        edges = _original_edges(low, high)
        if len(edges) >= 2 and edges[-1] > high:
            counts = k.edges_histogram(image, edges)
            clipped = dict(nothing)
            if with_clipped_stats:
                clipped = _float_clipped_summary(
                    image, float(edges[0]), float(edges[-1]), counts, edges.astype(np.float64), frame.mean_value
                )
            return {"edges": edges.tolist(), "counts": counts.tolist(), "stats": stats, "clipped_stats": clipped}
    edges, counts, clipped = _equal_bins(image, frame, clip, float(low), float(high))
    return {"edges": edges, "counts": counts, "stats": stats, "clipped_stats": clipped}


def _equal_bins(image, frame: _FloatFrame, clip: float, low: float, high: float):
    """sqrt(count) equal bins over [low, high] for float data of a narrow range."""
    if clip > 0:
        # No pixel between the percentiles: widen to the pixel values that bracket them.
        inside = _FloatDistribution(image, low, high, nbins=1)
        if inside.count == 0:
            low, high = _bracketing_values(frame.distribution.at_ranks, frame.count, clip)
    expected = frame.count if clip == 0 else max(1, round(frame.count * (1 - 2 * clip)))
    nbins = 1 if low == high else int(min(MAX_BINS - 1, max(1, math.ceil(math.sqrt(expected)))))
    counts = _FloatDistribution(image, low, high, nbins=nbins).counts
    # A constant frame gets one bin around its value, wide enough to stay
    # distinct from the value in float64 however large it is.
    half = max(0.5, abs(low) * 2.0**-20)
    edges = np.linspace(low, high, nbins + 1) if low < high else np.array([low - half, high + half])
    clipped = _float_clipped_summary(image, low, high, counts, edges, frame.mean_value)
    return edges.tolist(), counts.tolist(), clipped
