"""csv and tsv files: a header row, then one record per line; one column is reduced.

Fields are split in Python: correct where no field is quoted, and far slower than text.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from mlxrun.data.locate import bad_field
from mlxrun.data.model import Data
from mlxrun.data.shards import Shard, existing, line_range, read_lines
from mlxrun.data.text import parse_tokens
from mlxrun.errors import DataError, did_you_mean

if TYPE_CHECKING:
    import numpy as np


def delimiter_of(data: Data) -> bytes:
    return b"\t" if data.format == "tsv" else b","


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
        hint = did_you_mean(column, tuple(header))
        raise DataError(f'{path}: no column "{column}"{hint}; columns: {", ".join(header)}')
    return header.index(column)


def delimited_shard(data: Data, rank: int, np_: int) -> Shard[np.ndarray]:
    path = existing(data)
    delimiter = delimiter_of(data)
    index = column_index(path, csv_header(path, delimiter), data.column)
    with path.open("rb") as f:
        header_bytes = len(f.readline())
    start, end = line_range(path, rank, np_, skip=header_bytes)

    def field(line: bytes) -> bytes:
        parts = line.rstrip(b"\r").split(delimiter)
        return parts[index].strip().strip(b'"') if index < len(parts) else b""

    def chunks() -> Iterator[tuple[np.ndarray, int]]:
        for view, offset in read_lines(path, start, end):
            chunk = bytes(view)
            fields = [field(line) for line in chunk.split(b"\n") if line.strip()]
            all_int = all(f.lstrip(b"+-").isdigit() for f in fields)
            try:
                yield parse_tokens(fields, data.dtype, all_int), len(chunk)
            except (ValueError, OverflowError):
                raise bad_field(path, offset, chunk, field, data.dtype) from None

    return Shard(chunks(), end - start)
