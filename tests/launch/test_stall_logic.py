"""The watchdog's judgement and the agent's snapshot parts, without jobs: classification of
real recorded eu-stack output (ring and MPI ranks of tests/scripts/hang.py), and the
fallbacks for a machine without /proc or without a native stack tool, forced here."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mlxrun.launch.stall import UNKNOWN, Snapshot, busy, report, summary
from mlxrun.rank import procfs, snapshot

RECORDED = Path(__file__).parent / "recorded"


def shot(rank: int, collective: str | None, cpu: float = 0.0, **kw) -> Snapshot:
    defaults = {"state": "S (futex_do_wait)", "python": None, "sleeping": False}
    return Snapshot(rank, "h", cpu, collective=collective, **{**defaults, **kw})


@pytest.mark.parametrize(
    ("name", "want"),
    [
        ("eu-stack-ring-rank0.txt", "all_sum (ring)"),  # waits in all_sum
        ("eu-stack-ring-rank1.txt", None),  # sleeps in time.sleep
        ("eu-stack-mpi-rank0.txt", "MPI_Allreduce (mpi)"),
        ("eu-stack-mpi-rank1.txt", None),
    ],
)
def test_the_collective_is_read_from_real_native_stacks(name: str, want: str | None) -> None:
    assert snapshot.collective_in((RECORDED / name).read_text()) == want


def test_other_ring_ops_and_backends() -> None:
    frame = "#3 0x1 void mlx::core::distributed::ring::RingGroup::all_reduce<float, {}<float> >"
    assert snapshot.collective_in(frame.format("mlx::core::distributed::detail::MaxOp")) == (
        "all_max (ring)"
    )
    gather = "#4 0x2 mlx::core::distributed::ring::RingGroup::all_gather(mlx::core::array const&)"
    assert snapshot.collective_in(gather) == "all_gather (ring)"
    jaccl = "#2 0x3 mlx::core::distributed::jaccl::MeshGroup::all_sum(...)"
    assert snapshot.collective_in(jaccl) == "all_sum (jaccl)"


def test_cpu_in_a_collective_is_not_work() -> None:
    waiting = shot(0, "all_sum (ring)", cpu=4.0)
    assert not busy(waiting, cpu_before=0.0, window=4.0)  # it spins, but it waits
    computing = shot(1, None, cpu=4.0, state="R")
    assert busy(computing, cpu_before=0.0, window=4.0)
    idle = shot(2, None, cpu=0.1)
    assert not busy(idle, cpu_before=0.0, window=4.0)
    unseen = shot(3, UNKNOWN, cpu=4.0)
    assert busy(unseen, cpu_before=0.0, window=4.0)  # cannot tell: let it run


def test_the_summary_names_the_odd_one_out() -> None:
    shots = [
        shot(0, "all_sum (ring)"),
        shot(1, None, sleeping=True),
        shot(2, "all_sum (ring)"),
        shot(3, "all_sum (ring)"),
    ]
    assert summary(shots) == (
        "rank 1 is not in a collective (sleeping); ranks 0, 2, 3 wait in all_sum (ring)"
    )
    every = [shot(0, "recv (ring)"), shot(1, "recv (ring)")]
    assert summary(every) == (
        "ranks 0, 1 wait in recv (ring); every rank waits: a deadlock, or a peer that left"
    )
    assert "different collectives" in summary([shot(0, "all_sum (ring)"), shot(1, "recv (ring)")])
    text = report("stalled", [shot(1, None, python="Thread 1 (idle)\n    f (x.py:3)")], [2])
    assert "--- rank 1 @ h: waiting: S (futex_do_wait)" in text
    assert "        f (x.py:3)" in text and "--- rank 2: no answer" in text


def test_a_snapshot_of_a_sleeping_process() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        time.sleep(0.5)
        shot_ = snapshot.snapshot(child.pid)
        assert shot_["sleeping"] is True and "S" in str(shot_["state"])
        if snapshot.tool("py-spy") is not None and os.geteuid() == 0:
            assert "<module> (<string>:1)" in str(shot_["python"])
        if snapshot.tool("eu-stack") is not None:
            assert shot_["collective"] is None
    finally:
        child.kill()
        child.wait()


def test_without_proc_cpu_and_process_trees_come_from_ps(monkeypatch) -> None:
    # macOS has no /proc: force the ps fallback here and compare with /proc's answers.
    spin = "import time\nt = time.process_time()\nwhile time.process_time() - t < 1.2: pass\n"
    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import subprocess, sys, time\n{spin}"
            "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(30)'])\n"
            "time.sleep(30)",
        ]
    )
    try:
        deadline = time.monotonic() + 10
        while len(snapshot.tree(parent.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        from_proc = (snapshot.tree(parent.pid), snapshot.cpu_seconds(parent.pid))
        monkeypatch.setattr(procfs, "available", lambda: False)
        from_ps = (snapshot.tree(parent.pid), snapshot.cpu_seconds(parent.pid))
        assert sorted(from_ps[0]) == sorted(from_proc[0]) and len(from_ps[0]) == 2
        # Linux's ps shows whole seconds (macOS's hundredths): within one second.
        assert from_proc[1] >= 1.2 and abs(from_ps[1] - from_proc[1]) < 1.0
        assert snapshot.state(parent.pid).startswith("S")
    finally:
        for pid in snapshot.tree(parent.pid)[::-1]:
            os.kill(pid, 9)
        parent.wait()


def test_without_a_native_stack_tool_the_collective_is_unknown(monkeypatch) -> None:
    monkeypatch.setattr(
        snapshot, "tool", lambda name: None if name == "eu-stack" else snapshot.shutil.which(name)
    )
    shot_ = snapshot.snapshot(os.getpid())
    assert "collective" not in shot_
    assert Snapshot.from_record(0, "h", shot_).collective == UNKNOWN


def test_ps_times() -> None:
    assert snapshot.parse_ps_time("0:01.25") == 1.25
    assert snapshot.parse_ps_time("01:02:03") == 3723
    assert snapshot.parse_ps_time("2-00:00:01") == 2 * 86400 + 1


def test_an_interpreter_shutting_down_is_exiting() -> None:
    # eu-stack of a real MPI rank that raised: its exit waits in MPI_Finalize.
    native = (
        "#3  0x00007f48f8291c7f ompi_mpi_finalize\n"
        "#4  0x00007f48fa2b5815 mlx::core::distributed::mpi::MPIGroup::~MPIGroup()\n"
        "#12 0x00007f48fb293841 Py_FinalizeEx\n"
    )
    assert snapshot.exiting(native, None)
    assert not snapshot.exiting((RECORDED / "eu-stack-mpi-rank0.txt").read_text(), None)
    # Without native stacks: py-spy finds the main thread without a Python frame.
    assert snapshot.exiting(None, 'Thread 4282 (idle): "MainThread"')
    assert not snapshot.exiting(None, 'Thread 1 (idle): "MainThread"\n    <module> (x.py:3)')
    assert not snapshot.exiting(None, None)
