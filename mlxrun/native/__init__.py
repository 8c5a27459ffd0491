"""mlxrun's optional C extension, imported once, here: the text parser and the exact-sum
kernel (textparse.c, exactsum.c). Without a C compiler at install time, or with
MLXRUN_NO_NATIVE=1, `ext` is None and the numpy paths serve, with the same answers.

The kernels add floats exactly into int64 bins by binary exponent (bins.h); `empty_bins`
makes a pair of them and `binned` fills one pair from a buffer of float64 values.
"""

from __future__ import annotations

import os
from array import array
from typing import Any, TypeAlias

Bins: TypeAlias = "array[int]"  # int64 bins by biased exponent (bins.h)
BINS = 2048  # bins.h: no bin overflows within 2**31 values
MAX_BINNED = 1 << 30  # values one call may bin (bins.h's bound, with room to spare)

ext: Any = None
if os.environ.get("MLXRUN_NO_NATIVE") != "1":
    try:
        from mlxrun.native import _native as ext  # type: ignore[attr-defined,no-redef]
    except ImportError:  # built without a C compiler
        ext = None


def empty_bins() -> Bins:
    return array("q", bytes(8 * BINS))


def binned(values: Any) -> tuple[int, int, int, Bins, Bins]:
    """(nan, posinf, neginf, high, low) of a buffer of at most MAX_BINNED float64 values."""
    high, low = empty_bins(), empty_bins()
    nan, posinf, neginf = ext.binned(values, high, low)
    return nan, posinf, neginf, high, low
