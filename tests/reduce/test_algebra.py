"""Property tests of mlxrun.reduce.algebra (and its kernels) against single-process Python references.

Every data set is run through `simulate` (encode per rank, emulated all_sum/all_gather,
combine, finalize) for random splits into 1..5 ranks (possibly empty) and random chunks per
rank, and every op is checked against math.fsum / exact ints / Fractions / statistics.
"""

from __future__ import annotations

import math
import statistics
from fractions import Fraction
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlxrun import native
from mlxrun.reduce import algebra as reductions
from mlxrun.reduce import kernels
from mlxrun.reduce.algebra import (
    SUMMED_LEN,
    Partial,
    Results,
    combine,
    finalize,
)
from mlxrun.reduce.kernels import add_chunk, histogram_counts, histogram_range
from mlxrun.reduce.ops import OPS
from tests.reduce.simulate import simulate

Values = list[Any]  # Python ints (int64 data) and floats (float64 data), in data order

PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
FLOAT_MAX = 1.7976931348623157e308
TINY = 5e-324

# ---------------------------------------------------------------- strategies

int64s = st.one_of(
    st.integers(INT64_MIN, INT64_MAX),
    st.sampled_from([INT64_MIN, INT64_MIN + 1, INT64_MAX, INT64_MAX - 1, -1, 0, 1]),
)
any_floats = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([FLOAT_MAX, -FLOAT_MAX, TINY, -TINY, 2.0**-1022, 1.0 - 2.0**-53, -0.0]),
    st.builds(lambda x, neg: -x if neg else x, st.floats(1e-300, 1e300), st.booleans()),
)
subnormals = st.floats(min_value=-(2.0**-1022), max_value=2.0**-1022, allow_subnormal=True)
specials = st.sampled_from([math.nan, math.inf, -math.inf])


@st.composite
def cancelling_floats(draw: st.DrawFn) -> Values:
    """x, -x pairs spanning 1e-300..1e300 plus small values and subnormals, shuffled."""
    big = draw(st.lists(any_floats, max_size=12))
    small = draw(st.lists(st.one_of(subnormals, st.floats(-1.0, 1.0)), max_size=8))
    values: Values = [*big, *(-x for x in big), *small]
    return draw(st.permutations(values))


@st.composite
def with_specials(draw: st.DrawFn, base: st.SearchStrategy[Values]) -> Values:
    values = list(draw(base))
    for _ in range(draw(st.integers(0, 4))):
        values.insert(draw(st.integers(0, len(values))), draw(specials))
    return values


moderate_floats = st.floats(-1e6, 1e6, allow_nan=False)
# Magnitudes up to the float64 maximum, many whose squares (or differences) overflow.
extreme_floats = st.one_of(
    st.floats(-FLOAT_MAX, FLOAT_MAX),
    st.builds(
        lambda f, e, neg: math.ldexp(-f if neg else f, e),
        st.floats(0.5, 1.0, exclude_max=True),
        st.integers(480, 1024),
        st.booleans(),
    ),
    st.sampled_from(
        [FLOAT_MAX, -FLOAT_MAX, 2.0**1023, -(2.0**1023), 2.0**513, 2.0**512, 0.0, TINY, -TINY]
    ),
    subnormals,
)


@st.composite
def scaled_floats(draw: st.DrawFn) -> Values:
    """Values in [-1, 1] times one power of two: near 2**512 n * var overflows while var
    may not; near 2**-512 the squared deviations underflow."""
    exponent = draw(st.one_of(st.integers(500, 514), st.integers(-560, -480)))
    unit = st.one_of(st.floats(-1.0, 1.0), st.sampled_from([-1.0, 0.0, 1.0]))
    return [math.ldexp(f, exponent) for f in draw(st.lists(unit, min_size=1, max_size=30))]


mixed = st.lists(st.one_of(int64s, any_floats, st.integers(-1000, 1000), moderate_floats))


def chunked(values: Values, cuts: list[int]) -> list[np.ndarray]:
    """values[a:b] for consecutive cuts, each split further where the type changes (a chunk
    holds one dtype); equal cuts give empty float64 chunks."""
    chunks: list[np.ndarray] = []
    for a, b in zip(cuts, cuts[1:], strict=False):
        if a == b:
            chunks.append(np.empty(0, dtype=np.float64))
        start = a
        for i in range(a + 1, b + 1):
            if i == b or type(values[i]) is not type(values[start]):
                run = values[start:i]
                dtype = np.int64 if isinstance(run[0], int) else np.float64
                chunks.append(np.array(run, dtype=dtype))
                start = i
    return chunks


