"""Data sources, and the shard of each one that a rank reads.

A rank never reads more than its shard (plus a line's worth at its edges):
- text (.txt/.csv/.tsv): the byte range [size*r/N, size*(r+1)/N) moved to
  line starts, so every line belongs to exactly one rank, whatever N (ranks
  beyond the number of lines get empty shards); read in bounded chunks;
- .npy, uncompressed .npz members and .safetensors tensors: an element range,
  mapped a chunk at a time;
- generated data: only the rank's own index range, reproducible for any N.
Memory per rank stays flat as the file grows: chunks are at most CHUNK_BYTES.
"""

from __future__ import annotations

import json
import mmap
import os
import re
import struct
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Generic, NamedTuple, TypeVar

import numpy as np

from mlxrun.errors import DataError

try:
    from mlxrun import _textparse  # type: ignore[attr-defined]
except ImportError:  # built without a C compiler: numpy's slower conversion serves
    _textparse = None
try:
    from mlxrun import _exactsum  # type: ignore[attr-defined]
except ImportError:
    _exactsum = None
from mlxrun.spec import Data

CHUNK_BYTES = 8 * 1024 * 1024
CHUNK_ITEMS = 1 << 20
BINS = 2048  # the C kernels' exponent bins (_bins.h)
GENERATE_BLOCK = 1 << 20  # generated data is defined block by block, so any N sees the same values
_INT_BYTES = b"0123456789+- \t\r\n,"
_COMMENT = re.compile(rb"#[^\n]*")


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
    high: np.ndarray  # the float tokens' bins, for their exact sum
    low: np.ndarray


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

    A chunk is a view of one buffer that the next chunk reuses, read into without copies:
    use it (or copy it) before asking for the next one."""
    buf = bytearray(CHUNK_BYTES)
    pos, filled = start, 0  # the file offset of buf[0]; bytes of buf in use
    with path.open("rb", buffering=0) as f:
        f.seek(start)
        while True:
            want = min(len(buf) - filled, end - pos - filled)
            got = f.readinto(memoryview(buf)[filled : filled + want]) if want > 0 else 0
            filled += got or 0
            if not got or pos + filled >= end:
                if filled:
                    yield memoryview(buf)[:filled], pos
                return
            cut = buf.rfind(b"\n", 0, filled) + 1
            if cut == 0:  # one line longer than the buffer: a bigger buffer
                buf = bytearray(buf[:filled]) + bytearray(len(buf))
                continue
            yield memoryview(buf)[:cut], pos
            buf[: filled - cut] = buf[cut:filled]  # the partial last line moves to the front
            pos, filled = pos + cut, filled - cut


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


def _bad_token(tokens: list[bytes], dtype: str) -> bytes | None:
    grammar = INTEGER if dtype == "int64" else NUMBER
    return next((token for token in tokens if not grammar.fullmatch(token)), None)


def _not_a_number(path: Path, offset: int, chunk: bytes, dtype: str) -> DataError:
    """Names the file, line and word (as written) of a chunk's first bad number."""
    first = line_number(path, offset)
    for i, line in enumerate(chunk.split(b"\n")):
        for word in _COMMENT.sub(b"", line).split():
            token = _bad_token(word.replace(b",", b" ").split(), dtype)
            if token is None:
                continue
            shown = word.decode(errors="replace")
            if dtype == "int64" and _bad_token([token], "float64") is None:
                return DataError(f'{path}:{first + i}: not an integer: "{shown}" (dtype is int64)')
            return DataError(f'{path}:{first + i}: not a number: "{shown}"')
    return DataError(f"{path}: cannot parse the lines at byte {offset}")


class _Buffers:
    """The C parser's output arrays, kept between chunks: fresh ones per chunk cost
    page faults on every chunk. Results are copied out, so callers may keep them."""

    floats = np.empty(0)
    ints = np.empty(0, dtype=np.int64)

    @classmethod
    def fit(cls, nbytes: int) -> tuple[np.ndarray, np.ndarray]:
        capacity = nbytes // 2 + 1  # the most numbers nbytes can hold
        if len(cls.floats) < capacity:
            cls.floats, cls.ints = np.empty(capacity), np.empty(capacity, dtype=np.int64)
        return cls.floats, cls.ints


