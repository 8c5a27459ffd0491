"""The last ring rank's wait for rank 0, against real sockets."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import pytest

from mlxrun.rank import procfs, ring

pytestmark = pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="needs Linux /proc")


def test_a_listening_port_is_seen_and_a_bound_one_is_not() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        assert not procfs.is_listening(port)  # bound, not yet listening: a connect would fail
        s.listen()
        assert procfs.is_listening(port)
    assert not procfs.is_listening(port)


def test_the_last_rank_waits_until_rank_0_listens(tmp_path: Path, monkeypatch) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        hostfile = tmp_path / "hosts.json"
        hostfile.write_text(json.dumps([[f"127.0.0.1:{port}"], ["127.0.0.1:1"]]))
        monkeypatch.setenv("MLX_HOSTFILE", str(hostfile))
        monkeypatch.setenv("MLX_RANK", "1")
        monkeypatch.setattr(ring, "LISTEN_WAIT_SECONDS", 0.3)
        started = time.monotonic()
        ring.wait_for_ring_start(2)  # nobody listens: gives up after the wait
        assert time.monotonic() - started >= 0.3
        s.listen()
        started = time.monotonic()
        ring.wait_for_ring_start(2)
        assert time.monotonic() - started < 0.1


def test_rank_0_and_remote_hosts_do_not_wait(tmp_path: Path, monkeypatch) -> None:
    hostfile = tmp_path / "hosts.json"
    hostfile.write_text(json.dumps([["192.0.2.1:5000"], ["192.0.2.2:5000"]]))  # TEST-NET-1
    monkeypatch.setenv("MLX_HOSTFILE", str(hostfile))
    monkeypatch.setenv("MLX_RANK", "1")
    started = time.monotonic()
    ring.wait_for_ring_start(2)  # rank 0 is not on this machine: only the short stagger
    assert time.monotonic() - started < ring.STAGGER_SECONDS + 0.1
    monkeypatch.setenv("MLX_RANK", "0")
    started = time.monotonic()
    ring.wait_for_ring_start(2)
    assert time.monotonic() - started < 0.02
