"""Which reader serves a data source: the one place that knows every format. Readers do
not import this module.

Each reader is imported where it serves, so that imports follow what a job needs: the CLI,
which only checks the data, loads no reader of text (for csv/tsv it reads the header and
sniffs the delimiter, which every rank is then told); a job that only counts, sums and
averages plain text, csv or a float64 .npy (data.float64s) loads neither numpy nor the
array readers; numpy loads where numbers are stored in arrays or another array file's
header is read; pyarrow only for Parquet and Arrow files.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from mlxrun import native
from mlxrun.data.model import Data
from mlxrun.data.shards import Quotes, Shard, Sums, existing, existing_text
from mlxrun.errors import DataError

if TYPE_CHECKING:
    import numpy as np


def check_data(data: Data, deep: bool = True) -> Data:
    """Fails before any rank starts on what can be seen from here (a missing file, a
    compressed one, a bad column, an array file that is not one). Returns the data as the
    ranks should read it: with a csv file's sniffed delimiter, so that all agree. Without
    `deep`, a Parquet or Arrow file's column is left to the ranks, which report a bad one
    as it would be reported here: its check needs pyarrow, 0.2 s to import."""
    if data.path is None:
        return data
    if not data.path.is_file():
        raise DataError(f"{data.path}: no such file")
    if data.format == "text":
        existing_text(data)
        return replace(data, size=data.path.stat().st_size)
    if data.format in ("csv", "tsv"):
        from mlxrun.data import delimited

        checked = delimited.check_csv(data)
        return replace(checked, size=data.path.stat().st_size)
    if data.format in ("parquet", "arrow"):
        from mlxrun.data import columnar

        columnar.check_table(data, deep)
        return replace(data, size=data.path.stat().st_size)  # for the hosts' copies' check
    if data.format == "npy":
        from mlxrun.data import float64s

        if float64s.plain_float64(existing(data)) is not None:
            return replace(data, size=data.path.stat().st_size)
    from mlxrun.data import arrays

    arrays.array_view(data)
    return replace(data, size=data.path.stat().st_size)


def needs_quote_counts(data: Data) -> bool:
    """Whether the ranks should exchange quote counts (`quote_count`) before reading."""
    return data.format in ("csv", "tsv")


def quote_count(data: Data, rank: int, np_: int) -> int:
    """A csv/tsv rank's quotes in its nominal share of the bytes; the sum over the ranks
    before it is the `quotes_before` of its shard (`mlxrun.data.delimited`)."""
    from mlxrun.data import delimited

    return delimited.quotes_in_share(data, rank, np_)


def sums_shard(data: Data, rank: int, np_: int, quotes_before: Quotes = None) -> Shard[Sums] | None:
    """The rank's chunks already summed, for jobs that need only counts, sums and means,
    where the C kernels can serve the data; None where the values must be read first.
    `quotes_before`: csv/tsv only, see quote_count (None: the rank counts them itself;
    GUESS: it guesses its first record, and its shard's `first` and `end` let the ranks
    confirm the guess, see mlxrun.data.delimited)."""
    if data.generate is not None or data.format in ("parquet", "arrow"):
        return None
    if data.format in ("csv", "tsv"):
        from mlxrun.data import delimited

        if not delimited.can_sum_csv(data):
            return None
        return delimited.delimited_sums(data, rank, np_, quotes_before)
    if data.format == "text":
        from mlxrun.data import text

        return text.text_sums(data, rank, np_) if text.can_sum_text(data) else None
    if data.format == "npy" and native.ext is not None:
        from mlxrun.data import float64s

        path = existing(data)
        plain = float64s.plain_float64(path)
        if plain is not None:
            return float64s.float64_sums(path, *plain, rank, np_)
    from mlxrun.data import arrays

    return arrays.float_sums(arrays.array_view(data), rank, np_)


def open_shard(data: Data, rank: int, np_: int, quotes_before: Quotes = None) -> Shard[np.ndarray]:
    """The chunks of numbers that rank `rank` of `np_` reduces (`quotes_before`: see
    sums_shard)."""
    if data.generate is not None:
        from mlxrun.data.generated import generated_shard

        return generated_shard(data, rank, np_)
    existing(data)  # a missing file is named before any format is tried
    if data.format == "text":
        from mlxrun.data.text import text_shard

        return text_shard(data, rank, np_)
    if data.format in ("csv", "tsv"):
        from mlxrun.data.delimited import delimited_shard

        return delimited_shard(data, rank, np_, quotes_before)
    if data.format in ("parquet", "arrow"):
        from mlxrun.data.columnar import table_shard

        return table_shard(data, rank, np_)
    from mlxrun.data import arrays

    return arrays.array_shard(arrays.array_view(data), rank, np_)
