"""The stall watchdog, stacks on demand and per-line timestamps, on real jobs: ranks that
sleep, deadlock or compute without a word (tests/scripts/hang.py), ring and MPI."""

from __future__ import annotations

import re
import shutil
import signal
import time
from pathlib import Path

import pytest

from tests.helpers import Run, assert_no_leftovers, script, start

BACKENDS = ["ring", pytest.param("mpi", marks=pytest.mark.mpi)]
# Without eu-stack the collective a rank waits in is not seen, and its spinning counts as work.
NATIVE_STACKS = pytest.mark.skipif(
    shutil.which("eu-stack") is None, reason="no eu-stack (elfutils) on this machine"
)
WAITS_IN = {"ring": "all_sum (ring)", "mpi": "MPI_Allreduce (mpi)"}


def hang(mlxrun, backend: str, np_: int, *args: str) -> tuple[Run, float]:
    started = time.monotonic()
    run = mlxrun("exec", "--np", str(np_), "--backend", backend, *args, timeout=60)
    return run, time.monotonic() - started


@NATIVE_STACKS
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("np_", [2, 4])
def test_a_rank_stuck_in_sleep_is_named_with_its_stack(mlxrun, backend: str, np_: int) -> None:
    run, seconds = hang(
        mlxrun, backend, np_, "--stall-timeout", "4", "--", "python", script("hang.py"), "sleep"
    )
    assert run.returncode == 124, run.stderr
    assert seconds < 15
    others = [r for r in range(np_) if r != 1]
    listed = ", ".join(map(str, others))
    waiting = f"rank {listed} waits" if len(others) == 1 else f"ranks {listed} wait"
    assert f"rank 1 is not in a collective (sleeping); {waiting} in {WAITS_IN[backend]}" in (
        run.stderr
    )
    stuck = run.stderr.split("--- rank 1 @")[1].split("---")[0]
    assert "sleeping" in stuck and "stuck_forever (hang.py:" in stuck  # the function it sleeps in
    for r in others:
        assert f"--- rank {r} @" in run.stderr and "<module> (hang.py:" in run.stderr
    assert run.stderr.rstrip().endswith("every rank was stopped")
    assert "stalled" in run.stderr
    assert_no_leftovers(run)


@NATIVE_STACKS
@pytest.mark.parametrize("backend", BACKENDS)
def test_a_deadlock_where_every_rank_waits(mlxrun, backend: str) -> None:
    run, seconds = hang(
        mlxrun, backend, 2, "--stall-timeout", "4", "--", "python", script("hang.py"), "deadlock"
    )
    assert run.returncode == 124, run.stderr
    assert seconds < 15
    assert "every rank waits: a deadlock, or a peer that left" in run.stderr
    want = "recv (ring)" if backend == "ring" else "MPI_Recv (mpi)"
    assert f"ranks 0, 1 wait in {want}" in run.stderr
    assert_no_leftovers(run)


def test_a_rank_that_computes_without_a_word_is_not_stalled(mlxrun) -> None:
    # Rank 1 computes for 9 s with nothing to say while rank 0 waits (and spins) in
    # all_sum; three stall windows of 3 s pass.
    run, _ = hang(
        mlxrun, "ring", 2, "--stall-timeout", "3", "--", "python", script("hang.py"), "busy", "9"
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.count("total 3") == 2
    assert "stalled" not in run.stderr


def test_a_quiet_idle_job_is_not_stalled_before_its_time(mlxrun) -> None:
    run, _ = hang(
        mlxrun, "ring", 2, "--stall-timeout", "5", "--", "python", script("hang.py"), "quiet", "2"
    )
    assert run.returncode == 0 and run.stdout.count("total 3") == 2, run.stderr


@pytest.mark.parametrize("sig", [signal.SIGUSR1, signal.SIGQUIT])
def test_a_signal_shows_every_stack_and_the_job_goes_on(tmp_path: Path, sig: int) -> None:
    job, run = start(tmp_path, "exec", "--np", "2", "--", "python", script("hang.py"), "quiet", "6")
    assert job.stdout is not None
    ready = [job.stdout.readline() for _ in range(2)]  # then they sleep 6 s before all_sum
    assert all("ready" in line for line in ready), ready
    time.sleep(0.5)
    job.send_signal(sig)
    out, err = job.communicate(timeout=60)
    assert job.returncode == 0, err
    assert out.count("total 3") == 2  # the right result, after the report
    assert "mlxrun: stacks on request (the job goes on)" in err
    for r in (0, 1):
        section = err.split(f"--- rank {r} @")[1].split("---")[0]
        assert "sleeping" in section and "<module> (hang.py:" in section
    assert_no_leftovers(run)


@NATIVE_STACKS
def test_the_time_limit_shows_the_stacks_before_it_stops_the_job(mlxrun) -> None:
    run, seconds = hang(
        mlxrun, "ring", 2, "--timeout", "4", "--", "python", script("hang.py"), "sleep"
    )
    assert run.returncode == 124
    report = run.stderr.index("mlxrun: timed out after 4 s; where every rank was")
    assert "stuck_forever (hang.py:" in run.stderr[report:]
    assert run.stderr.index("Error: timed out after 4 s") > report
    assert seconds < 15
    assert_no_leftovers(run)


def test_a_rank_that_leaves_early_is_the_cause(mlxrun) -> None:
    run = mlxrun("exec", "--np", "2", "--", "python", script("fail.py"), "leave")
    assert run.returncode == 1
    assert (
        "Error: rank 1 exited with code 0 while the other ranks still needed it "
        "(they lost their peer); the other ranks were stopped"
    ) in run.stderr
    assert "1 (root cause)" in run.stderr


STAMPED = re.compile(r"^\[rank (\d+) \+(\d+\.\d{3})s\] (\w+)$")


def test_timestamps_show_when_each_line_was_written(mlxrun) -> None:
    run = mlxrun("exec", "--np", "2", "--timestamps", "--", "python", script("paced.py"))
    assert run.returncode == 0, run.stderr
    times: dict[int, dict[str, float]] = {0: {}, 1: {}}
    for line in run.stdout.splitlines():
        m = STAMPED.match(line)
        assert m, line
        times[int(m.group(1))][m.group(3)] = float(m.group(2))
    for rank, seen in times.items():
        order = [seen["first"], seen["second"], seen["third"]]
        assert order == sorted(order), rank
        assert abs(seen["second"] - seen["first"] - 0.3) < 0.05, seen
        assert abs(seen["third"] - seen["second"] - 0.6) < 0.05, seen
        assert 0 < seen["first"] < 5  # seconds since the job started


def test_bad_stall_timeouts_are_usage_errors(mlxrun) -> None:
    run = mlxrun("exec", "--stall-timeout", "0", script("paced.py"))
    assert (run.returncode, run.stderr) == (2, "Error: --stall-timeout must be positive (got 0)\n")
