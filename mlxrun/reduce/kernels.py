"""The numpy side of the reductions: one array chunk to its `algebra.Partial` (exact sums,
moments, extremes, product), and the histogram's bins. Imported only where arrays are
reduced: a job that only sums as it reads never loads numpy (see `algebra`).
"""

from __future__ import annotations

import math
from typing import TypeAlias

import numpy as np
import numpy.typing as npt

from mlxrun import native
from mlxrun.reduce.algebra import M2, SCALE, Extreme, Partial, fold_bins, scaled
from mlxrun.reduce.ops import DEFAULT_BINS, EXTREME_OPS, MOMENT_OPS

IntArray: TypeAlias = "npt.NDArray[np.int64]"
FloatArray: TypeAlias = "npt.NDArray[np.float64]"

_FRAC_BITS = 52
_LOW_BITS = 26  # fraction bits cleared in the high part (see _binned_sum)
_EXPONENT_BINS = 2047  # biased exponents of finite floats: 0 (subnormal) .. 2046
_FLOAT_BLOCK = 1 << 24  # bin totals stay exact in float64 (see _binned_sum)
_HUGE_EXPONENT = 2000  # from 2**977 up, 2**24 values could sum past the float64 maximum
_HUGE_SHIFT = 128
_INT_BLOCK = 1 << 20  # products of 21/22-bit pieces summed over a block stay below 2**63
# Below this, float64 squares of deviations may have underflowed enough to matter: rescale.
# (At or above it, squares lost in the subnormals add < 2**60 * 2**-1022, below 2**-300 of M2.)
_SMALLEST_PLAIN_SQUARES = 2.0**-600


def add_chunk(part: Partial, chunk: npt.NDArray[np.generic]) -> None:
    """Feeds the next chunk of `part`'s data (1-D; float16/32/64 and signed or small
    unsigned ints are widened exactly to float64 or int64)."""
    part.merge(chunk_state(chunk, part.needs))


def chunk_state(chunk: npt.NDArray[np.generic], needs: frozenset[str]) -> Partial:
    """The state of one chunk, computing only what `needs` asks for."""
    state = Partial(needs=needs)
    data = _normalise(chunk)
    if data.dtype == np.float64:
        _add_floats(state, data.astype(np.float64, copy=False))
    else:
        _add_ints(state, data.astype(np.int64, copy=False))
    return state


def _add_floats(state: Partial, x: FloatArray) -> None:
    n = len(x)
    if n == 0:
        return
    state.count = n
    state.saw_float = True
    if "prod" in state.needs:
        _prod_of(state, x)
    special = ((x.view(np.int64) >> _FRAC_BITS) & 0x7FF) == 0x7FF
    if special.any():
        nan = np.isnan(x)
        state.nan_count = int(np.count_nonzero(nan))
        state.posinf_count = int(np.count_nonzero(x == math.inf))
        state.neginf_count = int(np.count_nonzero(x == -math.inf))
        if state.nan_count:
            state.first_nan = _first(nan)
        kept = np.flatnonzero(~nan)
        _extremes_of(state, x[kept], kept)
        x = x[~special]
    elif state.needs & EXTREME_OPS:
        _extremes_of(state, x, None)
    if len(x):
        state.float_count = len(x)
        state.float_sum = _float_scaled_sum(x)
        if state.needs & MOMENT_OPS:
            center = state.float_sum / (len(x) << SCALE)  # correctly rounded, finite
            state.float_m2_frac, state.float_m2_exp = _sum_of_squared_deviations(x, center)


def _add_ints(state: Partial, x: IntArray) -> None:
    n = len(x)
    if n == 0:
        return
    state.count = state.int_count = n
    state.int_sum, state.int_squares = _int_sums(x, squares_too=bool(state.needs & MOMENT_OPS))
    if state.needs & {"sum", "mean"}:
        state.int_rounding = _int_rounding(x)
    if state.needs & EXTREME_OPS:
        _extremes_of(state, x, None)
    if "prod" in state.needs:
        _prod_of(state, x.astype(np.float64))


def _extremes_of(state: Partial, x: FloatArray | IntArray, positions: IntArray | None) -> None:
    if len(x) == 0:
        return
    where = [int(np.argmin(x)), int(np.argmax(x))]  # first occurrences
    low, high = (x[i].item() for i in where)
    if positions is not None:
        where = [int(positions[i]) for i in where]
    state.low, state.high = Extreme(low, where[0]), Extreme(high, where[1])


def _prod_of(state: Partial, x: FloatArray) -> None:
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        state.prod = float(np.prod(x))


