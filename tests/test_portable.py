"""The fallbacks for Linux-only mechanisms (see mlxrun.rank.procfs), forced on Linux with
MLXRUN_PORTABLE=1 and tried with real jobs: the ring wait without /proc, port claims as
lock files instead of abstract sockets, the host name instead of the boot id, and the
stall watchdog's process tree, CPU time and state from ps."""

from __future__ import annotations

import json
import socket
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil
import pytest

from mlxrun.launch import ports
from mlxrun.rank import procfs, protocol
from tests.helpers import assert_no_leftovers, script

PORTABLE = {"MLXRUN_PORTABLE": "1"}


def test_the_switch_turns_off_every_linux_only_mechanism(monkeypatch) -> None:
    assert procfs.available() and procfs.linux_only_allowed()
    assert protocol.machine_id() != socket.gethostname()  # the boot id
    monkeypatch.setenv("MLXRUN_PORTABLE", "1")
    assert not procfs.available() and not procfs.linux_only_allowed()
    assert protocol.machine_id() == socket.gethostname()


def test_lock_file_claims_keep_two_jobs_apart_and_go_with_them(monkeypatch) -> None:
    monkeypatch.setenv("MLXRUN_PORTABLE", "1")
    with ports.reserve_ports(4) as first:
        held = {Path(ports.CLAIMS_DIR) / f"mlxrun-port-{p}.lock" for p in first.ports}
        assert all(path.exists() for path in held)
        monkeypatch.setattr(ports, "LOW", first.start)  # only `first` could be chosen ...
        monkeypatch.setattr(ports, "HIGH", first.start + 5)
        monkeypatch.setattr(ports, "TRIES", 5)
        with pytest.raises(Exception, match="no block of 4 free TCP ports"):
            ports.reserve_ports(4)  # ... and it is claimed
    assert not any(path.exists() for path in held)


@pytest.mark.parametrize("np", [2, 4])
def test_a_ring_job_without_proc(mlxrun, np: int) -> None:
    run = mlxrun("exec", "--np", str(np), "--", "python", script("classic.py"), env=PORTABLE)
    assert run.returncode == 0, run.stderr
    assert run.stdout.count("total 10") == np
    assert_no_leftovers(run)


def test_two_jobs_at_once_with_lock_file_claims(mlxrun) -> None:
    with ThreadPoolExecutor(2) as pool:
        runs = list(
            pool.map(
                lambda _: mlxrun("sum", "--np", "2", "configs/data/numbers.txt", env=PORTABLE),
                range(2),
            )
        )
    for run in runs:
        assert run.returncode == 0, run.stderr
        assert "330,175.97" in run.stdout or "330175.97" in run.stdout, run.stdout
        assert_no_leftovers(run)
    assert not list(Path(ports.CLAIMS_DIR).glob("mlxrun-port-*.lock"))


def test_a_stall_report_from_ps(mlxrun) -> None:
    run = mlxrun(
        "exec",
        "--np",
        "2",
        "--stall-timeout",
        "3",
        "--",
        "python",
        script("hang.py"),
        "sleep",
        env=PORTABLE,
        timeout=60,
    )
    assert run.returncode == 124, run.stderr
    assert "rank 1 is not in a collective (sleeping); rank 0 waits in all_sum (ring)" in (
        run.stderr
    )
    assert "stuck_forever (hang.py:" in run.stderr
    assert_no_leftovers(run)


def test_check_without_proc(mlxrun) -> None:
    # check reads processes and sockets through psutil, which has no /proc to lose.
    run = mlxrun("check", "--quick", "--json", env=PORTABLE)
    rows = {row["name"]: row for row in json.loads(run.stdout)["checks"]}
    leftovers = rows["leftover ranks"]
    if leftovers["status"] != "ok":  # another job's ranks really run (a test in parallel)
        pids = [int(p) for p in leftovers["fix"].split()[1:]]
        assert leftovers["status"] == "warn" and pids and all(map(psutil.pid_exists, pids))
    assert rows["free ports"]["status"] == "ok", rows
