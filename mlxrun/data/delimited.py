"""csv and tsv files as RFC 4180 writes them: a header record, then one record per line;
one column is reduced.

Fields are separated by the delimiter (given, or sniffed among `,` `;` tab `|`); a field
that starts with `"` is quoted, ends at the next lone `"`, and may hold delimiters, CR, LF
and `""` (one quote). Records end at LF or CRLF outside quotes; blank lines are skipped; a
UTF-8 byte order mark is skipped. Spaces around a number are allowed. A field equal to one
of `null_values` is missing: an error, or skipped and counted (`missing = "skip"`).

The C extension tokenizes and parses the column in one pass (`csv_column` in
native/csvparse.c), summing as it reads for count/sum/mean jobs; without it, the Python
tokenizer below does the same work with the same answers (chunks cut at the same records).

How a rank that starts mid-file finds its first record. Rank r of N is given the nominal
byte range [lo, hi) of the data after the header (`span`). Its first record is the first
record start at or after lo, where a record start is the header's end or the byte after a
LF that lies outside quotes; it reads records until the first record start at or after hi,
which is by the same rule the next rank's first record: every record belongs to exactly
one rank. Whether a LF lies outside quotes is decided by the number of quote characters
before it, counted from the header's end: in RFC 4180 quotes only open a field, close it,
or come in pairs inside it, so that number is even exactly outside quoted fields, however
many quoted newlines come before.

A job first guesses, then checks (`GUESS`), unless the file's first MiB holds a quoted
newline (then the ranks count quotes at once, see below): each rank takes the first LF at
or after lo for a record end, which is right unless that LF lies inside a quoted field (only files with
quoted newlines can have one), and reads on from there. Rank 0 starts at the header's end,
so its records are right; rank r-1, having started right, stops at the first true record
start at or after hi = rank r's lo, and that is rank r's guess exactly when the guess was
right (every record start is one byte after a LF, and the guess is the first such byte).
So the ranks exchange where each started and stopped (one all_gather, in the worker): if
every rank started where the rank before it stopped, every start is right, by induction
from rank 0. If not, or if any rank failed (a wrong start can cause any error), nothing a
rank read is used, not even its errors: the ranks count the
quotes of their own shares (a byte count at memory speed, in C where built), exchange the
counts (`quotes_in_share`), and read again from starts found by the rule above, which can
never be inside a quoted field. The guess saves that counting pass over the whole file
(0.09 s of a 2-rank job on 0.5 GB here). Read alone, a rank counts the quotes before it.
A quote that breaks RFC 4180 (inside an unquoted field, or text after a closing quote)
would break the count: the lowest rank whose records hold one stops the job with an error
(read from counted quotes, as every failure is), and that rank's own start is right (all
quotes before it are well-formed), so no job ends with a silently wrong shard.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from mlxrun import native
from mlxrun.data.locate import INTEGER, NUMBER, beyond_int64
from mlxrun.data.model import DELIMITER_NAMES, SNIFFED, Data
from mlxrun.data.shards import (
    BOM,
    CHUNK_BYTES,
    GUESS,
    MappedFile,
    Quotes,
    Shard,
    Sums,
    existing_text,
    line_number,
    span,
)
from mlxrun.errors import DataError, did_you_mean

if TYPE_CHECKING:
    import numpy as np

HEAD_BYTES = 1 << 20  # the header record and the lines the delimiter is sniffed from
MAX_RECORD_BYTES = 64 << 20  # a longer record is taken for broken quoting: memory stays bounded
QUOTE = b'"'

# Error kinds, as csv_column reports them (native/csvparse.c).
NOT_A_NUMBER, INT_OVERFLOW, STRAY_QUOTE, SHORT_RECORD, MISSING, OPEN_QUOTE = 1, 2, 3, 4, 5, 6


@dataclass(frozen=True)
class Layout:
    """What every rank reads from the head of the file, the same way."""

    path: Path
    delimiter: bytes
    header: list[str]
    data_start: int  # the first byte after the header record
    size: int


def delimiter_of(data: Data) -> str | None:
    """The delimiter asked for (a name such as "tab" allowed), or None to sniff it."""
    if data.delimiter is not None:
        return DELIMITER_NAMES.get(data.delimiter, data.delimiter)
    return "\t" if data.format == "tsv" else None


def layout(data: Data) -> Layout:
    return _layout(data, *_head(data))


def _head(data: Data) -> tuple[Path, bytes, int]:
    """The file, its first HEAD_BYTES and its size (as the job knows it)."""
    path = existing_text(data)
    with path.open("rb") as f:
        head = f.read(HEAD_BYTES)
        size = data.size if data.size is not None else f.seek(0, 2)
    return path, head[:size], size  # bytes appended since the job started are not the job's


def _layout(data: Data, path: Path, head: bytes, size: int) -> Layout:
    skip = len(BOM) if head.startswith(BOM) else 0
    given = delimiter_of(data)
    delimiter = given.encode() if given is not None else sniff(head[skip:])
    parsed = parse_record(head, skip, delimiter, final=len(head) == size)
    if parsed is None:
        raise DataError(f"{path}: the header record is longer than {HEAD_BYTES} bytes")
    fields, end = parsed
    header = [content.decode(errors="replace").strip() for _, content, _ in fields]
    return Layout(path, delimiter, header, end, size)


def _outside_quotes(line: bytes) -> bytes:
    return b"".join(line.split(QUOTE)[::2])


def sniff(head: bytes) -> bytes:
    """The delimiter of a file's first lines: among `,` `;` tab `|`, the one found most
    often in the header, preferring one that the first data line holds as often; `,` if
    none is found (a single column)."""
    lines = head.split(b"\n", 2)
    header = _outside_quotes(lines[0])
    first = _outside_quotes(lines[1]) if len(lines) > 2 else None
    best, best_score = b",", (False, 0)
    for d in (c.encode() for c in SNIFFED):
        n = header.count(d)
        score = (first is not None and first.count(d) == n, n)
        if n and score > best_score:
            best, best_score = d, score
    return best


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
        hint = did_you_mean(column, tuple(header))
        raise DataError(f'{path}: no column "{column}"{hint}; columns: {", ".join(header)}')
    return header.index(column)


def check_csv(data: Data) -> Data:
    """Fails on what can be seen from mlxrun's side; returns the data with its delimiter,
    and whether the records in its first MiB (the head the layout read) hold a quoted
    newline."""
    path, head, size = _head(data)
    lay = _layout(data, path, head, size)
    column_index(lay.path, lay.header, data.column)
    quoted = quoted_newline(head[lay.data_start :])
    return replace(data, delimiter=lay.delimiter.decode(), quoted_newlines=quoted)


def quoted_newline(records: bytes) -> bool:
    """Whether a LF lies inside quotes in these bytes (which start at a record): a file of
    multi-line fields makes most guessed rank starts wrong, and each wrong guess costs a
    second read, so its ranks count quotes first."""
    return any(b"\n" in inside for inside in records.split(QUOTE)[1::2])


# -- the Python tokenizer: the fallback, and where an error is located ------------------

Field = tuple[int, bytes, bool]  # where it starts (its quote, if any), content, has ""


_PLAIN: dict[bytes, re.Pattern[bytes]] = {}  # an unquoted field, by delimiter


class BadRecord(Exception):
    def __init__(self, kind: int, offset: int) -> None:
        self.kind, self.offset = kind, offset


def parse_record(
    buf: bytes, p: int, delimiter: bytes, final: bool
) -> tuple[list[Field], int] | None:
    """The record at p (as csvparse.c's `record` reads it) and where the next one starts;
    None if buf holds it only in part (and is not final). Raises BadRecord."""
    if delimiter not in _PLAIN:
        _PLAIN[delimiter] = re.compile(rb'[^"\n' + re.escape(delimiter) + rb"]*")
    plain = _PLAIN[delimiter]
    end, fields = len(buf), []
    while True:
        start = p
        if buf.startswith(QUOTE, p):
            closing = _closing_quote(buf, p + 1, final)
            if closing is None:
                return None
            if closing < 0:
                raise BadRecord(OPEN_QUOTE, start)
            content = buf[p + 1 : closing]
            escaped = b'""' in content
            p = closing + 1
            if buf.startswith(b"\r", p):
                if p + 1 == end and not final:
                    return None
                if buf.startswith(b"\n", p + 1):
                    p += 1
            if p < end and buf[p : p + 1] not in (delimiter, b"\n"):
                raise BadRecord(STRAY_QUOTE, start)
            fields.append((start, content.replace(b'""', QUOTE), escaped))
        else:
            m = plain.match(buf, p)
            assert m is not None  # matches the empty field too
            p = m.end()
            if buf.startswith(QUOTE, p):
                raise BadRecord(STRAY_QUOTE, start)
            if p == end and not final:
                return None
            content = m.group(0)
            if content.endswith(b"\r") and (p == end or buf.startswith(b"\n", p)):
                content = content[:-1]
            fields.append((start, content, False))
        if p == end:
            return fields, p
        if buf.startswith(b"\n", p):
            return fields, p + 1
        p += 1  # the delimiter


def _closing_quote(buf: bytes, p: int, final: bool) -> int | None:
    """Where the quoted field whose content starts at p closes; -1 if never (final), None
    if buf ends before it is known. Scanned as csvparse.c scans it: a regular expression
    could backtrack over a "" and close the field early."""
    while True:
        q = buf.find(QUOTE, p)
        if q < 0:
            return None if not final else -1
        if q + 1 == len(buf) and not final:
            return None  # the first quote of a ""?
        if buf.startswith(QUOTE, q + 1):
            p = q + 2
            continue
        return q


def _is_blank(buf: bytes, p: int) -> int:
    """The length of the blank line at p (LF or CRLF), else 0."""
    if buf.startswith(b"\n", p):
        return 1
    return 2 if buf.startswith(b"\r\n", p) else 0


def _values_in_python(
    buf: bytes,
    stop: int,
    final: bool,
    delimiter: bytes,
    index: int,
    nulls: tuple[bytes, ...],
    skip_missing: bool,
) -> tuple[list[bytes], int, int, bool]:
    """(tokens, missing, next, done) of the records in buf, as csv_column reads them."""
    tokens: list[bytes] = []
    missing, p, end = 0, 0, len(buf)
    while True:
        if p >= stop or (p == end and final):
            return tokens, missing, p, True
        if p == end:
            return tokens, missing, p, False
        blank = _is_blank(buf, p)
        if blank:
            p += blank
            continue
        if buf.startswith(b"\r", p) and p + 1 == end and not final:
            return tokens, missing, p, False
        parsed = parse_record(buf, p, delimiter, final)
        if parsed is None:
            return tokens, missing, p, False
        fields, after = parsed
        if index >= len(fields):
            raise BadRecord(SHORT_RECORD, p)
        start, content, escaped = fields[index]
        token = content.strip(b" \t")
        if not escaped and token in nulls:
            if not skip_missing:
                raise BadRecord(MISSING, start)
            missing += 1
        elif escaped or not NUMBER.fullmatch(token):
            raise BadRecord(NOT_A_NUMBER, start)
        else:
            tokens.append(token)
        p = after


# -- a rank's records ------------------------------------------------------------------


def count_quotes(f: MappedFile, start: int, stop: int) -> int:
    total, window = 0, 8 * CHUNK_BYTES
    for pos in range(start, stop, window):
        mapped, skip = f.map(pos, min(window, stop - pos))
        view = memoryview(mapped)[skip:]
        total += native.ext.count_byte(view, QUOTE) if native.ext else bytes(view).count(QUOTE)
        del view
        mapped.close()
    return total


def record_start(f: MappedFile, lay: Layout, offset: int, quotes: Quotes = None) -> int:
    """The first record start at or after `offset` (see the module's docstring), given the
    number of quotes in [data_start, offset) if known (else they are counted), or (GUESS)
    the byte after the first LF at or after offset - 1, for the caller to confirm."""
    if offset <= lay.data_start:
        return lay.data_start
    pos = offset - 1
    if quotes == GUESS:
        return f.after_newline(pos, lay.size)
    if quotes is None:
        odd = count_quotes(f, lay.data_start, pos) % 2
    else:  # the count up to `offset`, less the byte at pos
        mapped, skip = f.map(pos, 1)
        odd = (quotes - (mapped[skip : skip + 1] == QUOTE)) % 2
        mapped.close()
    while pos < lay.size:
        mapped, skip = f.map(pos, min(CHUNK_BYTES, lay.size - pos))
        block = bytes(memoryview(mapped)[skip:])
        mapped.close()
        i = 0
        while (nl := block.find(b"\n", i)) >= 0:
            odd = (odd + block.count(QUOTE, i, nl)) % 2
            if not odd:
                return pos + nl + 1
            i = nl + 1
        odd = (odd + block.count(QUOTE, i)) % 2
        pos += len(block)
    return lay.size


@dataclass
class _Reader:
    """One rank's records, a chunk at a time, by C or by Python."""

    data: Data
    lay: Layout
    index: int
    start: int
    hi: int

    def error(self, kind: int, where: int, buf: bytes | memoryview, chunk_at: int) -> DataError:
        path, name = self.lay.path, self.lay.header[self.index]
        line = line_number(path, chunk_at + where)
        if kind == SHORT_RECORD:
            parsed = parse_record(bytes(buf), where, self.lay.delimiter, final=True)
            n = len(parsed[0]) if parsed else 0
            return DataError(
                f"{path}:{line}: the record has {n} field{'s' * (n != 1)}; "
                f"column {name} is field {self.index + 1}"
            )
        if kind == STRAY_QUOTE:
            return DataError(
                f"{path}:{line}: a stray quote in a field; RFC 4180 wants the whole field "
                'quoted and a quote inside it doubled ("a ""b"" c")'
            )
        if kind == OPEN_QUOTE:
            return DataError(f"{path}:{line}: a quoted field opens here and never closes")
        shown = self.field_at(buf, where)
        if kind == MISSING:
            return DataError(
                f'{path}:{line}: missing value "{shown}" in column {name} (use --missing skip)'
            )
        if kind == INT_OVERFLOW:
            return DataError(
                f'{path}:{line}: integer out of the int64 range: "{shown}" in column {name} '
                '(set dtype = "float64" to sum it as a float)'
            )
        if self.data.dtype == "int64" and NUMBER.fullmatch(shown.strip().encode()):
            return DataError(
                f'{path}:{line}: not an integer: "{shown}" in column {name} (dtype is int64)'
            )
        return DataError(f'{path}:{line}: not a number: "{shown}" in column {name}')

    def field_at(self, buf: bytes | memoryview, where: int) -> str:
        parsed = parse_record(bytes(buf[where : where + HEAD_BYTES]), 0, self.lay.delimiter, True)
        content = parsed[0][0][1] if parsed else b""
        return content.decode(errors="replace")

    @property
    def nulls(self) -> tuple[bytes, ...]:
        return tuple(v.encode() for v in self.data.null_values)

    def windows(self) -> Generator[tuple[memoryview, int, bool], int | None, None]:
        """Mapped windows from the rank's first record: (view, offset, final). The caller
        sends back where its records stopped (None: done)."""
        with MappedFile(
            self.lay.path, self.lay.size, "shorter than when the job started (changed while read?)"
        ) as f:
            pos, want = self.start, CHUNK_BYTES
            while True:
                stop = min(pos + want, self.lay.size)
                mapped, skip = f.map(pos, stop - pos) if stop > pos else (None, 0)
                view = memoryview(mapped)[skip:] if mapped is not None else memoryview(b"")
                used = yield view, pos, stop == self.lay.size
                del view
                if used is None:
                    return
                if used == 0:  # a record longer than the window: a wider one, up to a bound
                    if want >= MAX_RECORD_BYTES:
                        raise DataError(
                            f"{self.lay.path}:{line_number(self.lay.path, pos)}: a record longer "
                            f"than {MAX_RECORD_BYTES >> 20} MiB (is the quoting broken?)"
                        )
                    want *= 2
                else:
                    pos, want = pos + used, CHUNK_BYTES

    def python_chunk(
        self, buf: bytes, pos: int, final: bool
    ) -> tuple[np.ndarray | None, int, int, bool]:
        """(values, missing, next, done) by the Python tokenizer; values None if none."""
        from mlxrun.data.text import parse_tokens

        try:
            tokens, missing, nxt, done = _values_in_python(
                buf, self.hi - pos, final, self.lay.delimiter, self.index, self.nulls,
                self.data.missing == "skip",
            )  # fmt: skip
        except BadRecord as e:
            raise self.error(e.kind, e.offset, buf, pos) from None
        all_int = all(INTEGER.fullmatch(t) for t in tokens)
        dtype = self.data.dtype
        if dtype in ("auto", "int64"):
            big = next((t for t in tokens if len(t) > 18 and beyond_int64(t)), None)
            if big is not None:
                raise self.error(INT_OVERFLOW, self._offset_of(buf, big), buf, pos)
        if dtype == "int64" and not all_int:
            bad = next(t for t in tokens if not INTEGER.fullmatch(t))
            raise self.error(NOT_A_NUMBER, self._offset_of(buf, bad), buf, pos)
        values = parse_tokens(tokens, dtype, all_int) if tokens else None
        return values, missing, nxt, done

    def _offset_of(self, buf: bytes, token: bytes) -> int:
        """Where the column's first field equal to `token` starts (for an error)."""
        p = 0
        while p < len(buf):
            blank = _is_blank(buf, p)
            if blank:
                p += blank
                continue
            parsed = parse_record(buf, p, self.lay.delimiter, True)
            assert parsed is not None
            fields, p = parsed
            start, content, _ = fields[self.index]
            if content.strip(b" \t") == token:
                return start
        return 0

    def c_chunk(self, view: memoryview, pos: int, final: bool, store: Any) -> tuple[Any, ...]:
        """csv_column's answer for one window (raising its errors as DataError)."""
        floats, ints = store if store is not None else (None, None)
        high, low = native.empty_bins(), native.empty_bins()
        out = native.ext.csv_column(
            view, self.hi - pos, final, self.lay.delimiter, self.index, self.nulls,
            self.data.missing == "skip", floats, ints, high, low,
        )  # fmt: skip
        kind, where = out[5], out[6]
        if kind == INT_OVERFLOW and self.data.dtype in ("float64", "float32"):
            return ()  # the Python path reads big integers as floats
        if kind:
            raise self.error(kind, where, view, pos)
        return (*out, high, low)


def quotes_in_share(data: Data, rank: int, np_: int) -> int:
    """The quotes in the rank's nominal share of the bytes. The ranks exchange these (one
    all_gather), so that each knows the quotes before its share without reading it:
    the sum over the ranks before it (`quotes_before` below)."""
    lay = layout(data)
    lo, hi = span(lay.size - lay.data_start, rank, np_)
    with MappedFile(lay.path, lay.size, "changed while read?") as f:
        return count_quotes(f, lay.data_start + lo, lay.data_start + hi)


def _reader(data: Data, rank: int, np_: int, quotes_before: Quotes) -> _Reader:
    lay = layout(data)
    index = column_index(lay.path, lay.header, data.column)
    lo, hi = span(lay.size - lay.data_start, rank, np_)
    with MappedFile(lay.path, lay.size, "changed while read?") as f:
        start = record_start(f, lay, lay.data_start + lo, quotes_before)
    return _Reader(data, lay, index, start, lay.data_start + hi)


def can_sum_csv(data: Data) -> bool:
    return data.format in ("csv", "tsv") and data.dtype == "auto" and native.ext is not None


T = TypeVar("T")


def _walk(
    reader: _Reader, take: Callable[[memoryview, int, bool], tuple[T, int, int, bool]]
) -> Shard[T]:
    """The rank's shard, a window at a time: `take(view, pos, final)` reads one window into
    (item, missing values, bytes used, done); the next window starts where it stopped."""
    shard: Shard[T]

    def chunks() -> Iterator[tuple[T, int]]:
        windows = reader.windows()
        view, pos, final = next(windows)
        while True:
            item, missing, nxt, done = take(view, pos, final)
            shard.missing += missing
            del view
            yield item, nxt
            if done:
                shard.bytes_total = pos + nxt - reader.start
                shard.first, shard.end = reader.start, pos + nxt
                windows.close()
                return
            view, pos, final = windows.send(nxt)

    shard = Shard(chunks(), max(reader.hi - reader.start, 0))
    return shard


def delimited_sums(data: Data, rank: int, np_: int, quotes_before: Quotes = None) -> Shard[Sums]:
    """The rank's records summed by csv_column as they are read: nothing stored."""
    reader = _reader(data, rank, np_, quotes_before)

    def take(view: memoryview, pos: int, final: bool) -> tuple[Sums, int, int, bool]:
        out = reader.c_chunk(view, pos, final, None)
        nxt, done, n, missing, all_int = out[:5]
        nan, pinf, ninf, ihigh, ilow, rounding, high, low = out[7:]
        int_sum = (ihigh << 64) + ilow
        sums = Sums(n, bool(all_int), nan, pinf, ninf, int_sum, rounding, high, low)
        return sums, missing, nxt, bool(done)

    return _walk(reader, take)


def delimited_shard(
    data: Data, rank: int, np_: int, quotes_before: Quotes = None
) -> Shard[np.ndarray]:
    """The rank's column values, a chunk at a time."""
    reader = _reader(data, rank, np_, quotes_before)

    def take(view: memoryview, pos: int, final: bool) -> tuple[np.ndarray, int, int, bool]:
        import numpy as np

        values, missing, nxt, done = _one_chunk(reader, view, pos, final)
        return (values if values is not None else np.zeros(0)), missing, nxt, done

    return _walk(reader, take)


def _one_chunk(
    reader: _Reader, view: memoryview, pos: int, final: bool
) -> tuple[np.ndarray | None, int, int, bool]:
    if native.ext is not None:
        from mlxrun.data.text import _Buffers

        floats, ints = _Buffers.fit(len(view))
        out = reader.c_chunk(view, pos, final, (floats, ints))
        if out:
            nxt, done, count, missing, all_int = out[:5]
            if reader.data.dtype == "int64" and not all_int:
                reader.python_chunk(bytes(view), pos, final)  # raises, naming the field
            return (
                _values(floats, ints, count, bool(all_int), reader.data.dtype),
                missing,
                nxt,
                done,
            )
    return reader.python_chunk(bytes(view), pos, final)


def _values(floats: Any, ints: Any, count: int, all_int: bool, dtype: str) -> np.ndarray | None:
    if count == 0:
        return None
    if all_int and dtype in ("auto", "int64"):
        return ints[:count].copy()  # type: ignore[no-any-return]
    values = floats[:count]
    if dtype == "float32":
        from mlxrun.data.text import as_float32

        return as_float32(values)
    return values.copy()  # type: ignore[no-any-return]
