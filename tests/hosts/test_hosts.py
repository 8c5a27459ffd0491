"""The loopback hosts themselves: reachable by name, each its own hostname and data."""

from __future__ import annotations

import os
import subprocess

from tests.hosts.loopback import DATA_PATH, Hosts


def ssh(hosts: Hosts, name: str, command: str) -> str:
    p = subprocess.run(
        ["ssh", name, command],
        env={**os.environ, **hosts.env},
        capture_output=True,
        text=True,
        timeout=30,
        stdin=subprocess.DEVNULL,
    )
    assert p.returncode == 0, p.stderr
    return p.stdout


def test_each_host_has_its_name_its_data_and_its_processes(hosts: Hosts) -> None:
    for node in hosts.nodes:
        (node.data / "who").write_text(node.name)
    for node in hosts.nodes:
        assert ssh(hosts, node.name, f"hostname; cat {DATA_PATH}/who").split() == [node.name] * 2
        # Its own PID namespace: sshd is PID 1 there.
        assert ssh(hosts, node.name, "cat /proc/1/comm").strip() == "sshd"
    assert hosts.leftovers() == {}
