"""The shard of a data source that one rank reads, and the one way files are read: a byte
range at a time, mapped.

A rank never reads more than its shard (plus a line's worth at its edges):
- text (.txt): the byte range [size*r/N, size*(r+1)/N) moved to token starts, so every
  number belongs to exactly one rank, whatever N (ranks beyond the number of tokens get
  empty shards); csv/tsv: the same range moved to record starts outside quotes (delimited.py);
- .npy, uncompressed .npz members and .safetensors tensors: an element range;
- generated data: only the rank's own index range, reproducible for any N.
Chunks are at most CHUNK_BYTES (text) or a million elements (arrays), each mapped just for
its reading, so memory per rank stays flat as the file grows. Standard library only.
"""

from __future__ import annotations

import mmap
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Final, Generic, Literal, NamedTuple, TypeAlias, TypeVar

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
        # csv/tsv: the offsets of the first record and of where reading stopped, once read
        # (a guessed start is confirmed by the rank before: see mlxrun.data.delimited).
        self.first = -1
        self.end = -1

    @property
    def chunks(self) -> Iterator[T]:
        for values, nbytes in self._parts:
            self.bytes_done += nbytes
            yield values


# What a csv/tsv rank knows of the quotes before its share of the bytes: their number, or
# GUESS (take the first LF for a record end, to be confirmed), or None (count them).
GUESS: Final = "guess"
Quotes: TypeAlias = int | Literal["guess"] | None


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

    def token_start(self, offset: int, first: int, total: int) -> int:
        """Where a text rank whose range is nominally from `offset` starts (see text_range):
        `first` is where the text begins (after a BOM), `total` where it ends."""
        if offset <= first or offset >= total:
            return min(max(offset, first), total)
        if self._in_comment(offset, first):
            return self.after_newline(offset, total)
        mapped, skip = self.map(offset - 1, 1)
        if mapped[skip] in SEPARATORS:
            return offset
        end = self._scan(offset, total, _token_end)
        if end < total:
            mapped, skip = self.map(end, 1)
            if mapped[skip] == ord("#"):  # the token ends where a comment begins
                return self.after_newline(end, total)
        return end

    def after_newline(self, offset: int, total: int) -> int:
        """Just past the first LF at or after `offset`, or `total` if there is none."""
        return self._scan(offset, total, _past_newline)

    def _in_comment(self, offset: int, first: int) -> bool:
        """Whether a `#` precedes byte `offset` on its line: read backwards a window at a
        time, so a long line is never mapped whole."""
        hi, window = offset, 4096
        while hi > first:
            lo = max(first, hi - window)
            mapped, skip = self.map(lo, hi - lo)
            nl = mapped.rfind(b"\n", skip)
            if mapped.find(b"#", max(skip, nl + 1)) >= 0:
                return True
            if nl >= 0:
                return False
            hi, window = lo, min(2 * window, CHUNK_BYTES)
        return False

    def _scan(self, offset: int, total: int, find: Callable[[mmap.mmap, int, int], int]) -> int:
        """The offset of the index `find(mapping, lo, hi)` gives (negative: not there), in
        windows forwards from `offset`; `total` if none has it."""
        lo, window = offset, 4096
        while lo < total:
            hi = min(total, lo + window)
            mapped, skip = self.map(lo, hi - lo)
            at = find(mapped, skip, len(mapped))
            if at >= 0:
                return min(total, lo + at - skip)
            lo, window = hi, min(2 * window, CHUNK_BYTES)
        return total

    def too_long(self, offset: int) -> DataError:
        path = Path(self.f.name)
        limit = f"{CHUNK_BYTES // 2**20} MiB" if CHUNK_BYTES >= 2**20 else f"{CHUNK_BYTES} bytes"
        return DataError(
            f"{path}:{line_number(path, offset)}: a token longer than {limit}: not a number"
        )

    def __enter__(self) -> MappedFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.f.close()


def _past_newline(buf: mmap.mmap, lo: int, hi: int) -> int:
    """The index just past the first newline in buf[lo:hi], or -1."""
    at = buf.find(b"\n", lo, hi)
    return at + 1 if at >= 0 else -1


def _token_end(buf: mmap.mmap, lo: int, hi: int) -> int:
    """The index of the first separator or `#` in buf[lo:hi], or -1."""
    found = [at for c in SEPARATORS + b"#" if (at := buf.find(bytes([c]), lo, hi)) >= 0]
    return min(found, default=-1)


