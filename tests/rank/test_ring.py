"""The last ring rank's wait for rank 0, against real sockets."""

from __future__ import annotations

import json
import os
import socket
import threading
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


needs_sched = pytest.mark.skipif(
    not hasattr(os, "SCHED_BATCH") or os.sched_getscheduler(0) != os.SCHED_OTHER,
    reason="Linux scheduling policies, from SCHED_OTHER",
)


@needs_sched
def test_the_rank_that_connects_to_the_last_one_defers_during_the_set_up(monkeypatch) -> None:
    monkeypatch.setenv("MLX_RANK", "1")  # rank np - 2 of 3
    seen: list[int] = []
    with ring.deferring_wakeups(3):
        seen.append(os.sched_getscheduler(0))
        # a thread started inside (as MLX's set-up may start them) takes the policy...
        worker = threading.Thread(target=lambda: seen.append(os.sched_getscheduler(0)))
        parked = threading.Event()
        helper = threading.Thread(target=parked.wait)
        worker.start()
        worker.join()
        helper.start()
        tid = helper.native_id
    # ...and is back with the rest afterwards
    assert seen == [os.SCHED_BATCH, os.SCHED_BATCH]
    assert os.sched_getscheduler(0) == os.SCHED_OTHER
    assert tid is not None and os.sched_getscheduler(tid) == os.SCHED_OTHER
    parked.set()
    helper.join()


@needs_sched
def test_other_ranks_and_a_chosen_policy_are_left_alone(monkeypatch) -> None:
    for rank, np_ in (("0", 3), ("2", 3), ("0", 1)):
        monkeypatch.setenv("MLX_RANK", rank)
        with ring.deferring_wakeups(np_):
            assert os.sched_getscheduler(0) == os.SCHED_OTHER
    monkeypatch.setenv("MLX_RANK", "0")
    os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))  # as `chrt -b` would
    try:
        with ring.deferring_wakeups(2):
            pass
        assert os.sched_getscheduler(0) == os.SCHED_BATCH
    finally:
        os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))


def test_without_scheduling_policies_the_set_up_runs_as_it_is(monkeypatch) -> None:
    # macOS has no SCHED_BATCH: faked here by taking it away on Linux.
    policy = os.sched_getscheduler(0)
    monkeypatch.delattr(os, "SCHED_BATCH", raising=False)
    monkeypatch.setenv("MLX_RANK", "0")
    with ring.deferring_wakeups(2):
        assert os.sched_getscheduler(0) == policy