@st.composite
def split(draw: st.DrawFn, values: Values, ranks: int) -> list[list[np.ndarray]]:
    """values split into `ranks` contiguous (possibly empty) parts, each into random chunks."""
    n = len(values)
    rank_cuts = sorted(draw(st.lists(st.integers(0, n), min_size=ranks - 1, max_size=ranks - 1)))
    bounds = [0, *rank_cuts, n]
    parts = []
    for a, b in zip(bounds, bounds[1:], strict=False):
        inner = sorted(draw(st.lists(st.integers(a, b), max_size=3)))
        parts.append(chunked(values, [a, *inner, b]))
    return parts


# ---------------------------------------------------------------- references


def same(got: object, want: object) -> bool:
    """Equal value and type; floats bit for bit (nan == nan, -0.0 != 0.0)."""
    if type(got) is not type(want):
        return False
    if isinstance(got, float) and isinstance(want, float):
        return got.hex() == want.hex() or (math.isnan(got) and math.isnan(want))
    return got == want


def close(got: object, want: float, rel: float, tiny: float) -> bool:
    assert isinstance(got, float)
    if math.isnan(want) or math.isinf(want):
        return same(got, want)
    return abs(got - want) <= rel * abs(want) + tiny


def rounded(exact: Fraction) -> float:
    try:
        return float(exact)  # correctly rounded
    except OverflowError:
        return math.inf if exact > 0 else -math.inf


def special(values: Values) -> float | None:
    floats = [v for v in values if isinstance(v, float)]
    has = {name: any(f == x for x in floats) for name, f in (("+", math.inf), ("-", -math.inf))}
    if any(math.isnan(x) for x in floats) or (has["+"] and has["-"]):
        return math.nan
    if has["+"]:
        return math.inf
    return -math.inf if has["-"] else None


def check_sum_mean(values: Values, got: dict[str, Any]) -> None:
    floats = [v for v in values if isinstance(v, float)]
    if not floats:
        assert same(got["sum"], sum(values))
        assert same(got["mean"], rounded(Fraction(sum(values), len(values))))
        return
    nonfinite = special(values)
    if nonfinite is not None:
        assert same(got["sum"], nonfinite) and same(got["mean"], nonfinite)
        return
    # Once a float is in the data, integers count as the float64s they round to, whichever
    # chunk or rank held them (as a chunk of text with floats reads them).
    exact = sum((Fraction(float(v)) for v in values), Fraction(0))
    want = rounded(exact)
    assert same(got["sum"], want + 0.0)  # an exact zero is +0.0
    if len(floats) == len(values):
        try:
            assert same(got["sum"], math.fsum(values) + 0.0)
        except OverflowError:
            pass  # fsum gives up on intermediate overflow; the exact sum does not
    # An exact zero is +0.0, but a negative mean that rounds to zero is -0.0 ([0, -5e-324]).
    want_mean = rounded(exact / len(values))
    assert same(got["mean"], want_mean + 0.0 if exact == 0 else want_mean)


def check_extremes(values: Values, got: dict[str, Any]) -> None:
    nans = [i for i, v in enumerate(values) if isinstance(v, float) and math.isnan(v)]
    if nans:
        assert same(got["min"], math.nan) and same(got["max"], math.nan)
        assert got["argmin"] == got["argmax"] == nans[0]
        return
    low = min(range(len(values)), key=values.__getitem__)  # min() keeps the first
    high = max(range(len(values)), key=values.__getitem__)
    assert got["argmin"] == low and got["argmax"] == high
    # Once a float is in the data the extremes are floats, whichever chunk held them.
    as_data = float if any(isinstance(v, float) for v in values) else (lambda v: v)
    assert same(got["min"], as_data(values[low])) and same(got["max"], as_data(values[high]))


