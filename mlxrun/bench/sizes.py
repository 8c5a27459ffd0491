"""The arithmetic of a benchmark, as nccl-tests does it: sizes, element counts and the bus
bandwidth factors. Pure logic, standard library only (ranks import it)."""

from __future__ import annotations

import re

from mlxrun.errors import UsageError

REDUCE_OPS = ("all_sum", "all_max", "all_min")
OPS = (*REDUCE_OPS, "all_gather", "sum_scatter", "send_recv")
ITEMSIZE = {"float32": 4, "float16": 2, "bfloat16": 2, "float64": 8, "int32": 4, "int64": 8}
DTYPES = tuple(ITEMSIZE)
_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}
_SIZE = re.compile(r"^\s*(\d+)\s*([KMGT]?)(?:I?B)?\s*$", re.IGNORECASE)


def parse_size(text: str, flag: str = "size") -> int:
    """`1K`, `64M`, `1G`: powers of 1024, as nccl-tests reads them; a bare number is bytes."""
    m = _SIZE.match(text)
    if m is None:
        raise UsageError(f'{flag}: not a size: "{text}" (use bytes or 1K, 64M, 1G: powers of 1024)')
    value = int(m.group(1)) * _UNITS[m.group(2).upper()]
    if value < 1:
        raise UsageError(f"{flag} must be at least 1 byte (got {text})")
    return value


def size_series(min_bytes: int, max_bytes: int, factor: int) -> tuple[int, ...]:
    """min, min*f, min*f^2, ... up to max (included when it is on the way), as nccl-tests."""
    if min_bytes > max_bytes:
        raise UsageError(f"-b {min_bytes} is larger than -e {max_bytes}")
    if factor < 2:
        raise UsageError(f"-f must be at least 2 (got {factor})")
    sizes, size = [], min_bytes
    while size <= max_bytes:
        sizes.append(size)
        size *= factor
    return tuple(sizes)


def show_size(n: int) -> str:
    """1024 -> `1 KiB`; 1536 -> `1536 B`: exact, never rounded."""
    for unit, scale in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if n >= scale and n % scale == 0:
            return f"{n // scale} {unit}"
    return f"{n} B"


def busbw_factor(op: str, np_: int) -> float:
    """nccl-tests' factor from algorithm to bus bandwidth: what each link must carry."""
    if op in REDUCE_OPS:
        return 2 * (np_ - 1) / np_
    if op in ("all_gather", "sum_scatter"):
        return (np_ - 1) / np_
    if op == "send_recv":
        return 1.0
    raise ValueError(op)


def counts(op: str, nbytes: int, itemsize: int, np_: int) -> tuple[int, int, int]:
    """(count, elements in, elements out) for `nbytes` of the collective, as nccl-tests:
    the size is the whole array (a gather's output, a scatter's input), rounded down to
    whole elements per rank; `count` is the collective's own count (a gather's per-rank
    input, a scatter's per-rank output)."""
    elements = max(1, nbytes // itemsize)
    if op == "all_gather":
        per_rank = max(1, elements // np_)
        return per_rank, per_rank, per_rank * np_
    if op == "sum_scatter":
        per_rank = max(1, elements // np_)
        return per_rank, per_rank * np_, per_rank
    return elements, elements, elements


def array_bytes(op: str, nbytes: int, itemsize: int, np_: int) -> int:
    """The bytes the row reports: the whole array, after rounding to whole elements."""
    _, n_in, n_out = counts(op, nbytes, itemsize, np_)
    return max(n_in, n_out) * itemsize


def check_modulus(np_: int) -> int:
    """Ranks fill buffers with integers in [0, m): every sum of np of them (at most
    (m-1)*np) is exact in bfloat16, whose integers are exact up to 256."""
    return min(8, 256 // np_ + 1)
