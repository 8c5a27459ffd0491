"""Checks of a cluster's network and of the settings MLX cluster users trip over: each
host's IPs on one of its interfaces, the Thunderbolt bridge, RDMA devices for jaccl, and
MLX_METAL_FAST_SYNCH.

The parsers read the commands' real output (macOS `ifconfig`, Linux `ip -o addr`,
`ibv_devices`) and are tested on recorded copies where the platform is missing here.
"""

from __future__ import annotations

import ipaddress
import os
import platform
import re

from mlxrun.check.rows import FAIL, OK, WARN, Check, on_host, run
from mlxrun.launch.hostfile import Hostfile

# macOS `ifconfig`: "inet 10.0.0.2 netmask 0xffffff00"; Linux net-tools' `ifconfig`:
# "inet 10.0.0.2  netmask 255.255.255.0"; `ip -o addr`: "inet 10.0.0.2/24".
_IFCONFIG_INET = re.compile(
    r"\binet (\d+\.\d+\.\d+\.\d+)\s+netmask (0x[0-9a-fA-F]{8}|\d+\.\d+\.\d+\.\d+)"
)
_IP_INET = re.compile(r"\binet (\d+\.\d+\.\d+\.\d+)/(\d+)")
ADDRESSES_COMMAND = "ifconfig 2>/dev/null || ip -o addr"


def interface_networks(text: str) -> list[ipaddress.IPv4Interface]:
    """The IPv4 addresses, with their networks, in `ifconfig` or `ip -o addr` output."""
    found = [
        ipaddress.IPv4Interface(f"{ip}/{mask if '.' in mask else bin(int(mask, 16)).count('1')}")
        for ip, mask in _IFCONFIG_INET.findall(text)
    ]
    return found + [ipaddress.IPv4Interface(f"{ip}/{bits}") for ip, bits in _IP_INET.findall(text)]


def on_an_interface(ip: str, networks: list[ipaddress.IPv4Interface]) -> bool:
    """Whether the host answers at `ip`: an address of its own, or one of a loopback
    network it has (127.0.0.2 is this machine's when lo holds 127.0.0.1/8)."""
    address = ipaddress.ip_address(ip)
    return any(address == n.ip or (n.ip.is_loopback and address in n.network) for n in networks)


def host_ip_checks(hostfile: Hostfile) -> list[Check]:
    """Every IP of every host must be on one of that host's interfaces: an IP that moved
    (DHCP, a Thunderbolt cable in another port) makes ranks wait for a peer that is not
    there."""
    rows = []
    for host in dict.fromkeys(hostfile.hosts):
        if not host.ips:
            continue
        command = ["sh", "-c", ADDRESSES_COMMAND]
        code, out = run(command if host.is_local else on_host(host.ssh, ADDRESSES_COMMAND))
        networks = interface_networks(out)
        if code != 0 or not networks:
            rows.append(Check(f"ips of {host.ssh}", WARN, "could not list its interfaces"))
            continue
        away = [ip for ip in host.ips if not on_an_interface(ip, networks)]
        if away:
            rows.append(
                Check(
                    f"ips of {host.ssh}",
                    FAIL,
                    f"{', '.join(away)} not on any interface of {host.ssh} "
                    f"(it has {', '.join(str(n.ip) for n in networks)})",
                    f"give {host.ssh}'s current IP in {hostfile.path}, or run "
                    "mlx.distributed_config again",
                )
            )
        else:
            rows.append(Check(f"ips of {host.ssh}", OK, f"{', '.join(host.ips)} on its interfaces"))
    return rows


def bridge_is_up(ifconfig_bridge0: str) -> bool:
    """`ifconfig bridge0` says the bridge is up: "bridge0: flags=8863<UP,BROADCAST,...>"."""
    flags = re.search(r"flags=\w+<([^>]*)>", ifconfig_bridge0)
    return flags is not None and "UP" in flags.group(1).split(",")


def bridge_check() -> Check | None:
    """macOS: the Thunderbolt bridge holds the Thunderbolt ports, so they cannot carry the
    per-link IPs ring and jaccl use. mlx.distributed_config takes it down; a reboot
    brings it back."""
    if platform.system() != "Darwin":
        return None
    code, out = run(["ifconfig", "bridge0"])
    if code != 0:
        return Check("thunderbolt bridge", OK, "no bridge0")
    if bridge_is_up(out):
        return Check(
            "thunderbolt bridge",
            WARN,
            "bridge0 is up: its Thunderbolt ports cannot carry the IPs of a ring or jaccl "
            "job over Thunderbolt",
            "sudo ifconfig bridge0 down (mlx.distributed_config's setup does it; it comes "
            "back after a reboot)",
        )
    return Check("thunderbolt bridge", OK, "bridge0 is down")


def rdma_devices(ibv_devices: str) -> list[str]:
    """The device names in `ibv_devices` output, as mlx.distributed_config reads them."""
    return [word for word in ibv_devices.split() if word.startswith("rdma_")]


def rdma_check(host: str | None = None) -> Check:
    """jaccl needs RDMA over Thunderbolt enabled on every Mac (macOS 26.2+)."""
    name = f"rdma devices{f' of {host}' if host else ''}"
    command = ["ibv_devices"] if host is None else on_host(host, "ibv_devices")
    code, out = run(command)
    found = rdma_devices(out) if code == 0 else []
    if found:
        return Check(name, OK, ", ".join(found))
    why = "ibv_devices not found (macOS 26.2 or later has it)" if code == 127 else "none"
    return Check(
        name,
        FAIL,
        f"no RDMA device: {why}",
        "enable RDMA over Thunderbolt: reboot into macOS Recovery, run `rdma_ctl enable` in "
        "its Terminal, reboot (Thunderbolt 5 Macs); then `ibv_devices` lists rdma_en*",
    )


def jaccl_checks(hostfile: Hostfile) -> list[Check]:
    return [rdma_check(None if h.is_local else h.ssh) for h in dict.fromkeys(hostfile.hosts)]


def fast_synch_check(hostfile: Hostfile | None) -> Check:
    """MLX_METAL_FAST_SYNCH, set in this shell or in a hostfile's envs, is a known source
    of hangs in distributed jobs."""
    where = []
    if "MLX_METAL_FAST_SYNCH" in os.environ:
        where.append(f"this shell (MLX_METAL_FAST_SYNCH={os.environ['MLX_METAL_FAST_SYNCH']})")
    if hostfile is not None:
        where += [
            f"{hostfile.path} envs ({e})"
            for e in hostfile.envs
            if e.startswith("MLX_METAL_FAST_SYNCH=")
        ]
    if not where:
        return Check("MLX_METAL_FAST_SYNCH", OK, "not set")
    return Check(
        "MLX_METAL_FAST_SYNCH",
        WARN,
        f"set in {'; '.join(where)}: a known source of deadlocks in distributed jobs",
        "unset MLX_METAL_FAST_SYNCH (and remove it from the hostfile's envs)",
    )