def check_spread(values: Values, got: dict[str, Any]) -> None:
    if any(isinstance(v, float) and not math.isfinite(v) for v in values):
        assert same(got["var"], math.nan) and same(got["std"], math.nan)
        return
    try:
        want = float(statistics.pvariance(values))  # exact, rounded once
    except OverflowError:
        want = math.inf  # the exact variance rounds past the float64 maximum
    var = got["var"]
    if all(isinstance(v, int) for v in values):
        assert same(var, want)  # int moments are exact, rounded once
    assert same(got["std"], math.sqrt(var))
    if math.isinf(want) or math.isinf(var):
        # The float M2 is good to ~1e-15, not correctly rounded: only within 1e-12 of the
        # float64 maximum may the two disagree on whether the variance rounds past it.
        assert same(var, want) or min(var, want) >= FLOAT_MAX * (1 - 1e-12), (var, want)
        return
    assert close(var, want, 1e-12, TINY), (var, want)
    assert close(got["std"], math.sqrt(want), 1e-12, 1e-161)


def check_histogram(values: Values, got: dict[str, Any], bins: int) -> None:
    kept = [v for v in values if not (isinstance(v, float) and math.isnan(v))]
    if any(isinstance(v, float) and math.isinf(v) for v in kept):
        assert got["histogram"] is None
        return
    if got["histogram"] is None:  # numpy cannot make finite bins over this range
        with pytest.raises((ValueError, FloatingPointError)), np.errstate(over="raise"):
            np.histogram(np.array(kept, dtype=np.float64), bins=bins)
        return
    lo, hi = (float(min(kept)), float(max(kept))) if kept else (0.0, 1.0)
    ints = all(isinstance(v, int) for v in kept) and kept
    data = np.array(kept, dtype=np.int64 if ints else np.float64)
    counts, edges = np.histogram(data, bins=bins, range=(lo, hi))
    assert got["histogram"] == counts.tolist()
    assert got["histogram_edges"] == edges.tolist()


def check(values: Values, results: Results, bins: int) -> None:
    got = results.values
    nans = sum(isinstance(v, float) and math.isnan(v) for v in values)
    assert got["count"] == len(values) and got["nan_count"] == nans
    if not values:
        check_empty(results, bins)
        return
    check_sum_mean(values, got)
    check_extremes(values, got)
    check_spread(values, got)
    check_histogram(values, got, bins)


def check_empty(results: Results, bins: int) -> None:
    got = results.values
    assert same(got["sum"], 0) and got["prod"] == 1.0
    assert got["histogram"] == [0] * bins
    for op in ("mean", "min", "max", "var", "std", "argmin", "argmax"):
        assert got[op] is None
        assert results.reasons[op] == f"empty input: {op} is undefined"


def run_all_splits(values: Values, data: st.DataObject) -> None:
    """Check every op for 1..5 ranks; sum and mean must be bit-identical across splits."""
    bins = data.draw(st.integers(1, 8), label="bins")
    first: dict[str, Any] | None = None
    for ranks in range(1, 6):
        parts = data.draw(split(values, ranks), label=f"split into {ranks}")
        results = simulate(parts, OPS, bins=bins)
        check(values, results, bins)
        if first is None:
            first = results.values
        for op in ("sum", "mean", "count", "min", "max", "argmin", "argmax", "histogram"):
            assert same(results.values[op], first[op]), op


# ---------------------------------------------------------------- properties


@PROPERTY
@given(st.lists(int64s, max_size=40), st.data())
def test_int64_data_is_exact_past_2_to_63(values: Values, data: st.DataObject) -> None:
    run_all_splits(values, data)


@PROPERTY
@given(cancelling_floats(), st.data())
def test_wide_floats_with_cancellation(values: Values, data: st.DataObject) -> None:
    run_all_splits(values, data)


@PROPERTY
@given(st.lists(st.one_of(any_floats, subnormals), max_size=40), st.data())
def test_arbitrary_floats(values: Values, data: st.DataObject) -> None:
    run_all_splits(values, data)


@PROPERTY
@given(with_specials(st.lists(st.one_of(moderate_floats, int64s), max_size=20)), st.data())
def test_nan_and_infinities(values: Values, data: st.DataObject) -> None:
    run_all_splits(values, data)


@PROPERTY
@given(mixed, st.data())
def test_mixed_int_and_float_data(values: Values, data: st.DataObject) -> None:
    run_all_splits(values, data)


@PROPERTY
@given(st.one_of(st.lists(extreme_floats, min_size=1, max_size=30), scaled_floats()), st.data())
def test_variance_of_floats_up_to_the_float_maximum(values: Values, data: st.DataObject) -> None:
    """var is within 1e-12 of statistics.pvariance, and inf where that raises OverflowError,
    even where the sum of squared deviations (or x - mean) overflows float64."""
    for ranks in range(1, 6):
        parts = data.draw(split(values, ranks), label=f"split into {ranks}")
        check_spread(values, simulate(parts, ["var", "std"]).values)


