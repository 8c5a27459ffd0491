"""What ranks do to start MLX's ring backend without its one-second stall.

MLX's ring set-up: every rank listens on its own address and accepts from its left
neighbour, then connects to its right one; the last rank first connects to rank 0 and
listens after. A connect that finds no listener is retried only after a whole second
(doubling after that). So the last rank must not connect before rank 0 listens
(wait_for_ring_start), and the rank left of it must not connect before it listens
(deferring_wakeups): that connect follows the accept that the last rank's own connect
completes, so the two ranks race, and on a busy machine the woken rank often ran first.
"""

from __future__ import annotations

import ipaddress
import json
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mlxrun.rank import procfs
from mlxrun.rank.protocol import rank_from_env

STAGGER_SECONDS = 0.05  # when rank 0's sockets cannot be seen: it starts within a few ms
LISTEN_WAIT_SECONDS = 5.0  # past this, let MLX's own retries and errors take over
LISTEN_POLL_SECONDS = 0.002


def wait_for_ring_start(np_: int) -> None:
    """Holds the last rank until rank 0 listens, when rank 0 is on this machine (its
    listening socket is then visible in /proc/net/tcp); otherwise waits a little."""
    if np_ <= 1 or rank_from_env() != np_ - 1:
        return
    port = _local_port_of_rank0(os.environ.get("MLX_HOSTFILE", ""))
    if port is None or not procfs.available():  # macOS: no /proc to watch rank 0 through
        time.sleep(STAGGER_SECONDS)
        return
    deadline = time.monotonic() + LISTEN_WAIT_SECONDS
    while time.monotonic() < deadline:
        started = time.monotonic()
        if procfs.is_listening(port):
            return
        # On a machine with many sockets a look costs more: sleep at least as long, so
        # the wait never takes more than half a core from the ranks it waits for.
        time.sleep(max(LISTEN_POLL_SECONDS, time.monotonic() - started))


@contextmanager
def deferring_wakeups(np_: int) -> Iterator[None]:
    """Around MLX's ring set-up on the rank left of the last one (Linux): SCHED_BATCH, whose
    threads do not preempt the one that woke them. When the last rank's connect wakes this
    rank's accept, the last rank then goes on to listen before this rank connects to it."""
    batch = getattr(os, "SCHED_BATCH", None)
    if np_ <= 1 or rank_from_env() != np_ - 2 or batch is None:
        yield
        return
    deferred = False
    try:
        if os.sched_getscheduler(0) == os.SCHED_OTHER:  # else the user chose one: keep it
            os.sched_setscheduler(0, batch, os.sched_param(0))
            deferred = True
    except OSError:
        pass
    try:
        yield
    finally:
        if deferred:
            _restore_policy(os.SCHED_OTHER)


def _restore_policy(policy: int) -> None:
    """This process's SCHED_BATCH threads back to `policy`: this one, and any that MLX's
    set-up started, which took its policy."""
    try:
        threads = [int(t) for t in os.listdir("/proc/self/task")]
    except OSError:
        threads = [0]
    for tid in threads:
        try:
            if os.sched_getscheduler(tid) == os.SCHED_BATCH:
                os.sched_setscheduler(tid, policy, os.sched_param(0))
        except OSError:
            pass  # a thread that has just ended


def _local_port_of_rank0(hostfile: str) -> int | None:
    """Rank 0's first ring port, if its address is one of this machine's."""
    try:
        first = json.loads(Path(hostfile).read_text())[0][0]
        host, port = str(first).rsplit(":", 1)
        return int(port) if _is_local(host) else None
    except (OSError, ValueError, IndexError, KeyError, TypeError):
        return None


def _is_local(host: str) -> bool:
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        return False
    if addr.is_loopback:
        return True
    try:  # an address of this machine can be bound to
        with socket.socket(socket.AF_INET6 if addr.version == 6 else socket.AF_INET) as s:
            s.bind((host, 0))
        return True
    except OSError:
        return False
