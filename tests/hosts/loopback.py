"""Four throwaway sshd "hosts" on this machine, node1..node4 at 127.0.0.2..127.0.0.5.

Each sshd runs as PID 1 of its own PID, mount and UTS namespaces (`unshare`): its own
hostname, its own process table (a rank's pid there means nothing here, so mlxrun must
stop remote ranks through ssh, as on real machines) and its own folder bound at
DATA_PATH (per-host files really differ). Everything else of the filesystem is shared,
so the venv's interpreter has the same path on every host.

A test-owned ssh config names the hosts, and an `ssh` wrapper first on PATH adds `-F`
to every call (mlx.launch and mpirun call plain `ssh`). `~/.ssh` is never read or
written: keys, known hosts and config are all in the session's temporary folder.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

ADDRESSES = ("127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5")
NAMES = tuple(f"node{i + 1}" for i in range(len(ADDRESSES)))
DATA_PATH = Path("/tmp/mlxrun-hostdata")  # the same path on every host, a folder of its own
REMOTE_TMP = Path("/tmp/mlxrun-remote.*")  # a remote rank's temp folder (rank.mlx_launch)
SSHD = "/usr/sbin/sshd"
START_SECONDS = 10.0


def missing() -> str | None:
    """Why these hosts cannot be made here, or None."""
    if os.name != "posix" or not Path("/proc/self/ns/pid").exists():
        return "needs Linux namespaces (unshare); on macOS the loopback hosts cannot be made"
    if os.geteuid() != 0:
        return "needs root (unshare of PID, mount and UTS namespaces; sshd)"
    for tool in ("unshare", "ssh-keygen", "/usr/bin/ssh", SSHD):
        if shutil.which(tool) is None:
            return f"{tool} not found: `make test-deps` installs openssh-server as root"
    return None


def _free_port(address: str) -> int:
    with socket.socket() as s:
        s.bind((address, 0))
        return int(s.getsockname()[1])


def _listening(address: str, port: int) -> bool:
    try:
        with socket.create_connection((address, port), timeout=0.5):
            return True
    except OSError:
        return False


def _pid_ns(pid: int) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/ns/pid")
    except OSError:
        return None


@dataclass
class Node:
    name: str
    address: str
    port: int
    data: Path  # this host's own folder, seen at DATA_PATH on it
    config: Path
    proc: subprocess.Popen[bytes] | None = None
    sshd_pid: int | None = None  # sshd, PID 1 of the host's namespaces (as seen from here)

    def start(self) -> None:
        # unshare --fork makes the child PID 1 of the new namespace; `exec` makes it sshd.
        inner = (
            f"hostname {self.name} && mount --bind {self.data} {DATA_PATH} && "
            f"exec {SSHD} -D -e -f {self.config}"
        )
        with open(self.config.with_suffix(".log"), "ab") as log:
            self.proc = subprocess.Popen(
                ["unshare", "--mount", "--pid", "--fork", "--mount-proc", "--uts"]
                + ["sh", "-c", inner],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=log,
                start_new_session=True,
            )
        deadline = time.monotonic() + START_SECONDS
        while not _listening(self.address, self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                log = self.config.with_suffix(".log").read_text(errors="replace")
                self.stop()
                raise RuntimeError(f"{self.name}: sshd did not start:\n{log}")
            time.sleep(0.05)
        self.sshd_pid = self._find_sshd()

    def _find_sshd(self) -> int:
        assert self.proc is not None
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text()
        return int(children.split()[0])

    def processes(self) -> list[tuple[int, str]]:
        """(pid, command line) of every process in this host's namespace but its sshd
        listener: what a job left behind there."""
        if self.sshd_pid is None:
            return []
        ns = _pid_ns(self.sshd_pid)
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == self.sshd_pid:
                continue
            if ns is not None and _pid_ns(int(entry.name)) == ns:
                try:
                    cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
                    state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
                except OSError:
                    continue
                if state != "Z":
                    found.append((int(entry.name), cmd.strip()))
        return found

    def stop(self) -> None:
        """Kills the namespace's PID 1, which takes every process in it along."""
        if self.proc is None:
            return
        if self.sshd_pid is not None:
            try:
                os.kill(self.sshd_pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        self.proc, self.sshd_pid = None, None


@dataclass
class Hosts:
    """The session's hosts, and the environment under which `ssh nodeN` reaches them."""

    root: Path
    nodes: list[Node]
    env: dict[str, str] = field(default_factory=dict)

    def node(self, name: str) -> Node:
        return next(n for n in self.nodes if n.name == name)

    def hostfile(self, n: int, backend: str | None = None, name: str | None = None) -> Path:
        """A hostfile of the first n hosts (ring: each with its loopback IP)."""
        import json

        hosts = [{"ssh": node.name, "ips": [node.address]} for node in self.nodes[:n]]
        data: object = hosts if backend is None else {"backend": backend, "hosts": hosts}
        path = self.root / (name or f"hosts{n}.json")
        path.write_text(json.dumps(data))
        return path

    def other_python(self, mlx_version: dict[str, str] | None = None) -> str:
        """A Python at another path than this one, on the hosts only (in DATA_PATH, each
        host's own folder): a venv that sees this venv's packages. `mlx_version` maps a
        host to the mlx version its venv claims (a dist-info found before the real one)."""
        import site
        import sys

        packages = [p for p in site.getsitepackages() if p.startswith(sys.prefix)]
        repo = Path(__file__).resolve().parents[2]
        for node in self.nodes:
            venv = node.data / "venv"
            if not venv.exists():
                subprocess.run(
                    [sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True
                )
                lib = next((venv / "lib").glob("python3*")) / "site-packages"
                (lib / "mlxrun-test.pth").write_text("\n".join([*packages, str(repo)]) + "\n")
            lib = next((venv / "lib").glob("python3*")) / "site-packages"
            fake = (mlx_version or {}).get(node.name)
            for old in lib.glob("mlx-*.dist-info"):
                shutil.rmtree(old)
            if fake is not None:
                info = lib / f"mlx-{fake}.dist-info"
                info.mkdir()
                (info / "METADATA").write_text(
                    f"Metadata-Version: 2.1\nName: mlx\nVersion: {fake}\n"
                )
        return str(DATA_PATH / "venv" / "bin" / "python")

    def leftovers(self, wait: float = 5.0) -> dict[str, list[tuple[int, str]]]:
        """What still runs on any host, and remote ranks' temp folders not removed, after
        waiting up to `wait` s for them to go (a remote rank sees its ssh session end a
        moment after mlxrun returns). The hosts share this machine's /tmp."""
        deadline = time.monotonic() + wait
        while True:
            left = {n.name: n.processes() for n in self.nodes if n.processes()}
            folders = sorted(str(p) for p in REMOTE_TMP.parent.glob(REMOTE_TMP.name))
            if folders:
                left["temp folders"] = [(0, f) for f in folders]
            if not left or time.monotonic() > deadline:
                return left
            time.sleep(0.1)


def _write_sshd_config(node: Node, host_key: Path, user_pub: Path, pidfile: Path) -> None:
    node.config.write_text(
        "\n".join(
            [
                f"Port {node.port}",
                f"ListenAddress {node.address}",
                f"HostKey {host_key}",
                f"PidFile {pidfile}",
                f"AuthorizedKeysFile {user_pub}",
                "PermitRootLogin yes",
                "StrictModes no",
                "UsePAM no",
                "PasswordAuthentication no",
                "KbdInteractiveAuthentication no",
                "PrintMotd no",
                "AcceptEnv no",
                "MaxStartups 100",
                "MaxSessions 100",
                "",
            ]
        )
    )


def _write_client(root: Path, nodes: list[Node], user_key: Path) -> dict[str, str]:
    config = root / "ssh_config"
    blocks = [
        f"Host {n.name} {n.address}\n  HostName {n.address}\n  Port {n.port}\n" for n in nodes
    ]
    common = (
        "Host *\n  User root\n"
        f"  IdentityFile {user_key}\n  IdentitiesOnly yes\n"
        "  StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n"
        "  GlobalKnownHostsFile /dev/null\n  LogLevel ERROR\n  BatchMode yes\n"
        "  ConnectTimeout 5\n"
    )
    config.write_text("".join(blocks) + common)
    bin_dir = root / "bin"
    bin_dir.mkdir()
    wrapper = bin_dir / "ssh"
    wrapper.write_text(f'#!/bin/sh\nexec /usr/bin/ssh -F {config} "$@"\n')
    wrapper.chmod(0o755)
    return {"PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}


@contextmanager
def loopback_hosts(root: Path) -> Iterator[Hosts]:
    """Starts the four hosts, with their keys and configs in `root`; stops them after."""
    user_key, host_key = root / "user_key", root / "host_key"
    for key in (user_key, host_key):
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)],
            check=True,
            timeout=30,
            stdin=subprocess.DEVNULL,
        )
    Path("/run/sshd").mkdir(parents=True, exist_ok=True)  # sshd's privilege separation
    DATA_PATH.mkdir(parents=True, exist_ok=True)
    nodes = []
    for name, address in zip(NAMES, ADDRESSES, strict=True):
        data = root / f"{name}-data"
        data.mkdir()
        node = Node(name, address, _free_port(address), data, root / f"{name}.sshd_config")
        _write_sshd_config(node, host_key, Path(f"{user_key}.pub"), root / f"{name}.pid")
        nodes.append(node)
    cluster = Hosts(root, nodes, _write_client(root, nodes, user_key))
    try:
        for node in nodes:
            node.start()
        yield cluster
    finally:
        for node in nodes:
            node.stop()
