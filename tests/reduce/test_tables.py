"""Real jobs on tables as users have them: quoted CSV, missing values, Parquet, and the
errors that stop them."""

from __future__ import annotations

import gzip
import json
import math
from pathlib import Path

import pytest

from tests.helpers import assert_no_leftovers


def run_json(mlxrun, *args: str) -> dict:
    run = mlxrun(*args, "--json")
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout)


def test_a_quoted_comma_never_splits_a_field(mlxrun, tmp_path: Path) -> None:
    quoted = tmp_path / "q.csv"
    quoted.write_text('name,amount\nx,"1,000"\ny,"2,000"\n')
    run = mlxrun("sum", "-c", "amount", str(quoted))
    assert (run.returncode, run.stdout) == (2, "")
    assert run.stderr == f'Error: {quoted}:2: not a number: "1,000" in column amount\n'
    names = tmp_path / "n.csv"
    names.write_text('\ufeffname,amount\n"Smith, J",1000\n"Doe,\nA",2000\n')
    out = run_json(mlxrun, "sum", "-c", "amount", "--np", "3", str(names))
    assert out["results"]["sum"] == 3000
    assert_no_leftovers(mlxrun("count", str(names), "-c", "amount"))


def test_missing_values_skipped_and_reported_per_rank(mlxrun, tmp_path: Path) -> None:
    path = tmp_path / "flights.csv"
    delays = [str(i) if i % 4 else "NA" for i in range(1, 201)]
    path.write_text("carrier;dep_delay\n" + "".join(f'"X";{d}\n' for d in delays))
    run = mlxrun("mean", "-c", "dep_delay", str(path))
    assert run.returncode == 2
    assert run.stderr == (
        f'Error: {path}:5: missing value "NA" in column dep_delay (use --missing skip)\n'
    )
    present = [i for i in range(1, 201) if i % 4]
    for np_ in ("1", "2", "3"):
        out = run_json(
            mlxrun, "stats", "-c", "dep_delay", "--missing", "skip", "--np", np_, str(path)
        )
        assert out["results"]["count"] == len(present) == out["count"]
        assert out["results"]["mean"] == sum(present) / len(present)
        assert out["missing"] == 50 == sum(r["missing"] for r in out["ranks"])
    table = mlxrun("sum", "-c", "dep_delay", "--missing", "skip", str(path))
    assert "│ missing │" in table.stdout and "50 skipped" in table.stdout


