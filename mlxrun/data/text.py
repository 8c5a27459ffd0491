"""Plain text: numbers separated by whitespace or commas, blank lines and `#` comments
skipped. A rank's shard is summed as it is read (count, sum and mean jobs: nothing
stored, no numpy) or parsed into arrays (every other op). The C parser serves both where
it was built; without it numpy's conversion parses, with the same answers.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from mlxrun import native
from mlxrun.data.locate import (
    COMMENT,
    INTEGER,
    bad_token,
    beyond_int64,
    int_overflow,
    not_a_number,
)
from mlxrun.data.model import Data
from mlxrun.data.shards import (
    Shard,
    Sums,
    bom_length,
    existing_text,
    read_text,
    size_of,
    text_range,
)

if TYPE_CHECKING:
    import numpy as np

_INT_BYTES = b"0123456789+- \t\r\n\v\f,"  # digits, signs and the separators


def can_sum_text(data: Data) -> bool:
    """Whether text_sums can serve this data (plain text, types as written, C parser)."""
    return data.format == "text" and data.dtype == "auto" and native.ext is not None


def text_sums(data: Data, rank: int, np_: int) -> Shard[Sums]:
    """The rank's text shard summed chunk by chunk without storing the numbers, for jobs
    that need only count, sum and mean. A bad token is reported as text_shard does."""
    path = existing_text(data)
    start, end = text_range(path, rank, np_, skip=bom_length(path), size=size_of(data))

    def chunks() -> Iterator[tuple[Sums, int]]:
        for chunk, offset in read_text(path, start, end):
            high, low = native.empty_bins(), native.empty_bins()
            n, all_int, error, _, nan, pinf, ninf, ihigh, ilow, rounding = native.ext.sum_text(
                chunk, high, low
            )
            if error == 2:  # as parse_text reports it: dtype is auto here
                raise int_overflow(path, offset, bytes(chunk))
            if error:
                raise not_a_number(path, offset, bytes(chunk), data.dtype)
            int_sum = (ihigh << 64) + ilow
            sums = Sums(n, bool(all_int), nan, pinf, ninf, int_sum, rounding, high, low)
            yield sums, len(chunk)

    return Shard(chunks(), end - start)


def text_shard(data: Data, rank: int, np_: int) -> Shard[np.ndarray]:
    """The rank's text shard as arrays of numbers, a chunk at a time."""
    path = existing_text(data)
    start, end = text_range(path, rank, np_, skip=bom_length(path), size=size_of(data))

    def chunks() -> Iterator[tuple[np.ndarray, int]]:
        for chunk, offset in read_text(path, start, end):
            try:
                values = parse_text(chunk, data.dtype)
            except OverflowError:
                raise int_overflow(path, offset, bytes(chunk)) from None
            except ValueError:
                raise not_a_number(path, offset, bytes(chunk), data.dtype) from None
            yield values, len(chunk)

    return Shard(chunks(), end - start)


def parse_text(chunk: bytes | memoryview, dtype: str) -> np.ndarray:
    """All numbers of a chunk of lines. Raises ValueError for a token that is not a number
    (or not an integer, for int64) and OverflowError for an integer beyond int64 (unless
    floats were asked for)."""
    if native.ext is not None:
        values = _parse_in_c(chunk, dtype)
        if values is not None:
            return values
    chunk = bytes(chunk)
    if b"#" in chunk:
        chunk = COMMENT.sub(b"", chunk)
    all_int = not chunk.translate(None, _INT_BYTES)
    tokens = chunk.replace(b",", b" ").split()
    try:
        if b"_" in chunk or b"\0" in chunk:
            # numpy reads 1_000 as float() does, and drops a token's trailing NULs.
            raise ValueError("not a number")
        if dtype == "auto" and not all_int and any(beyond_int64(t) for t in tokens if len(t) > 18):
            # As the C parser decides: read as a float here, the same integer would be an
            # error in a chunk without floats, and the answer would depend on the chunking.
            raise OverflowError("integer beyond int64")
        return parse_tokens(tokens, dtype, all_int)
    except (ValueError, OverflowError) as e:
        raise _first_error(tokens, dtype) or e from None


def _first_error(tokens: list[bytes], dtype: str) -> Exception | None:
    """The error of the first bad token, as the C parser meets them (in order), so that
    both name the same token: not a number (or not an integer for int64), or an integer
    beyond int64."""
    for token in tokens:
        if bad_token([token], dtype) is not None:
            return ValueError("not a number")
        if dtype in ("auto", "int64") and len(token) > 18 and beyond_int64(token):
            return OverflowError("integer beyond int64")
    return None


def parse_tokens(tokens: list[bytes], dtype: str, all_int: bool) -> np.ndarray:
    """Numbers from tokens by numpy; raises ValueError/OverflowError on a bad one."""
    import numpy as np

    raw = np.array(tokens) if tokens else np.array([], dtype="S1")
    if dtype == "int64" or (dtype == "auto" and all_int):
        try:
            return raw.astype(np.int64)
        except OverflowError:
            raise OverflowError("integer beyond int64") from None
        except ValueError:
            # numpy reads them by int(), which refuses more than 4300 digits, zeros too.
            short = [_without_leading_zeros(t) for t in tokens]
            if short == tokens:
                raise
            return parse_tokens(short, dtype, all_int)
    with np.errstate(over="ignore"):  # inf, as float() reads 2e400, without a warning
        values = raw.astype(np.float64)
    if dtype == "float32":
        values = as_float32(values)
    return values


def _without_leading_zeros(token: bytes) -> bytes:
    if len(token) <= 19 or INTEGER.fullmatch(token) is None:
        return token
    digits = token.lstrip(b"+-").lstrip(b"0") or b"0"
    return b"-" + digits if token.startswith(b"-") else digits


class _Buffers:
    """The C parser's output arrays, kept between chunks: fresh ones per chunk cost page
    faults on every chunk. Results are copied out, so callers may keep them."""

    floats: Any = None
    ints: Any = None

    @classmethod
    def fit(cls, nbytes: int) -> tuple[np.ndarray, np.ndarray]:
        import numpy as np

        capacity = nbytes // 2 + 1  # the most numbers nbytes can hold
        if cls.floats is None or len(cls.floats) < capacity:
            cls.floats, cls.ints = np.empty(capacity), np.empty(capacity, dtype=np.int64)
        return cls.floats, cls.ints


def _parse_in_c(chunk: bytes | memoryview, dtype: str) -> np.ndarray | None:
    """The C parser's answer; None where the numpy path must decide (big ints as floats)."""

    floats, ints = _Buffers.fit(len(chunk))
    count, all_int, error, _where = native.ext.parse(chunk, floats, ints)
    if error == 1:
        raise ValueError("not a number")
    if error == 2:
        if dtype == "int64" and not all_int:  # a float before the integer: the first error
            raise ValueError("not an integer")
        if dtype in ("auto", "int64"):
            raise OverflowError("integer beyond int64")
        return None
    if dtype == "int64" and not all_int:
        raise ValueError("not an integer")
    if all_int and dtype in ("auto", "int64"):
        return ints[:count].copy()
    values = floats[:count]
    return as_float32(values) if dtype == "float32" else values.copy()


def as_float32(values: np.ndarray) -> np.ndarray:
    """float64 values rounded to float32 (as float64s): inf beyond its range, no warning."""
    import numpy as np

    with np.errstate(over="ignore"):
        return values.astype(np.float32).astype(np.float64)
