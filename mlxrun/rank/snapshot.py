"""What a rank is doing, seen by its agent on the rank's own host: the CPU time its
processes have used, and on request a snapshot (Python stacks, the collective a native
thread waits in, the process state).

Why py-spy for Python stacks: it reads a running interpreter from outside, so it works for
any Python rank, also one stuck inside C (an MLX collective) where a signal handler in the
rank (faulthandler) would never run, and it needs nothing injected into the user's script.
It needs ptrace rights (root; or on Linux the same user with ptrace_scope 0; root on macOS):
without them, or for a rank that is not Python, the snapshot has the process state and
wait channel instead.

Why native stacks too: MLX runs each collective on a thread of its own (its stream thread),
which Python stacks do not show, and a rank waiting in a collective is not idle: ring and
MPI both spin a core while they wait. eu-stack (elfutils, Linux) names that thread's frames
(`RingGroup::all_reduce<..., SumOp>`, `PMPI_Allreduce`). Where it is missing (macOS), the
collective is unknown and a spinning rank counts as busy.

Every tool runs under a time limit: a snapshot never hangs. Standard library only.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from mlxrun.rank import procfs

TOOL_SECONDS = 5.0
_CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_RING = re.compile(r"RingGroup::(all_reduce|all_gather|send|recv|sum_scatter)\b[^\n]*")
_REDUCE_OPS = {"SumOp": "all_sum", "MaxOp": "all_max", "MinOp": "all_min"}
_MPI = re.compile(r"\bPMPI_(\w+)")
_OTHER = re.compile(r"mlx::core::distributed::(\w+)::\w+Group::(\w+)")
_SLEEP_WCHAN = ("hrtimer_nanosleep", "do_nanosleep", "clock_nanosleep")


def _run(argv: list[str]) -> str | None:
    """A tool's output, or None if it is missing, fails or takes too long."""
    try:
        p = subprocess.run(
            argv, capture_output=True, text=True, timeout=TOOL_SECONDS, stdin=subprocess.DEVNULL
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return p.stdout if p.returncode == 0 else None


def tree(pid: int) -> list[int]:
    """pid and all its descendants."""
    parents: dict[int, list[int]] = {}
    if procfs.available():
        for child, parent in procfs.parent_map().items():
            parents.setdefault(parent, []).append(child)
    else:  # macOS: ps knows every process's parent
        for line in (_run(["ps", "-A", "-o", "pid=,ppid="]) or "").splitlines():
            child, parent = (int(f) for f in line.split())
            parents.setdefault(parent, []).append(child)
    found, todo = [pid], [pid]
    while todo:
        kids = parents.get(todo.pop(), [])
        found += kids
        todo += kids
    return found


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) used so far by pid and its descendants still alive."""
    pids = tree(pid)
    if procfs.available():
        return sum(procfs.cpu_ticks(p) for p in pids) / _CLK_TCK
    out = _run(["ps", "-o", "time=", "-p", ",".join(map(str, pids))]) or ""
    return sum(parse_ps_time(line) for line in out.split())


def parse_ps_time(text: str) -> float:
    """ps's cumulative time, [[dd-]hh:]mm:ss[.ss], in seconds."""
    days, _, clock = text.strip().rpartition("-")
    seconds = 0.0
    for part in clock.split(":"):
        seconds = seconds * 60 + float(part)
    return seconds + (int(days) * 86400 if days else 0)


def state(pid: int) -> str:
    """The process state and what it waits on: `S (hrtimer_nanosleep)`."""
    if procfs.available():
        code, wchan = procfs.state_and_wchan(pid)
    else:
        fields = (_run(["ps", "-o", "state=,wchan=", "-p", str(pid)]) or "?").split()
        code, wchan = fields[0], (fields[1] if len(fields) > 1 else "")
    return f"{code} ({wchan})" if wchan and wchan != "0" else code


def tool(name: str) -> str | None:
    """A tool installed beside this interpreter (a venv's bin) or on PATH."""
    return shutil.which(
        name, path=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    )


def python_stack(pid: int) -> str | None:
    spy = tool("py-spy")
    if spy is None:
        return None
    out = _run([spy, "dump", "--pid", str(pid), "--subprocesses"])
    if not out:
        return None
    # Its header names the process and interpreter; the threads and their frames follow.
    lines = out.strip().splitlines()
    first = next((i for i, line in enumerate(lines) if line.startswith("Thread ")), 0)
    return "\n".join(lines[first:])


def native_stacks(pid: int) -> str | None:
    eu_stack = tool("eu-stack")
    return _run([eu_stack, "-p", str(pid)]) if eu_stack else None


def collective_in(native: str) -> str | None:
    """The collective a thread of these native stacks is in: `all_sum (ring)`,
    `MPI_Allreduce (mpi)`, ...; None if no thread is in one."""
    m = _RING.search(native)
    if m:
        op = m.group(1)
        if op == "all_reduce":
            op = next((name for key, name in _REDUCE_OPS.items() if key in m.group(0)), op)
        return f"{op} (ring)"
    m = _MPI.search(native)
    if m:
        return f"MPI_{m.group(1)} (mpi)"
    m = _OTHER.search(native)
    if m:
        return f"{m.group(2)} ({m.group(1)})"
    return None


def exiting(native: str | None, python: str | None) -> bool:
    """Whether the interpreter is shutting down: its native stack is in Py_FinalizeEx (under
    MPI a rank that raised waits there, in MPI_Finalize, for ranks that never come), or
    py-spy found its main thread without a single Python frame."""
    if native is not None:
        return "Py_FinalizeEx" in native
    if python is None:
        return False
    lines = python.splitlines()
    return (
        bool(lines)
        and lines[0].startswith("Thread ")
        and not any(line.startswith("    ") for line in lines)
    )


def snapshot(pid: int) -> dict[str, object]:
    """What the rank's process is doing now. `collective` is None when not in one, and
    unknown (the key absent) without a native stack tool."""
    shot: dict[str, object] = {"pid": pid, "cpu": cpu_seconds(pid), "state": state(pid)}
    native = native_stacks(pid)
    if native is not None:
        shot["collective"] = collective_in(native)
    python = python_stack(pid)
    shot["python"] = python
    shot["sleeping"] = any(w in str(shot["state"]) for w in _SLEEP_WCHAN)
    shot["exiting"] = exiting(native, python)
    return shot
