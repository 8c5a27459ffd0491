"""Faults around a job, for real: a closed terminal (SIGHUP), a reader that goes away
(`| head`), mlxrun itself killed, a rank's child that would outlive it, a hello that names
someone else's process group, and ports left in TIME_WAIT."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from mlxrun.check import checks, rows
from mlxrun.launch.job import JobSpec
from mlxrun.launch.output import RankOutput
from mlxrun.launch.supervisor import Supervisor
from mlxrun.rank.protocol import Hello
from tests.helpers import Run, assert_no_leftovers, processes_with_mark, script, start


def wait_for_ranks(run: Run, count: int) -> None:
    deadline = time.monotonic() + 20
    while len(processes_with_mark(run.mark)) < count and time.monotonic() < deadline:
        time.sleep(0.05)


def test_sighup_stops_the_job_like_sigterm(tmp_path: Path) -> None:
    job, run = start(
        tmp_path, "exec", "--np", "2", "--", "python", script("hang.py"), "quiet", "30"
    )
    wait_for_ranks(run, 6)  # launcher, two agents, two ranks (and mlxrun)
    time.sleep(1)
    job.send_signal(signal.SIGHUP)
    _, err = job.communicate(timeout=30)
    assert job.returncode == 129, err
    assert "Hung up (SIGHUP: the terminal or session closed): every rank was stopped" in err
    assert_no_leftovers(run)  # no rank, and the job's temp folder is gone


def test_a_reader_that_goes_away_stops_the_job_cleanly(tmp_path: Path) -> None:
    # `mlxrun exec ... | head -n 3`: once head exits, the job has no one to talk to.
    head = subprocess.Popen(["head", "-n", "3"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
    assert head.stdin is not None
    job, run = start(
        tmp_path,
        "exec",
        "--np",
        "2",
        "--",
        "python",
        script("flood.py"),
        "10000000",
        stdout=head.stdin,
    )
    head.stdin.close()
    _, err = job.communicate(timeout=60)
    head.wait(timeout=10)
    assert job.returncode == 141, err
    assert "Traceback" not in err and "internal error" not in err
    assert_no_leftovers(run)


def test_a_reduction_whose_table_reader_went_away(tmp_path: Path) -> None:
    data = tmp_path / "d.txt"
    data.write_text("".join(f"{i}\n" for i in range(1000)))
    r, w = os.pipe()
    os.close(r)  # nobody will read the table
    job, run = start(tmp_path, "sum", "--np", "2", str(data), stdout=w)
    os.close(w)
    _, err = job.communicate(timeout=60)
    assert job.returncode == 141, err
    assert "Traceback" not in err
    assert_no_leftovers(run)


def test_ranks_stop_when_mlxrun_is_killed(tmp_path: Path) -> None:
    # mlxrun gets SIGKILL while its ranks print: every agent sees the connection break (a
    # send fails, or the read ends) and stops its rank, and the rank's own child with it.
    job, run = start(tmp_path, "exec", "--np", "2", "--", "python", script("spawner.py"))
    wait_for_ranks(run, 8)  # ... and each rank's sleeping child
    time.sleep(1)
    job.kill()
    job.communicate(timeout=30)
    deadline = time.monotonic() + 15
    while processes_with_mark(run.mark) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert processes_with_mark(run.mark) == []


def test_a_rank_whose_child_outlives_it_leaves_nothing(tmp_path: Path) -> None:
    job, run = start(
        tmp_path, "exec", "--np", "2", "--timeout", "3", "--", "python", script("spawner.py")
    )
    _, err = job.communicate(timeout=60)
    assert job.returncode == 124, err
    assert_no_leftovers(run)


def test_a_hello_cannot_make_mlxrun_signal_someone_elses_group() -> None:
    victim = subprocess.Popen(["sleep", "60"], start_new_session=True)
    launcher = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import subprocess, time; subprocess.Popen(['sleep', '60']); time.sleep(60)",
        ]
    )
    try:
        time.sleep(0.5)
        sup = Supervisor(JobSpec(("true",), 1), RankOutput(quiet=True))
        sup.launcher_pid = launcher.pid
        forged = Hello(0, victim.pid, victim.pid, "h", sup.machine)
        assert not sup._started_by_us(forged)  # not a process of this job
        assert not sup._started_by_us(Hello(0, launcher.pid, 0, "h", sup.machine))  # pgid 0
        own = Hello(0, launcher.pid, os.getpgid(launcher.pid), "h", sup.machine)
        assert sup._started_by_us(own)
        assert not sup._admit(forged) or not sup.ranks[0].local
        assert victim.poll() is None
    finally:
        for p in (victim, launcher):
            p.kill()
            p.wait()


def test_check_does_not_call_ports_in_time_wait_taken() -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        client = socket.create_connection(("127.0.0.1", port))
        conn, _ = server.accept()
        conn.close()  # the server side closes first: its port goes to TIME_WAIT
        client.close()
    row = checks._port_block(checks.Options(np=1, port=port))
    assert row.status == rows.OK, row
    with socket.create_server(("0.0.0.0", port)):
        assert checks._port_block(checks.Options(np=1, port=port)).status == rows.FAIL
