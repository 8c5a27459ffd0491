"""A block of free TCP ports for one job's ring backend.

Two ring jobs on the same ports silently exchange data and return wrong
results (the ring listens with SO_REUSEPORT, so nothing fails to bind). Each
job therefore takes a block no other mlxrun job holds (a claim that lives
exactly as long as this process holds it) and that nothing is listening on: here,
by binding each port, and on the remote hosts of a hostfile, by connecting to the
address each of their ranks will listen on (a refused connection: free).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import random
import selectors
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from mlxrun.errors import LaunchError
from mlxrun.rank.procfs import linux_only_allowed

LOW, HIGH = 20000, 32000  # below Linux's ephemeral range, away from mlx.launch's default 32323
TRIES = 200
CLAIMS_DIR = "/tmp"  # where port claims are kept without abstract sockets (macOS)
PROBE_SECONDS = 0.5  # for a remote host to accept or refuse; silence counts as free


@dataclass
class PortBlock:
    """Ports start..start+count-1, claimed until release()."""

    start: int
    count: int
    _releases: list[Callable[[], None]] = field(default_factory=list, repr=False)

    @property
    def ports(self) -> range:
        return range(self.start, self.start + self.count)

    def release(self) -> None:
        for release in self._releases:
            release()
        self._releases.clear()

    def __enter__(self) -> PortBlock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def port_is_free(port: int, host: str = "0.0.0.0") -> bool:
    """Nothing listens on the port or holds it bound. A port that only has connections in
    TIME_WAIT is free: SO_REUSEADDR binds over them, as MLX's ring does."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def accepting(
    addresses: Sequence[tuple[str, int]], timeout: float = PROBE_SECONDS
) -> set[tuple[str, int]]:
    """The addresses where something accepts TCP connections, all probed at once, so that
    hosts that drop the probe cost one timeout in all, not one each."""
    found: set[tuple[str, int]] = set()
    sel = selectors.DefaultSelector()
    try:
        for address in addresses:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            if s.connect_ex(address) in (0, errno.EINPROGRESS, errno.EWOULDBLOCK):
                sel.register(s, selectors.EVENT_WRITE, address)
            else:
                s.close()
        deadline = time.monotonic() + timeout
        while sel.get_map() and (left := deadline - time.monotonic()) > 0:
            for key, _ in sel.select(left):
                sock: socket.socket = key.fileobj  # type: ignore[assignment]
                if sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0:
                    found.add(key.data)
                sel.unregister(sock)
                sock.close()
    finally:
        for key in list(sel.get_map().values()):
            key.fileobj.close()  # type: ignore[union-attr]
        sel.close()
    return found


def _claim(port: int) -> Callable[[], None] | None:
    """A claim other mlxrun jobs see, gone when this process dies; returns its release."""
    if linux_only_allowed():
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.bind(f"\0mlxrun-port-{port}")  # abstract name: no file to leave behind
        except OSError:
            s.close()
            return None
        return s.close
    # A lock file in /tmp, not in TMPDIR: jobs with different TMPDIRs must see each other.
    path = os.path.join(CLAIMS_DIR, f"mlxrun-port-{port}.lock")
    try:
        fd = os.open(path, os.O_CREAT | os.O_RDWR | getattr(os, "O_NOFOLLOW", 0), 0o600)
    except OSError:  # another user's claim
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        # Locked, but maybe a file its holder unlinked as we opened it: then not a claim.
        if os.stat(path).st_ino != os.fstat(fd).st_ino:
            raise OSError("the lock file was replaced")
    except OSError:
        os.close(fd)
        return None

    def release() -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        os.close(fd)

    return release


def _try_block(start: int, remote: Sequence[str | None], host: str) -> PortBlock | None:
    block = PortBlock(start, len(remote))
    for port in block.ports:
        release = _claim(port)
        if release is None:
            block.release()
            return None
        block._releases.append(release)
        if not port_is_free(port, host):
            block.release()
            return None
    probes = [(ip, port) for ip, port in zip(remote, block.ports, strict=True) if ip is not None]
    if probes and accepting(probes):
        block.release()
        return None
    return block


def reserve_ports(
    count: int, host: str = "0.0.0.0", remote: Sequence[str | None] | None = None
) -> PortBlock:
    """Claims `count` consecutive free ports, chosen at random in [LOW, HIGH). `remote`,
    if given, holds for each port the remote address it will be listened on (None: a
    local one), where it must not accept connections either."""
    rng = random.SystemRandom()
    remote = list(remote) if remote is not None else [None] * count
    for _ in range(TRIES):
        start = rng.randrange(LOW, HIGH - count)
        block = _try_block(start, remote, host)
        if block is not None:
            return block
    raise LaunchError(
        f"no block of {count} free TCP ports between {LOW} and {HIGH}: "
        "stop other jobs or run `mlxrun check` to see what holds them"
    )
