"""SIGINT, SIGTERM and SIGHUP sent to mlxrun at random moments of a job (start-up, the
ranks reading, the reduction, the end): mlxrun ends within 10 s of the signal with
128 + the signal's number (130, 143, 129), or with 0 if its result was complete, prints
no traceback, and leaves no process, temp folder, port or port claim behind."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, note, settings
from hypothesis import strategies as st

from mlxrun.launch.supervisor import GRACE_SECONDS
from tests.helpers import (
    PortWatch,
    Run,
    assert_no_leftovers,
    launcher_ports,
    processes_with_mark,
    script,
    start,
)

STOPS = [signal.SIGINT, signal.SIGTERM, signal.SIGHUP]
NUMBERS = 3_000_000  # the ranks read for a few tenths of a second
ENDS_WITHIN = 10.0  # seconds after the signal


@pytest.fixture(scope="module")
def numbers(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, float]:
    """A file of floats and their exact sum: multiples of 1/64, so every partial sum is
    exact in float64 and any right answer is this one."""
    rng = random.Random(1)
    ints = [rng.randrange(-(10**6), 10**6) for _ in range(NUMBERS)]
    path = tmp_path_factory.mktemp("signals") / "numbers.txt"
    path.write_text("".join(f"{n / 64!r}\n" for n in ints))
    return path, sum(ints) / 64


Job = tuple[tuple[str, ...], Callable[[str], bool]]  # mlxrun's arguments; is stdout whole?


def job_of(kind: str, data: tuple[Path, float]) -> Job:
    if kind == "sum":
        path, total = data
        return ("sum", "--np", "2", "--json", str(path)), lambda out: _sum_of(out) == total
    lines = sorted(
        f"[rank {r}] {line}" for r in (0, 1) for line in (f"rank {r} of 2 ready", "total 3")
    )
    args = ("exec", "--np", "2", "--", "python", script("hang.py"), "quiet", "0.5")
    return args, lambda out: sorted(out.splitlines()) == lines  # ready, 0.5 s, all_sum


def _sum_of(out: str) -> float | None:
    try:
        return float(json.loads(out)["results"]["sum"])
    except (ValueError, KeyError, TypeError):
        return None


def catches(pid: int, sig: int) -> bool:
    """Whether the process has a handler for `sig` (the SigCgt mask of /proc/PID/status)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    mask = next(line.split()[1] for line in status.splitlines() if line.startswith("SigCgt:"))
    return bool(int(mask, 16) >> (sig - 1) & 1)


def wait_until_mlxrun_runs(job: subprocess.Popen[str]) -> None:
    """Until mlxrun's first lines have run: they take the stop signals (SIGTERM is the
    witness: Python itself only catches SIGINT). Before that the interpreter is starting,
    and a signal does to it what it does to any program."""
    deadline = time.monotonic() + 20
    while not catches(job.pid, signal.SIGTERM) and job.poll() is None:
        assert time.monotonic() < deadline, "mlxrun never took the stop signals"
        time.sleep(0.002)


def check_end(run: Run, watch: PortWatch, sig: int, complete: Callable[[str], bool]) -> None:
    assert "Traceback" not in run.stderr, run.stderr
    assert "internal error" not in run.stderr, run.stderr
    if run.returncode == 0:  # the job was over: its whole result was out
        assert complete(run.stdout), run.stdout
    else:
        assert run.returncode == 128 + sig, run.stderr
    assert_no_leftovers(run)
    watch.assert_released(run)


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    kind=st.sampled_from(["sum", "exec"]),
    sig=st.sampled_from(STOPS),
    delay=st.floats(min_value=0.0, max_value=2.5),  # the jobs take 0.7-2 s here
)
def test_a_stop_signal_at_any_moment(
    tmp_path: Path, numbers: tuple[Path, float], kind: str, sig: int, delay: float
) -> None:
    args, complete = job_of(kind, numbers)
    with PortWatch() as watch:
        job, run = start(tmp_path, *args)
        watch.add(job, run)
        wait_until_mlxrun_runs(job)
        time.sleep(delay)
        over = job.poll() is not None
        launched = bool(launcher_ports(job.pid, 2))
        sent = time.monotonic()
        job.send_signal(sig)
        run.stdout, run.stderr = job.communicate(timeout=60)
        took = time.monotonic() - sent
    run.returncode = job.returncode
    stages = {"over": over, "ranks starting or running": launched, "after the ranks": True}
    if not watch.ports[run.mark]:  # its launcher was never seen
        stages["after the ranks"], stages["before the ranks"] = False, True
    stage = next(name for name, now in stages.items() if now)
    event(f"{kind}, {stage}: exit {run.returncode}")
    note(f"{kind} {signal.Signals(sig).name} after {delay:.3f} s: exit {run.returncode} ({stage})")
    assert took < ENDS_WITHIN
    if over:
        assert run.returncode == 0, run.stderr
    check_end(run, watch, sig, complete)


@pytest.mark.parametrize("sig", STOPS, ids=lambda s: signal.Signals(s).name)
def test_a_stop_signal_during_mlxrun_s_imports(tmp_path: Path, sig: int) -> None:
    # Python reports each import as it completes: the signal goes in the middle of Typer's
    # (a module it imports, indented), which mlxrun's CLI imports first.
    job, run = start(tmp_path, "exec", "--np", "2", "--", "python", script("sleepy.py"),
                     env={"PYTHONPROFILEIMPORTTIME": "1"})  # fmt: skip
    assert job.stderr is not None
    seen = b""
    deadline = time.monotonic() + 20
    while b"  typer." not in seen:
        assert time.monotonic() < deadline and job.poll() is None, seen[-2000:]
        seen += os.read(job.stderr.fileno(), 65536)
    job.send_signal(sig)
    run.stdout, run.stderr = job.communicate(timeout=30)
    run.returncode = job.returncode
    assert "Traceback" not in run.stderr, run.stderr
    assert run.returncode == 128 + sig, run.stderr
    assert_no_leftovers(run)


def test_stopping_a_reduction_does_not_wait_for_sigkill(tmp_path: Path) -> None:
    # The ranks are busy for minutes; mlxrun sends them SIGTERM, and SIGKILL only after
    # GRACE_SECONDS: a rank that ends at SIGTERM ends the job well before that.
    spec = tmp_path / "long.toml"
    spec.write_text(
        '[job]\nname = "long"\nnp = 2\n\n'
        '[data.generate]\nkind = "random"\nn = 4_000_000_000\n\n[reduce]\nops = ["sum"]\n'
    )
    job, run = start(tmp_path, "run", str(spec), "--json")
    deadline = time.monotonic() + 30
    while len(processes_with_mark(run.mark)) < 6:  # mlxrun, the launcher, 2 agents, 2 ranks
        assert time.monotonic() < deadline and job.poll() is None
        time.sleep(0.05)
    time.sleep(0.5)
    sent = time.monotonic()
    job.send_signal(signal.SIGTERM)
    run.stdout, run.stderr = job.communicate(timeout=30)
    took = time.monotonic() - sent
    run.returncode = job.returncode
    assert run.returncode == 143, run.stderr
    assert took < GRACE_SECONDS, f"{took:.2f} s"
    assert_no_leftovers(run)
