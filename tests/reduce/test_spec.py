"""Job specs: what a valid spec means, and the exact message for each mistake."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlxrun.errors import SpecError, UsageError
from mlxrun.launch.job import DEFAULT_NP, job_spec
from mlxrun.reduce.spec import EXAMPLE, load_spec, parse_spec

BASE = Path("/jobs")


def parse(text: str):
    return parse_spec(text, "job.toml", BASE)


def test_a_full_spec() -> None:
    spec = parse(
        """
[job]
name = "sum-demo"
np = 4
backend = "mpi"
hostfile = "hosts.json"
timeout = 60

[data]
path = "data/numbers.csv"
column = "price"
dtype = "float64"

[reduce]
ops = ["sum", "mean", "histogram"]
bins = 5
"""
    )
    assert (spec.job.name, spec.job.np, spec.job.backend, spec.job.timeout) == (
        "sum-demo",
        4,
        "mpi",
        60.0,
    )
    assert spec.job.hostfile == BASE / "hosts.json"
    assert (spec.data.path, spec.data.format, spec.data.column) == (
        BASE / "data/numbers.csv",
        "csv",
        "price",
    )
    assert (spec.ops, spec.bins) == (("sum", "mean", "histogram"), 5)


def test_defaults_and_format_inference() -> None:
    spec = parse('[data]\npath = "x.npy"\n')
    assert (spec.job.np, spec.job.backend, spec.ops, spec.data.format) == (
        None,  # not given: one rank per host of a hostfile, else DEFAULT_NP
        "ring",
        ("sum",),
        "npy",
    )
    job = job_spec((), spec.job.np, spec.job.backend, spec.job.hostfile, spec.job.timeout)
    assert job.np == DEFAULT_NP == 2


def test_flags_override_the_file() -> None:
    spec = parse('[job]\nnp = 4\n[data]\npath = "x.txt"\n').override(np=3, backend="mpi", timeout=5)
    assert (spec.job.np, spec.job.backend, spec.job.timeout) == (3, "mpi", 5)


def test_generated_data() -> None:
    spec = parse('[data.generate]\nkind = "random"\nn = 10\nseed = 3\ndistribution = "uniform"\n')
    assert spec.data.generate is not None
    assert (spec.data.generate.kind, spec.data.generate.n, spec.data.generate.seed) == (
        "random",
        10,
        3,
    )


ERRORS = [
    ('[reduce]\nops = ["sum", "avg"]\n[data]\npath="x.txt"\n', 'job.toml: reduce -> ops[1]: unknown op "avg" (did you mean "mean"?)'),
    ('[data]\npath = "x.txt"\ncolum = "a"\n', 'job.toml: data -> colum: unknown key (did you mean "column"?)'),
    ('[jobs]\nnp = 2\n', 'job.toml: jobs: unknown key (did you mean "job"?)'),
    ("[job]\nnp = 2\n", 'job.toml: data: missing: a [data] table with path = "FILE" or [data.generate]'),
    ('[job]\nnp = "four"\n[data]\npath="x.txt"\n', "job.toml: job -> np: must be an integer, not str 'four'"),
    ('[job]\nnp = 0\n[data]\npath="x.txt"\n', "job.toml: job -> np: must be at least 1 (got 0)"),
    ('[job]\nbackend = "gloo"\n[data]\npath="x.txt"\n', 'job.toml: job -> backend: unknown value "gloo"; one of: ring, mpi, nccl, jaccl, jaccl-ring'),
    ('[data]\npath="x.txt"\nplacement = "local"\n', 'job.toml: data -> placement: unknown value "local"; one of: shared, per-host'),
    ('[data]\npath = "x.xlsx"\n', 'job.toml: data -> format: cannot tell the format of "x.xlsx"; set format = one of text, csv, tsv, npy, npz, safetensors, parquet, arrow'),
    ('[data]\npath = "x.csv"\ndelimiter = ";;"\n', 'job.toml: data -> delimiter: must be one ASCII character other than a quote or a newline, or "tab"'),
    ('[data]\npath = "x.txt"\ndelimiter = ";"\n', "job.toml: data -> delimiter: only csv and tsv files have a delimiter"),
    ('[data]\npath = "x.txt"\nmissing = "skip"\n', "job.toml: data -> missing: only tables have missing values (csv, tsv, parquet, arrow)"),
    ('[data]\npath = "x.csv"\nmissing = "drop"\n', 'job.toml: data -> missing: unknown value "drop"; one of: error, skip'),
    ('[data]\npath = "x.csv"\nnull_values = ["NA", 0]\n', "job.toml: data -> null_values[1]: must be a string, not 0"),
    ('[data]\npath = "x.csv"\nmisssing = "skip"\n', 'job.toml: data -> misssing: unknown key (did you mean "missing"?)'),
    ("[data]\n", 'job.toml: data: give either path = "FILE" or a [data.generate] table'),
    ('[data]\npath = "x.txt"\n[data.generate]\nkind = "range"\nn = 3\n', 'job.toml: data: give either path = "FILE" or a [data.generate] table'),
    ('[data.generate]\nkind = "randum"\nn = 3\n', 'job.toml: data -> generate -> kind: unknown value "randum" (did you mean "random"?); one of: range, random'),
    ('[data.generate]\nkind = "range"\n', "job.toml: data -> generate -> n: missing: how many values to generate (an integer >= 0)"),
    ('[data]\npath = "x.txt"\n[reduce]\nops = []\n', "job.toml: reduce -> ops: empty: name at least one of sum, mean, min, max, count, prod, var, std, histogram, argmin, argmax"),
    ('[data]\npath = "x.txt"\n[reduce]\nbins = 0\n', "job.toml: reduce -> bins: must be at least 1 (got 0)"),
    ('[data]\npath = "x.txt"\ndtype = "int32"\n', 'job.toml: data -> dtype: unknown value "int32" (did you mean "int64"?); one of: auto, int64, float64, float32'),
    ('[job]\nnp = 2\n[data\npath = "x"\n', "job.toml: line 3, column 6: invalid TOML (Expected ']' at the end of a table declaration)"),
    ('[job]\ntimeout = -1\n[data]\npath="x.txt"\n', "job.toml: job -> timeout: must be positive (got -1)"),
    ('[job]\nname = true\n[data]\npath="x.txt"\n', "job.toml: job -> name: must be a string, not bool True"),
]  # fmt: skip


@pytest.mark.parametrize(("text", "message"), ERRORS)
def test_spec_errors_name_the_file_and_key(text: str, message: str) -> None:
    with pytest.raises(SpecError) as e:
        parse(text)
    assert str(e.value) == message


def test_a_missing_spec_says_how_to_make_one(tmp_path: Path) -> None:
    with pytest.raises(UsageError) as e:
        load_spec(tmp_path / "job.toml")
    assert (
        str(e.value)
        == f"{tmp_path}/job.toml: job spec not found (create one with `mlxrun init {tmp_path}/job.toml`)"
    )


def test_bad_overrides_are_usage_errors() -> None:
    spec = parse('[data]\npath = "x.txt"\n')
    with pytest.raises(UsageError, match="np must be at least 1"):
        spec.override(np=0)
    with pytest.raises(UsageError, match='unknown backend "gloo"'):
        spec.override(backend="gloo")


def test_the_example_spec_is_valid() -> None:
    spec = parse(EXAMPLE)
    assert spec.data.generate is not None and spec.ops == ("sum", "mean", "min", "max")
