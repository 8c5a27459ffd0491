"""Shards read into numpy arrays of numbers, for ops that need the values themselves:
text (parsed in C where it is built, else by numpy), one column of csv/tsv, and generated
data. See `sources` for what each rank reads.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from mlxrun.errors import DataError
from mlxrun.sources import (
    COMMENT,
    INTEGER,
    Shard,
    bad_token,
    column_index,
    csv_header,
    existing,
    int_overflow,
    line_number,
    line_start_at_or_after,
    not_a_number,
    read_lines,
    span,
    text_range,
)
from mlxrun.spec import Data

try:
    from mlxrun import _textparse  # type: ignore[attr-defined]
except ImportError:  # built without a C compiler: numpy's slower conversion serves
    _textparse = None

GENERATE_BLOCK = 1 << 20  # generated data is defined block by block, so any N sees the same values
_INT_BYTES = b"0123456789+- \t\r\n,"


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
        chunk = COMMENT.sub(b"", chunk)
    all_int = not chunk.translate(None, _INT_BYTES)
    tokens = chunk.replace(b",", b" ").split()
    if dtype == "auto" and not all_int and any(_beyond_int64(t) for t in tokens if len(t) > 18):
        # As the C parser decides: read as a float here, the same integer would be an
        # error in a chunk without floats, and the answer would depend on the chunking.
        raise OverflowError("integer beyond int64")
    return parse_tokens(tokens, dtype, all_int)


def _beyond_int64(token: bytes) -> bool:
    return INTEGER.fullmatch(token) is not None and not -(2**63) <= int(token) < 2**63


def _parsed(path: Path, chunk: memoryview, offset: int, dtype: str) -> np.ndarray:
    try:
        return parse_text(chunk, dtype)
    except OverflowError:
        raise int_overflow(path, offset, bytes(chunk)) from None
    except ValueError:
        raise not_a_number(path, offset, bytes(chunk), dtype) from None


def text_shard(data: Data, rank: int, np_: int) -> Shard[np.ndarray]:
    path = existing(data)
    start, end = text_range(path, rank, np_)

    def chunks() -> Iterator[tuple[np.ndarray, int]]:
        for chunk, offset in read_lines(path, start, end):
            yield _parsed(path, chunk, offset, data.dtype), len(chunk)

    return Shard(chunks(), end - start)


def delimited_shard(data: Data, rank: int, np_: int) -> Shard[np.ndarray]:
    path = existing(data)
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
        if bad_token([field], dtype) is not None or not field:
            return DataError(
                f'{path}:{first + i}: not a number: "{field.decode(errors="replace")}"'
            )
    return DataError(f"{path}: cannot parse the lines at byte {offset}")


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
