"""The job spec: a TOML file describing a distributed reduction, validated (`mlxrun run`,
`validate`, `init`, and the spec behind the shortcuts).

Every error names the file and either the line (TOML syntax) or the key path
(`job.toml: reduce -> ops[1]: unknown op "avg" (did you mean "mean"?)`).
Unknown keys are errors: a typo must never be silently ignored.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from mlxrun.data.model import (
    DEFAULT_NULLS,
    DISTRIBUTIONS,
    DTYPES,
    EXTENSIONS,
    FORMATS,
    GENERATORS,
    MAX_NULLS,
    MISSING,
    PLACEMENTS,
    TABLES,
    Data,
    Generate,
    delimiter_problem,
)
from mlxrun.errors import SpecError, UsageError, did_you_mean
from mlxrun.launch.job import BACKENDS, MAX_NP, check_settings
from mlxrun.reduce.ops import DEFAULT_BINS, MAX_BINS, OPS


@dataclass(frozen=True)
class JobSettings:
    name: str = "job"
    np: int | None = None  # None: one rank per host of the hostfile, else 2
    backend: str = "ring"
    hostfile: Path | None = None
    timeout: float | None = None
    stall_timeout: float | None = None
    listen_ip: str | None = None  # a command-line flag only: it is this machine's, not the job's
    python: str | None = None  # a command-line flag only, too


@dataclass(frozen=True)
class Spec:
    job: JobSettings
    data: Data
    ops: tuple[str, ...]
    bins: int = DEFAULT_BINS

    def override(
        self,
        np: int | None = None,
        backend: str | None = None,
        hostfile: Path | None = None,
        timeout: float | None = None,
        stall_timeout: float | None = None,
        listen_ip: str | None = None,
        python: str | None = None,
    ) -> Spec:
        """Command-line flags win over the file."""
        check_settings(np, backend, timeout, stall_timeout, listen_ip, python)
        job = self.job
        if np is not None:
            job = replace(job, np=np)
        if backend is not None:
            job = replace(job, backend=backend)
        if hostfile is not None:
            job = replace(job, hostfile=hostfile)
        if timeout is not None:
            job = replace(job, timeout=timeout)
        if stall_timeout is not None:
            job = replace(job, stall_timeout=stall_timeout)
        if listen_ip is not None:
            job = replace(job, listen_ip=listen_ip)
        if python is not None:
            job = replace(job, python=python)
        return replace(self, job=job)


class _Table:
    """A TOML table being read: takes keys, and complains with the key path."""

    def __init__(self, file: str, path: str, raw: Any, known: tuple[str, ...]) -> None:
        self.file, self.path = file, path
        if not isinstance(raw, dict):
            raise self.error("", "must be a table")
        self.raw = raw
        for key in raw:
            if key not in known:
                raise self.error(key, f"unknown key{did_you_mean(key, known, SYNONYMS)}")

    def where(self, key: str) -> str:
        return " -> ".join(p for p in (self.path, key) if p)

    def error(self, key: str, what: str) -> SpecError:
        where = self.where(key)
        return SpecError(f"{self.file}: {where}: {what}" if where else f"{self.file}: {what}")

    def get(self, key: str, kind: type | tuple[type, ...], default: Any = None) -> Any:
        value = self.raw.get(key, default)
        if value is not default and (
            not isinstance(value, kind) or isinstance(value, bool) != (kind is bool)
        ):
            raise self.error(
                key, f"must be {_kind_name(kind)}, not {type(value).__name__} {value!r}"
            )
        return value

    def choice(self, key: str, choices: tuple[str, ...], default: str | None = None) -> str | None:
        value = self.get(key, str, default)
        if value is not None and value not in choices:
            raise self.error(
                key,
                f'unknown value "{value}"{did_you_mean(value, choices, SYNONYMS)}; '
                f"one of: {', '.join(choices)}",
            )
        return value  # type: ignore[no-any-return]


def _kind_name(kind: type | tuple[type, ...]) -> str:
    names = {
        str: "a string",
        int: "an integer",
        float: "a number",
        bool: "true or false",
        list: "a list",
    }
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(names.get(k, k.__name__) for k in kinds)


# Names users reach for that are too far from ours for a spelling match.
SYNONYMS = {
    "avg": "mean", "average": "mean", "total": "sum", "minimum": "min", "maximum": "max",
    "stddev": "std", "stdev": "std", "variance": "var", "product": "prod", "hist": "histogram",
    "len": "count", "size": "count", "n": "count",
}  # fmt: skip


def _in_range(t: _Table, key: str, default: int, lo: int, hi: int) -> int:
    value: int = t.get(key, int, default)
    if value < lo:
        raise t.error(key, f"must be at least {lo} (got {value})")
    if value > hi:
        raise t.error(key, f"must be at most {hi} (got {value})")
    return value


def _job(file: str, raw: Any, base: Path) -> JobSettings:
    t = _Table(file, "job", raw, ("name", "np", "backend", "hostfile", "timeout", "stall_timeout"))
    np = t.get("np", int)
    if np is not None and np < 1:
        raise t.error("np", f"must be at least 1 (got {np})")
    if np is not None and np > MAX_NP:
        raise t.error("np", f"must be at most {MAX_NP} (got {np})")
    timeout = t.get("timeout", (int, float))
    if timeout is not None and not timeout > 0:
        raise t.error("timeout", f"must be positive (got {timeout})")
    stall = t.get("stall_timeout", (int, float))
    if stall is not None and not stall > 0:
        raise t.error("stall_timeout", f"must be positive (got {stall})")
    hostfile = t.get("hostfile", str)
    return JobSettings(
        name=t.get("name", str, "job"),
        np=np,
        backend=t.choice("backend", BACKENDS, "ring") or "ring",
        hostfile=base / hostfile if hostfile else None,
        timeout=float(timeout) if timeout is not None else None,
        stall_timeout=float(stall) if stall is not None else None,
    )


def _generate(file: str, raw: Any) -> Generate:
    t = _Table(file, "data -> generate", raw, ("kind", "n", "seed", "distribution", "start"))
    kind = t.choice("kind", GENERATORS)
    if kind is None:
        raise t.error("kind", f"missing: one of {', '.join(GENERATORS)}")
    n = t.get("n", int)
    if n is None or n < 0:
        raise t.error("n", "missing: how many values to generate (an integer >= 0)")
    if n >= 2**62:
        raise t.error("n", f"must be below 2**62 (got {n})")
    return Generate(
        kind=kind,
        n=n,
        seed=_in_range(t, "seed", 0, 0, 2**63 - 1),
        distribution=t.choice("distribution", DISTRIBUTIONS, "normal") or "normal",
        start=_in_range(t, "start", 1, -(2**62), 2**62),
    )


DATA_KEYS = (
    "path", "format", "column", "dtype", "delimiter", "missing", "null_values", "generate",
    "placement",
)  # fmt: skip


def _table_options(t: _Table, fmt: str | None) -> tuple[str | None, str, tuple[str, ...]]:
    """delimiter, missing and null_values, where the format has them."""
    delimiter = t.get("delimiter", str)
    if delimiter is not None:
        problem = delimiter_problem(delimiter)
        if problem is not None:
            raise t.error("delimiter", problem)
        if fmt not in ("csv", "tsv"):
            raise t.error("delimiter", "only csv and tsv files have a delimiter")
    missing = t.choice("missing", MISSING, "error") or "error"
    nulls = t.get("null_values", list)
    if nulls is not None:
        if len(nulls) > MAX_NULLS:
            raise t.error("null_values", f"at most {MAX_NULLS} values (got {len(nulls)})")
        for i, v in enumerate(nulls):
            if not isinstance(v, str):
                raise t.error(f"null_values[{i}]", f"must be a string, not {v!r}")
    for key in ("missing", "null_values"):
        if key in t.raw and fmt not in TABLES:
            raise t.error(key, f"only tables have missing values ({', '.join(TABLES)})")
    return delimiter, missing, tuple(nulls) if nulls is not None else DEFAULT_NULLS


def _data(file: str, raw: Any, base: Path) -> Data:
    t = _Table(file, "data", raw, DATA_KEYS)
    path = t.get("path", str)
    generate = _generate(file, t.raw["generate"]) if "generate" in t.raw else None
    if (path is None) == (generate is None):
        raise t.error("", 'give either path = "FILE" or a [data.generate] table')
    fmt = t.choice("format", FORMATS)
    if path is not None and fmt is None:
        fmt = EXTENSIONS.get(Path(path).suffix.lower())
        if fmt is None:
            raise t.error(
                "format",
                f'cannot tell the format of "{path}"; set format = one of {", ".join(FORMATS)}',
            )
    delimiter, missing, nulls = _table_options(t, fmt)
    return Data(
        path=base / path if path is not None else None,
        format=fmt or "generated",
        column=t.get("column", (str, int)),
        dtype=t.choice("dtype", DTYPES, "auto") or "auto",
        generate=generate,
        delimiter=delimiter,
        missing=missing,
        null_values=nulls,
        placement=t.choice("placement", PLACEMENTS, "shared") or "shared",
    )


def _ops(file: str, raw: Any) -> tuple[tuple[str, ...], int]:
    t = _Table(file, "reduce", raw, ("ops", "bins"))
    ops = t.get("ops", list, ["sum"])
    if not ops:
        raise t.error("ops", f"empty: name at least one of {', '.join(OPS)}")
    for i, op in enumerate(ops):
        if not isinstance(op, str) or op not in OPS:
            hint = did_you_mean(op, OPS, SYNONYMS) if isinstance(op, str) else ""
            raise t.error(f"ops[{i}]", f'unknown op "{op}"{hint}')
    bins = _in_range(t, "bins", DEFAULT_BINS, 1, MAX_BINS)
    return tuple(dict.fromkeys(ops)), bins


_LINE = re.compile(r"\(at line (\d+), column (\d+)\)")


def parse_spec(text: str, file: str, base: Path) -> Spec:
    # Imported here: only specs need it, and it is 10 ms of a start.
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - exercised on Python 3.10 only
        import tomli as tomllib
    try:
        raw = tomllib.loads(text)
    except RecursionError:  # 5000 nested arrays: the parser's own recursion
        raise SpecError(f"{file}: invalid TOML (nested too deeply)") from None
    except tomllib.TOMLDecodeError as e:
        m = _LINE.search(str(e))
        where = f"line {m.group(1)}, column {m.group(2)}: " if m else ""
        raise SpecError(f"{file}: {where}invalid TOML ({_LINE.sub('', str(e)).strip()})") from None
    except ValueError:  # an integer of over 4300 digits (Python's int limit)
        raise SpecError(f"{file}: invalid TOML (a number with too many digits)") from None
    top = _Table(file, "", raw, ("job", "data", "reduce"))
    if "data" not in raw:
        raise top.error("data", 'missing: a [data] table with path = "FILE" or [data.generate]')
    ops, bins = _ops(file, raw.get("reduce", {}))
    return Spec(
        job=_job(file, raw.get("job", {}), base),
        data=_data(file, raw["data"], base),
        ops=ops,
        bins=bins,
    )


def load_spec(path: Path) -> Spec:
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise UsageError(
            f"{path}: job spec not found (create one with `mlxrun init {path}`)"
        ) from None
    except (OSError, UnicodeDecodeError) as e:
        raise UsageError(f"{path}: cannot read job spec ({e})") from None
    return parse_spec(text, str(path), path.parent)


# Formats known by their first bytes, for a file whose name does not say.
MAGIC_FORMATS = ((b"PAR1", "parquet"), (b"ARROW1", "arrow"))


def format_of(path: Path) -> str:
    fmt = EXTENSIONS.get(path.suffix.lower())
    if fmt is not None:
        return fmt
    try:
        with path.open("rb") as f:
            head = f.read(8)
    except OSError:
        head = b""
    return next((f for magic, f in MAGIC_FORMATS if head.startswith(magic)), "text")


def spec_for_file(
    path: Path,
    ops: tuple[str, ...],
    column: str | int | None,
    np: int | None,
    backend: str,
    delimiter: str | None = None,
    missing: str = "error",
    placement: str = "shared",
) -> Spec:
    """The spec behind shortcuts such as `mlxrun sum FILE`."""
    fmt = format_of(path)
    if delimiter is not None:
        problem = delimiter_problem(delimiter)
        if problem is not None:
            raise UsageError(f"--delimiter {delimiter!r}: {problem}")
        if fmt not in ("csv", "tsv"):
            raise UsageError(f"--delimiter: {path} is {fmt}, not csv or tsv")
    if missing not in MISSING:
        raise UsageError(f'--missing: unknown value "{missing}"; one of: {", ".join(MISSING)}')
    if missing != "error" and fmt not in TABLES:
        raise UsageError(
            f"--missing: {path} is {fmt}; only tables have missing values ({', '.join(TABLES)})"
        )
    if placement not in PLACEMENTS:
        raise UsageError(
            f'--placement: unknown value "{placement}"; one of: {", ".join(PLACEMENTS)}'
        )
    data = Data(path, fmt, column, delimiter=delimiter, missing=missing, placement=placement)
    return Spec(
        job=JobSettings(
            name=f"{ops[0] if len(ops) == 1 else 'stats'} {path.name}", np=np, backend=backend
        ),
        data=data,
        ops=ops,
    )


EXAMPLE = """\
# mlxrun job spec: `mlxrun run THIS_FILE` (flags such as --np override it)

