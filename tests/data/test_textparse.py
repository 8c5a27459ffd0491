"""The C number parser: every value bit-identical to Python's float() or int()."""

from __future__ import annotations

import math
import struct
import subprocess
import sys
from decimal import Decimal, getcontext
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from mlxrun import native
from mlxrun.reduce.algebra import fold_bins

if native.ext is None:
    pytest.skip("the C extension was not built", allow_module_level=True)
_textparse = native.ext


Parsed = tuple[list[float], list[int], bool, int, int]
# The vector reader (AVX2, where the CPU has it) reads 33 bytes before a token and 33 from
# it; with this much around the text, every token of it is its to read.
PAD = b" " * 40


def parse_with(src: bytes, simd: bool) -> Parsed:
    was = _textparse.use_simd(simd)
    try:
        floats = np.empty(len(src) // 2 + 1)
        ints = np.empty(len(src) // 2 + 1, dtype=np.int64)
        count, all_int, kind, where = _textparse.parse(src, floats, ints)
    finally:
        _textparse.use_simd(was)
    return floats[:count].tolist(), ints[:count].tolist(), bool(all_int), kind, where


def as_bits(result: Parsed) -> tuple[object, ...]:
    floats, ints, all_int, kind, where = result
    return [bits(f) for f in floats], ints if all_int else None, all_int, kind, where


def parse(src: bytes) -> Parsed:
    """src parsed as it is (too short for the vector reader), and padded, by the vector
    reader and by the portable one: all three must give the same bits and the same error
    (offsets moved by the padding)."""
    result = parse_with(src, True)
    for simd in (True, False):
        floats, ints, all_int, kind, where = parse_with(PAD + src + PAD, simd)
        padded = (floats, ints, all_int, kind, where - len(PAD) if kind else 0)
        assert as_bits(padded) == as_bits(result), (src, simd)
    return result


def bits(x: float) -> bytes:
    return struct.pack("<d", x)


def same(a: float, b: float) -> bool:
    return bits(a) == bits(b) or (math.isnan(a) and math.isnan(b))


decimal_text = st.builds(
    lambda sign, digits, point, exp: (
        sign
        + (digits[:point] or "0")
        + ("." + digits[point:] if point < len(digits) else "")
        + (f"e{exp}" if exp is not None else "")
    ),
    st.sampled_from(["", "-", "+"]),
    st.text("0123456789", min_size=1, max_size=30),
    st.integers(0, 30),
    st.none() | st.integers(-400, 400),
)


def halfway(x: float) -> str:
    """A decimal string a hair off the exact midpoint between x and the next float up."""
    getcontext().prec = 800
    up = math.nextafter(x, math.inf)
    mid = (Decimal(x) + Decimal(up)) / 2
    return f"{mid:.40e}"


@settings(max_examples=3000, deadline=None)
@given(text=decimal_text)
@example(text="9007199254740993")  # 2**53 + 1: not exact in float64
@example(text="9007199254740993.0")
@example(text="0.1")
@example(text="2.2250738585072011e-308")  # the largest subnormal's neighbourhood
@example(text="4.9406564584124654e-324")
@example(text="1.7976931348623157e308")
@example(text="1.7976931348623159e308")  # rounds to inf
def test_decimals_round_like_python(text: str) -> None:
    floats, ints, all_int, kind, _ = parse(text.encode())
    is_int = "." not in text and "e" not in text
    if is_int and not -(2**63) <= int(text) < 2**63:
        assert kind == 2
        return
    assert kind == 0 and len(floats) == 1 and all_int == is_int
    assert same(floats[0], float(text)), (text, floats[0], float(text))
    if is_int:
        assert ints[0] == int(text)


@settings(max_examples=2000, deadline=None)
@given(x=st.floats(allow_nan=False, allow_infinity=False))
def test_reprs_and_near_halfway_points(x: float) -> None:
    for text in (
        repr(x),
        f"{x:.17e}",
        f"{x:.6f}",
        halfway(abs(x)) if math.isfinite(math.nextafter(abs(x), math.inf)) else "1",
    ):
        (got,), _, _, kind, _ = parse(text.encode())
        assert kind == 0 and same(got, float(text)), (text, got, float(text))


def test_separators_comments_and_specials() -> None:
    floats, ints, all_int, kind, _ = parse(
        b"1 2,3\t4\r\n# 5 6\n7 # 8\n-inf, NaN Infinity +0.5 -0\n"
    )
    assert kind == 0 and not all_int
    assert floats[:4] == [1, 2, 3, 4] and floats[4] == 7 and floats[5] == -math.inf
    assert (
        math.isnan(floats[6]) and floats[7:9] == [math.inf, 0.5] and bits(floats[9]) == bits(-0.0)
    )


def test_integers_are_exact_to_the_int64_limits() -> None:
    floats, ints, all_int, kind, _ = parse(b"9223372036854775807 -9223372036854775808 000123 -0\n")
    assert (kind, all_int, ints) == (0, True, [2**63 - 1, -(2**63), 123, 0])
    assert [bits(f) for f in floats] == [bits(x) for x in (2.0**63, -(2.0**63), 123.0, -0.0)]
    *_, kind, where = parse(b"1 9223372036854775808\n")
    assert (kind, where) == (2, 2)


@pytest.mark.parametrize(
    ("bad", "offset"),
    [
        (b"x", 0),
        (b"1_000", 0),
        (b"0x10", 0),
        (b"1e", 0),
        (b"--1", 0),
        (b".", 0),
        (b"1.2.3", 0),
        (b"12,5x", 3),
        (b"infinit", 0),
        (b"1e5x", 0),
    ],
)
def test_what_is_not_a_number(bad: bytes, offset: int) -> None:
    *_, kind, where = parse(b"1\n" + bad + b"\n")
    assert (kind, where) == (1, 2 + offset)


@settings(max_examples=500, deadline=None)
@given(
    tokens=st.lists(decimal_text, min_size=1, max_size=40),
    seps=st.lists(st.sampled_from([" ", ",", "\t", "\n", "\r\n", " # note\n"]), min_size=1),
)
def test_numbers_in_a_row_parse_as_they_do_alone(tokens: list[str], seps: list[str]) -> None:
    # Digits are read eight at a time where eight bytes remain: a token's end must not
    # depend on what follows it, nor on where the text ends.
    tokens = [t for t in tokens if "." in t or "e" in t or -(2**63) <= int(t) < 2**63]
    text = "".join(t + seps[i % len(seps)] for i, t in enumerate(tokens))
    floats, _, _, kind, _ = parse(text.encode())
    assert kind == 0 and len(floats) == len(tokens)
    assert all(same(f, float(t)) for f, t in zip(floats, tokens, strict=True)), text
    high, low = np.zeros(2048, dtype=np.int64), np.zeros(2048, dtype=np.int64)
    count, *_ = _textparse.sum_text(text.encode(), high, low)
    assert count == len(tokens)


# Tokens where a vector reader could go wrong: every length around its limits (19 digits,
# 31 bytes), points in every place, leading zeros, signs, exponents after the digits it
# read, the words, and what is not a number.
tricky_token = st.one_of(
    decimal_text,
    st.builds(
        lambda digits, point, sign: sign + (digits[:point] + "." + digits[point:]),
        st.text("0123456789", min_size=1, max_size=34),
        st.integers(0, 34),
        st.sampled_from(["", "-", "+"]),
    ),
    st.floats(allow_nan=False).map(repr),
    st.integers(-(2**63), 2**63 - 1).map(str),
    st.sampled_from(
        [
            "5.",
            ".5",
            "-.5",
            "+0",
            "-0",
            "00000000000000000001",
            "0" * 40,
            "9" * 19,
            "9" * 20,
            "1" * 31,
            "1" * 32,
            "1." + "2" * 30,
            "1e5",
            "1.5E-3",
            "1.5e+400",
            "nan",
            "-inf",
            "Infinity",
            "9223372036854775808",
            "-9223372036854775809",
        ]
    ),
)
bad_token = st.sampled_from(["1.2.3", "12abc", "--1", ".", "1e", "1e5x", "0x10", "1_0", "5.e"])


def sums(src: bytes, simd: bool) -> tuple[object, ...]:
    was = _textparse.use_simd(simd)
    try:
        high, low = native.empty_bins(), native.empty_bins()
        result = _textparse.sum_text(src, high, low)
    finally:
        _textparse.use_simd(was)
    return (*result, fold_bins(high, low))


def large_text(seed: int, floats_from: float) -> bytes:
    """About 2 MB of lines: integers, then floats from `floats_from` of the way on, with
    comments and blank lines: long enough for sum_text and parse to time a stretch read by
    each reader and go on with the faster."""
    rng = np.random.default_rng(seed)
    lines = []
    for k in range(150_000):
        if k % 997 == 0:
            lines.append(b"# a comment 1 2 3, 4.5")
        elif k % 1009 == 0:
            lines.append(b"")
        elif k < floats_from * 150_000:
            lines.append(b"%d" % int(rng.integers(-(10**18), 10**18)))
        else:
            lines.append(repr(float(rng.standard_normal()) * 1000).encode())
    return b"\n".join(lines) + b"\n"


@pytest.mark.parametrize("floats_from", [0.0, 0.03, 0.5, 1.0])
def test_a_large_buffer_read_partly_by_each_reader_gives_the_portable_answers(
    floats_from: float,
) -> None:
    src = large_text(int(floats_from * 100), floats_from)
    assert len(src) > 8 * 128 * 1024  # the readers are timed on buffers of 1 MB and more
    assert sums(src, True) == sums(src, False)
    assert as_bits(parse_with(src, True)) == as_bits(parse_with(src, False))


@pytest.mark.parametrize("at", [1000, 200_000, 1_500_000])
def test_a_bad_token_in_a_large_buffer_is_found_where_it_is(at: int) -> None:
    # before, in and after the stretches the readers are timed on
    src = bytearray(large_text(7, 0.5))
    at = src.index(b"\n", at) + 1
    src[at : at + 5] = b"1.2.3"
    assert sums(bytes(src), True)[2:4] == (1, at)
    assert parse_with(bytes(src), True)[3:] == (1, at)


def expected_error(token: str) -> int:
    """0 for a number, 1 for what is not one, 2 for an integer beyond int64."""
    try:
        float(token)
    except ValueError:
        return 1
    if "_" in token or token.startswith(("0x", "0X")):
        return 1
    if token.lstrip("+-").isdigit() and not -(2**63) <= int(token) < 2**63:
        return 2
    return 0


@settings(max_examples=1500, deadline=None)
@given(
    tokens=st.lists(tricky_token, min_size=1, max_size=30),
    seps=st.lists(st.sampled_from([" ", ",", "\t", "\n", "\r\n", "  ", " # 1 2\n"]), min_size=1),
    lead=st.integers(0, 40),
    tail=st.integers(0, 160),
    bad=st.none() | st.tuples(bad_token, st.integers(0, 30)),
)
def test_the_vector_reader_reads_as_the_portable_one(
    tokens: list[str], seps: list[str], lead: int, tail: int, bad: tuple[str, int] | None
) -> None:
    # Both readers on the same text, from every offset into the vector reader's stretch:
    # the same numbers to the bit, the same sums, the same first error and offset; with
    # spaces after the tokens or none, so that the last ones are read by either reader.
    if bad is not None:
        tokens.insert(min(bad[1], len(tokens)), bad[0])
    text, starts = " " * lead, []
    for k, token in enumerate(tokens):
        starts.append(len(text))
        text += token + seps[k % len(seps)]
    src = (text + " " * tail).encode()
    fast, portable = parse_with(src, True), parse_with(src, False)
    assert as_bits(fast) == as_bits(portable), src
    assert sums(src, True) == sums(src, False), src
    errors = [(expected_error(t), start) for t, start in zip(tokens, starts, strict=True)]
    first = next(((kind, start) for kind, start in errors if kind), (0, 0))
    floats, ints, all_int, kind, where = fast
    assert (kind, where if kind else 0) == first, src
    good = tokens[: len(floats)]
    assert all(same(f, float(t)) for f, t in zip(floats, good, strict=True)), src
    if kind == 0 and all_int:
        assert ints == [int(t) for t in tokens]


@settings(max_examples=400, deadline=None)
@given(
    ints=st.lists(
        st.integers(-(2**63), 2**63 - 1)
        | st.sampled_from([2**63 - 1, 2**63 - 512, 2**63 - 513, -(2**63), 2**53 + 1, -(2**53) - 3]),
        min_size=1,
        max_size=40,
    ),
    floats=st.lists(st.floats(allow_nan=False, allow_infinity=False), max_size=4),
    simd=st.booleans(),
)
def test_sums_are_exact_past_2_to_63(ints: list[int], floats: list[float], simd: bool) -> None:
    # Integers alone: their exact total in 128 bits. With a float among them: every value
    # as the float it rounds to (an integer past 2**53 by its float's rounding), exactly.
    tokens = [str(i) for i in ints] + [repr(f) for f in floats]
    count, all_int, kind, _, _, _, _, high, low, rounding, bins = sums(
        (PAD + " ".join(tokens).encode() + b"\n" + PAD), simd
    )
    assert (count, all_int, kind) == (len(tokens), not floats, 0)
    integers = (high << 64) + low
    if not floats:
        assert (integers, rounding) == (sum(ints), sum(int(float(i)) - i for i in ints))
    total = Fraction(bins, 2**1074) + integers + rounding
    assert total == sum(Fraction(float(t)) for t in tokens)


GUARDED = r"""
import ctypes, mmap, sys
import numpy as np
from mlxrun import native

# Text right after an inaccessible page, and right before another: a read outside it is
# a segmentation fault, not a quiet read of a neighbour's bytes.
PAGE = mmap.PAGESIZE
area = mmap.mmap(-1, 4 * PAGE)
base = ctypes.addressof(ctypes.c_char.from_buffer(area))
libc = ctypes.CDLL(None, use_errno=True)
libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
for page in (0, 3):
    assert libc.mprotect(base + page * PAGE, PAGE, 0) == 0, ctypes.get_errno()
texts = [b"1", b"-7", b"1.5", b"12345678901234567", b"-1039.9841062404955\n", b"5 6\n7",
         b"0.1 " * 40, b"1e5", b"nan", b"9" * 25, b"1." + b"2" * 40, b"x", b"12abc"]
for text in texts:
    for at in (PAGE, 3 * PAGE - len(text)):  # from a page's start; to a page's end
        area[at : at + len(text)] = text
        view = memoryview(area)[at : at + len(text)]
        for simd in (True, False):
            native.ext.use_simd(simd)
            floats, ints = np.empty(len(text)), np.empty(len(text), dtype=np.int64)
            native.ext.parse(view, floats, ints)
            native.ext.sum_text(view, np.zeros(2048, np.int64), np.zeros(2048, np.int64))
        view.release()
        area[at : at + len(text)] = b" " * len(text)
print("ok")
"""


def test_no_read_outside_the_text() -> None:
    # The vector reader loads 32 bytes at a time, before and after a token: only where
    # the text has them.
    run = subprocess.run(
        [sys.executable, "-c", GUARDED], capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0 and run.stdout == "ok\n", run.stderr[-2000:]