def test_a_delimiter_given_on_the_command_line(mlxrun, tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text("a:b\n1:2\n3:4.5\n")
    out = run_json(mlxrun, "sum", "-c", "b", "--delimiter", ":", str(path))
    assert out["results"]["sum"] == 6.5
    bad = mlxrun("sum", "-c", "b", "--delimiter", "::", str(path))
    assert bad.stderr == (
        "Error: --delimiter '::': must be one ASCII character other than a quote or a "
        'newline, or "tab"\n'
    )


def test_a_compressed_file_says_to_decompress_it(mlxrun, tmp_path: Path) -> None:
    path = tmp_path / "n.txt.gz"
    path.write_bytes(gzip.compress(b"1\n2\n"))
    run = mlxrun("sum", str(path))
    assert (run.returncode, run.stderr) == (
        2,
        f"Error: {path}: is gzip-compressed; decompress it first (gunzip -k {path}), "
        "so that every rank can read its own part\n",
    )


def test_parquet_sums_are_exact_for_every_np(mlxrun, tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    big = 2**63 - 1
    ints = [big, None, big, 5] * 25
    floats = [0.1, 1e16, None, -1e16] * 25
    path = tmp_path / "t.parquet"
    t = pa.table({"i": pa.array(ints, pa.int64()), "f": pa.array(floats, pa.float64())})
    pq.write_table(t, path, row_group_size=17)
    for np_ in ("1", "2", "4"):
        out = run_json(mlxrun, "sum", "-c", "i", "--missing", "skip", "--np", np_, str(path))
        assert out["results"]["sum"] == 50 * big + 125 and out["missing"] == 25
        out = run_json(mlxrun, "mean", "-c", "f", "--missing", "skip", "--np", np_, str(path))
        assert out["results"]["mean"] == math.fsum([0.1, 1e16, -1e16] * 25) / 75
    run = mlxrun("sum", "-c", "i", str(path))
    assert (
        run.stderr
        == f"Error: {path}: row 2: missing value (null) in column i (use --missing skip)\n"
    )


def test_a_bad_parquet_column_is_named_by_the_ranks_as_before_the_job(
    mlxrun, tmp_path: Path
) -> None:
    """The CLI leaves a Parquet file's column to the ranks (its check needs pyarrow): the
    error is the same one line, exit 2, for every np, and validate still finds it."""
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    path = tmp_path / "t.parquet"
    pq.write_table(pa.table({"fare": [1.5, 2.5], "note": ["a", "b"]}), path)
    for np_ in ("1", "2"):
        bad = mlxrun("sum", "-c", "fair", "--np", np_, str(path))
        assert (bad.returncode, bad.stderr) == (
            2,
            f'Error: {path}: no column "fair" (did you mean "fare"?); columns: fare, note\n',
        )
        text = mlxrun("sum", "-c", "note", "--np", np_, str(path))
        assert (text.returncode, text.stderr) == (
            2,
            f"Error: {path}: column note holds string, not numbers\n",
        )
    spec = tmp_path / "job.toml"
    spec.write_text(f'[data]\npath = "{path}"\ncolumn = "fair"\n')
    assert mlxrun("validate", str(spec)).stderr.startswith(f'Error: {path}: no column "fair"')


def test_wrong_guesses_are_read_again_in_a_real_job(mlxrun, tmp_path: Path) -> None:
    """A file whose first MiB has no quoted newline, so its ranks guess their starts, and
    whose rest is three-line records, so the guesses fall inside quotes: the job finds out
    (in its ranks, through MLX's collectives), reads again and answers exactly."""
    from mlxrun.data.model import Data
    from mlxrun.data.sources import check_data
    from tests.helpers import guessed

    path = tmp_path / "late.csv"
    plain = [f"plain,{i}\n" for i in range(120_000)]  # about 1.4 MB
    multi = [f'"{i}\n{"x" * 30}\n",{i}\n' for i in range(120_000, 400_000)]
    path.write_text("note,n\n" + "".join(plain + multi))
    data = check_data(Data(path, "csv", column="n"))
    assert not data.quoted_newlines
    assert not guessed(data, 2)[2] and not guessed(data, 4)[2]  # the jobs must read again
    for np_ in ("2", "4"):
        out = run_json(mlxrun, "sum", "-c", "n", "--np", np_, str(path))
        assert out["results"]["sum"] == sum(range(400_000)) and out["count"] == 400_000


def test_validate_knows_the_new_keys(mlxrun, tmp_path: Path) -> None:
    (tmp_path / "d.csv").write_text("a;b\n1;NA\n")
    spec = tmp_path / "job.toml"
    spec.write_text(
        '[data]\npath = "d.csv"\ncolumn = "b"\ndelimiter = ";"\nmissing = "skip"\n'
        'null_values = ["NA", "-"]\n'
    )
    ok = mlxrun("validate", str(spec))
    assert ok.returncode == 0, ok.stderr
    spec.write_text('[data]\npath = "d.csv"\ncolumn = "b"\nmising = "skip"\n')
    bad = mlxrun("validate", str(spec))
    assert bad.stderr == f'Error: {spec}: data -> mising: unknown key (did you mean "missing"?)\n'


def test_quoted_newlines_in_a_real_job_for_every_np(mlxrun, tmp_path: Path) -> None:
    path = tmp_path / "notes.csv"
    rows = "".join(f'"line\n{"x" * (i % 50)}\n""q""",{i}\n' for i in range(2000))
    path.write_text("note,n\n" + rows)
    for np_ in ("2", "4"):
        out = run_json(mlxrun, "sum", "-c", "n", "--np", np_, str(path))
        assert out["results"]["sum"] == sum(range(2000))
        assert sum(r["bytes"] for r in out["ranks"]) == path.stat().st_size - len("note,n\n")
    out = run_json(mlxrun, "stats", "-c", "n", "--np", "3", str(path))
    assert out["results"]["max"] == 1999 and out["count"] == 2000
