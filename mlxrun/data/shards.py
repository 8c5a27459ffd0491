"""The shard of a data source that one rank reads, and the one way files are read: a byte
range at a time, mapped.

A rank never reads more than its shard (plus a line's worth at its edges):
- text (.txt): the byte range [size*r/N, size*(r+1)/N) moved to line starts, so every line
  belongs to exactly one rank, whatever N (ranks beyond the number of lines get empty
  shards); csv/tsv: the same range moved to record starts outside quotes (delimited.py);
- .npy, uncompressed .npz members and .safetensors tensors: an element range;
- generated data: only the rank's own index range, reproducible for any N.
Chunks are at most CHUNK_BYTES (text) or a million elements (arrays), each mapped just for
its reading, so memory per rank stays flat as the file grows. Standard library only.
"""

from __future__ import annotations

import mmap
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Generic, NamedTuple, TypeVar

from mlxrun.data.model import Data
from mlxrun.errors import DataError

if TYPE_CHECKING:
    from mlxrun.native import Bins

CHUNK_BYTES = 8 * 1024 * 1024

T = TypeVar("T")


class Shard(Generic[T]):
    """What one rank reads: its chunks (of numbers, or of their sums), and how many bytes
    they come from."""

    def __init__(self, parts: Iterator[tuple[T, int]], bytes_total: int) -> None:
        self._parts = parts
        self.bytes_total = bytes_total  # readers may correct it once the chunks are read
        self.bytes_done = 0  # for progress reports
        self.missing = 0  # values skipped as missing (--missing skip), counted by readers

    @property
    def chunks(self) -> Iterator[T]:
        for values, nbytes in self._parts:
            self.bytes_done += nbytes
            yield values


class Sums(NamedTuple):
    """One chunk summed as it was read, nothing stored: text by the native sum_text,
    float64 arrays by the native binned (`mlxrun.native`)."""

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


def existing(data: Data) -> Path:
    assert data.path is not None
    if not data.path.is_file():
        raise DataError(f"{data.path}: no such file")
    return data.path


# Magic bytes of compressed files: known by what they hold, not by their name.
COMPRESSED = {
    b"\x1f\x8b": ("gzip", "gunzip -k"),
    b"BZh": ("bzip2", "bunzip2 -k"),
    b"\xfd7zXZ\x00": ("xz", "unxz -k"),
    b"\x28\xb5\x2f\xfd": ("zstd", "unzstd"),
    b"PK\x03\x04": ("zip", "unzip"),
}
BOM = b"\xef\xbb\xbf"  # UTF-8's byte order mark, which spreadsheet exports write


def existing_text(data: Data) -> Path:
    """The path of a text-like file (text, csv, tsv), which must not be compressed: its
    bytes would be read as numbers. Streaming a compressed file would put it on one rank."""
    path = existing(data)
    with path.open("rb") as f:
        head = f.read(8)
    for magic, (kind, command) in COMPRESSED.items():
        if head.startswith(magic):
            raise DataError(
                f"{path}: is {kind}-compressed; decompress it first ({command} {path}), "
                "so that every rank can read its own part"
            )
    return path


def bom_length(path: Path) -> int:
    with path.open("rb") as f:
        return len(BOM) if f.read(3) == BOM else 0


class MappedFile:
    """A file read by mapping one byte range at a time: readers parse a range where it lies
    in the page cache (reading it into a buffer first made text parsing 15% slower here:
    the copy's sys time, then reading the copy back), and mapped pages count toward the
    rank's memory only while a range is held (mapping all of a 2 GB .npy made it 1.1 GB
    per rank). A range is unmapped once its last view is gone: use it (or copy it) before
    asking for the next one."""

    def __init__(self, path: Path, needed: int, short: str) -> None:
        """Opens `path`, which must hold at least `needed` bytes, else DataError(`short`)."""
        self.f = path.open("rb", buffering=0)
        if os.fstat(self.f.fileno()).st_size < needed:
            self.f.close()
            # Reading a mapped page past the end of a file kills the process (SIGBUS).
            raise DataError(f"{path}: {short}")

    def map(self, start: int, length: int) -> tuple[mmap.mmap, int]:
        """A read-only mapping holding bytes [start, start + length), and where they begin
        in it (a mapping starts on a page)."""
        skip = start % mmap.ALLOCATIONGRANULARITY
        mapped = mmap.mmap(
            self.f.fileno(), skip + length, offset=start - skip, access=mmap.ACCESS_READ
        )
        return mapped, skip

    def __enter__(self) -> MappedFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.f.close()


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


def size_of(data: Data) -> int:
    """The bytes the job reads: the size mlxrun saw at the start, where it told the ranks
    (a rank that stat()ed a growing file itself would split other bytes than its peers)."""
    assert data.path is not None
    return data.size if data.size is not None else data.path.stat().st_size


def line_range(
    path: Path, rank: int, np_: int, skip: int = 0, size: int | None = None
) -> tuple[int, int]:
    """The rank's byte range of whole lines, of the first `size` bytes of the file (all of
    it by default) after its first `skip` bytes (a header)."""
    total = path.stat().st_size if size is None else size
    lo, hi = span(total - skip, rank, np_)

    def start(offset: int) -> int:  # what is skipped (a BOM) need not end with a newline
        if offset >= total - skip:
            return total  # the end: never past it, into bytes appended since
        return skip if offset == 0 else min(total, line_start_at_or_after(f, skip + offset))

    with path.open("rb") as f:
        return start(lo), start(hi)


def read_lines(path: Path, start: int, end: int) -> Iterator[tuple[memoryview, int]]:
    """Chunks of whole lines from [start, end), each a view of the file mapped just for it
    (see MappedFile), with its offset."""
    with MappedFile(path, end, "shorter than when the job started (changed while read?)") as f:
        pos, want = start, CHUNK_BYTES
        while pos < end:
            stop = min(pos + want, end)
            mapped, skip = f.map(pos, stop - pos)
            cut = stop - pos if stop == end else mapped.rfind(b"\n", skip) + 1 - skip
            if cut <= 0:  # one line longer than the chunk: a bigger chunk
                want *= 2
                continue
            yield memoryview(mapped)[skip : skip + cut], pos
            pos, want = pos + cut, CHUNK_BYTES