def _parse_in_c(chunk: bytes | memoryview, dtype: str) -> np.ndarray | None:
    """The C parser's answer; None where the numpy path must decide (big ints as floats)."""
    assert _textparse is not None
    floats, ints = _Buffers.fit(len(chunk))
    count, all_int, error, _where = _textparse.parse(chunk, floats, ints)
    if error == 1:
        raise ValueError("not a number")
    if error == 2:
        if dtype in ("auto", "int64"):
            raise OverflowError("integer beyond int64")
        return None
    if dtype == "int64" and not all_int:
        raise ValueError("not an integer")
    if all_int and dtype in ("auto", "int64"):
        return ints[:count].copy()
    values = floats[:count]
    return values.astype(np.float32).astype(np.float64) if dtype == "float32" else values.copy()


def parse_tokens(tokens: list[bytes], dtype: str, all_int: bool) -> np.ndarray:
    """Numbers from tokens; raises ValueError/OverflowError on a bad one."""
    raw = np.array(tokens) if tokens else np.array([], dtype="S1")
    if dtype == "int64" or (dtype == "auto" and all_int):
        try:
            return raw.astype(np.int64)
        except OverflowError:
            raise OverflowError("integer beyond int64") from None
    values = raw.astype(np.float64)
    if dtype == "float32":
        values = values.astype(np.float32).astype(np.float64)
    return values


def parse_text(chunk: bytes | memoryview, dtype: str) -> np.ndarray:
    """All numbers of a chunk of lines: whitespace or commas between, # comments.
    Raises ValueError for a token that is not a number (or not an integer, for int64)
    and OverflowError for an integer beyond int64 (unless floats were asked for)."""
    if _textparse is not None:
        values = _parse_in_c(chunk, dtype)
        if values is not None:
            return values
    chunk = bytes(chunk)
    if b"#" in chunk:
        chunk = _COMMENT.sub(b"", chunk)
    all_int = not chunk.translate(None, _INT_BYTES)
    return parse_tokens(chunk.replace(b",", b" ").split(), dtype, all_int)


def _int_overflow(path: Path, offset: int, chunk: bytes) -> DataError:
    first = line_number(path, offset)
    for i, line in enumerate(chunk.split(b"\n")):
        for token in line.replace(b",", b" ").split():
            if not -(2**63) <= int(token) < 2**63:
                return DataError(
                    f'{path}:{first + i}: integer out of the int64 range: "{token.decode()}" '
                    '(set dtype = "float64" to sum it as a float)'
                )
    return DataError(f"{path}: integer out of the int64 range near byte {offset}")


def _parsed(path: Path, chunk: memoryview, offset: int, dtype: str) -> np.ndarray:
    try:
        return parse_text(chunk, dtype)
    except OverflowError:
        raise _int_overflow(path, offset, bytes(chunk)) from None
    except ValueError:
        raise _not_a_number(path, offset, bytes(chunk), dtype) from None


def text_shard(data: Data, rank: int, np_: int) -> Shard[np.ndarray]:
    path = _existing(data)
    start, end = text_range(path, rank, np_)

    def chunks() -> Iterator[tuple[np.ndarray, int]]:
        for chunk, offset in read_lines(path, start, end):
            yield _parsed(path, chunk, offset, data.dtype), len(chunk)

    return Shard(chunks(), end - start)


def can_sum_text(data: Data) -> bool:
    """Whether text_sums can serve this data (plain text, types as written, C parser)."""
    return data.format == "text" and data.dtype == "auto" and _textparse is not None


