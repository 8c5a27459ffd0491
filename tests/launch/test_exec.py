"""`mlxrun exec`: real mlx.launch jobs, real ranks, real sockets."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.helpers import MARK, Run, assert_no_leftovers, processes_with_mark, script

LABEL = re.compile(r"^\[rank (\d+)\] (.*)$")


def lines_of(text: str) -> list[tuple[int, str]]:
    out = []
    for line in text.splitlines():
        m = LABEL.match(line)
        assert m, f"unlabelled line: {line!r}"
        out.append((int(m.group(1)), m.group(2)))
    return out


@pytest.mark.parametrize("np", [2, 4])
def test_classic_first_program(mlxrun, np: int) -> None:
    run: Run = mlxrun("exec", "--np", str(np), "--", "python", script("classic.py"))
    assert run.returncode == 0, run.stderr
    got = lines_of(run.stdout)
    assert sorted(r for r, text in got if text == "total 10") == list(range(np))
    for r in range(np):
        assert (r, f"rank {r} of {np} sums {[1, 2, 3, 4][r::np]}") in got
    assert_no_leftovers(run)


def test_bare_script_runs_with_this_interpreter(mlxrun) -> None:
    run = mlxrun("exec", "--np", "2", script("classic.py"))
    assert run.returncode == 0, run.stderr
    assert sorted(lines_of(run.stdout))[-1] == (1, "total 10")


def test_one_rank_runs_without_the_launcher(mlxrun) -> None:
    run = mlxrun("exec", "--np", "1", "--", "python", script("classic.py"))
    assert run.returncode == 0, run.stderr
    assert lines_of(run.stdout) == [(0, "rank 0 of 1 sums [1, 2, 3, 4]"), (0, "total 10")]


def test_every_line_arrives_once_whole_and_in_order(mlxrun) -> None:
    n = 50_000
    run = mlxrun("exec", "--np", "4", "--", "python", script("flood.py"), str(n))
    assert run.returncode == 0, run.stderr[-2000:]
    out = lines_of(run.stdout)
    err = lines_of(run.stderr)
    for r in range(4):
        mine = [text for rank, text in out if rank == r]
        expected = [f"r{r} out {i} " + "x" * (i % 97) for i in range(n)]
        assert mine == [*expected, f"r{r} raw fd1", f"r{r} last-no-newline"]
        errs = [text for rank, text in err if rank == r]
        assert errs == [f"r{r} err {i}" for i in range(0, n, 1000)] + [f"r{r} raw fd2"]
    assert_no_leftovers(run)


def test_output_of_c_code_is_heard(mlxrun) -> None:
    run = mlxrun("exec", "--np", "2", "--", "python", script("cfd.py"))
    assert run.returncode == 0, run.stderr
    for r in range(2):
        assert f"[rank {r}] c-level stdout" in run.stdout.splitlines()
        assert f"[rank {r}] printf without newline" in run.stdout.splitlines()
        assert f"[rank {r}] c-level stderr" in run.stderr.splitlines()


FAILURES = [
    ("raise", 1, "rank 1 exited with code 1"),
    ("exit", 1, "rank 1 exited with code 3"),
    ("kill", 1, "rank 1 was killed by SIGKILL"),
    ("shrink", 1, "rank 1 was killed by SIGBUS (a mapped file got shorter while it was read?)"),
]


@pytest.mark.parametrize(("mode", "code", "reason"), FAILURES)
def test_a_failing_rank_stops_the_job(mlxrun, mode: str, code: int, reason: str) -> None:
    started = time.monotonic()
    run = mlxrun("exec", "--np", "3", "--", "python", script("fail.py"), mode)
    assert time.monotonic() - started < 15
    assert run.returncode == code
    assert f"Error: {reason}; the other ranks were stopped" in run.stderr
    assert re.search(r"│ 1 \(root cause\)\s*│", run.stderr), run.stderr
    assert_no_leftovers(run)


def test_a_rank_that_never_reaches_the_collective_times_out(mlxrun) -> None:
    started = time.monotonic()
    run = mlxrun("exec", "--np", "3", "--timeout", "3", "--", "python", script("fail.py"), "sleep")
    elapsed = time.monotonic() - started
    assert run.returncode == 124
    assert "Error: timed out after 3 s; every rank was stopped" in run.stderr
    assert 3 <= elapsed < 3 + 5 + 3  # teardown within 5 s, plus interpreter start
    assert_no_leftovers(run)


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_to_mlxrun_stops_every_rank(tmp_path: Path, sig: int, code: int) -> None:
    mark = f"signal-{sig}-{os.getpid()}"
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    env = {**os.environ, MARK: mark, "TMPDIR": str(tmpdir)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlxrun", "exec", "--np", "2", "--", "python", script("sleepy.py")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        env=env,
        text=True,
    )
    assert proc.stdout is not None
    ready = [proc.stdout.readline(), proc.stdout.readline()]
    assert sorted(ready) == ["[rank 0] rank 0 ready\n", "[rank 1] rank 1 ready\n"]
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=15)
    assert proc.returncode == code
    assert "every rank was stopped" in stderr
    assert_no_leftovers(Run(proc.returncode, "", stderr, mark, tmpdir))
    assert processes_with_mark(mark) == []


def test_two_jobs_at_once_each_get_their_own_result(mlxrun) -> None:
    with ThreadPoolExecutor(2) as pool:
        runs = list(
            pool.map(
                lambda _: mlxrun("exec", "--np", "2", "--", "python", script("classic.py")),
                range(2),
            )
        )
    for run in runs:
        assert run.returncode == 0, run.stderr
        assert [text for _, text in lines_of(run.stdout) if text.startswith("total")] == [
            "total 10"
        ] * 2


def test_ranks_filter_log_dir_and_no_label(mlxrun, tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    run = mlxrun(
        "exec",
        "--np",
        "2",
        "--ranks",
        "1",
        "--log-dir",
        str(logs),
        "--",
        "python",
        script("classic.py"),
    )
    assert run.returncode == 0, run.stderr
    assert {r for r, _ in lines_of(run.stdout)} == {1}
    for r in range(2):
        assert (logs / f"rank-{r}.stdout.log").read_text().splitlines()[-1] == "total 10"
    bare = mlxrun("exec", "--np", "2", "--no-label", "--", "python", script("classic.py"))
    assert bare.stdout.splitlines().count("total 10") == 2


def test_a_stranger_without_the_token_is_not_heard(mlxrun) -> None:
    run = mlxrun("exec", "--np", "1", "--", "python", script("intruder.py"))
    assert run.returncode == 0, run.stderr
    assert "INJECTED" not in run.stdout
    assert "[rank 0] intruder was hung up on" in run.stdout


@pytest.mark.mpi
@pytest.mark.parametrize("np", [2, 3])
def test_mpi_backend(mlxrun, np: int) -> None:
    assert os.cpu_count() is not None and (np <= os.cpu_count() or np == 3)
    run = mlxrun("exec", "--np", str(np), "--backend", "mpi", "--", "python", script("classic.py"))
    assert run.returncode == 0, run.stderr
    assert [t for _, t in lines_of(run.stdout) if t.startswith("total")] == ["total 10"] * np
    assert_no_leftovers(run)


@pytest.mark.mpi
def test_mpi_rank_failure_is_reported_and_cleaned_up(mlxrun) -> None:
    run = mlxrun("exec", "--np", "3", "--backend", "mpi", "--", "python", script("fail.py"), "kill")
    assert run.returncode == 1
    assert "Error: rank 1 was killed by SIGKILL; the other ranks were stopped" in run.stderr
    assert_no_leftovers(run)


@pytest.mark.mpi
def test_mpi_rank_stuck_in_finalize_is_ended_by_the_timeout(mlxrun) -> None:
    # Under MPI a rank that exits while its peers wait in a collective hangs in
    # MPI_Finalize (MLX_FACTS): only the timeout can end such a job.
    run = mlxrun(
        "exec",
        "--np",
        "3",
        "--backend",
        "mpi",
        "--timeout",
        "4",
        "--",
        "python",
        script("fail.py"),
        "exit",
    )
    assert run.returncode == 124
    assert_no_leftovers(run)


@pytest.mark.skipif(
    shutil.which("ssh") is None, reason="needs an ssh client (make test installs it)"
)
def test_an_unreachable_host_fails_fast_and_the_launcher_is_heard(mlxrun, tmp_path: Path) -> None:
    # 127.0.0.2 is this machine, but no ssh server listens there: mlx.launch's ssh fails for real.
    hosts = tmp_path / "hosts.json"
    hosts.write_text(json.dumps([{"ssh": "127.0.0.1"}, {"ssh": "127.0.0.2", "ips": ["127.0.0.2"]}]))
    started = time.monotonic()
    run = mlxrun("exec", "--hostfile", str(hosts), "--", "python", script("classic.py"))
    assert time.monotonic() - started < 10
    assert run.returncode == 1
    assert "[launcher] [WARN] Node with rank 1 exited with code 255" in run.stderr
    assert run.stderr.endswith(
        "Error: rank 1 could not start on 127.0.0.2 (ssh exit code 255): check `ssh -o "
        "BatchMode=yes 127.0.0.2 true` or run `mlxrun check --hostfile FILE`; the other ranks "
        "were stopped\n"
    )
    assert_no_leftovers(run)
