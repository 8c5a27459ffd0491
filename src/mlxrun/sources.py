"""Data sources, and the shard of each one that a rank reads.

A rank never reads more than its shard (plus a line's worth at its edges):
- text (.txt/.csv/.tsv): the byte range [size*r/N, size*(r+1)/N) moved to
  line starts, so every line belongs to exactly one rank, whatever N (ranks
  beyond the number of lines get empty shards); mapped a chunk at a time;
- .npy, uncompressed .npz members and .safetensors tensors: an element range,
  mapped a chunk at a time;
- generated data: only the rank's own index range, reproducible for any N.
Memory per rank stays flat as the file grows: chunks are at most CHUNK_BYTES.

This module needs no numpy: jobs that only count, sum and average text sum it as they read
it (`text_sums`) and never load numpy. Reading numbers into arrays is in `values` (text,
csv, generated data) and `arrays` (binary array files), imported where a shard is opened.
"""

from __future__ import annotations

import mmap
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Generic, NamedTuple, TypeVar

from mlxrun.errors import DataError
from mlxrun.reductions import Bins, empty_bins
from mlxrun.spec import Data

try:
    from mlxrun import _textparse  # type: ignore[attr-defined]
except ImportError:  # built without a C compiler: numpy's slower conversion serves
    _textparse = None

if TYPE_CHECKING:
    import numpy as np

CHUNK_BYTES = 8 * 1024 * 1024
COMMENT = re.compile(rb"#[^\n]*")


T = TypeVar("T")


class Shard(Generic[T]):
    """What one rank reads: its chunks (of numbers, or of their sums), and how many bytes
    they come from."""

    def __init__(self, parts: Iterator[tuple[T, int]], bytes_total: int) -> None:
        self._parts = parts
        self.bytes_total = bytes_total
        self.bytes_done = 0  # for progress reports

    @property
    def chunks(self) -> Iterator[T]:
        for values, nbytes in self._parts:
            self.bytes_done += nbytes
            yield values


class Sums(NamedTuple):
    """One chunk summed as it was read, nothing stored: text by _textparse.sum_text,
    float64 arrays by _exactsum.binned."""

    n: int  # numbers in the chunk
    all_int: bool
    nan: int
    posinf: int
    neginf: int
    int_sum: int  # exact, of the integer tokens
    rounding: int  # what the integer tokens change by when they are read as floats
    high: Bins  # the float tokens' bins, for their exact sum
    low: Bins


def span(total: int, rank: int, np_: int) -> tuple[int, int]:
    """The rank's part [lo, hi) of `total` items or bytes: near-equal, in order."""
    return total * rank // np_, total * (rank + 1) // np_


# -- text ------------------------------------------------------------------


def line_start_at_or_after(f: BinaryIO, offset: int) -> int:
    """The offset of the first line that starts at or after `offset`."""
    if offset == 0:
        return 0
    f.seek(offset - 1)
    while True:
        block = f.read(65536)
        if not block:
            return f.tell()
        nl = block.find(b"\n")
        if nl >= 0:
            return f.tell() - len(block) + nl + 1


def text_range(path: Path, rank: int, np_: int) -> tuple[int, int]:
    size = path.stat().st_size
    lo, hi = span(size, rank, np_)
    with path.open("rb") as f:
        return line_start_at_or_after(f, lo), line_start_at_or_after(f, hi)


def read_lines(path: Path, start: int, end: int) -> Iterator[tuple[memoryview, int]]:
    """Chunks of whole lines from [start, end), with each chunk's offset.

    A chunk is a read-only view of the file, mapped just for it: parsers read it where it
    lies in the page cache (reading it into a buffer first made parsing 15% slower here:
    the copy's sys time, and the parser then reads the copy back from memory). A chunk is
    unmapped once its last view is gone: use it (or copy it) before asking for the next."""
    with path.open("rb", buffering=0) as f:
        if os.fstat(f.fileno()).st_size < end:
            # Reading a mapped page past the end of a file kills the process (SIGBUS).
            raise DataError(f"{path}: shorter than when the job started (changed while read?)")
        pos, want = start, CHUNK_BYTES
        while pos < end:
            stop = min(pos + want, end)
            skip = pos % mmap.ALLOCATIONGRANULARITY  # a mapping starts on a page
            mapped = mmap.mmap(
                f.fileno(), skip + stop - pos, offset=pos - skip, access=mmap.ACCESS_READ
            )
            cut = stop - pos if stop == end else mapped.rfind(b"\n", skip) + 1 - skip
            if cut <= 0:  # one line longer than the chunk: a bigger chunk
                want *= 2
                continue
            yield memoryview(mapped)[skip : skip + cut], pos
            pos, want = pos + cut, CHUNK_BYTES


def line_number(path: Path, offset: int) -> int:
    """1-based number of the line at byte `offset` (only needed to report an error)."""
    count, done = 1, 0
    with path.open("rb") as f:
        while done < offset:
            block = f.read(min(CHUNK_BYTES, offset - done))
            if not block:
                break
            count += block.count(b"\n")
            done += len(block)
    return count


# The grammar of a number, the C parser's and the error finder's alike: Python's float()
# without underscores and hex.
NUMBER = re.compile(
    rb"[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|inf|infinity|nan)", re.IGNORECASE
)
INTEGER = re.compile(rb"[+-]?\d+")


