"""What a job runs and where: the rank command, the number of ranks, the backend, the
hostfile and the time limit. Every command (`exec`, `run`, the shortcuts) validates its
flags here, so that the same flag means the same everywhere."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from mlxrun.errors import UsageError
from mlxrun.launch import backends
from mlxrun.launch.hostfile import Hostfile, is_ip, load_hostfile

BACKENDS = backends.KNOWN
DEFAULT_NP = 2
MAX_NP = 4096  # more is a typo (np = 40000), and would start that many processes


@dataclass(frozen=True)
class JobSpec:
    """What to run (the rank command) and where (np ranks locally, or one per host)."""

    command: tuple[str, ...]
    np: int
    backend: str = "ring"
    hostfile: Hostfile | None = None
    timeout: float | None = None  # seconds, then every rank is stopped
    stall_timeout: float | None = None  # seconds without output or work: a stall (launch.stall)
    listen_ip: str | None = None  # where remote ranks reach mlxrun (None: the route to them)
    python: str | None = None  # the interpreter on the hosts, if not at this one's path


def check_settings(
    np: int | None,
    backend: str | None,
    timeout: float | None,
    stall_timeout: float | None = None,
    listen_ip: str | None = None,
    python: str | None = None,
) -> None:
    """The flags' values, before anything is read: UsageError names the flag."""
    if python is not None and not python.startswith("/"):
        raise UsageError(
            f'--python: "{python}" is not an absolute path (give where the Python with mlx '
            "and mlxrun is on the hosts, such as /opt/venv/bin/python)"
        )
    if listen_ip is not None and not is_ip(listen_ip):
        raise UsageError(
            f'--listen-ip: "{listen_ip}" is not an IP address (use this machine\'s address '
            "on the network the hosts reach it by, such as 192.168.1.10)"
        )
    if np is not None and np < 1:
        raise UsageError(f"--np must be at least 1 (got {np})")
    if np is not None and np > MAX_NP:
        raise UsageError(f"--np must be at most {MAX_NP} (got {np})")
    if backend is not None and backend not in BACKENDS:
        raise UsageError(f'--backend: unknown backend "{backend}" (use {", ".join(BACKENDS)})')
    if backend is not None and backend not in backends.offered():
        raise UsageError(
            f"--backend: the installed MLX's mlx.launch does not offer {backend} (it offers "
            f"{', '.join(backends.offered())}): upgrade mlx, or choose one of those"
        )
    if timeout is not None and not timeout > 0:  # also NaN
        raise UsageError(f"--timeout must be positive (got {timeout:g})")
    if stall_timeout is not None and not stall_timeout > 0:
        raise UsageError(f"--stall-timeout must be positive (got {stall_timeout:g})")


def job_spec(
    command: tuple[str, ...],
    np: int | None,
    backend: str,
    hostfile: Path | None,
    timeout: float | None,
    stall_timeout: float | None = None,
    listen_ip: str | None = None,
    python: str | None = None,
) -> JobSpec:
    """The job to launch. `np` None means one rank per host of the hostfile, else 2."""
    check_settings(np, backend, timeout, stall_timeout, listen_ip, python)
    if python is not None and command[:1] == (sys.executable,):
        command = (python, *command[1:])  # `python` means the hosts' interpreter
    hosts = load_hostfile(hostfile, backend) if hostfile is not None else None
    if backend in backends.NEEDS_RDMA and hosts is None:
        raise UsageError(
            f"--backend {backend} needs --hostfile: a hostfile whose hosts list their RDMA "
            "devices (`rdma`), as `mlx.distributed_config --backend jaccl` writes it"
        )
    if hosts is not None and np is not None and np != len(hosts.hosts):
        raise UsageError(
            f"--np {np} does not match the {len(hosts.hosts)} hosts of {hostfile}: "
            "drop --np or edit the hostfile"
        )
    n = len(hosts.hosts) if hosts is not None else (DEFAULT_NP if np is None else np)
    if hosts is None or hosts.all_local:  # remote hosts may have what this one lacks
        why = backends.missing_here(backend)
        if why is not None:
            raise UsageError(f"--backend {backend}: {why}")
    return JobSpec(command, n, backend, hosts, timeout, stall_timeout, listen_ip, python)