@PROPERTY
@given(
    st.floats(-1e12, 1e12),
    st.lists(st.floats(-1e-3, 1e-3), min_size=1, max_size=40),
    st.data(),
)
def test_ill_conditioned_variance(offset: float, spread: list[float], data: st.DataObject) -> None:
    run_all_splits([offset + s for s in spread], data)


@PROPERTY
@given(st.lists(st.one_of(st.floats(1e-3, 1e3), st.floats(-1e3, -1e-3), st.just(0.0))), st.data())
def test_prod_of_moderate_values(values: Values, data: st.DataObject) -> None:
    for ranks in range(1, 6):
        got = simulate(data.draw(split(values, ranks)), ["prod"]).values["prod"]
        assert close(got, math.prod(values), 1e-13, 0.0)


# ---------------------------------------------------------------- examples and edge cases


def test_empty_input_everywhere() -> None:
    with pytest.raises(ValueError, match="at least one rank"):
        simulate([], OPS)
    cases: list[list[list[np.ndarray]]] = [[[]], [[], [np.empty(0)], [np.empty(0, np.int64)]]]
    for parts in cases:
        results = simulate(parts, OPS, bins=4)
        check([], results, 4)
        assert results.values["count"] == 0 and results.values["nan_count"] == 0


def test_int_sum_passes_2_to_63_without_wrapping() -> None:
    chunk = np.full(1000, INT64_MAX, dtype=np.int64)
    results = simulate([[chunk], [chunk, -chunk[:10]]], ["sum", "mean", "var"])
    assert results.values["sum"] == 1990 * INT64_MAX
    assert results.values["mean"] == float(Fraction(1990 * INT64_MAX, 2010))
    assert results.values["var"] == float(
        statistics.pvariance([INT64_MAX] * 2000 + [-INT64_MAX] * 10)
    )


def test_bin_totals_stay_exact_with_many_equal_mantissas() -> None:
    # 2**20 copies of the largest mantissa in one exponent bin, plus a tiny remainder.
    x = np.full(1 << 20, (2 - 2.0**-52) * 2.0**900)
    x[0] = 2.0**-1000
    results = simulate([[x]], ["sum", "mean"])
    exact = Fraction(2.0**-1000) + ((1 << 20) - 1) * Fraction((2 - 2.0**-52) * 2.0**900)
    assert results.values["sum"] == float(exact) == math.fsum(x.tolist())


def test_top_exponents_do_not_overflow_bin_totals() -> None:
    x = np.array([FLOAT_MAX] * 6 + [-FLOAT_MAX] * 5 + [TINY])
    assert simulate([[x]], ["sum"]).values["sum"] == FLOAT_MAX
    assert simulate([[x[:6]]], ["sum", "mean"]).values == {
        "nan_count": 0,
        "sum": math.inf,  # the exact sum rounds past the maximum
        "mean": FLOAT_MAX,
    }


def test_blocks_inside_a_chunk(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kernels, "_FLOAT_BLOCK", 3)
    monkeypatch.setattr(kernels, "_INT_BLOCK", 3)
    rng = np.random.default_rng(7)
    floats = rng.standard_normal(100) * 10.0 ** rng.integers(-200, 200, 100)
    ints = rng.integers(INT64_MIN, INT64_MAX, 100, dtype=np.int64, endpoint=True)
    values: Values = floats.tolist() + ints.tolist()
    check(values, simulate([[floats], [ints]], OPS, bins=5), 5)


@pytest.mark.parametrize("offset", [1e9, -1e9, 1e15, 3.0])
def test_variance_with_large_offset_over_many_chunks(offset: float) -> None:
    rng = np.random.default_rng(1)
    x = offset + rng.uniform(-1e-3, 1e-3, 5000)
    parts = [[x[:1000], x[1000:1001], x[1001:3000]], [], [x[3000:]]]
    got = simulate(parts, ["var", "std"]).values
    want = statistics.pvariance(x.tolist())
    assert close(got["var"], want, 1e-12, 0.0)
    assert close(got["std"], math.sqrt(want), 1e-12, 0.0)