[job]
name = "sum-demo"
np = 2                      # processes (ranks)
backend = "ring"            # ring | mpi
# hostfile = "hosts.json"   # several machines: an mlx.launch hostfile
# timeout = 600             # seconds, then every rank is stopped (exit 124)
# stall_timeout = 60        # no output and no work for this long: stacks, then stop (124)

[data]
# path = "numbers.txt"      # .txt/.csv/.tsv text, .npy, .npz, .safetensors,
#                           # .parquet, .arrow/.feather (pip install 'mlxrun[parquet]')
# format = "text"           # inferred from the extension when absent
# column = "price"          # csv/tsv/parquet/arrow: which column (name or index);
#                           # npz/safetensors: which array
# dtype = "auto"            # auto | int64 | float64 | float32
# delimiter = ","           # csv/tsv: one character or "tab"; sniffed (, ; tab |) if absent
# missing = "error"         # error | skip: skipped values are counted, not reduced
# null_values = ["", "NA", "N/A", "null", "NULL"]  # what a missing field looks like
# placement = "shared"      # with a hostfile: shared (one file every host sees) | per-host
#                           # ("NaN" is the float NaN; add it here to skip it, as pandas)

# Instead of a path: data generated on the ranks, the same for any np.
[data.generate]
kind = "random"             # range | random
n = 1000000
seed = 0
distribution = "normal"     # normal | uniform | integers (random only)

[reduce]
ops = ["sum", "mean", "min", "max"]
# any of: sum mean min max count prod var std histogram argmin argmax
# bins = 20                 # histogram
"""