def bad_token(tokens: list[bytes], dtype: str) -> bytes | None:
    grammar = INTEGER if dtype == "int64" else NUMBER
    return next((token for token in tokens if not grammar.fullmatch(token)), None)


def not_a_number(path: Path, offset: int, chunk: bytes, dtype: str) -> DataError:
    """Names the file, line and word (as written) of a chunk's first bad number."""
    first = line_number(path, offset)
    for i, line in enumerate(chunk.split(b"\n")):
        for word in COMMENT.sub(b"", line).split():
            token = bad_token(word.replace(b",", b" ").split(), dtype)
            if token is None:
                continue
            shown = word.decode(errors="replace")
            if dtype == "int64" and bad_token([token], "float64") is None:
                return DataError(f'{path}:{first + i}: not an integer: "{shown}" (dtype is int64)')
            return DataError(f'{path}:{first + i}: not a number: "{shown}"')
    return DataError(f"{path}: cannot parse the lines at byte {offset}")


def int_overflow(path: Path, offset: int, chunk: bytes) -> DataError:
    """Names the file, line and token of a chunk's first integer beyond int64 (the chunk
    may hold floats and comments too)."""
    first = line_number(path, offset)
    for i, line in enumerate(chunk.split(b"\n")):
        for token in COMMENT.sub(b"", line).replace(b",", b" ").split():
            if INTEGER.fullmatch(token) and not -(2**63) <= int(token) < 2**63:
                return DataError(
                    f'{path}:{first + i}: integer out of the int64 range: "{token.decode()}" '
                    '(set dtype = "float64" to sum it as a float)'
                )
    return DataError(f"{path}: integer out of the int64 range near byte {offset}")


def can_sum_text(data: Data) -> bool:
    """Whether text_sums can serve this data (plain text, types as written, C parser)."""
    return data.format == "text" and data.dtype == "auto" and _textparse is not None


def text_sums(data: Data, rank: int, np_: int) -> Shard[Sums]:
    """The rank's text shard summed chunk by chunk without storing the numbers, for jobs
    that need only count, sum and mean. A bad token is reported as text_shard does."""
    assert _textparse is not None
    path = existing(data)
    start, end = text_range(path, rank, np_)

    def chunks() -> Iterator[tuple[Sums, int]]:
        for chunk, offset in read_lines(path, start, end):
            high, low = empty_bins(), empty_bins()
            n, all_int, error, _, nan, pinf, ninf, ihigh, ilow, rounding = _textparse.sum_text(
                chunk, high, low
            )
            if error == 2:  # as values.parse_text reports it: dtype is auto here
                raise int_overflow(path, offset, bytes(chunk))
            if error:
                raise not_a_number(path, offset, bytes(chunk), data.dtype)
            int_sum = (ihigh << 64) + ilow
            sums = Sums(n, bool(all_int), nan, pinf, ninf, int_sum, rounding, high, low)
            yield sums, len(chunk)

    return Shard(chunks(), end - start)


# -- csv / tsv ------------------------------------------------------------------


def csv_header(path: Path, delimiter: bytes) -> list[str]:
    with path.open("rb") as f:
        first = f.readline()
    return [
        c.strip().strip('"')
        for c in first.decode(errors="replace").rstrip("\r\n").split(delimiter.decode())
    ]


def column_index(path: Path, header: list[str], column: str | int | None) -> int:
    if column is None:
        if len(header) == 1:
            return 0
        raise DataError(
            f"{path}: has columns {', '.join(header)}: choose one with --column or data.column"
        )
    if isinstance(column, int) or column.isdigit():
        index = int(column)
        if not 0 <= index < len(header):
            raise DataError(
                f"{path}: no column {index} (it has {len(header)}: {', '.join(header)})"
            )
        return index
    if column not in header:
        from mlxrun.spec import did_you_mean

        hint = did_you_mean(column, tuple(header))
        raise DataError(f'{path}: no column "{column}"{hint}; columns: {", ".join(header)}')
    return header.index(column)


# -- dispatch -------------------------------------------------------------------------


def existing(data: Data) -> Path:
    assert data.path is not None
    if not data.path.is_file():
        raise DataError(f"{data.path}: no such file")
    return data.path


def sums_shard(data: Data, rank: int, np_: int) -> Shard[Sums] | None:
    """The rank's chunks already summed, for jobs that need only counts, sums and means,
    where the C kernels can serve the data; None where the values must be read first."""
    if data.generate is not None or data.format in ("csv", "tsv"):
        return None
    if data.format == "text":
        return text_sums(data, rank, np_) if can_sum_text(data) else None
    from mlxrun import arrays  # numpy reads the array's header

    return arrays.float_sums(arrays.array_view(data), rank, np_)


def open_shard(data: Data, rank: int, np_: int) -> Shard[np.ndarray]:
    """The chunks of numbers that rank `rank` of `np_` reduces."""
    from mlxrun import arrays, values  # numpy: only jobs that store the numbers load it

    if data.generate is not None:
        return values.generated_shard(data, rank, np_)
    existing(data)  # a missing file is named before any format is tried
    if data.format == "text":
        return values.text_shard(data, rank, np_)
    if data.format in ("csv", "tsv"):
        return values.delimited_shard(data, rank, np_)
    return arrays.array_shard(arrays.array_view(data), rank, np_)