@pytest.mark.parametrize(
    "big",
    [
        1.8961503816218355e154,  # found through the CLI: var 8.99e307 came out inf
        2.681561585988519e154,  # the largest finite case: var 1.7976931348623155e308
        2.6815615859885194e154,  # 2**513: var is exactly 2**1024, which overflows
    ],
)
def test_variance_when_the_sum_of_squared_deviations_overflows(big: float) -> None:
    values = [0.0, big]
    try:
        want = statistics.pvariance(values)
    except OverflowError:
        want = math.inf
    assert (want == math.inf) == (big == 2.0**513)
    zero, x = np.array([0.0]), np.array([big])
    splits = [
        [[np.array(values)]],
        [[zero, x]],
        [[zero], [x]],
        [[], [zero], [], [x], []],
        [[np.array([0], dtype=np.int64)], [x]],  # int and float moments joined in _var
    ]
    for parts in splits:
        got = simulate(parts, ["var", "std"]).values
        assert same(got["var"], want) and same(got["std"], math.sqrt(want)), parts


def test_sum_of_squared_deviations_travels_as_mantissa_and_exponent() -> None:
    state = Partial()
    add_chunk(state, np.array([0.0, 2.0**600]))  # M2 = 2 * (2**599)**2 = 2**1199
    floats = state.encode().gathered_floats
    assert floats[reductions._F_M2_FRAC] == 0.5 and floats[reductions._F_M2_EXP] == 1200.0
    assert reductions.GATHERED_FLOATS_LEN == 7
    spread = Partial()
    add_chunk(spread, np.array([-FLOAT_MAX, FLOAT_MAX]))  # x - mean overflows; the variance too
    assert same(finalize(spread, ["var"]).values["var"], math.inf)


def test_nan_propagates_and_argmin_is_first_nan() -> None:
    parts = [[np.array([3.0, -1.0])], [np.array([5, -7])], [np.array([math.nan, 0.0, math.nan])]]
    got: dict[str, Any] = simulate(parts, OPS, bins=3).values
    assert math.isnan(got["min"]) and math.isnan(got["max"]) and math.isnan(got["sum"])
    assert got["argmin"] == got["argmax"] == 4 and got["nan_count"] == 2 and got["count"] == 7
    assert got["histogram"] == [1, 2, 2]  # NaN excluded, range [-7, 5]


def test_prod_overflow_underflow_and_ints() -> None:
    assert simulate([[np.array([1e300])], [np.array([1e300])]], ["prod"]).values["prod"] == math.inf
    assert simulate([[np.array([-1e300, 1e300])]], ["prod"]).values["prod"] == -math.inf
    assert simulate([[np.array([1e-300, 1e-300])]], ["prod"]).values["prod"] == 0.0
    assert simulate([[np.array([3, -4], dtype=np.int64)]], ["prod"]).values["prod"] == -12.0
    assert same(simulate([[np.array([math.inf, 0.0])]], ["prod"]).values["prod"], math.nan)


def test_histogram_range_reasons() -> None:
    state = Partial()
    add_chunk(state, np.array([1.0, math.inf]))
    with pytest.raises(ValueError, match="finite bins"):
        histogram_range(state, 4)
    results = simulate([[np.array([1.0, math.inf])]], ["histogram"], bins=4)
    assert results.values["histogram"] is None and "finite bins" in results.reasons["histogram"]
    wide = Partial()
    add_chunk(wide, np.array([-FLOAT_MAX, FLOAT_MAX]))
    with pytest.raises(ValueError):
        histogram_range(wide, 4)


def test_histogram_counts_ignores_nan_and_closes_last_bin() -> None:
    counts = histogram_counts(np.array([0.0, 0.5, 1.0, math.nan]), 0.0, 1.0, 2)
    assert counts.dtype == np.int64 and counts.tolist() == [1, 2]


def test_merge_matches_one_partial() -> None:
    rng = np.random.default_rng(3)
    chunks = [rng.standard_normal(50) * 1e5, rng.integers(-9, 9, 20), np.array([math.nan, 2.0])]
    whole, left, right = Partial(), Partial(), Partial()
    for chunk in chunks:
        add_chunk(whole, chunk)
    add_chunk(left, chunks[0])
    add_chunk(right, chunks[1])
    add_chunk(right, chunks[2])
    left.merge(right)
    assert left.float_sum == whole.float_sum and left.int_squares == whole.int_squares
    assert left.first_nan == whole.first_nan == 70
    assert left.low == whole.low and left.high == whole.high


