"""mlx.launch hostfiles: read and validated before a job starts.

The format is MLX's: a JSON list of hosts, or an object
`{"backend": ..., "envs": [...], "hosts": [{"ssh": ..., "ips": [...]}]}`.
mlx.launch itself fails late and vaguely on a bad hostfile; here every
problem names the file, the key path and what to write instead.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlxrun.errors import SpecError, UsageError

LOCAL_SSH = "127.0.0.1"  # the only name mlx.launch runs without ssh


# One host's RDMA device toward each host of the file (None toward itself): a name for
# jaccl, a list of names for jaccl-ring. Passed to mlx.launch as written.
Rdma = tuple[str | tuple[str, ...] | None, ...]


@dataclass(frozen=True)
class Host:
    ssh: str
    ips: tuple[str, ...]
    rdma: Rdma = ()

    @property
    def is_local(self) -> bool:
        return self.ssh == LOCAL_SSH


@dataclass(frozen=True)
class Hostfile:
    path: Path
    hosts: tuple[Host, ...]
    backend: str
    envs: tuple[str, ...]

    @property
    def all_local(self) -> bool:
        return all(h.is_local for h in self.hosts)


def _fail(path: Path, where: str, what: str) -> SpecError:
    return SpecError(f"{path}: {where}: {what}" if where else f"{path}: {what}")


def is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _host(path: Path, i: int, raw: Any, backend: str, count: int) -> Host:
    where = f"hosts[{i}]"
    if not isinstance(raw, dict):
        raise _fail(path, where, 'expected an object like {"ssh": "node1", "ips": ["10.0.0.1"]}')
    unknown = sorted(set(raw) - {"ssh", "ips", "rdma"})
    if unknown:
        raise _fail(path, f"{where} -> {unknown[0]}", "unknown key (expected ssh, ips, rdma)")
    ssh = raw.get("ssh")
    if not isinstance(ssh, str) or not ssh:
        raise _fail(path, f"{where} -> ssh", "missing: the name to ssh into (127.0.0.1 = here)")
    ips = raw.get("ips", [])
    if not isinstance(ips, list) or not all(isinstance(ip, str) for ip in ips):
        raise _fail(path, f"{where} -> ips", "must be a list of IP addresses")
    for j, ip in enumerate(ips):
        if not is_ip(ip):
            raise _fail(
                path,
                f"{where} -> ips[{j}]",
                f'"{ip}" is not an IP address; the ring backend needs IP literals, '
                "such as 192.168.1.10",
            )
    if backend == "ring" and not ips:
        if not is_ip(ssh):
            raise _fail(
                path,
                f"{where} -> ips",
                f'missing: the ring backend needs the IP of "{ssh}" (add "ips": ["<its IP>"])',
            )
        ips = [ssh]
    return Host(ssh, tuple(ips), _rdma(path, where, raw.get("rdma", []), i, count))


def _rdma(path: Path, where: str, raw: Any, i: int, count: int) -> Rdma:
    """Host i's row of the N x N device matrix: null toward itself, a device name (jaccl)
    or a list of names (jaccl-ring) toward every other host."""
    if raw == []:
        return ()
    if not isinstance(raw, list) or len(raw) != count:
        raise _fail(
            path,
            f"{where} -> rdma",
            f"must list one entry per host ({count}), null for this host itself: "
            'e.g. [null, "rdma_en2"] (see `mlx.distributed_config`)',
        )
    row: list[str | tuple[str, ...] | None] = []
    for j, entry in enumerate(raw):
        at = f"{where} -> rdma[{j}]"
        if j == i:
            if entry is not None:
                raise _fail(path, at, "must be null: a host has no RDMA link to itself")
            row.append(None)
        elif entry is None or (isinstance(entry, str) and entry):
            row.append(entry)
        elif isinstance(entry, list) and entry and all(isinstance(d, str) and d for d in entry):
            row.append(tuple(entry))
        else:
            raise _fail(
                path, at, 'must be a device name such as "rdma_en2", a list of names, or null'
            )
    return tuple(row)


def parse_hostfile(path: Path, text: str, backend: str | None) -> Hostfile:
    """Validates a hostfile for `backend` (None: the one the file names, else ring)."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise _fail(path, f"line {e.lineno}", f"not valid JSON ({e.msg})") from None
    file_backend, envs = "", []
    if isinstance(data, dict):
        unknown = sorted(set(data) - {"backend", "envs", "hosts"})
        if unknown:
            raise _fail(path, unknown[0], "unknown key (expected backend, envs, hosts)")
        file_backend = data.get("backend", "")
        envs = data.get("envs", [])
        if not isinstance(envs, list) or not all(isinstance(e, str) and "=" in e for e in envs):
            raise _fail(path, "envs", 'must be a list of "NAME=value" strings')
        data = data.get("hosts")
    if not isinstance(data, list) or not data:
        raise _fail(path, "hosts", "expected a non-empty list of hosts")
    chosen = backend or file_backend or "ring"
    hosts = tuple(_host(path, i, h, chosen, len(data)) for i, h in enumerate(data))
    _check_backend(path, chosen, hosts)
    return Hostfile(path, hosts, chosen, tuple(envs))


def _check_backend(path: Path, backend: str, hosts: tuple[Host, ...]) -> None:
    """What nccl and jaccl need of a hostfile, checked as mlx.launch would, but with the
    key path: rank 0's IP (every rank connects to it), and for jaccl an RDMA device
    between every pair of hosts (jaccl-ring: between neighbours on the ring)."""
    if backend not in ("nccl", "jaccl", "jaccl-ring"):
        return
    if not hosts[0].ips:
        raise _fail(
            path,
            "hosts[0] -> ips",
            f"missing: {backend} needs rank 0's IP, which every other rank connects to",
        )
    if backend == "nccl":
        return
    n = len(hosts)
    for i, host in enumerate(hosts):
        if not host.rdma:
            raise _fail(
                path,
                f"hosts[{i}] -> rdma",
                f"missing: {backend} needs the RDMA device toward each other host "
                "(`mlx.distributed_config --backend jaccl` writes them)",
            )
        peers = ((i - 1) % n, (i + 1) % n) if backend == "jaccl-ring" else range(n)
        for j in peers:
            if j != i and host.rdma[j] is None:
                raise _fail(
                    path,
                    f"hosts[{i}] -> rdma[{j}]",
                    f"null, but {backend} needs an RDMA device from {host.ssh} to "
                    f"{hosts[j].ssh} (is their Thunderbolt cable in?)",
                )


def load_hostfile(path: Path, backend: str | None = None) -> Hostfile:
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise UsageError(f"{path}: hostfile not found") from None
    except OSError as e:
        raise UsageError(f"{path}: cannot read hostfile ({e.strerror})") from None
    return parse_hostfile(path, text, backend)
