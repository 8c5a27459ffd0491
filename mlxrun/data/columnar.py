"""Parquet and Arrow IPC (Feather v2) files, through pyarrow (the `parquet` extra).

A rank reads whole row groups (Parquet) or record batches (IPC), only the chosen column,
one at a time, so memory stays flat as the file grows. Groups go to ranks by rows: a group
belongs to the rank whose share of the rows (`span`) holds the group's middle row, which
gives every group to one rank, in order, and every rank its share within about a group.
Integers (any width; uint64 where it fits int64), floats (widened exactly to float64),
decimals (scale 0: exact integers; else each value correctly rounded to float64) and
dictionary-encoded columns of those are read; nulls follow `missing`. A NaN is a value.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlxrun.data.model import Data
from mlxrun.data.shards import Shard, existing, span
from mlxrun.errors import DataError, did_you_mean

if TYPE_CHECKING:
    import numpy as np

NEEDS = "pip install 'mlxrun[parquet]' (or pyarrow)"
MAGIC = {"parquet": (b"PAR1",), "arrow": (b"ARROW1",)}


def _pyarrow(path: Path, fmt: str) -> Any:
    try:
        import pyarrow as pa
    except ImportError:
        what = "Parquet" if fmt == "parquet" else "Arrow IPC (Feather)"
        raise DataError(f"{path}: reading {what} files needs pyarrow: {NEEDS}") from None
    return pa


class Table:
    """A file's groups (row groups or record batches) and the chosen column's type."""

    def __init__(self, data: Data) -> None:
        self.path = path = existing(data)
        self.data = data
        pa = _pyarrow(path, data.format)
        with path.open("rb") as f:
            head = f.read(8)
        if not head.startswith(MAGIC[data.format]):
            what = "a Parquet file" if data.format == "parquet" else "an Arrow IPC file"
            hint = " (Feather v1 and IPC streams are not read: write Feather v2)"
            raise DataError(f"{path}: not {what}{hint if data.format == 'arrow' else ''}")
        try:
            if data.format == "parquet":
                import pyarrow.parquet as pq

                self.file: Any = pq.ParquetFile(path)
                schema = self.file.schema_arrow
                meta = self.file.metadata
                self.name = _column(path, list(schema.names), data.column)
                index = schema.get_field_index(self.name)
                groups = [meta.row_group(g) for g in range(meta.num_row_groups)]
                self.rows = [g.num_rows for g in groups]
                self.sizes = [g.column(index).total_uncompressed_size for g in groups]
            else:
                self.file = pa.ipc.open_file(pa.memory_map(str(path), "r"))
                schema = self.file.schema
                self.name = _column(path, list(schema.names), data.column)
                batches = [self.file.get_batch(b) for b in range(self.file.num_record_batches)]
                self.rows = [b.num_rows for b in batches]
                self.sizes = [b.column(self.name).nbytes for b in batches]
        except (pa.ArrowException, OSError) as e:
            raise DataError(f"{path}: cannot be read ({e})") from None
        self.type = schema.field(self.name).type
        _check_type(path, self.name, self.type, pa)

    def groups(self, rank: int, np_: int) -> list[int]:
        """The groups whose middle row lies in the rank's share of the rows."""
        lo, hi = span(2 * sum(self.rows), rank, np_)  # in half rows: middles are exact
        first, mine = 0, []
        for g, n in enumerate(self.rows):
            if n and lo <= 2 * first + n < hi:
                mine.append(g)
            first += n
        return mine

    def read(self, group: int) -> list[Any]:
        """The column's arrays in one group."""
        if self.data.format == "parquet":
            return list(self.file.read_row_group(group, columns=[self.name]).column(0).chunks)
        return [self.file.get_batch(group).column(self.name)]