@given(st.lists(st.integers(-(2**2170), 2**2170), min_size=1, max_size=6))
@settings(max_examples=100, deadline=None)
def test_limbs_sum_exactly_across_ranks(totals: list[int]) -> None:
    limbs = [reductions._to_limbs(t, reductions._LIMBS_FLOAT_SUM) for t in totals]
    assert reductions._from_limbs([sum(column) for column in zip(*limbs, strict=True)]) == sum(
        totals
    )


def int64s(values: list[Any]) -> bool:
    return all(type(v) is int and INT64_MIN <= v <= INT64_MAX for v in values)


def test_encodings_are_fixed_length_vectors_of_int64_and_float64() -> None:
    # The worker hands them to MLX as int64 and float64 arrays: a Python float among the
    # ints, or an int beyond int64, would be converted or refused there.
    for chunk in (np.empty(0), np.arange(5), np.array([1e300, math.nan, -math.inf])):
        state = Partial()
        add_chunk(state, chunk)
        encoded = state.encode()
        assert len(encoded.summed) == SUMMED_LEN and int64s(encoded.summed)
        assert len(encoded.gathered_ints) == reductions.GATHERED_INTS_LEN
        assert int64s(encoded.gathered_ints)
        assert len(encoded.gathered_floats) == reductions.GATHERED_FLOATS_LEN
        assert all(type(v) is float for v in encoded.gathered_floats)


def test_bad_input_is_refused() -> None:
    state = Partial()
    with pytest.raises(ValueError, match="1-D"):
        add_chunk(state, np.zeros((2, 2)))
    with pytest.raises(TypeError, match="uint64"):
        add_chunk(state, np.zeros(2, dtype=np.uint64))
    with pytest.raises(ValueError, match="unknown ops"):
        finalize(state, ["median"])
    with pytest.raises(ValueError, match="layout"):
        rows = (
            np.zeros((1, reductions.GATHERED_INTS_LEN), np.int64),
            np.zeros((1, reductions.GATHERED_FLOATS_LEN)),
        )
        combine(np.zeros(3, np.int64), *rows)
    add_chunk(state, np.array([1.5], dtype=np.float32))  # narrower types widen exactly
    assert finalize(state, ["sum"]).values["sum"] == 1.5


@pytest.mark.skipif(native.ext is None, reason="the C extension was not built")
@settings(max_examples=300, deadline=None)
@given(values=st.lists(st.floats(allow_nan=False, allow_infinity=False), max_size=200))
def test_the_c_kernel_and_the_numpy_binning_agree(values: list[float]) -> None:
    x = np.array(values, dtype=np.float64)
    in_c = kernels._float_scaled_sum(x)
    saved, native.ext = native.ext, None
    try:
        assert kernels._float_scaled_sum(x) == in_c
    finally:
        native.ext = saved
    assert Fraction(in_c, 2**1074) == sum((Fraction(v) for v in values), Fraction(0))


@settings(max_examples=200, deadline=None)
@given(values=st.lists(st.floats() | st.integers(-(2**63), 2**63 - 1).map(float), max_size=100))
def test_a_state_for_fewer_ops_gives_the_same_answers_for_them(values: list[float]) -> None:
    x = np.array(values, dtype=np.float64)
    ops = ["count", "sum", "mean"]
    full, lean = Partial(), Partial(needs=frozenset(ops))
    add_chunk(full, x)
    add_chunk(lean, x)
    want = reductions.finalize(full, ops).values
    got = reductions.finalize(lean, ops).values
    assert json_exact(got) == json_exact(want)


def json_exact(values: dict[str, Any]) -> list[str]:
    return [repr(values[k]) for k in sorted(values)]


@settings(max_examples=200, deadline=None)
@given(values=st.lists(st.integers(-(2**63), 2**63 - 1), max_size=100))
def test_a_lean_state_of_integers_gives_the_same_answers(values: list[int]) -> None:
    x = np.array(values, dtype=np.int64)
    ops = ["count", "sum", "mean", "min", "max"]
    full, lean = Partial(), Partial(needs=frozenset(ops))
    add_chunk(full, x)
    add_chunk(lean, x)
    got = json_exact(reductions.finalize(lean, ops).values)
    assert got == json_exact(reductions.finalize(full, ops).values)


# ---------------------------------------------------------------- the C binning kernel