def text_sums(data: Data, rank: int, np_: int) -> Shard[Sums]:
    """The rank's text shard summed chunk by chunk without storing the numbers, for jobs
    that need only count, sum and mean. A bad token is reported as text_shard does."""
    assert _textparse is not None
    path = _existing(data)
    start, end = text_range(path, rank, np_)

    def chunks() -> Iterator[tuple[Sums, int]]:
        for chunk, offset in read_lines(path, start, end):
            high, low = np.zeros(BINS, dtype=np.int64), np.zeros(BINS, dtype=np.int64)
            n, all_int, error, _, nan, pinf, ninf, ihigh, ilow, rounding = _textparse.sum_text(
                chunk, high, low
            )
            if error:
                _parsed(path, chunk, offset, data.dtype)  # raises, naming the token
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


def delimited_shard(data: Data, rank: int, np_: int) -> Shard[np.ndarray]:
    path = _existing(data)
    delimiter = b"\t" if data.format == "tsv" else b","
    header = csv_header(path, delimiter)
    index = column_index(path, header, data.column)
    with path.open("rb") as f:
        body = len(f.readline())
    size = path.stat().st_size - body
    lo, hi = span(size, rank, np_)
    with path.open("rb") as f:
        start, end = line_start_at_or_after(f, body + lo), line_start_at_or_after(f, body + hi)

    def chunks() -> Iterator[tuple[np.ndarray, int]]:
        for view, offset in read_lines(path, start, end):
            chunk = bytes(view)
            lines = [line for line in chunk.split(b"\n") if line.strip()]
            fields = [_field(line, delimiter, index) for line in lines]
            all_int = all(f.lstrip(b"+-").isdigit() for f in fields)
            try:
                yield parse_tokens(fields, data.dtype, all_int), len(chunk)
            except (ValueError, OverflowError):
                raise _bad_field(path, chunk, offset, delimiter, index, data.dtype) from None

    return Shard(chunks(), end - start)


def _field(line: bytes, delimiter: bytes, index: int) -> bytes:
    parts = line.rstrip(b"\r").split(delimiter)
    return parts[index].strip().strip(b'"') if index < len(parts) else b""


def _bad_field(
    path: Path, chunk: bytes, offset: int, delimiter: bytes, index: int, dtype: str
) -> DataError:
    first = line_number(path, offset)
    for i, line in enumerate(chunk.split(b"\n")):
        if not line.strip():
            continue
        field = _field(line, delimiter, index)
        if _bad_token([field], dtype) is not None or not field:
            return DataError(
                f'{path}:{first + i}: not a number: "{field.decode(errors="replace")}"'
            )
    return DataError(f"{path}: cannot parse the lines at byte {offset}")


# -- binary arrays ----------------------------------------------------------------

_SAFETENSORS_DTYPES = {
    "F64": "<f8", "F32": "<f4", "F16": "<f2", "I64": "<i8", "I32": "<i4", "I16": "<i2",
    "I8": "i1", "U8": "u1", "U16": "<u2", "U32": "<u4", "U64": "<u8", "BOOL": "?", "BF16": "<u2",
}  # fmt: skip


@dataclass(frozen=True)
class ArrayView:
    """Where the raw elements of one array live in a file."""

    path: Path
    offset: int
    dtype: np.dtype[Any]
    count: int
    bfloat16: bool = False


def _npy_view(path: Path, f: BinaryIO, base: int, label: str) -> ArrayView:
    try:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
        else:
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
    except ValueError as e:
        raise DataError(f"{label}: not a valid .npy array ({e})") from None
    if dtype.hasobject or dtype.kind not in "biuf":
        raise DataError(f"{label}: holds {dtype}, not numbers")
    del fortran  # the order of elements does not change any reduction mlxrun offers
    return ArrayView(path, base + f.tell(), dtype, int(np.prod(shape)))


def npy_view(path: Path) -> ArrayView:
    with path.open("rb") as f:
        return _npy_view(path, f, 0, str(path))


