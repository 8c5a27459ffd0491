"""What Linux's /proc says about this machine's processes and TCP sockets.

One reader for what ranks ask /proc (the ring wait: is rank 0 listening yet? the stall
watchdog: a rank's process tree, CPU time and state) and the tests (is anything of a job
still alive?). Where there is no /proc (macOS), `available()` is False and each caller
has its own fallback (a short wait; ps). Standard library only: ranks import it.

The Linux-only mechanisms mlxrun uses, each with the fallback other systems get:
- /proc (here): ring wait -> a fixed stagger; process tree, CPU time, state -> ps;
- abstract Unix sockets for port claims (launch.ports) -> a locked file in the temp dir;
- /proc/sys/kernel/random/boot_id for "same machine" (rank.protocol) -> the host name;
- ldd for the MPI library (check) -> otool on macOS;
- a fork of mlxrun for mlx.launch, a lone rank's agent and the worker (rank.forked) -> a
  new interpreter.
MLXRUN_PORTABLE=1 makes mlxrun take the fallbacks on Linux too, so they are tested here.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

from mlxrun.rank.protocol import PORTABLE_ENV

PROC = Path("/proc")
TCP_TABLES = ("/proc/net/tcp", "/proc/net/tcp6")
TCP_LISTEN = "0A"  # the state column of /proc/net/tcp


class Process(NamedTuple):
    pid: int
    cmdline: str  # arguments joined by spaces
    environ: bytes  # NUL-separated NAME=value entries
    state: str  # R, S, D, Z, ... (the third field of /proc/PID/stat)
    ppid: int


def linux_only_allowed() -> bool:
    """False where the Linux-only mechanisms above must not be used: off Linux, or with
    MLXRUN_PORTABLE=1."""
    return sys.platform.startswith("linux") and os.environ.get(PORTABLE_ENV) != "1"


def available() -> bool:
    return linux_only_allowed() and Path(TCP_TABLES[0]).exists()


def listening_sockets() -> dict[int, str]:
    """Port -> socket inode of every TCP socket listening on this machine."""
    found: dict[int, str] = {}
    for table in TCP_TABLES:
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] == TCP_LISTEN:
                found[int(fields[1].rsplit(":", 1)[1], 16)] = fields[9]
    return found


def is_listening(port: int) -> bool:
    """True if a TCP socket on this machine listens on `port` (any address)."""
    return port in listening_sockets()


def processes() -> Iterator[Process]:
    """Every process this user may read (others are passed over)."""
    if not PROC.is_dir():
        return
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            environ = (entry / "environ").read_bytes()
            state, ppid = (entry / "stat").read_text().rsplit(")", 1)[1].split()[:2]
        except (OSError, ValueError):
            continue
        yield Process(int(entry.name), cmdline.strip(), environ, state, int(ppid))


def _stat_fields(pid: int) -> list[str]:
    """The fields of /proc/PID/stat after the command name (state is the first)."""
    return (PROC / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()


def parent_map() -> dict[int, int]:
    """pid -> parent pid of every process."""
    parents: dict[int, int] = {}
    for entry in PROC.iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int(_stat_fields(int(entry.name))[1])
            except (OSError, IndexError, ValueError):
                continue
    return parents


def cpu_ticks(pid: int) -> int:
    """Clock ticks of CPU (user + system) the process has used, all its threads; 0 if gone."""
    try:
        fields = _stat_fields(pid)
        return int(fields[11]) + int(fields[12])  # utime, stime: fields 14 and 15 of stat
    except (OSError, IndexError, ValueError):
        return 0


def state_and_wchan(pid: int) -> tuple[str, str]:
    """The process state (R, S, D, ...) and the kernel function it waits in."""
    try:
        code = _stat_fields(pid)[0]
        wchan = (PROC / str(pid) / "wchan").read_text().strip()
    except (OSError, IndexError):
        return "gone", ""
    return code, wchan
