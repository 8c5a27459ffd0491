"""Single-process Python answers that mlxrun's distributed results must match."""

from __future__ import annotations

import csv
import math
import statistics
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

NULLS = ("", "NA", "N/A", "null", "NULL")  # mlxrun's default null_values


def read_values(
    path: Path, column: str | int | None = None, missing: str = "error"
) -> list[int | float]:
    """The numbers of a data file, read the slow and obvious way (missing values left out
    if `missing` is "skip")."""
    suffix = path.suffix
    if suffix in (".csv", ".tsv"):
        with path.open(encoding="utf-8-sig", newline="") as f:
            rows = list(csv.reader(f, delimiter="\t" if suffix == ".tsv" else ","))
        index = column if isinstance(column, int) else rows[0].index(str(column))
        fields = [row[index].strip() for row in rows[1:] if row]
        return [_number(v) for v in fields if not (missing == "skip" and v in NULLS)]
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        return [v for v in pq.read_table(path)[column].to_pylist() if v is not None]
    if suffix == ".npy":
        return np.load(path).ravel().tolist()
    if suffix == ".npz":
        return np.load(path)[column].ravel().tolist()
    values: list[int | float] = []
    for line in path.read_text().splitlines():
        values += [_number(t) for t in line.split("#")[0].replace(",", " ").split()]
    return values


def _number(token: str) -> int | float:
    try:
        return int(token)
    except ValueError:
        return float(token)


def expected(values: list[int | float], op: str) -> Any:
    floats = [float(v) for v in values]
    ints_only = all(isinstance(v, int) for v in values)
    if op == "count":
        return len(values)
    if op == "sum":
        return sum(values) if ints_only else _fsum(floats)
    if not values:
        return None
    if op == "mean":
        if ints_only:
            return float(Fraction(sum(values), len(values)))
        return float(sum(Fraction(v) for v in floats) / len(values))
    if op in ("min", "max"):
        best = min(values) if op == "min" else max(values)
        return best if ints_only else float(best)
    if op in ("argmin", "argmax"):
        best = min(values) if op == "argmin" else max(values)
        return values.index(best)
    if op in ("var", "std"):
        var = _pvariance(floats)
        return var if op == "var" else math.sqrt(var)
    if op == "prod":
        return math.prod(floats)
    raise ValueError(op)


def _pvariance(floats: list[float]) -> float:
    """statistics.pvariance; inf where the variance itself passes the float64 maximum."""
    if any(math.isnan(v) or math.isinf(v) for v in floats):
        return math.nan
    try:
        return statistics.pvariance(floats)
    except OverflowError:
        return math.inf


def _fsum(floats: list[float]) -> float:
    try:
        return math.fsum(floats)
    except OverflowError:
        return float(sum(Fraction(v) for v in floats))


SPECIAL = {"inf": math.inf, "-inf": -math.inf, "nan": math.nan}


def close(got: Any, want: Any, op: str) -> bool:
    """Exact for every op but var, std and prod (1e-12 relative); JSON's "inf", "-inf" and
    "nan" strings stand for those floats."""
    if isinstance(got, str):
        got = SPECIAL[got]
    if op in ("var", "std", "prod") and want is not None:
        if math.isnan(want) or math.isinf(want):
            return got == want or (math.isnan(got) and math.isnan(want))
        return math.isclose(got, want, rel_tol=1e-12, abs_tol=1e-300)
    return bool(got == want and type(got) is type(want))