def _float_scaled_sum(x: FloatArray) -> int:
    """Exact sum of finite floats, scaled by 2**1074 (see the docstring of `reductions`)."""
    if native.ext is not None:
        return _native_scaled_sum(x)
    total = 0
    for start in range(0, len(x), _FLOAT_BLOCK):
        total += _float_scaled_sum_block(x[start : start + _FLOAT_BLOCK])
    return total


def _native_scaled_sum(x: FloatArray) -> int:
    """The same sum by the C kernel: integer mantissas added per exponent in one pass (its
    bins hold 2**31 values without overflow), then folded into one Python int."""
    total = 0
    data = np.ascontiguousarray(x)
    for start in range(0, len(data), native.MAX_BINNED):
        *_, high, low = native.binned(data[start : start + native.MAX_BINNED])
        total += fold_bins(high, low)
    return total


def _float_scaled_sum_block(x: FloatArray) -> int:
    exponent = (x.view(np.int64) >> _FRAC_BITS) & 0x7FF
    if int(exponent.max()) < _HUGE_EXPONENT:
        return _binned_sum(x, exponent)
    # Bin totals near the top of the range could overflow float64: scale those values down
    # by an exact power of two (they are far from the subnormals) and shift back as ints.
    huge = exponent >= _HUGE_EXPONENT
    small = ~huge
    scaled_down = _binned_sum(np.ldexp(x[huge], -_HUGE_SHIFT), exponent[huge])
    return (scaled_down << _HUGE_SHIFT) + _binned_sum(x[small], exponent[small])


def _binned_sum(x: FloatArray, exponent: IntArray) -> int:
    """Exact sum, scaled by 2**1074, of finite floats binned by their biased exponent.

    Within one bin every value is a multiple of the bin's unit, so clearing the low 26 of the
    52 fraction bits gives a float `high` (a multiple of 2**26 units, below 2**27 of them
    counting the implicit bit) and `low = x - high` (exact, below 2**26 units). Over at most
    2**24 items every running bin total of either part needs at most 51 significant bits, so
    float64 `np.bincount` adds them without rounding."""
    high = (x.view(np.int64) & ~np.int64((1 << _LOW_BITS) - 1)).view(np.float64)
    low = x - high
    high_bins = np.bincount(exponent, weights=high, minlength=_EXPONENT_BINS)
    low_bins = np.bincount(exponent, weights=low, minlength=_EXPONENT_BINS)
    used = np.flatnonzero((high_bins != 0) | (low_bins != 0)).tolist()
    high_list, low_list = high_bins.tolist(), low_bins.tolist()
    return sum(scaled(high_list[k]) + scaled(low_list[k]) for k in used)


def _int_sums(x: IntArray, squares_too: bool = True) -> tuple[int, int]:
    """Exact sum and (only if asked: it costs as much again) sum of squares of int64
    values, as Python ints."""
    total = squares = 0
    for start in range(0, len(x), _INT_BLOCK):
        block = x[start : start + _INT_BLOCK]
        # x = high * 2**32 + low: both partial sums fit int64 for blocks below 2**31 items.
        total += (int(np.sum(block >> 32)) << 32) + int(np.sum(block & 0xFFFFFFFF))
        if squares_too:
            squares += _int_squares_block(block)
    return total, squares


def _int_rounding(x: IntArray) -> int:
    """What the values change by as float64s, each correctly rounded (see Partial)."""
    big = x[(x > 2**53) | (x < -(2**53))]
    if len(big) == 0:
        return 0
    # big = high + low with high a multiple of 2**12, exact as a float64, and 0 <= low < 2**12:
    # float64(big) - high is exact (Sterbenz), and the rounding is that less low.
    high = big & ~np.int64(0xFFF)
    rounded = big.astype(np.float64) - high.astype(np.float64)
    return int(np.sum(rounded.astype(np.int64) - (big & 0xFFF)))


def _int_squares_block(x: IntArray) -> int:
    # x = a * 2**42 + b * 2**21 + c with a signed below 2**21 and 0 <= b, c < 2**21: every
    # pairwise product is below 2**42, so a block of 2**20 of them sums exactly in int64.
    a = x >> 42
    b = (x >> 21) & 0x1FFFFF
    c = x & 0x1FFFFF

    def dot(u: IntArray, v: IntArray) -> int:
        return int(np.dot(u, v))

    return (
        (dot(a, a) << 84)
        + (dot(a, b) << 64)
        + ((2 * dot(a, c) + dot(b, b)) << 42)
        + (dot(b, c) << 22)
        + dot(c, c)
    )


