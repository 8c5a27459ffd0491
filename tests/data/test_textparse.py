"""The C number parser: every value bit-identical to Python's float() or int()."""

from __future__ import annotations

import math
import struct
from decimal import Decimal, getcontext

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from mlxrun import native

if native.ext is None:
    pytest.skip("the C extension was not built", allow_module_level=True)
_textparse = native.ext


def parse(src: bytes) -> tuple[list[float], list[int], bool, int, int]:
    floats = np.empty(len(src) // 2 + 1)
    ints = np.empty(len(src) // 2 + 1, dtype=np.int64)
    count, all_int, kind, where = _textparse.parse(src, floats, ints)
    return floats[:count].tolist(), ints[:count].tolist(), bool(all_int), kind, where


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
    _, ints, all_int, kind, _ = parse(b"9223372036854775807 -9223372036854775808 000123\n")
    assert (kind, all_int, ints) == (0, True, [2**63 - 1, -(2**63), 123])
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