def npz_view(path: Path, member: str | int | None) -> ArrayView:
    try:
        zf = zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        raise DataError(f"{path}: not a valid .npz file") from None
    with zf:
        names = [n.removesuffix(".npy") for n in zf.namelist()]
        name = _pick(path, names, member, "array")
        info = zf.getinfo(name + ".npy")
        if info.compress_type != zipfile.ZIP_STORED:
            raise DataError(
                f"{path}: array {name} is compressed; save it with np.savez (not savez_compressed)"
            )
    with path.open("rb") as f:
        f.seek(info.header_offset)
        local = f.read(30)
        name_len, extra_len = struct.unpack("<HH", local[26:30])
        start = info.header_offset + 30 + name_len + extra_len
        f.seek(start)
        view = _npy_view(path, f, 0, f"{path}[{name}]")
        return ArrayView(path, view.offset, view.dtype, view.count)


def safetensors_view(path: Path, member: str | int | None) -> ArrayView:
    with path.open("rb") as f:
        try:
            (n,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(n))
        except (struct.error, ValueError):
            raise DataError(f"{path}: not a valid .safetensors file") from None
    tensors = {k: v for k, v in header.items() if k != "__metadata__"}
    name = _pick(path, sorted(tensors), member, "tensor")
    meta = tensors[name]
    if meta["dtype"] not in _SAFETENSORS_DTYPES:
        raise DataError(
            f"{path}: tensor {name} has dtype {meta['dtype']}, not a supported number type"
        )
    dtype = np.dtype(_SAFETENSORS_DTYPES[meta["dtype"]])
    begin, end = meta["data_offsets"]
    return ArrayView(
        path, 8 + n + begin, dtype, (end - begin) // dtype.itemsize, meta["dtype"] == "BF16"
    )


def _pick(path: Path, names: list[str], member: str | int | None, what: str) -> str:
    if member is None:
        if len(names) == 1:
            return names[0]
        raise DataError(
            f"{path}: holds {what}s {', '.join(names)}: choose one with --column or data.column"
        )
    if isinstance(member, int):
        if not 0 <= member < len(names):
            raise DataError(f"{path}: no {what} {member} (it has {len(names)})")
        return names[member]
    if member not in names:
        raise DataError(f'{path}: no {what} "{member}"; it has {", ".join(names)}')
    return member


def as_numbers(raw: np.ndarray, view: ArrayView) -> np.ndarray:
    """int64 or float64, the two types the reductions take, without losing a bit; always a
    new array (the chunk it comes from is unmapped once it is dropped)."""
    if view.bfloat16:
        return (raw.astype(np.uint32) << 16).view(np.float32).astype(np.float64)
    if raw.dtype.kind == "f":
        return raw.astype(np.float64)  # a copy, also when it is float64 already
    if raw.dtype == np.uint64 and raw.size and int(raw.max()) >= 2**63:
        raise DataError(f"{view.path}: uint64 values of 2**63 or more are not supported")
    return raw.astype(np.int64)


def read_array(view: ArrayView, lo: int, hi: int) -> Iterator[np.ndarray]:
    """Elements [lo, hi) of the array in chunks of CHUNK_ITEMS, each a read-only view of
    the file mapped just for it: no copy out of the page cache, and mapped pages count
    toward the rank's resident memory only while a chunk is held (a chunk or two, where
    mapping the whole file made it 1.1 GB per rank for a 2 GB .npy). A chunk is unmapped
    once its last view is gone: use it before asking for the next one."""
    size = view.dtype.itemsize
    with view.path.open("rb", buffering=0) as f:
        if os.fstat(f.fileno()).st_size < view.offset + hi * size:
            # Reading a mapped page past the end of a file kills the process (SIGBUS).
            raise DataError(f"{view.path}: ends before its header says (truncated?)")
        for i in range(lo, hi, CHUNK_ITEMS):
            count = min(hi - i, CHUNK_ITEMS)
            start = view.offset + i * size
            skip = start % mmap.ALLOCATIONGRANULARITY  # a mapping starts on a page
            mapped = mmap.mmap(
                f.fileno(), skip + count * size, offset=start - skip, access=mmap.ACCESS_READ
            )
            yield np.frombuffer(mapped, dtype=view.dtype, count=count, offset=skip)