def line_number(path: Path, offset: int) -> int:
    """1-based number of the line at byte `offset`."""
    count, done = 1, 0
    with path.open("rb") as f:
        while done < offset:
            block = f.read(min(CHUNK_BYTES, offset - done))
            if not block:
                break
            count += block.count(b"\n")
            done += len(block)
    return count


SAMPLES, SAMPLE_BYTES = 64, 4096


def fingerprint(path: Path, size: int) -> tuple[int, int]:
    """A digest of the first `size` bytes of a file, from SAMPLES blocks spread evenly over
    them (the first and the last among them): what tells a host's copy of a shared file
    from a stale or different one in 256 KiB of reading, whatever the file's size. Two
    62-bit halves, for an int64 all_gather."""
    import hashlib  # only for jobs across hosts

    digest = hashlib.blake2b(size.to_bytes(8, "little"), digest_size=16)
    with path.open("rb") as f:
        for i in range(SAMPLES):
            f.seek(max(0, size - SAMPLE_BYTES) * i // (SAMPLES - 1))
            digest.update(f.read(min(SAMPLE_BYTES, size)))
    raw = int.from_bytes(digest.digest(), "little")
    return raw & (2**62 - 1), (raw >> 64) & (2**62 - 1)


def size_of(data: Data) -> int:
    """The bytes the job reads: the size mlxrun saw at the start, where it told the ranks
    (a rank that stat()ed a growing file itself would split other bytes than its peers)."""
    assert data.path is not None
    return data.size if data.size is not None else data.path.stat().st_size


SEPARATORS = b" \t\n\r,\v\f"  # between numbers in text, as the parsers split them


def _last_separator(buf: bytes | mmap.mmap, lo: int, hi: int) -> int:
    """The index of the last separator in buf[lo:hi], or -1."""
    return max(buf.rfind(bytes([c]), lo, hi) for c in SEPARATORS)


def text_range(
    path: Path, rank: int, np_: int, skip: int = 0, size: int | None = None
) -> tuple[int, int]:
    """The rank's byte range of the first `size` bytes of a text file (all of it by default)
    after its first `skip` bytes (a BOM), its edges moved to token starts.

    An edge at byte b stays where it is if a separator precedes it, and moves past the
    token it cuts otherwise, so every token is read by exactly one rank. An edge inside a
    comment (a `#` earlier on its line), or in a token a comment ends (`5#...`), moves to
    the next line, as a rank starting there could not tell the comment from numbers. So a
    file that is one long line of numbers is split as evenly as one of many lines."""
    total = path.stat().st_size if size is None else size
    lo, hi = span(total - skip, rank, np_)
    with MappedFile(path, total, "shorter than when the job started (changed while read?)") as f:
        return f.token_start(skip + lo, skip, total), f.token_start(skip + hi, skip, total)


def read_text(path: Path, start: int, end: int) -> Iterator[tuple[memoryview, int]]:
    """Chunks of whole tokens from [start, end), each a view of the file mapped just for
    it (see MappedFile), with its offset. A chunk ends at a line's end where the line
    fits in CHUNK_BYTES, else after its last separator; a comment longer than that is
    skipped without being mapped whole. So memory is bounded whatever the lines' length;
    a token longer than CHUNK_BYTES is an error."""
    with MappedFile(path, end, "shorter than when the job started (changed while read?)") as f:
        pos, in_comment = start, False
        while pos < end:
            stop = min(pos + CHUNK_BYTES, end)
            mapped, skip = f.map(pos, stop - pos)
            if in_comment:  # skip to the end of the line
                nl = mapped.find(b"\n", skip)
                pos, in_comment = (stop, True) if nl < 0 else (pos + nl + 1 - skip, False)
                continue
            if stop == end:
                cut = stop - pos
            else:
                cut = mapped.rfind(b"\n", skip) + 1 - skip
            if cut <= 0:  # a line longer than the chunk
                hash_at = mapped.find(b"#", skip)
                if hash_at >= 0:
                    cut, in_comment = hash_at - skip, True
                else:
                    cut = _last_separator(mapped, skip, len(mapped)) + 1 - skip
                    if cut <= 0:
                        raise f.too_long(pos)
            if cut > 0:
                yield memoryview(mapped)[skip : skip + cut], pos
            pos += cut