def _column(path: Path, names: list[str], column: str | int | None) -> str:
    if column is None:
        if len(names) == 1:
            return names[0]
        raise DataError(
            f"{path}: has columns {', '.join(names)}: choose one with --column or data.column"
        )
    if isinstance(column, int) or column.isdigit():
        index = int(column)
        if not 0 <= index < len(names):
            raise DataError(f"{path}: no column {index} (it has {len(names)}: {', '.join(names)})")
        return names[index]
    if column not in names:
        hint = did_you_mean(column, tuple(names))
        raise DataError(f'{path}: no column "{column}"{hint}; columns: {", ".join(names)}')
    return column


def _check_type(path: Path, name: str, kind: Any, pa: Any) -> None:
    t = pa.types
    value = kind.value_type if t.is_dictionary(kind) else kind
    if not (t.is_integer(value) or t.is_floating(value) or t.is_decimal(value)):
        raise DataError(f"{path}: column {name} holds {kind}, not numbers")


def check_table(data: Data) -> None:
    Table(data)


def table_shard(data: Data, rank: int, np_: int) -> Shard[np.ndarray]:
    table = Table(data)
    groups = table.groups(rank, np_)
    shard: Shard[np.ndarray]

    def chunks() -> Iterator[tuple[np.ndarray, int]]:
        row = sum(table.rows[: groups[0]]) if groups else 0
        for g in groups:
            for piece in table.read(g):
                values, missing = _numbers(table, piece, row)
                shard.missing += missing
                row += len(piece)
                yield values, table.sizes[g] * len(piece) // max(table.rows[g], 1)

    shard = Shard(chunks(), sum(table.sizes[g] for g in groups))
    return shard


def _numbers(table: Table, piece: Any, first_row: int) -> tuple[np.ndarray, int]:
    """A column chunk as int64 or float64 numbers, and how many nulls were skipped."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    if pa.types.is_dictionary(piece.type):
        piece = piece.dictionary_decode()
    nulls = piece.null_count
    if nulls:
        if table.data.missing != "skip":
            row = first_row + int(pc.index(pc.is_null(piece), True).as_py()) + 1
            raise DataError(
                f"{table.path}: row {row}: missing value (null) in column {table.name} "
                "(use --missing skip)"
            )
        piece = piece.drop_null()
    t = piece.type
    if pa.types.is_decimal(t):
        return _decimals(table, piece), nulls
    if pa.types.is_floating(t):
        if table.data.dtype == "int64":
            raise DataError(
                f"{table.path}: column {table.name} holds {t}, not integers (dtype is int64)"
            )
        floats = piece.cast(pa.float64()).to_numpy(zero_copy_only=False)
        if table.data.dtype == "float32":
            floats = floats.astype(np.float32).astype(np.float64)
        return floats, nulls
    if t == pa.uint64() and len(piece) and pc.max(piece).as_py() >= 2**63:
        raise DataError(
            f"{table.path}: column {table.name} holds uint64 values beyond int64, which "
            "mlxrun does not sum"
        )
    values = piece.cast(pa.int64()).to_numpy(zero_copy_only=False)
    if table.data.dtype in ("float64", "float32"):
        values = values.astype(np.float64)
        if table.data.dtype == "float32":
            values = values.astype(np.float32).astype(np.float64)
    return values, nulls


def _decimals(table: Table, piece: Any) -> np.ndarray:
    """Decimals as exact int64 (scale 0) or as float64, each correctly rounded (Python's
    float() of a Decimal is)."""
    import numpy as np

    values = piece.to_pylist()
    if piece.type.scale <= 0 and table.data.dtype == "auto":
        ints = [int(v) for v in values]
        big = next((v for v in ints if not -(2**63) <= v < 2**63), None)
        if big is not None:
            raise DataError(
                f'{table.path}: integer out of the int64 range: "{big}" in column '
                f'{table.name} (set dtype = "float64" to sum it as a float)'
            )
        return np.array(ints, dtype=np.int64)
    return np.array([float(v) for v in values], dtype=np.float64)
