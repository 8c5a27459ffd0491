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

from mlxrun.data.shards import bom_length, line_number
from mlxrun.errors import DataError

COMMENT = re.compile(rb"#[^\n]*")
NUMBER = re.compile(
    rb"[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|inf|infinity|nan)", re.IGNORECASE
)
INTEGER = re.compile(rb"[+-]?\d+")
WORD = re.compile(rb"[^ \t\n\r\v\f]+")  # between whitespace, as bytes.split() splits
WORD_LIMIT = 64  # bytes: of a longer word (a line of numbers and commas), just the token


def first_bad_line(
    path: Path,
    offset: int,
    chunk: bytes,
    problem: Callable[[bytes, int], str | None],
    fallback: str,
) -> DataError:
    """The error for the first line of `chunk` (which starts at byte `offset` of `path`)
    where `problem(line, where the line starts in the file)` names one; `fallback` if no
    line does."""
    first = line_number(path, offset)
    at = offset
    for i, line in enumerate(chunk.split(b"\n")):
        message = problem(line, at)
        if message is not None:
            return DataError(f"{path}:{first + i}: {message}")
        at += len(line) + 1
    return DataError(f"{path}: {fallback} at byte {offset}")


def whole_word(path: Path, start: int, end: int, token: bytes) -> bytes:
    """The word (between whitespace) of `path` that holds bytes [start, end), a word of a
    chunk: a chunk or a rank's shard may begin or end at a comma inside a word, and the
    error must not depend on where. Just `token` for a word longer than WORD_LIMIT."""
    if end - start > WORD_LIMIT:
        return token
    floor = bom_length(path)
    lo, hi = max(floor, start - WORD_LIMIT), end + WORD_LIMIT + 1
    with path.open("rb") as f:
        f.seek(lo)
        around = f.read(hi - lo)
    head, tail = around[: start - lo], around[end - lo :]
    left = re.search(rb"[^ \t\n\r\v\f]*\Z", head)
    right = re.match(rb"[^ \t\n\r\v\f#]*", tail)
    assert left is not None and right is not None
    # Complete where whitespace (or a comment) bounds it, or the text begins or ends.
    if not (len(left[0]) < len(head) or lo == floor):
        return token
    if not (len(right[0]) < len(tail) or len(around) < hi - lo):
        return token
    word = left[0] + around[start - lo : end - lo] + right[0]
    return word if len(word) <= WORD_LIMIT else token


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

    def problem(line: bytes, at: int) -> str | None:
        for word in WORD.finditer(COMMENT.sub(b"", line)):
            token = bad_token(word[0].replace(b",", b" ").split(), dtype)
            if token is None:
                continue
            shown = whole_word(path, at + word.start(), at + word.end(), token).decode(
                errors="replace"
            )
            if dtype == "int64" and bad_token([token], "float64") is None:
                return f'not an integer: "{shown}" (dtype is int64)'
            return f'not a number: "{shown}"'
        return None

    return first_bad_line(path, offset, chunk, problem, "cannot parse the lines")


def int_overflow(path: Path, offset: int, chunk: bytes) -> DataError:
    """Names the file, line and token of a text chunk's first integer beyond int64 (the
    chunk may hold floats and comments too)."""

    def problem(line: bytes, _at: int) -> str | None:
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

    def problem(line: bytes, _at: int) -> str | None:
        if not line.strip():
            return None
        value = field(line)
        if not value or bad_token([value], dtype) is not None:
            return f'not a number: "{value.decode(errors="replace")}"'
        return None

    return first_bad_line(path, offset, chunk, problem, "cannot parse the lines")
