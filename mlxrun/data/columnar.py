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

import importlib.util
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


def check_file(data: Data) -> Path:
    """What can be checked without importing pyarrow (0.2 s, which mlxrun spends on the
    ranks, not before they start): the file is there, looks like its format, and pyarrow
    is installed. The column and its type are checked where the file is read (Table)."""
    path = existing(data)
    try:
        absent = importlib.util.find_spec("pyarrow") is None
    except (ImportError, ValueError):  # a broken or blocked install
        absent = True
    if absent:
        _pyarrow(path, data.format)  # names the extra
    with path.open("rb") as f:
        head = f.read(8)
    if not head.startswith(MAGIC[data.format]):
        what = "a Parquet file" if data.format == "parquet" else "an Arrow IPC file"
        hint = " (Feather v1 and IPC streams are not read: write Feather v2)"
        raise DataError(f"{path}: not {what}{hint if data.format == 'arrow' else ''}")
    return path


class Table:
    """A file's groups (row groups or record batches) and the chosen column's type."""

    def __init__(self, data: Data) -> None:
        self.path = path = check_file(data)
        self.data = data
        pa = _pyarrow(path, data.format)
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


def check_table(data: Data, deep: bool = True) -> None:
    """The file's checks before a job (see check_file), and with `deep` its column's."""
    if deep:
        Table(data)
    else:
        check_file(data)


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

    if pa.types.is_dictionary(piece.type):
        piece = piece.dictionary_decode()
    t = piece.type
    if pa.types.is_decimal(t):
        decimals = piece.to_pylist()
        present = [v for v in decimals if v is not None]
        _nulls_allowed(table, first_row, decimals.index(None) if piece.null_count else None)
        return _decimals(table, t.scale, present), piece.null_count
    values, valid = _primitive(piece)
    nulls = piece.null_count
    if valid is not None:
        _nulls_allowed(table, first_row, int(np.argmin(valid)))
        values = values[valid]
    if t.id == pa.uint64().id and len(values) and int(values.max()) >= 2**63:
        raise DataError(
            f"{table.path}: column {table.name} holds uint64 values beyond int64, which "
            "mlxrun does not sum"
        )
    dtype = table.data.dtype
    if values.dtype.kind == "f":
        if dtype == "int64":
            raise DataError(
                f"{table.path}: column {table.name} holds {t}, not integers (dtype is int64)"
            )
        values = values.astype(np.float32 if dtype == "float32" else np.float64)
        return values.astype(np.float64, copy=False), nulls
    if dtype in ("float64", "float32"):
        values = values.astype(np.float64).astype(dtype).astype(np.float64)
        return values, nulls
    return values.astype(np.int64), nulls


def _primitive(piece: Any) -> tuple[np.ndarray, np.ndarray | None]:
    """The values of an Arrow array of ints or floats as numpy sees its buffers, and where
    it has nulls, which values are valid. Arrow's own null handling would load
    pyarrow.compute: 0.1 s more of every rank's start."""
    import numpy as np

    validity, data = piece.buffers()[:2]
    start, n = piece.offset, len(piece)
    dtype = np.dtype(piece.type.to_pandas_dtype())
    values = np.frombuffer(data, dtype=dtype, count=start + n)[start:]
    if not piece.null_count:
        return values, None
    bits = np.unpackbits(np.frombuffer(validity, dtype=np.uint8), bitorder="little")
    return values, bits[start : start + n].astype(bool)


def _nulls_allowed(table: Table, first_row: int, first_null: int | None) -> None:
    """Nulls are skipped only with missing = "skip"; else the first one is an error."""
    if first_null is not None and table.data.missing != "skip":
        raise DataError(
            f"{table.path}: row {first_row + first_null + 1}: missing value (null) in column "
            f"{table.name} (use --missing skip)"
        )


def _decimals(table: Table, scale: int, values: list[Any]) -> np.ndarray:
    """Decimals as exact int64 (scale 0) or as float64, each correctly rounded (Python's
    float() of a Decimal is)."""
    import numpy as np

    if scale <= 0 and table.data.dtype == "auto":
        ints = [int(v) for v in values]
        big = next((v for v in ints if not -(2**63) <= v < 2**63), None)
        if big is not None:
            raise DataError(
                f'{table.path}: integer out of the int64 range: "{big}" in column '
                f'{table.name} (set dtype = "float64" to sum it as a float)'
            )
        return np.array(ints, dtype=np.int64)
    return np.array([float(v) for v in values], dtype=np.float64)
