"""The channel attacked for real while a job runs: strangers, broken and hostile hellos,
oversized and truncated frames, a flood of connections and a client that never speaks.
Each is refused or timed out; the job's output, result and end time are unaffected."""

from __future__ import annotations

import json
import socket
import struct
import subprocess
import time
from pathlib import Path

from tests.helpers import assert_no_leftovers, channel_port, script, start


def channel_of(job: subprocess.Popen[str]) -> tuple[str, int]:
    """The job's channel address (channel_port) once mlxrun listens on it."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        port = channel_port(job.pid)
        if port is not None:
            return "127.0.0.1", port
        time.sleep(0.02)
    raise AssertionError("the job's channel never showed")


def frame(kind: int, payload: bytes) -> bytes:
    return struct.pack("!BI", kind, len(payload)) + payload


def hello(**fields: object) -> bytes:
    base = {"token": "0" * 32, "rank": 0, "pid": 1, "pgid": 1, "host": "x", "machine": "x"}
    return frame(1, json.dumps({**base, **fields}).encode())


ATTACKS = {
    "wrong token": hello(),
    "huge rank": frame(1, b'{"token": "x", "rank": 1e999, "pid": 1, "pgid": 1}'),
    "deep nesting": frame(1, b"[" * 4000),
    "not json": frame(1, b"\xff\xfe garbage"),
    "no hello first": frame(2, b"INJECTED\n"),
    "oversized hello": struct.pack("!BI", 1, 1 << 30),
    "unknown kind": struct.pack("!BI", 99, 4) + b"abcd",
    "truncated": struct.pack("!BI", 1, 100) + b'{"tok',
}


def test_attacks_while_a_job_runs_are_refused_and_change_nothing(tmp_path: Path) -> None:
    # Each rank sleeps 3 s, then all_sum: long enough for every attack to land meanwhile.
    command = ("exec", "--np", "2", "--", "python", script("hang.py"), "quiet", "3")
    baseline, _ = start(tmp_path, *command)
    started = time.monotonic()
    out_ok, _ = baseline.communicate(timeout=60)
    plain = time.monotonic() - started

    job, run = start(tmp_path, *command)
    started = time.monotonic()
    address = channel_of(job)
    hung_up = {}
    silent = socket.create_connection(address)  # connects and never says a word
    flood = [socket.create_connection(address) for _ in range(300)]
    for name, data in ATTACKS.items():
        with socket.create_connection(address, timeout=10) as s:
            s.sendall(data)
            try:
                hung_up[name] = s.recv(1) == b""
            except ConnectionResetError:
                hung_up[name] = True
    out, err = job.communicate(timeout=60)
    took = time.monotonic() - started
    silent.close()
    for s in flood:
        s.close()
    assert job.returncode == 0, err
    assert sorted(out.splitlines()) == sorted(out_ok.splitlines())  # every line, nothing more
    assert "INJECTED" not in out + err and "internal error" not in err
    assert all(hung_up.values()), hung_up
    assert took < plain + 2.0, (took, plain)  # strangers do not hold the job's end
    assert_no_leftovers(run)


def test_a_connection_that_never_says_hello_is_dropped(tmp_path: Path) -> None:
    job, run = start(
        tmp_path, "exec", "--np", "1", "--", "python", "-c", "import time; time.sleep(8)"
    )
    with socket.create_connection(channel_of(job), timeout=15) as s:
        started = time.monotonic()
        assert s.recv(1) == b""  # hung up on, without a word from either side
        assert time.monotonic() - started < 7
    job.communicate(timeout=60)
    assert job.returncode == 0