needs_native = pytest.mark.skipif(native.ext is None, reason="built without the C extension")


def folded(high: Any, low: Any) -> Fraction:
    """The exact number a pair of bins holds (bins.h)."""
    return sum(
        (Fraction(h * 2**32 + lo) * Fraction(2) ** (max(e, 1) - 1075))
        for e, (h, lo) in enumerate(zip(high, low, strict=True))
        if h or lo
    ) or Fraction(0)


def binned_by(values: Any, simd: bool) -> tuple[int, int, int, Fraction]:
    was = native.ext.use_simd(simd)
    try:
        nan, posinf, neginf, high, low = native.binned(values)
    finally:
        native.ext.use_simd(was)
    return nan, posinf, neginf, folded(high, low)


@st.composite
def kernel_arrays(draw: st.DrawFn) -> list[float]:
    """Runs of values of one magnitude (what data look like), and what breaks a block's
    window: values far below the largest, subnormals, zeros, the largest exponents,
    NaN and infinities; long enough for several of the kernel's 256-value blocks."""
    values: list[float] = []
    for _ in range(draw(st.integers(0, 6))):
        scale = draw(st.integers(-1074, 1023))
        unit = st.floats(-1.0, 1.0, exclude_min=True, exclude_max=True)  # ldexp cannot overflow
        values += [math.ldexp(u, scale) for u in draw(st.lists(unit, max_size=400))]
        odd = st.one_of(any_floats, subnormals, specials, st.sampled_from([0.0, -0.0]))
        for _ in range(draw(st.integers(0, 5))):
            values.insert(draw(st.integers(0, len(values))), draw(odd))
    return values


@needs_native
@PROPERTY
@given(kernel_arrays(), st.integers(0, 7))
def test_the_simd_and_portable_binning_kernels_agree_exactly(
    values: list[float], offset: int
) -> None:
    raw = bytes(offset) + np.array(values, dtype=np.float64).tobytes()
    view = memoryview(raw)[offset:]  # not 8-byte aligned unless offset is 0
    simd, portable = binned_by(view, True), binned_by(view, False)
    assert simd == portable
    finite = [Fraction(v) for v in values if math.isfinite(v)]
    assert simd[3] == sum(finite, Fraction(0))
    assert simd[:3] == (
        sum(math.isnan(v) for v in values),
        values.count(math.inf),
        values.count(-math.inf),
    )


@needs_native
def test_the_binning_kernels_on_a_large_array_of_every_kind() -> None:
    rng = np.random.default_rng(3)
    n = 200_000
    x = rng.standard_normal(n) * 2.0 ** rng.integers(-1074, 1000, n)
    x[rng.integers(0, n, 500)] = 0.0
    x[rng.integers(0, n, 50)] = 5e-324
    x[rng.integers(0, n, 5)] = np.nan
    x[: n // 2] = np.sort(rng.standard_normal(n // 2))  # a block of one window, then wide
    simd, portable = binned_by(x, True), binned_by(x, False)
    assert simd == portable
    assert simd[3] == sum(map(Fraction, x[np.isfinite(x)].tolist()), Fraction(0))


@needs_native
@pytest.mark.parametrize(
    "block",
    [
        # 256 equal values with every mantissa bit set: the block's int64 lanes wrap 2**7 times
        [math.ldexp(2.0 - 2.0**-52, 40)] * 256,
        [-math.ldexp(2.0 - 2.0**-52, 900)] * 256,
        # signs alternating in runs, the window's whole width, the top of the range
        [math.ldexp(1.9, 20 - (k % 11)) * (-1) ** (k // 3) for k in range(256)],
        [math.ldexp(1.5, 1000 - (k % 11)) for k in range(256)],
        [math.ldexp(1.75, 1023)] * 256,
        # a value at exactly the window's lowest power of two (the edge a block is checked at)
        [math.ldexp(1.0, 10)] + [math.ldexp(1.5, 20)] * 255,
        [0.0, -0.0] * 100 + [5e-324] + [1.0] * 55,
    ],
)
def test_the_binning_kernels_on_blocks_whose_sums_pass_int64(block: list[float]) -> None:
    x = np.array(block * 3, dtype=np.float64)
    simd, portable = binned_by(x, True), binned_by(x, False)
    assert simd == portable
    assert simd[3] == sum(map(Fraction, x.tolist()), Fraction(0))