def array_shard(view: ArrayView, rank: int, np_: int) -> Shard[np.ndarray]:
    lo, hi = span(view.count, rank, np_)
    chunks = ((as_numbers(raw, view), raw.nbytes) for raw in read_array(view, lo, hi))
    return Shard(chunks, (hi - lo) * view.dtype.itemsize)


def float_sums(view: ArrayView, rank: int, np_: int) -> Shard[Sums]:
    """The rank's part of a float64 array summed chunk by chunk where it lies in the page
    cache (no copy, nothing stored). See sums_shard."""
    assert _exactsum is not None and view.dtype == np.dtype("=f8") and not view.bfloat16
    lo, hi = span(view.count, rank, np_)

    def chunks() -> Iterator[tuple[Sums, int]]:
        for values in read_array(view, lo, hi):
            high, low = np.zeros(BINS, dtype=np.int64), np.zeros(BINS, dtype=np.int64)
            nan, posinf, neginf = _exactsum.binned(values, high, low)
            yield Sums(len(values), False, nan, posinf, neginf, 0, 0, high, low), values.nbytes

    return Shard(chunks(), (hi - lo) * 8)


# -- generated ----------------------------------------------------------------------


def generated_block(
    kind: str, distribution: str, seed: int, start: int, block: int, n: int
) -> np.ndarray:
    lo = block * GENERATE_BLOCK
    size = min(GENERATE_BLOCK, n - lo)
    if kind == "range":
        return np.arange(start + lo, start + lo + size, dtype=np.int64)
    rng = np.random.default_rng([seed, block])
    if distribution == "uniform":
        return rng.random(size)
    if distribution == "integers":
        return rng.integers(-1_000_000, 1_000_000, size, dtype=np.int64)
    return rng.standard_normal(size)


def generated_shard(data: Data, rank: int, np_: int) -> Shard[np.ndarray]:
    g = data.generate
    assert g is not None
    lo, hi = span(g.n, rank, np_)

    def chunks() -> Iterator[tuple[np.ndarray, int]]:
        for block in range(lo // GENERATE_BLOCK, (hi - 1) // GENERATE_BLOCK + 1 if hi > lo else 0):
            values = generated_block(g.kind, g.distribution, g.seed, g.start, block, g.n)
            first = block * GENERATE_BLOCK
            part = values[max(lo - first, 0) : hi - first]
            yield part, part.nbytes

    return Shard(chunks(), (hi - lo) * 8)


# -- dispatch -------------------------------------------------------------------------


def _existing(data: Data) -> Path:
    assert data.path is not None
    if not data.path.is_file():
        raise DataError(f"{data.path}: no such file")
    return data.path


def array_view(data: Data) -> ArrayView:
    path = _existing(data)
    if data.format == "npy":
        return npy_view(path)
    if data.format == "npz":
        return npz_view(path, data.column)
    return safetensors_view(path, data.column)


def sums_shard(data: Data, rank: int, np_: int) -> Shard[Sums] | None:
    """The rank's chunks already summed, for jobs that need only counts, sums and means,
    where the C kernels can serve the data; None where the values must be read first."""
    if data.generate is not None or data.format in ("csv", "tsv"):
        return None
    if data.format == "text":
        return text_sums(data, rank, np_) if can_sum_text(data) else None
    view = array_view(data)
    if _exactsum is None or view.dtype != np.dtype("=f8") or view.bfloat16:
        return None  # integers are summed exactly by numpy; other floats are widened first
    return float_sums(view, rank, np_)


def open_shard(data: Data, rank: int, np_: int) -> Shard[np.ndarray]:
    """The chunks of numbers that rank `rank` of `np_` reduces."""
    if data.generate is not None:
        return generated_shard(data, rank, np_)
    _existing(data)  # a missing file is named before any format is tried
    if data.format == "text":
        return text_shard(data, rank, np_)
    if data.format in ("csv", "tsv"):
        return delimited_shard(data, rank, np_)
    return array_shard(array_view(data), rank, np_)
