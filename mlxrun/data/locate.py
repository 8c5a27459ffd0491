"""Where a bad number is: `FILE:LINE` and the token as written, for the one-line error.

Parsers run over whole chunks and only say that a chunk failed; this module then reads the
chunk again, line by line, to name the first bad line. That is slow, and it runs only once,
for the error. The grammar of a number here is the C parser's: Python's float() without
underscores and hex.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from mlxrun.data.shards import CHUNK_BYTES
from mlxrun.errors import DataError

COMMENT = re.compile(rb"#[^\n]*")
NUMBER = re.compile(
    rb"[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|inf|infinity|nan)", re.IGNORECASE
)
INTEGER = re.compile(rb"[+-]?\d+")


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


def first_bad_line(
    path: Path, offset: int, chunk: bytes, problem: Callable[[bytes], str | None], fallback: str
) -> DataError:
    """The error for the first line of `chunk` (which starts at byte `offset` of `path`)
    where `problem(line)` names one; `fallback` if no line does."""
    first = line_number(path, offset)
    for i, line in enumerate(chunk.split(b"\n")):
        message = problem(line)
        if message is not None:
            return DataError(f"{path}:{first + i}: {message}")
    return DataError(f"{path}: {fallback} at byte {offset}")


def bad_token(tokens: list[bytes], dtype: str) -> bytes | None:
    grammar = INTEGER if dtype == "int64" else NUMBER
    return next((token for token in tokens if not grammar.fullmatch(token)), None)


def beyond_int64(token: bytes) -> bool:
    if INTEGER.fullmatch(token) is None:
        return False
    # Not int(token): it refuses more than 4300 digits (ValueError), leading zeros too.
    digits = token.lstrip(b"+-").lstrip(b"0")
    return len(digits) > 19 or int(digits or b"0") > 2**63 - 1 + token.startswith(b"-")


def not_a_number(path: Path, offset: int, chunk: bytes, dtype: str) -> DataError:
    """Names the file, line and word (as written) of a text chunk's first bad number."""

    def problem(line: bytes) -> str | None:
        for word in COMMENT.sub(b"", line).split():
            token = bad_token(word.replace(b",", b" ").split(), dtype)
            if token is None:
                continue
            shown = word.decode(errors="replace")
            if dtype == "int64" and bad_token([token], "float64") is None:
                return f'not an integer: "{shown}" (dtype is int64)'
            return f'not a number: "{shown}"'
        return None

    return first_bad_line(path, offset, chunk, problem, "cannot parse the lines")


def int_overflow(path: Path, offset: int, chunk: bytes) -> DataError:
    """Names the file, line and token of a text chunk's first integer beyond int64 (the
    chunk may hold floats and comments too)."""

    def problem(line: bytes) -> str | None:
        for token in COMMENT.sub(b"", line).replace(b",", b" ").split():
            if beyond_int64(token):
                return (
                    f'integer out of the int64 range: "{token.decode()}" '
                    '(set dtype = "float64" to sum it as a float)'
                )
        return None

    return first_bad_line(path, offset, chunk, problem, "integer out of the int64 range near")


def bad_field(
    path: Path, offset: int, chunk: bytes, field: Callable[[bytes], bytes], dtype: str
) -> DataError:
    """Names the file, line and value of a csv/tsv chunk's first field that is not a
    number; `field(line)` picks the column's field out of a line."""

    def problem(line: bytes) -> str | None:
        if not line.strip():
            return None
        value = field(line)
        if not value or bad_token([value], dtype) is not None:
            return f'not a number: "{value.decode(errors="replace")}"'
        return None

    return first_bad_line(path, offset, chunk, problem, "cannot parse the lines")
