"""Stopping a job across hosts reaches every host: what is left is read from each host's
own process table (its PID namespace), never from pids the agents reported."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import MARK, script
from tests.hosts.loopback import Hosts

READY_SECONDS = 30.0


def _start(hosts: Hosts, tmp_path: Path, n: int, *extra: str) -> subprocess.Popen[str]:
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    env = {**os.environ, **hosts.env, MARK: f"teardown-{os.getpid()}", "TMPDIR": str(tmpdir)}
    return subprocess.Popen(
        [sys.executable, "-m", "mlxrun", "exec", "--hostfile", str(hosts.hostfile(n)), *extra]
        + ["--", "python", script("hang.py"), "quiet", "1000"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        env=env,
        text=True,
    )


def _wait_ready(proc: subprocess.Popen[str], n: int) -> None:
    """Until every rank said it is ready (then each sleeps in its host's namespace)."""
    assert proc.stdout is not None
    ready = [proc.stdout.readline() for _ in range(n)]
    assert sorted(ready) == [f"[rank {r} @ node{r + 1}] rank {r} of {n} ready\n" for r in range(n)]


def _finish(proc: subprocess.Popen[str]) -> str:
    try:
        _, stderr = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, stderr = proc.communicate()
        pytest.fail(f"mlxrun did not stop: {stderr}")
    return stderr


@pytest.mark.slow
def test_sigkill_of_a_rank_on_node3_stops_every_host(hosts: Hosts, tmp_path: Path) -> None:
    proc = _start(hosts, tmp_path, 4)
    try:
        _wait_ready(proc, 4)
        # The rank's program, not the agent around it (whose command line names it too).
        on_node3 = hosts.node("node3").processes()
        rank = [pid for pid, cmd in on_node3 if "hang.py" in cmd and "mlxrun.rank" not in cmd]
        assert rank, on_node3
        os.kill(rank[0], signal.SIGKILL)
        stderr = _finish(proc)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 1
    assert "Error: rank 2 on node3 was killed by SIGKILL; the other ranks were stopped" in stderr
    # The failure table's host column.
    row = [line for line in stderr.splitlines() if line.startswith("│ 2 (root cause) │")]
    assert row and row[0].split("│")[2].strip() == "node3", stderr
    assert hosts.leftovers() == {}


@pytest.mark.slow
@pytest.mark.parametrize(("how", "code"), [("sigint", 130), ("timeout", 124)])
def test_ctrl_c_and_timeout_leave_nothing_on_any_host(
    hosts: Hosts, tmp_path: Path, how: str, code: int
) -> None:
    extra = ("--timeout", "6") if how == "timeout" else ()
    started = time.monotonic()
    proc = _start(hosts, tmp_path, 4, *extra)
    try:
        _wait_ready(proc, 4)
        if how == "sigint":
            proc.send_signal(signal.SIGINT)
        stderr = _finish(proc)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == code, stderr
    assert "every rank was stopped" in stderr
    assert time.monotonic() - started < 40
    assert hosts.leftovers() == {}
