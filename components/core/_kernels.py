"""numba kernels: single passes over the pixels of a 2-D array (any layout).

Each kernel splits the rows into one chunk per thread and gives every chunk
its own accumulator, so the passes scale with cores without atomics.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import njit, prange

__all__ = [
    "value_counts",
    "int_range",
    "float_summary",
    "float_histogram",
    "float_collect",
    "edges_histogram",
]


def _chunks(rows: int) -> int:
    return max(1, min(rows, numba.get_num_threads()))


@njit(parallel=True, cache=True, nogil=True)
def _value_counts(image, offset, nvalues, nchunks):
    rows, cols = image.shape
    partial = np.zeros((nchunks, nvalues), dtype=np.int64)
    step = (rows + nchunks - 1) // nchunks
    for chunk in prange(nchunks):
        local = partial[chunk]
        for i in range(chunk * step, min(rows, (chunk + 1) * step)):
            for j in range(cols):
                local[np.int64(image[i, j]) - offset] += 1
    return partial.sum(axis=0)


def value_counts(image: np.ndarray, offset: int, nvalues: int) -> np.ndarray:
    """``counts[v - offset]`` = number of pixels equal to integer ``v``."""
    return _value_counts(image, np.int64(offset), nvalues, _chunks(image.shape[0]))


@njit(parallel=True, cache=True, nogil=True)
def _int_range(image, nchunks):
    rows, cols = image.shape
    lows = np.empty(nchunks, dtype=np.int64)
    highs = np.empty(nchunks, dtype=np.int64)
    step = (rows + nchunks - 1) // nchunks
    for chunk in prange(nchunks):
        low = np.int64(image[0, 0])
        high = low
        for i in range(chunk * step, min(rows, (chunk + 1) * step)):
            for j in range(cols):
                v = np.int64(image[i, j])
                if v < low:
                    low = v
                if v > high:
                    high = v
        lows[chunk] = low
        highs[chunk] = high
    return lows.min(), highs.max()


def int_range(image: np.ndarray) -> tuple[int, int]:
    """Minimum and maximum of an integer image."""
    low, high = _int_range(image, _chunks(image.shape[0]))
    return int(low), int(high)


@njit(parallel=True, cache=True, nogil=True)
def _float_summary(image, nchunks):
    rows, cols = image.shape
    counts = np.zeros(nchunks, dtype=np.int64)
    sums = np.zeros(nchunks, dtype=np.float64)
    lows = np.full(nchunks, np.inf)
    highs = np.full(nchunks, -np.inf)
    step = (rows + nchunks - 1) // nchunks
    for chunk in prange(nchunks):
        n = 0
        total = 0.0
        low = np.inf
        high = -np.inf
        for i in range(chunk * step, min(rows, (chunk + 1) * step)):
            for j in range(cols):
                v = np.float64(image[i, j])
                if np.isfinite(v):
                    n += 1
                    total += v
                    if v < low:
                        low = v
                    if v > high:
                        high = v
        counts[chunk] = n
        sums[chunk] = total
        lows[chunk] = low
        highs[chunk] = high
    return counts.sum(), sums.sum(), lows.min(), highs.max()


def float_summary(image: np.ndarray) -> tuple[int, float, float, float]:
    """Count, sum, min and max of the finite pixels of a float image."""
    n, total, low, high = _float_summary(image, _chunks(image.shape[0]))
    return int(n), float(total), float(low), float(high)


@njit(cache=True, inline="always")
def _transform(v, center, absolute):
    if absolute:
        return abs(v - center)
    return v


@njit(cache=True, inline="always")
def _bin(v, low, scale, nbins):
    # One binning rule: float_collect must pick exactly the values float_histogram counted.
    k = np.int64((v - low) * scale)
    if k >= nbins:
        k = nbins - 1
    return k


@njit(parallel=True, cache=True, nogil=True)
def _float_histogram(image, low, high, nbins, center, absolute, shift, nchunks):
    rows, cols = image.shape
    partial = np.zeros((nchunks, nbins), dtype=np.int64)
    sums = np.zeros(nchunks, dtype=np.float64)
    squares = np.zeros(nchunks, dtype=np.float64)
    scale = nbins / (high - low) if high > low else 0.0
    step = (rows + nchunks - 1) // nchunks
    for chunk in prange(nchunks):
        local = partial[chunk]
        s1 = 0.0
        s2 = 0.0
        for i in range(chunk * step, min(rows, (chunk + 1) * step)):
            for j in range(cols):
                v = _transform(np.float64(image[i, j]), center, absolute)
                if v >= low and v <= high:
                    local[_bin(v, low, scale, nbins)] += 1
                    s1 += v - shift
                    s2 += (v - shift) * (v - shift)
        sums[chunk] = s1
        squares[chunk] = s2
    return partial.sum(axis=0), sums.sum(), squares.sum()


def float_histogram(
    image: np.ndarray,
    low: float,
    high: float,
    nbins: int,
    center: float = 0.0,
    absolute: bool = False,
    shift: float = 0.0,
) -> tuple[np.ndarray, float, float]:
    """Counts of ``t`` in ``nbins`` equal bins of [low, high] (high inclusive).

    ``t`` is the pixel value, or ``|value - center|`` when ``absolute``.
    Also returns the sums of ``t - shift`` and ``(t - shift)**2`` over the
    counted pixels (a shift near the mean keeps the variance precise).
    NaN and inf are never counted.
    """
    counts, sums, squares = _float_histogram(
        image, float(low), float(high), int(nbins), float(center), bool(absolute),
        float(shift), _chunks(image.shape[0]),
    )
    return counts, float(sums), float(squares)


@njit(parallel=True, cache=True, nogil=True)
def _float_collect(image, low, high, wanted, total, center, absolute, nchunks):
    rows, cols = image.shape
    nbins = wanted.shape[0]
    partial = np.empty((nchunks, total), dtype=np.float64)
    filled = np.zeros(nchunks, dtype=np.int64)
    scale = nbins / (high - low) if high > low else 0.0
    step = (rows + nchunks - 1) // nchunks
    for chunk in prange(nchunks):
        out = partial[chunk]
        n = 0
        for i in range(chunk * step, min(rows, (chunk + 1) * step)):
            for j in range(cols):
                v = _transform(np.float64(image[i, j]), center, absolute)
                if v >= low and v <= high:
                    if wanted[_bin(v, low, scale, nbins)] and n < total:
                        out[n] = v
                        n += 1
        filled[chunk] = n
    result = np.empty(filled.sum(), dtype=np.float64)
    n = 0
    for chunk in range(nchunks):
        result[n : n + filled[chunk]] = partial[chunk, : filled[chunk]]
        n += filled[chunk]
    return result


def float_collect(image, low, high, wanted, total, center=0.0, absolute=False):
    """The values that :func:`float_histogram` puts in the bins where ``wanted`` is true.

    ``wanted`` has one boolean per bin; ``total`` is how many values those bins hold.
    """
    return _float_collect(
        image, float(low), float(high), np.asarray(wanted, dtype=np.bool_), int(total),
        float(center), bool(absolute), _chunks(image.shape[0]),
    )


@njit(parallel=True, cache=True, nogil=True)
def _edges_histogram(image, edges, nchunks):
    rows, cols = image.shape
    nbins = edges.shape[0] - 1
    low = edges[0]
    high = edges[nbins]
    partial = np.zeros((nchunks, nbins), dtype=np.int64)
    scale = nbins / (high - low) if high > low else 0.0
    step = (rows + nchunks - 1) // nchunks
    for chunk in prange(nchunks):
        local = partial[chunk]
        for i in range(chunk * step, min(rows, (chunk + 1) * step)):
            for j in range(cols):
                v = np.float64(image[i, j])
                if v >= low and v <= high:
                    # A guess from equal bins, then corrected against the
                    # edges themselves: exact for edges of any spacing.
                    k = np.int64((v - low) * scale)
                    if k >= nbins:
                        k = nbins - 1
                    while k > 0 and v < edges[k]:
                        k -= 1
                    while k < nbins - 1 and v >= edges[k + 1]:
                        k += 1
                    local[k] += 1
    return partial.sum(axis=0)


def edges_histogram(image: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """``numpy.histogram(image, bins=edges)[0]``: half-open bins, the last one closed.

    ``edges`` is increasing (float64, compared exactly); NaN is never counted.
    """
    edges = np.ascontiguousarray(edges, dtype=np.float64)
    return _edges_histogram(image, edges, _chunks(image.shape[0]))
