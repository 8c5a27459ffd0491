"""The common case of an array file, without numpy: a .npy of this machine's float64 in a
job that only counts, sums or averages. Its header is read here (numpy's format: magic,
version, length, a Python dict literal) and its values are binned by the C kernel where
they lie in the page cache. numpy's import is 0.1 s of the CLI's start and of every
rank's; a file this does not recognise as such goes to mlxrun.data.arrays, which reads it
with numpy and says what is wrong with it. Standard library and the C extension only."""

from __future__ import annotations

import ast
import math
import struct
import sys
from collections.abc import Iterator
from pathlib import Path

from mlxrun import native
from mlxrun.data.shards import MappedFile, Shard, Sums, span

MAGIC = b"\x93NUMPY"
MAX_HEADER = 10000  # numpy's own limit on what it will evaluate
CHUNK_ITEMS = 1 << 20  # elements mapped at once, here and by mlxrun.data.arrays
FLOAT64 = ("<f8" if sys.byteorder == "little" else ">f8", "=f8")


def plain_float64(path: Path) -> tuple[int, int] | None:
    """(offset of the values, their count) of a .npy of native float64; None otherwise."""
    try:
        with path.open("rb") as f:
            head = f.read(12)
            if len(head) < 10 or head[:6] != MAGIC or head[6] not in (1, 2, 3):
                return None
            short = head[6] == 1
            start = 10 if short else 12
            (length,) = struct.unpack("<H" if short else "<I", head[8:start])
            if length > MAX_HEADER:
                return None
            f.seek(start)
            text = f.read(length).decode("latin1" if head[6] < 3 else "utf8")
        header = ast.literal_eval(text)
    except (OSError, ValueError, SyntaxError, struct.error, MemoryError, RecursionError):
        return None
    if not isinstance(header, dict) or set(header) != {"descr", "fortran_order", "shape"}:
        return None
    shape = header["shape"]
    if header["descr"] not in FLOAT64 or not isinstance(shape, tuple):
        return None
    if not all(type(d) is int and d >= 0 for d in shape):
        return None
    return start + length, math.prod(shape)


def float64_sums(path: Path, offset: int, count: int, rank: int, np_: int) -> Shard[Sums]:
    """The rank's part of `count` float64 values at `offset` (of a .npy, or of any array
    file arrays.float_sums reads), binned a mapped chunk at a time."""
    lo, hi = span(count, rank, np_)

    def chunks() -> Iterator[tuple[Sums, int]]:
        with MappedFile(path, offset + hi * 8, "ends before its header says (truncated?)") as f:
            for i in range(lo, hi, CHUNK_ITEMS):
                n = min(hi - i, CHUNK_ITEMS)
                mapped, skip = f.map(offset + i * 8, n * 8)
                with mapped, memoryview(mapped) as whole, whole[skip : skip + n * 8] as values:
                    nan, posinf, neginf, high, low = native.binned(values)
                yield Sums(n, False, nan, posinf, neginf, 0, 0, high, low), n * 8

    return Shard(chunks(), (hi - lo) * 8)
