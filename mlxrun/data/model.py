"""The data a reduction reads, as every rank is told it: a file and how to read it, or a
generator. Standard library only: every rank imports it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

FORMATS = ("text", "csv", "tsv", "npy", "npz", "safetensors", "parquet", "arrow")
DTYPES = ("auto", "int64", "float64", "float32")
GENERATORS = ("range", "random")
DISTRIBUTIONS = ("normal", "uniform", "integers")
EXTENSIONS = {
    ".txt": "text",
    ".dat": "text",
    ".csv": "csv",
    ".tsv": "tsv",
    ".npy": "npy",
    ".npz": "npz",
    ".safetensors": "safetensors",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".arrow": "arrow",
    ".feather": "arrow",
    ".ipc": "arrow",
}
TABLES = ("csv", "tsv", "parquet", "arrow")  # formats with columns and missing values
MISSING = ("error", "skip")
# Where a job's file is on several machines: one file every host sees the same (shared,
# each rank reads its own part of it), or a file of its own on each host (per-host: the
# ranks of a host split that host's file, and the result combines all hosts).
PLACEMENTS = ("shared", "per-host")
# Fields that mean "no value" by default: polars' and R's usual spellings, and the empty
# field. "NaN" is not one of them: it is the float NaN, as Python, numpy and polars read it
# (pandas counts it missing: add "NaN" to null_values for that).
DEFAULT_NULLS = ("", "NA", "N/A", "null", "NULL")
MAX_NULLS = 64  # native/csvparse.c compares a field with each
SNIFFED = (",", ";", "\t", "|")  # the delimiters tried when none is given, in this order
DELIMITER_NAMES = {"tab": "\t", "\\t": "\t", "comma": ",", "semicolon": ";", "pipe": "|"}


def delimiter_problem(delimiter: str) -> str | None:
    """What is wrong with a delimiter as given (a name such as "tab" allowed), or None."""
    d = DELIMITER_NAMES.get(delimiter, delimiter)
    if len(d) != 1 or d in '"\r\n' or not d.isascii():
        return 'must be one ASCII character other than a quote or a newline, or "tab"'
    return None


@dataclass(frozen=True)
class Generate:
    kind: str
    n: int
    seed: int = 0
    distribution: str = "normal"
    start: int = 1  # range: start, start + 1, ...


@dataclass(frozen=True)
class Data:
    path: Path | None
    format: str
    column: str | int | None = None
    dtype: str = "auto"
    generate: Generate | None = None
    delimiter: str | None = None  # csv/tsv: one character; None: sniffed (csv), tab (tsv)
    missing: str = "error"  # a missing value is an error, or skipped and counted
    null_values: tuple[str, ...] = DEFAULT_NULLS
    # A text file's size when the job started, set by mlxrun for every rank: each rank
    # reads its part of those bytes, even if the file grows while the job runs.
    size: int | None = None
    placement: str = "shared"
    # csv/tsv: whether a quoted field in the file's first MiB holds a newline (set by
    # mlxrun): ranks then count quotes before they read rather than guess (delimited.py).
    quoted_newlines: bool = False

    def describe(self) -> str:
        if self.generate is not None:
            g = self.generate
            return f"generated {g.kind} (n={g.n}, seed={g.seed})"
        return str(self.path)
