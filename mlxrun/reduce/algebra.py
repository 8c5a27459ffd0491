"""The algebra of distributed reductions: per-rank partial states, their fixed-length encodings,
and the final answers. Standard library only: no I/O, no MLX, no numpy and no mlxrun module
but the list of ops, so that a job that only sums as it reads (count, sum, mean) never loads numpy. The
numpy work on array chunks is in `kernels`, which builds on this module.

Protocol (what the worker does; the tests' `simulate` runs it in one process)::

    part = Partial()
    for chunk in my_chunks:                    # float64 or int64, 1-D, in data order
        kernels.add_chunk(part, chunk)
    enc = part.encode()
    state = combine(all_sum(enc.summed), all_gather(enc.gathered_ints),
                    all_gather(enc.gathered_floats))    # the same on every rank
    if "histogram" in ops:                     # second pass: needs the global min and max
        lo, hi = kernels.histogram_range(state, bins)  # ValueError(reason): no finite bins
        counts = all_sum(sum(kernels.histogram_counts(c, lo, hi, bins) for c in my_chunks))
        histogram = Histogram(counts, kernels.histogram_edges(lo, hi, bins))  # or the reason
    results = finalize(state, ops, histogram=histogram)

Ranks are ordered: rank r's items come after every item of ranks < r, so a global index is the
item count of the lower ranks plus the local index.

Exact sums. Every finite float64 is an integer multiple of 2**-1074, so the exact sum of any
floats is an integer S scaled by 2**1074. Floats with the same biased exponent e are all
multiples of one unit 2**(max(e, 1) - 1075) and below 2**53 units. The C kernels (native/bins.h)
add the integer mantissas per exponent into int64 bins (`fold_bins` reads them); without them, `kernels` splits each float
x, vectorised, into `high` (x with its low 26 fraction bits cleared) and `low = x - high` (exact),
and adds both per exponent with float64 `np.bincount`: in units of the bin, high parts are
multiples of 2**26 below 2**53 and low parts are below 2**26, so over a block of at most 2**24
items no running total needs more than 53 significant bits and nothing is rounded. (The top
exponents are scaled down by 2**-128 first so the totals cannot overflow.) The at most 2047
bin totals are then converted exactly to integers and added into the Python int S. Int64 data
is summed exactly on its own (32-bit halves, int64 totals) into a second Python int, together
with the exact sum of squares, which makes the variance of integer data exact; the final sum
is S / 2**1074 + the int sum, computed exactly. Where any float was seen, the int sum is
first corrected by what each integer changes as a float64 (an exact integer too), so that
every integer counts as its float64 whichever chunk or rank held it: a chunk of text with
floats reads its integers as float64s, and the answer must not depend on the chunking.

Cross-rank sums travel as fixed-length vectors of 32-bit limbs held in int64: a signed total T
is encoded as the base-2**32 digits of T mod 2**(32 L) (two's complement over 32 L bits). The
element-wise int64 sum of the limb vectors of up to 2**20 ranks cannot overflow (each limb is
below 2**32), and sum(limb_k << 32 k), read mod 2**(32 L) as a signed number, is the exact total
as long as |total| < 2**(32 L - 1). L is chosen for 2**40 values per rank on 2**20 ranks.

`sum` is therefore the correctly rounded exact sum (bit-identical to `math.fsum` and to itself
for any split into chunks and ranks) and `mean` the correctly rounded exact sum / count. An exact
zero sum is +0.0, as `math.fsum` gives on Python 3.11 (3.12+ fsum keeps -0.0 when every addend
is -0.0). Where `math.fsum` raises OverflowError on an intermediate sum, the exact sum here still
gives the finite answer when it fits, and +-inf when the exact sum itself rounds past the
float64 maximum.

Variance. The float sum of squared deviations M2 (= n * var, which overflows float64 long before
the variance does) is held as a 53-bit mantissa and an unbounded binary exponent. Per chunk it
is a corrected two-pass about the correctly rounded chunk mean; only when the plain float64 pass
overflows (or underflows into the subnormals) are the values and the center first scaled by
powers of two so that the largest |deviation| is near 1, which is exact and costs two extra
passes over that chunk. Merges (Chan's formula, with the mean difference exact from the scaled
sums) and the final division are exact rational arithmetic rounded once, so var is inf only
when the population variance itself rounds past the float64 maximum.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple, TypeAlias

from mlxrun.reduce.ops import OPS, SUM_OPS

if TYPE_CHECKING:
    from mlxrun.native import Bins

Number: TypeAlias = "int | float"
Value: TypeAlias = "int | float | list[int] | list[float] | None"

SCALE = 1074  # every finite float64 is an integer multiple of 2**-SCALE

# Limb counts. Float sums: |x| < 2**1024, scaled by 2**1074, times 2**60 values -> 2**2158.
# Int sums: 2**63 * 2**60 -> 2**123. Int sums of squares: 2**126 * 2**60 -> 2**186.
# Int roundings (to float64): 2**9 * 2**60 -> 2**69.
_LIMB_BITS = 32
_LIMBS_FLOAT_SUM = 68  # 2176 bits
_LIMBS_INT_SUM = 4  # 128 bits
_LIMBS_INT_SQUARES = 6  # 192 bits
_LIMBS_INT_ROUNDING = 3  # 96 bits

# Layout of the all_sum vector (int64).
_S_NAN, _S_POSINF, _S_NEGINF, _S_SAW_FLOAT, _S_COUNT_INT = range(5)
_S_FLOAT_SUM = 5
_S_INT_SUM = _S_FLOAT_SUM + _LIMBS_FLOAT_SUM
_S_INT_SQUARES = _S_INT_SUM + _LIMBS_INT_SUM
_S_INT_ROUNDING = _S_INT_SQUARES + _LIMBS_INT_SQUARES
SUMMED_LEN = _S_INT_ROUNDING + _LIMBS_INT_ROUNDING

# Layout of the all_gather int64 vector (one row per rank). Kinds: 0 none, 1 int, 2 float.
(
    _G_COUNT,
    _G_FIRST_NAN,
    _G_COUNT_FLOAT,
    _G_MIN_KIND,
    _G_MIN_INT,
    _G_MIN_INDEX,
    _G_MAX_KIND,
    _G_MAX_INT,
    _G_MAX_INDEX,
) = range(9)
GATHERED_INTS_LEN = 9

# Layout of the all_gather float64 vector (one row per rank). M2 = _F_M2_FRAC * 2**_F_M2_EXP
# with the mantissa in [0.5, 1) or 0 (math.frexp) and the int exponent held exactly as a float.
_F_MIN, _F_MAX, _F_M2_FRAC, _F_MEAN_HI, _F_MEAN_LO, _F_PROD, _F_M2_EXP = range(7)
GATHERED_FLOATS_LEN = 7

_KIND_NONE, _KIND_INT, _KIND_FLOAT = 0, 1, 2


# ---------------------------------------------------------------- exact integer helpers


def _to_float(numerator: int, denominator: int) -> float:
    """numerator / denominator correctly rounded (CPython's int true division is), +-inf on
    overflow instead of OverflowError."""
    try:
        return numerator / denominator
    except OverflowError:
        return math.inf if (numerator < 0) == (denominator < 0) else -math.inf


def scaled(x: float) -> int:
    """The finite float x as the exact integer x * 2**1074."""
    numerator, denominator = x.as_integer_ratio()
    return numerator * ((1 << SCALE) // denominator)


def _to_limbs(total: int, limbs: int) -> list[int]:
    """Two's complement of total over 32 * limbs bits, as little-endian 32-bit limbs."""
    width = _LIMB_BITS * limbs
    if not -(1 << (width - 1)) <= total < 1 << (width - 1):
        raise OverflowError(f"exact sum needs more than {width} bits")
    raw = (total % (1 << width)).to_bytes(4 * limbs, "little")
    return list(struct.unpack(f"<{limbs}I", raw))


def _from_limbs(limb_sums: Sequence[int]) -> int:
    """Inverse of _to_limbs after an element-wise sum over ranks: limbs may exceed 32 bits."""
    width = _LIMB_BITS * len(limb_sums)
    total = sum(int(limb) << (_LIMB_BITS * k) for k, limb in enumerate(limb_sums))
    total %= 1 << width
    return total - (1 << width) if total >> (width - 1) else total


# ---------------------------------------------------------------- per-chunk kernels


def fold_bins(high: Bins, low: Bins) -> int:
    """The exact sum, scaled by 2**1074, held in the C kernels' bins (native/bins.h): value
    high[e] * 2**32 + low[e] in units of 2**(max(e, 1) - 1)."""
    total = 0
    for bins, shift in ((high, 32), (low, 0)):
        for e in _nonzero_span(bins):
            total += bins[e] << (max(e, 1) - 1 + shift)
    return total


def _nonzero_span(bins: Bins) -> range:
    """From the first non-zero bin to the last: real data use a few dozen of the 2048, and
    bytes are scanned in C where a loop over every bin would cost 0.2 ms per chunk."""
    raw = bins.tobytes()
    first = len(raw) - len(raw.lstrip(b"\0"))
    return range(first // 8, (len(raw.rstrip(b"\0")) + 7) // 8)


def scaled_int(n: int) -> int:
    """An integer in the units of the exact float sums (2**-1074)."""
    return n << SCALE


def partial_of_sums(
    count: int,
    all_int: bool,
    specials: tuple[int, int, int],
    int_sum: int,
    scaled_sum: int,
    int_rounding: int = 0,
) -> Partial:
    """The state of a chunk that was only summed: enough for count, sum and mean. As with
    parsed chunks, integers stay exact in a chunk of integers and are floats in any other;
    `int_rounding` is what a chunk of integers changes by as float64s (see Partial)."""
    if all_int:
        return Partial(
            count=count, int_count=count, int_sum=int_sum, int_rounding=int_rounding, needs=SUM_OPS
        )
    nan, posinf, neginf = specials
    return Partial(
        count=count,
        nan_count=nan,
        posinf_count=posinf,
        neginf_count=neginf,
        saw_float=True,
        float_count=count - nan - posinf - neginf,
        float_sum=scaled_sum,
        needs=SUM_OPS,
    )


M2: TypeAlias = "tuple[float, int]"  # (f, e) is f * 2**e, f in [0.5, 1) or 0 (math.frexp)


def _m2_ratio(m2: M2) -> tuple[int, int]:
    """M2 as an exact numerator and (power of two) denominator."""
    numerator, denominator = m2[0].as_integer_ratio()
    exponent = m2[1]
    if exponent >= 0:
        return numerator << exponent, denominator
    return numerator, denominator << -exponent


def _round_m2(numerator: int, denominator: int) -> M2:
    """numerator / denominator >= 0 correctly rounded to 53 bits, with no exponent limit."""
    if numerator == 0:
        return 0.0, 0
    shift = numerator.bit_length() - denominator.bit_length()
    if shift > 0:
        denominator <<= shift
    else:
        numerator <<= -shift
    fraction, exponent = math.frexp(numerator / denominator)  # a ratio in (1/2, 2)
    return fraction, exponent + shift


def _merge_m2(n_a: int, s_a: int, m2_a: M2, n_b: int, s_b: int, m2_b: M2) -> M2:
    """Chan et al.: M2 = M2_a + M2_b + delta**2 * n_a * n_b / n, with delta taken exactly from
    the scaled sums s = n * mean * 2**1074 so that a large common offset costs no precision.
    The sum is exact and rounded once (to 53 bits, with an unbounded exponent)."""
    if n_b == 0:
        return m2_a
    if n_a == 0:
        return m2_b
    gap = s_b * n_a - s_a * n_b  # delta * n_a * n_b * 2**1074
    denominator = (n_a * n_b * (n_a + n_b)) << (2 * SCALE)
    num_a, den_a = _m2_ratio(m2_a)
    num_b, den_b = _m2_ratio(m2_b)
    common = max(den_a, den_b)  # powers of two: a multiple of both
    numerator = (num_a * (common // den_a) + num_b * (common // den_b)) * denominator
    return _round_m2(numerator + gap * gap * common, denominator * common)


# ---------------------------------------------------------------- the partial state


@dataclass
class Extreme:
    """A NaN-ignoring min or max and the local index of its first occurrence."""

    value: Number
    index: int


@dataclass
class Partial:
    """One rank's (or one chunk's) reduction state, fed in data order.

    Semantics worth knowing:
    - NaN propagates: if any NaN is present, min and max are nan and argmin/argmax are the
      index of the first NaN. The fields `low`/`high` ignore NaN (the histogram range uses them).
    - Integers are exact: sum is a Python int when no float was seen, min/max are ints, and
      the variance of pure int data is the correctly rounded exact value. Once a float was
      seen, sum, mean, min and max count each integer as its float64.
    - var/std of floats: per-chunk corrected two-pass about the correctly rounded chunk mean,
      merged with Chan's formula whose mean difference is exact; nan if any NaN or inf is
      present. The sum of squared deviations is a 53-bit mantissa with an unbounded exponent
      (deviations are scaled by a power of two where squaring them would overflow or
      underflow), so var is inf only when the population variance itself rounds past the
      float64 maximum.
    - prod is the float64 product (ints converted to float64) in chunk then rank order, with
      IEEE overflow to +-inf and underflow to 0.0 in intermediate products; prod of nothing is
      1.0 (the empty product).
    """

    count: int = 0  # every value, NaN included
    nan_count: int = 0
    posinf_count: int = 0
    neginf_count: int = 0
    first_nan: int | None = None
    saw_float: bool = False
    float_count: int = 0  # finite floats: the float moments
    float_sum: int = 0  # exact, scaled by 2**1074
    # Sum of squared deviations about the float mean: float_m2_frac * 2**float_m2_exp, the
    # mantissa in [0.5, 1) or 0, the exponent unbounded (M2 can pass the float64 maximum).
    float_m2_frac: float = 0.0
    float_m2_exp: int = 0
    int_count: int = 0
    int_sum: int = 0  # exact
    int_squares: int = 0  # exact
    # What the integers change by as float64s (each correctly rounded), exact: where any
    # float was seen, sum and mean count every integer as its float64, whichever chunk or
    # rank held it, as a chunk with floats and integers reads them.
    int_rounding: int = 0
    low: Extreme | None = None
    high: Extreme | None = None
    prod: float = 1.0
    # The ops this state must answer; work that none of them needs is skipped (a sum need
    # not find extremes). Answers for other ops are then not meaningful.
    needs: frozenset[str] = frozenset(OPS)

    def merge(self, other: Partial) -> None:
        """Absorb `other`, whose items come after all of this state's items."""
        offset = self.count
        if self.first_nan is None and other.first_nan is not None:
            self.first_nan = offset + other.first_nan
        self.low = _pick(self.low, other.low, offset, lambda new, old: new < old)
        self.high = _pick(self.high, other.high, offset, lambda new, old: new > old)
        self.float_m2_frac, self.float_m2_exp = _merge_m2(
            self.float_count,
            self.float_sum,
            (self.float_m2_frac, self.float_m2_exp),
            other.float_count,
            other.float_sum,
            (other.float_m2_frac, other.float_m2_exp),
        )
        self.count += other.count
        self.nan_count += other.nan_count
        self.posinf_count += other.posinf_count
        self.neginf_count += other.neginf_count
        self.saw_float = self.saw_float or other.saw_float
        self.float_count += other.float_count
        self.float_sum += other.float_sum
        self.int_count += other.int_count
        self.int_sum += other.int_sum
        self.int_squares += other.int_squares
        self.int_rounding += other.int_rounding
        self.prod *= other.prod  # Python floats follow IEEE here: inf, 0.0 or nan, no error

    def encode(self) -> Encoded:
        """This state as three fixed-length vectors (lengths SUMMED_LEN, GATHERED_INTS_LEN,
        GATHERED_FLOATS_LEN): all_sum the first, all_gather the other two."""
        summed = [0] * SUMMED_LEN
        summed[_S_NAN] = self.nan_count
        summed[_S_POSINF] = self.posinf_count
        summed[_S_NEGINF] = self.neginf_count
        summed[_S_SAW_FLOAT] = int(self.saw_float)
        summed[_S_COUNT_INT] = self.int_count
        summed[_S_FLOAT_SUM:_S_INT_SUM] = _to_limbs(self.float_sum, _LIMBS_FLOAT_SUM)
        summed[_S_INT_SUM:_S_INT_SQUARES] = _to_limbs(self.int_sum, _LIMBS_INT_SUM)
        summed[_S_INT_SQUARES:_S_INT_ROUNDING] = _to_limbs(self.int_squares, _LIMBS_INT_SQUARES)
        summed[_S_INT_ROUNDING:] = _to_limbs(self.int_rounding, _LIMBS_INT_ROUNDING)

        ints = [0] * GATHERED_INTS_LEN
        floats = [0.0] * GATHERED_FLOATS_LEN
        ints[_G_COUNT] = self.count
        ints[_G_FIRST_NAN] = -1 if self.first_nan is None else self.first_nan
        ints[_G_COUNT_FLOAT] = self.float_count
        _encode_extreme(self.low, ints, floats, _G_MIN_KIND, _G_MIN_INT, _G_MIN_INDEX, _F_MIN)
        _encode_extreme(self.high, ints, floats, _G_MAX_KIND, _G_MAX_INT, _G_MAX_INDEX, _F_MAX)
        floats[_F_M2_FRAC] = self.float_m2_frac
        floats[_F_M2_EXP] = float(self.float_m2_exp)  # |exponent| < 2**12: exact as a float
        # The float mean as a double-double (error ~2**-106 relative): enough for Chan's
        # merge across ranks, while the exact float sum itself travels in the all_sum.
        if self.float_count:
            denominator = self.float_count << SCALE
            mean_hi = self.float_sum / denominator
            floats[_F_MEAN_HI] = mean_hi
            floats[_F_MEAN_LO] = _to_float(
                self.float_sum - scaled(mean_hi) * self.float_count, denominator
            )
        floats[_F_PROD] = self.prod
        return Encoded(summed, ints, floats)


class Encoded(NamedTuple):
    summed: list[int]  # all_sum across ranks (int64)
    gathered_ints: list[int]  # all_gather across ranks (int64)
    gathered_floats: list[float]  # all_gather across ranks (float64)


def _pick(
    mine: Extreme | None,
    theirs: Extreme | None,
    offset: int,
    better: Callable[[Number, Number], bool],
) -> Extreme | None:
    """The extreme of two ordered states; ties keep the earlier one (first occurrence)."""
    if theirs is None:
        return mine
    if mine is None or better(theirs.value, mine.value):
        return Extreme(theirs.value, offset + theirs.index)
    return mine


def _encode_extreme(
    extreme: Extreme | None,
    ints: list[int],
    floats: list[float],
    kind_at: int,
    int_at: int,
    index_at: int,
    float_at: int,
) -> None:
    if extreme is None:
        return
    ints[index_at] = extreme.index
    if isinstance(extreme.value, int):
        ints[kind_at], ints[int_at] = _KIND_INT, extreme.value
    else:
        ints[kind_at], floats[float_at] = _KIND_FLOAT, extreme.value


def _decode_extreme(
    ints: list[int], floats: list[float], kind_at: int, int_at: int, index_at: int, float_at: int
) -> Extreme | None:
    kind = ints[kind_at]
    if kind == _KIND_NONE:
        return None
    value: Number = ints[int_at] if kind == _KIND_INT else floats[float_at]
    return Extreme(value, ints[index_at])


# ---------------------------------------------------------------- across ranks


def combine(
    summed: Sequence[int],
    gathered_ints: Sequence[Sequence[int]],
    gathered_floats: Sequence[Sequence[float]],
) -> Partial:
    """The global state from the all_sum of `encode().summed` and the all_gather (one row per
    rank, in rank order) of the other two vectors. Deterministic: every rank gets the same."""
    # Python numbers from here on, whatever the caller holds (lists, numpy or MLX rows).
    sums = [int(v) for v in summed]
    int_rows = [[int(v) for v in row] for row in gathered_ints]
    float_rows = [[float(v) for v in row] for row in gathered_floats]
    if (
        len(sums) != SUMMED_LEN
        or len(int_rows) != len(float_rows)
        or any(len(row) != GATHERED_INTS_LEN for row in int_rows)
        or any(len(row) != GATHERED_FLOATS_LEN for row in float_rows)
    ):
        raise ValueError("combine: vectors do not match the encode() layout")

    total = Partial()
    for ints, floats in zip(int_rows, float_rows, strict=True):
        total.merge(_rank_state(ints, floats))
    # Exact totals replace the per-rank approximations used for the merge above.
    total.nan_count = sums[_S_NAN]
    total.posinf_count = sums[_S_POSINF]
    total.neginf_count = sums[_S_NEGINF]
    total.saw_float = bool(sums[_S_SAW_FLOAT])
    total.int_count = sums[_S_COUNT_INT]
    total.float_sum = _from_limbs(sums[_S_FLOAT_SUM:_S_INT_SUM])
    total.int_sum = _from_limbs(sums[_S_INT_SUM:_S_INT_SQUARES])
    total.int_squares = _from_limbs(sums[_S_INT_SQUARES:_S_INT_ROUNDING])
    total.int_rounding = _from_limbs(sums[_S_INT_ROUNDING:])
    return total


def _rank_state(ints: list[int], floats: list[float]) -> Partial:
    """One rank's state as far as the gathered vectors tell: enough for the ordered merges
    (indices, min/max, Chan's variance, product); the exact sums come from the all_sum."""
    first_nan = ints[_G_FIRST_NAN]
    float_count = ints[_G_COUNT_FLOAT]
    approx_sum = 0
    if float_count:
        mean = scaled(floats[_F_MEAN_HI]) + scaled(floats[_F_MEAN_LO])
        approx_sum = mean * float_count
    return Partial(
        count=ints[_G_COUNT],
        first_nan=None if first_nan < 0 else first_nan,
        float_count=float_count,
        float_sum=approx_sum,
        float_m2_frac=floats[_F_M2_FRAC],
        float_m2_exp=int(floats[_F_M2_EXP]),
        low=_decode_extreme(ints, floats, _G_MIN_KIND, _G_MIN_INT, _G_MIN_INDEX, _F_MIN),
        high=_decode_extreme(ints, floats, _G_MAX_KIND, _G_MAX_INT, _G_MAX_INDEX, _F_MAX),
        prod=floats[_F_PROD],
    )


# ---------------------------------------------------------------- final answers


@dataclass
class Results:
    """values: op -> answer, plus "nan_count" always and "histogram_edges" with "histogram".
    reasons: op -> why its value is None, ready to print."""

    values: dict[str, Value]
    reasons: dict[str, str]


class Histogram(NamedTuple):
    counts: list[int]  # all_summed over ranks
    edges: list[float]  # bins + 1 edges


def finalize(
    state: Partial, ops: Sequence[str], histogram: Histogram | str | None = None
) -> Results:
    """The answers for `ops` from a combined (or single-process) state. With "histogram" in
    `ops`, `histogram` is the second pass's counts and edges, or why there are none."""
    unknown = [op for op in ops if op not in OPS]
    if unknown:
        raise ValueError(f"unknown ops {unknown}; known: {', '.join(OPS)}")
    results = Results({"nan_count": state.nan_count}, {})
    for op in ops:
        if op == "histogram":
            if histogram is None:
                raise ValueError("histogram requested: pass its counts and edges")
            if isinstance(histogram, str):
                results.values["histogram"] = None
                results.reasons["histogram"] = histogram
            else:
                results.values["histogram"] = [int(c) for c in histogram.counts]
                results.values["histogram_edges"] = list(histogram.edges)
        elif op in ("count", "sum", "prod") or state.count:
            results.values[op] = _ANSWERS[op](state)
        else:
            results.values[op] = None
            results.reasons[op] = f"empty input: {op} is undefined"
    return results


def _special_float(state: Partial) -> float | None:
    """nan or +-inf when NaN/inf decide sum and mean, else None."""
    if state.nan_count or (state.posinf_count and state.neginf_count):
        return math.nan
    if state.posinf_count:
        return math.inf
    if state.neginf_count:
        return -math.inf
    return None


def _exact_scaled_sum(state: Partial) -> int:
    ints = state.int_sum + state.int_rounding if state.saw_float else state.int_sum
    return state.float_sum + (ints << SCALE)


def _sum(state: Partial) -> Number:
    if not state.saw_float:
        return state.int_sum
    special = _special_float(state)
    if special is not None:
        return special
    return _to_float(_exact_scaled_sum(state), 1 << SCALE)


def _mean(state: Partial) -> float:
    special = _special_float(state)
    if special is not None:
        return special
    return _to_float(_exact_scaled_sum(state), state.count << SCALE)


def _extreme(state: Partial, which: Extreme | None) -> Number:
    if state.nan_count or which is None:  # NaN propagates; None only if all values are NaN
        return math.nan
    # Once any float was seen the data are floats: the answer's type must not depend on
    # which chunk (or rank) happened to hold only integers.
    return float(which.value) if state.saw_float else which.value


def _arg(state: Partial, which: Extreme | None) -> int:
    if state.first_nan is not None:
        return state.first_nan
    assert which is not None  # count > 0 and no NaN
    return which.index


def _var(state: Partial) -> float:
    """Population variance: the exact int moments and the float moments joined by Chan's
    formula, all in exact rational arithmetic, rounded once."""
    from fractions import Fraction  # imports decimal: not for jobs that only sum

    if state.nan_count or state.posinf_count or state.neginf_count:
        return math.nan
    n_i, n_f, n = state.int_count, state.float_count, state.count
    m2 = Fraction(*_m2_ratio((state.float_m2_frac, state.float_m2_exp)))
    if n_i:
        m2 += Fraction(n_i * state.int_squares - state.int_sum * state.int_sum, n_i)
    if n_i and n_f:
        gap = (state.int_sum << SCALE) * n_f - state.float_sum * n_i
        m2 += Fraction(gap * gap, (n_i * n_f * n) << (2 * SCALE))
    return _to_float(m2.numerator, m2.denominator * n)


_ANSWERS: dict[str, Callable[[Partial], Number]] = {
    "count": lambda s: s.count,
    "sum": _sum,
    "mean": _mean,
    "min": lambda s: _extreme(s, s.low),
    "max": lambda s: _extreme(s, s.high),
    "argmin": lambda s: _arg(s, s.low),
    "argmax": lambda s: _arg(s, s.high),
    "prod": lambda s: s.prod,
    "var": _var,
    "std": lambda s: math.sqrt(_var(s)),
}