def _sum_of_squared_deviations(x: FloatArray, center: float) -> M2:
    """Corrected two-pass: sum((x - c)**2) - (sum(x - c))**2 / n is the sum of squared
    deviations about the true mean even though the float center c is only close to it."""
    with np.errstate(over="ignore", invalid="ignore", under="ignore"):
        deviations = x - center
        squares = float(np.sum(np.square(deviations)))  # pairwise summation
        if _SMALLEST_PLAIN_SQUARES <= squares < math.inf:  # ordinary data: plain float64
            drift = float(np.sum(deviations))
            return math.frexp(max(0.0, squares - drift * (drift / len(x))))
    if squares == 0.0 and not deviations.any():
        return 0.0, 0  # every value equals the center
    return _rescaled_sum_of_squared_deviations(x, center)


def _rescaled_sum_of_squared_deviations(x: FloatArray, center: float) -> M2:
    """The corrected two-pass where x - c or its square over- or underflows float64: scale x
    and c by 2**-k0 so that |x - c| < 2, then the deviations by 2**-k1 so the largest is in
    [1/2, 1), and scale M2 back by 2**(2 (k0 + k1)) in the exponent. Scaling by powers of two
    is exact except for values pushed into the subnormals, which are below 2**-1021 of the
    largest |x| or |deviation| and so cannot matter."""
    with np.errstate(under="ignore"):
        top = max(float(np.max(np.abs(x))), abs(center))
        k0 = math.frexp(top)[1]  # top < 2**k0
        deviations = np.ldexp(x, -k0) - math.ldexp(center, -k0)
        k1 = math.frexp(float(np.max(np.abs(deviations))))[1]
        deviations = np.ldexp(deviations, -k1)
        squares = float(np.sum(np.square(deviations)))  # at most n: no overflow
        drift = float(np.sum(deviations))
    fraction, exponent = math.frexp(max(0.0, squares - drift * (drift / len(x))))
    if fraction == 0.0:
        return 0.0, 0
    return fraction, exponent + 2 * (k0 + k1)


def _first(mask: npt.NDArray[np.bool_]) -> int:
    return int(np.argmax(mask))


def _normalise(chunk: npt.NDArray[np.generic]) -> FloatArray | IntArray:
    array = np.asarray(chunk)
    if array.ndim != 1:
        raise ValueError(f"chunks must be 1-D, got shape {array.shape}")
    kind, size = array.dtype.kind, array.dtype.itemsize
    if kind == "f" and size <= 8:
        return array.astype(np.float64, copy=False)
    if kind in "bi" or (kind == "u" and size < 8):
        return array.astype(np.int64, copy=False)
    raise TypeError(f"unsupported dtype {array.dtype}: use float64 or int64")


# ---------------------------------------------------------------- histogram (second pass)


def histogram_range(state: Partial, bins: int = DEFAULT_BINS) -> tuple[float, float]:
    """The (lo, hi) to pass to `histogram_counts`: the NaN-ignoring global min and max, or
    (0, 1) when there is no non-NaN value (numpy's convention). Raises ValueError with a
    printable reason when numpy cannot make `bins` finite bins over that range (inf data, a
    range wider than the float64 maximum, or too narrow for its magnitude)."""
    if bins < 1:
        raise ValueError(f"histogram: bins must be at least 1, got {bins}")
    if state.low is None or state.high is None:
        return 0.0, 1.0
    lo, hi = float(state.low.value), float(state.high.value)
    reason = f"histogram: no {bins} finite bins over [{lo!r}, {hi!r}]"
    try:
        # A trial run on the two extremes catches every overflow numpy would hit later.
        with np.errstate(over="raise", invalid="raise", divide="raise", under="ignore"):
            edges = np.histogram_bin_edges(np.empty(0), bins=bins, range=(lo, hi))
            np.histogram(np.array([lo, hi]), bins=bins, range=(lo, hi))
    except (ValueError, FloatingPointError) as error:
        raise ValueError(reason) from error
    if not np.all(np.isfinite(edges)):
        raise ValueError(reason)
    return lo, hi


def histogram_counts(
    chunk: npt.NDArray[np.generic], lo: float, hi: float, bins: int = DEFAULT_BINS
) -> IntArray:
    """Counts of this chunk in `bins` equal bins over [lo, hi] (numpy.histogram semantics:
    the last bin is closed), NaN excluded. all_sum these over chunks and ranks."""
    data = _normalise(chunk)
    if data.dtype == np.float64:
        data = data[~np.isnan(data)]
    counts, _ = np.histogram(data, bins=bins, range=(lo, hi))
    return counts.astype(np.int64)


def histogram_edges(lo: float, hi: float, bins: int = DEFAULT_BINS) -> list[float]:
    edges = np.histogram_bin_edges(np.empty(0), bins=bins, range=(lo, hi))
    return [float(edge) for edge in edges]
