"""Hostile and broken job specs, generated: wrong types, unknown keys, huge numbers,
unicode, deep nesting, empty files, binary garbage. Each is a valid spec or a one-line
SpecError/UsageError (exit 2 from the CLI): never another exception, never a hang."""

from __future__ import annotations

import json
import math
import string
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlxrun.cli.app import main
from mlxrun.errors import MlxrunError
from mlxrun.reduce.spec import parse_spec

KNOWN = {
    "job": ["name", "np", "backend", "hostfile", "timeout", "stall_timeout"],
    "data": ["path", "format", "column", "dtype"],
    "generate": ["kind", "n", "seed", "distribution", "start"],
    "reduce": ["ops", "bins"],
}
WORDS = ["sum", "mean", "ring", "mpi", "text", "csv", "npy", "range", "random", "x.txt", "auto"]


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value)  # a TOML basic string
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    raise TypeError(value)


scalars = st.one_of(
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(),
    st.sampled_from(WORDS),
    st.text(max_size=12),
)
values = st.one_of(
    scalars, st.lists(scalars, max_size=4), st.lists(st.lists(scalars, max_size=3), max_size=3)
)


def keys(table: str) -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from(KNOWN[table]), st.text(string.ascii_letters + "_é", min_size=1, max_size=8)
    )


@st.composite
def specs(draw: st.DrawFn) -> str:
    """Tables and keys near the real ones, with values of any type."""
    lines: list[str] = []
    for table in draw(
        st.lists(
            st.sampled_from(["job", "data", "reduce", "data.generate", "extra"]),
            max_size=4,
            unique=True,
        )
    ):
        lines.append(f"[{table}]")
        known = table.split(".")[-1] if table != "extra" else "job"
        for key in draw(st.lists(keys(known), max_size=5, unique=True)):
            lines.append(f"{json.dumps(key)} = {toml_value(draw(values))}")
    return "\n".join(lines) + "\n"


def parses_or_says_why(text: str) -> None:
    try:
        parse_spec(text, "job.toml", Path("/tmp"))
    except MlxrunError as e:
        message = str(e)
        assert message.startswith("job.toml") and "\n" not in message, message


@settings(max_examples=10_000, deadline=None, suppress_health_check=list(HealthCheck))
@given(specs())
def test_ten_thousand_generated_specs(text: str) -> None:
    parses_or_says_why(text)


@settings(max_examples=1_000, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.one_of(st.text(max_size=200), st.binary(max_size=200).map(lambda b: b.decode("latin-1"))))
def test_arbitrary_text(text: str) -> None:
    parses_or_says_why(text)


def test_pathological_specs() -> None:
    for text in [
        "",
        "a = " + "[" * 5000 + "]" * 5000,  # crashed with RecursionError (exit 1)
        "[job]\nnp = " + "9" * 5000 + "\n",
        "[" * 10000,
        '[data]\npath = "x.txt"\n[reduce]\nbins = 1000000000000\n',
        '[data.generate]\nkind = "random"\nn = 10\nseed = -1\n',
        "[job]\n" + "a = 1\n" * 10000,
        "\x00\x01\x02",
    ]:
        parses_or_says_why(text)


def test_the_cli_says_it_in_one_line_with_exit_2(tmp_path: Path, capsys) -> None:
    cases = {
        "deep.toml": "a = " + "[" * 5000 + "]" * 5000,
        "binary.toml": "\x00\xff garbage",
        "empty.toml": "",
        "huge.toml": '[job]\nnp = 99999999999999999999\n[data]\npath = "x.txt"\n',
    }
    for name, text in cases.items():
        (tmp_path / name).write_bytes(text.encode("latin-1"))
        code = main(["run", str(tmp_path / name)])
        err = capsys.readouterr().err
        assert code == 2 and err.startswith("Error: ") and err.count("\n") == 1, (name, err)
