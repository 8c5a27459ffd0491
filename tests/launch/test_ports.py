"""Port blocks for the ring: free here and on the remote hosts of a hostfile, probed with
real sockets on loopback addresses."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from mlxrun.errors import LaunchError
from mlxrun.launch import ports


@contextmanager
def listener(address: str) -> Iterator[int]:
    """A server on `address` that accepts (a full backlog would drop the probes' SYNs).
    The backlog holds every probe of a reserve_ports call (one per try): its thread may not
    get the GIL back while they come, and a dropped SYN reads as a free port."""
    with socket.socket() as s:
        s.bind((address, 0))
        s.listen(2 * ports.TRIES)
        s.settimeout(0.1)
        done = threading.Event()

        def serve() -> None:
            while not done.is_set():
                with contextlib.suppress(OSError):
                    s.accept()[0].close()

        server = threading.Thread(target=serve)
        server.start()
        try:
            yield s.getsockname()[1]
        finally:
            done.set()
            server.join()


def closed_port(address: str) -> int:
    with socket.socket() as s:
        s.bind((address, 0))
        return int(s.getsockname()[1])


def test_a_probe_tells_listening_from_refusing_addresses() -> None:
    with listener("127.0.0.3") as taken:
        free = closed_port("127.0.0.2")
        started = time.monotonic()
        found = ports.accepting([("127.0.0.3", taken), ("127.0.0.2", free), ("127.0.0.3", free)])
        assert found == {("127.0.0.3", taken)}
        assert time.monotonic() - started < ports.PROBE_SECONDS  # refusals need no timeout


def test_a_port_listened_on_by_a_remote_host_is_not_reserved(monkeypatch) -> None:
    # Binding 127.0.0.1:P here does not collide with a listener on 127.0.0.3:P, as a port
    # on another machine would not: only the probe of the remote address can see it.
    with listener("127.0.0.3") as taken:
        monkeypatch.setattr(ports, "LOW", taken)
        monkeypatch.setattr(ports, "HIGH", taken + 2)  # the only block of 1: `taken`
        with pytest.raises(LaunchError, match="no block of 1 free TCP ports"):
            ports.reserve_ports(1, host="127.0.0.1", remote=["127.0.0.3"])
        with ports.reserve_ports(1, host="127.0.0.1", remote=[None]) as block:
            assert block.start == taken  # the same port, for a rank that listens here
