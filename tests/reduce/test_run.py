"""`mlxrun run` and the shortcuts, with real ranks on real files."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import tomllib
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers import (
    MARK,
    ROOT,
    Run,
    assert_no_leftovers,
    marked_processes,
)
from tests.reference import close, expected, read_values

CONFIGS = sorted((ROOT / "configs").glob("*.toml"))


def run_json(mlxrun, *args: str) -> dict:
    run = mlxrun(*args, "--json")
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout)  # the only thing on stdout


def test_sum_as_a_new_user_types_it(mlxrun, tmp_path: Path) -> None:
    data = tmp_path / "data.txt"
    data.write_text("".join(f"{i}\n" for i in range(1, 1001)))
    run = mlxrun("sum", "--np", "4", str(data))
    assert run.returncode == 0, run.stderr
    assert "│ sum   │" in run.stdout.replace("│   sum │", "│ sum   │")
    assert "500500" in run.stdout
    assert_no_leftovers(run)


@pytest.mark.parametrize("backend", ["ring", pytest.param("mpi", marks=pytest.mark.mpi)])
@pytest.mark.parametrize("config", CONFIGS, ids=[c.stem for c in CONFIGS])
def test_every_shipped_config_on_both_backends(mlxrun, config: Path, backend: str) -> None:
    spec = tomllib.loads(config.read_text())
    out = run_json(mlxrun, "run", str(config), "--backend", backend)
    assert out["backend"] == backend and out["np"] == spec["job"]["np"]
    data = spec["data"]
    if "path" in data and not data["path"].endswith(".safetensors"):
        values = read_values(
            config.parent / data["path"], data.get("column"), data.get("missing", "error")
        )
        if data.get("dtype") == "int64":
            assert all(isinstance(v, int) for v in values)
        assert out["count"] == len(values)
        for op, got in out["results"].items():
            if op != "histogram":
                assert close(got, expected(values, op), op), (op, got, expected(values, op))
        if "histogram" in out["results"]:
            assert sum(out["results"]["histogram"]) == len(values)


def test_json_keeps_big_integers_and_special_floats(mlxrun, tmp_path: Path) -> None:
    ints = tmp_path / "ints.txt"
    ints.write_text(f"{2**63 - 1}\n{2**63 - 1}\n{2**63 - 1}\n")
    out = run_json(mlxrun, "sum", "--np", "2", str(ints))
    assert out["results"]["sum"] == 3 * (2**63 - 1)  # past 2**63: no wrap-around
    special = tmp_path / "special.txt"
    special.write_text("1\ninf\n2\n")
    assert run_json(mlxrun, "sum", "--np", "2", str(special))["results"]["sum"] == "inf"
    special.write_text("1\nnan\n2\n")
    out = run_json(mlxrun, "max", "--np", "3", str(special))
    assert out["results"]["max"] == "nan"


def test_the_json_document(mlxrun, tmp_path: Path) -> None:
    data = tmp_path / "d.txt"
    data.write_text("0.1\n0.2\n0.3\n")
    out = run_json(mlxrun, "stats", "--np", "2", str(data))
    assert set(out) == {"job", "np", "backend", "results", "count", "missing", "seconds", "ranks"}
    assert out["results"]["sum"] == math.fsum([0.1, 0.2, 0.3]) == 0.6
    assert [r["rank"] for r in out["ranks"]] == [0, 1]
    assert set(out["ranks"][0]) == {
        "rank",
        "host",
        "count",
        "missing",
        "bytes",
        "seconds",
        "max_rss",
        "partials",
    }
    assert all(10_000_000 < r["max_rss"] < 1_000_000_000 for r in out["ranks"])
    assert sum(r["count"] for r in out["ranks"]) == 3
    assert sum(r["bytes"] for r in out["ranks"]) == data.stat().st_size


def test_empty_input_is_an_answer_not_a_crash(mlxrun, tmp_path: Path) -> None:
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing here\n\n")
    out = run_json(mlxrun, "stats", "--np", "2", str(empty))
    assert out["results"] == {
        "count": 0,
        "sum": 0,
        "mean": None,
        "std": None,
        "min": None,
        "max": None,
    }
    run = mlxrun("mean", "--np", "2", str(empty))
    assert run.returncode == 0 and "empty input: mean is undefined" in run.stdout


def test_more_ranks_than_lines(mlxrun, tmp_path: Path) -> None:
    data = tmp_path / "two.txt"
    data.write_text("5\n7\n")
    out = run_json(mlxrun, "sum", "--np", "5", str(data))
    assert out["results"]["sum"] == 12 and [r["count"] for r in out["ranks"]].count(0) == 3


def test_a_bad_number_stops_the_job_with_its_line(mlxrun, tmp_path: Path) -> None:
    data = tmp_path / "bad.txt"
    data.write_text("".join(f"{i}\n" for i in range(5000)) + "12,5x\n")
    run = mlxrun("sum", "--np", "3", str(data))
    assert (run.returncode, run.stdout) == (2, "")
    assert run.stderr.endswith(f'Error: {data}:5001: not a number: "12,5x"\n')
    assert_no_leftovers(run)


DATA_ERRORS = [
    (["sum", "{dir}/missing.txt"], "Error: {dir}/missing.txt: no such file"),
    (["sum", "--column", "prise", "{dir}/d.csv"], 'Error: {dir}/d.csv: no column "prise" (did you mean "price"?); columns: id, price'),
    (["run", "{dir}/nope.toml"], "Error: {dir}/nope.toml: job spec not found (create one with `mlxrun init {dir}/nope.toml`)"),
    (["run", "{dir}/bad.toml"], 'Error: {dir}/bad.toml: reduce -> ops[0]: unknown op "avg" (did you mean "mean"?)'),
    (["run", "{dir}/bad.toml", "--np", "0"], 'Error: {dir}/bad.toml: reduce -> ops[0]: unknown op "avg" (did you mean "mean"?)'),
    (["run", "{dir}/good.toml", "--np", "0"], "Error: --np must be at least 1 (got 0)"),
]  # fmt: skip


def test_input_errors_are_one_line_and_exit_2(mlxrun, tmp_path: Path) -> None:
    (tmp_path / "d.csv").write_text("id,price\n1,2\n")
    (tmp_path / "bad.toml").write_text(
        '[data]\npath = "d.csv"\ncolumn = "price"\n[reduce]\nops = ["avg"]\n'
    )
    (tmp_path / "good.toml").write_text('[data]\npath = "d.csv"\ncolumn = "price"\n')
    for args, message in DATA_ERRORS:
        run = mlxrun(*[a.format(dir=tmp_path) for a in args])
        assert (run.returncode, run.stderr, run.stdout) == (
            2,
            message.format(dir=tmp_path) + "\n",
            "",
        ), args


def test_init_then_validate_then_run(mlxrun, tmp_path: Path) -> None:
    spec = tmp_path / "job.toml"
    assert mlxrun("init", str(spec)).returncode == 0
    again = mlxrun("init", str(spec))
    assert (again.returncode, again.stderr) == (
        2,
        f"Error: {spec}: already exists; choose another path or remove it first\n",
    )
    ok = mlxrun("validate", str(spec))
    assert ok.returncode == 0 and ok.stdout.startswith(f"ok: {spec}: job 'sum-demo', 2 ranks, ring")
    out = run_json(mlxrun, "run", str(spec), "--np", "3")
    assert out["np"] == 3 and out["count"] == 1_000_000


def test_a_run_that_outlives_its_timeout(mlxrun, tmp_path: Path) -> None:
    spec = tmp_path / "long.toml"  # a billion generated values take far longer than 1 s
    spec.write_text('[data.generate]\nkind = "random"\nn = 1000000000\n[reduce]\nops = ["sum"]\n')
    started = time.monotonic()
    run = mlxrun("run", str(spec), "--timeout", "1")
    assert (
        run.returncode == 124 and "Error: timed out after 1 s; every rank was stopped" in run.stderr
    )
    assert time.monotonic() - started < 10
    assert_no_leftovers(run)


# Data sets that break naive reductions: huge and tiny magnitudes, cancellation,
# integers near the int64 limits, uneven lines.
floats = st.one_of(
    st.floats(min_value=-1e300, max_value=1e300, allow_nan=False),
    st.floats(min_value=-1e-300, max_value=1e-300, allow_nan=False),
    st.sampled_from([1e300, -1e300, 1e16, -1e16, 1.0, 0.1]),
)
ints = st.integers(-(2**63), 2**63 - 1)
data_sets = st.one_of(st.lists(floats, max_size=60), st.lists(ints, max_size=60))


@settings(
    max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(values=data_sets, per_line=st.integers(1, 4))
def test_every_np_gives_the_reference_answer(mlxrun, tmp_path: Path, values, per_line) -> None:
    path = tmp_path / "values.txt"
    rows = [values[i : i + per_line] for i in range(0, len(values), per_line)]
    path.write_text("".join(" ".join(map(repr, row)) + "\n" for row in rows))
    ops = ("count", "sum", "mean", "min", "max", "var", "argmin", "argmax")
    spec = tmp_path / "job.toml"
    spec.write_text(
        f'[data]\npath = "values.txt"\n[reduce]\nops = {list(ops)!r}\n'.replace("'", '"')
    )
    answers = []
    for np_ in range(1, 6):
        out = run_json(mlxrun, "run", str(spec), "--np", str(np_))
        for op in ops:
            assert close(out["results"][op], expected(values, op), op), (
                np_,
                op,
                out["results"][op],
            )
        answers.append(json.dumps([out["results"]["sum"], out["results"]["mean"]]))
    assert len(set(answers)) == 1  # bit-identical for every np


def _forked_workers(mark: str) -> dict[int, int]:
    """Rank -> pid of the job's workers: each runs in a fork of its rank's agent, so it
    is the process whose parent has the same command line."""
    procs = marked_processes(mark)
    cmdline = {p.pid: p.cmdline for p in procs}
    found = {}
    for p in procs:
        if "mlxrun.reduce.worker" in p.cmdline and cmdline.get(p.ppid) == p.cmdline:
            rank = next(int(v[9:]) for v in p.environ.split(b"\0") if v.startswith(b"MLX_RANK="))
            found[rank] = p.pid
    return found


def test_a_worker_killed_mid_job_is_named(tmp_path: Path) -> None:
    spec = tmp_path / "long.toml"
    spec.write_text('[data.generate]\nkind = "random"\nn = 1000000000\n[reduce]\nops = ["sum"]\n')
    mark, tmpdir = uuid.uuid4().hex, tmp_path / "tmp"
    tmpdir.mkdir()
    env = {**os.environ, MARK: mark, "TMPDIR": str(tmpdir)}
    job = subprocess.Popen(
        [sys.executable, "-m", "mlxrun", "run", str(spec), "--np", "2", "--timeout", "60"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    deadline = time.monotonic() + 30
    while len(workers := _forked_workers(mark)) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(workers[1], signal.SIGKILL)
    out, err = job.communicate(timeout=60)
    assert job.returncode == 1
    assert "Error: rank 1 was killed by SIGKILL; the other ranks were stopped" in err, err
    assert_no_leftovers(Run(job.returncode, out, err, mark, tmpdir))


def test_a_million_bin_histogram_arrives_whole(mlxrun, tmp_path: Path) -> None:
    # The result record (about 14 MB of JSON) was cut at the 1 MiB output-line limit, and
    # the job ended with "rank 0 exited without a result".
    data = tmp_path / "d.txt"
    data.write_text("".join(f"{i}\n" for i in range(1000)))
    spec = tmp_path / "h.toml"
    spec.write_text(f'[data]\npath = "{data}"\n[reduce]\nops = ["histogram"]\nbins = 1000000\n')
    run = mlxrun("run", str(spec), "--np", "2", "--json")
    assert run.returncode == 0, run.stderr
    counts = json.loads(run.stdout)["results"]["histogram"]
    assert len(counts) == 1_000_000 and sum(counts) == 1000
