"""The network's limit for a multi-host benchmark: one raw TCP stream between two hosts.

The first rank of the first host listens; the first rank of another host connects, sends
TCP_BYTES and waits for a one-byte answer sent when the last byte arrived, so the time
covers the whole transfer. Every step has a timeout: a firewall or a wrong address ends
in an OSError for the caller to report, never a hang. Standard library only (ranks)."""

from __future__ import annotations

import socket
import time

TCP_BYTES = 64 * 1024 * 1024
CHUNK = 1024 * 1024
TIMEOUT_SECONDS = 10.0  # for a connect, and between two reads
ACCEPT_SECONDS = 5.0  # the sender connects as soon as both left the same collective


def listen() -> socket.socket:
    """A listening socket on every address of this host, on a free port."""
    if socket.has_dualstack_ipv6():
        server = socket.create_server(("", 0), family=socket.AF_INET6, dualstack_ipv6=True)
    else:
        server = socket.create_server(("", 0))
    server.settimeout(ACCEPT_SECONDS)
    return server


def serve(server: socket.socket, nbytes: int = TCP_BYTES) -> None:
    """Receives one stream of `nbytes` and answers when all of it arrived."""
    with server:
        conn, _ = server.accept()
        with conn:
            conn.settimeout(TIMEOUT_SECONDS)
            buf = bytearray(CHUNK)
            left = nbytes
            while left:
                got = conn.recv_into(buf, min(CHUNK, left))
                if not got:
                    raise ConnectionError(f"the sender closed after {nbytes - left} bytes")
                left -= got
            conn.sendall(b"k")


def stream(address: str, port: int, nbytes: int = TCP_BYTES) -> float:
    """Sends `nbytes` to a `serve`r; returns GB/s (1e9 bytes), the answer's wait included."""
    chunk = bytes(CHUNK)
    with socket.create_connection((address, port), timeout=TIMEOUT_SECONDS) as sock:
        started = time.perf_counter()
        left = nbytes
        while left:
            n = min(CHUNK, left)
            sock.sendall(chunk[:n] if n < CHUNK else chunk)
            left -= n
        if sock.recv(1) != b"k":
            raise ConnectionError("the receiver did not confirm the stream")
        return nbytes / (time.perf_counter() - started) / 1e9
