"""Helpers for tests that run the real mlxrun CLI with real mlx.launch ranks, and for
tests that read a csv file's shards in-process as a job's ranks would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from mlxrun import native
from mlxrun.data import sources
from mlxrun.data.model import Data
from mlxrun.data.shards import GUESS
from mlxrun.data.sources import open_shard
from mlxrun.errors import DataError
from mlxrun.rank import procfs
from mlxrun.reduce import worker

ROOT = Path(__file__).resolve().parent.parent  # the repo
SCRIPTS = Path(__file__).parent / "scripts"
MARK = "MLXRUN_TEST_MARK"


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str
    mark: str
    tmpdir: Path


def start(
    tmp_path: Path, *args: str, env: dict[str, str] | None = None, **popen: object
) -> tuple[subprocess.Popen[str], Run]:
    """Starts `python -m mlxrun ARGS` in the background, marked and in a TMPDIR of its own,
    with text pipes unless `popen` says otherwise. The Run holds the mark and the folder."""
    mark, tmpdir = uuid.uuid4().hex, tmp_path / f"tmp-{uuid.uuid4().hex[:6]}"
    tmpdir.mkdir()
    options: dict[str, object] = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE}
    job = subprocess.Popen(  # type: ignore[call-overload]
        [sys.executable, "-m", "mlxrun", *args],
        stdin=subprocess.DEVNULL,
        text=True,
        env={**os.environ, MARK: mark, "TMPDIR": str(tmpdir), **(env or {})},
        **{**options, **popen},
    )
    return job, Run(0, "", "", mark, tmpdir)


def marked_processes(mark: str) -> list[procfs.Process]:
    """Live processes whose environment carries this test's mark."""
    needle = f"{MARK}={mark}".encode()
    return [
        p
        for p in procfs.processes()
        if p.pid != os.getpid() and p.state != "Z" and needle in p.environ.split(b"\0")
    ]


def processes_with_mark(mark: str) -> list[int]:
    return [p.pid for p in marked_processes(mark)]


def assert_no_leftovers(run: Run) -> None:
    """No process of the job alive and nothing left in the job's TMPDIR."""
    deadline = time.monotonic() + 2  # a dying process may still be in the process table
    while processes_with_mark(run.mark) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert processes_with_mark(run.mark) == []
    assert sorted(p.name for p in run.tmpdir.iterdir()) == []


def script(name: str) -> str:
    return str(SCRIPTS / name)


PARSERS = ["c", "numpy"] if native.ext is not None else ["numpy"]


@contextmanager
def parser(name: str) -> Iterator[None]:
    """Numbers are parsed in C when the extension is built, else by numpy: both must agree.
    "c-scalar" is the C extension with its portable field scanner instead of SIMD."""
    saved = native.ext
    native.ext = saved if name.startswith("c") else None
    simd = saved.use_simd(name != "c-scalar") if saved is not None else None
    try:
        yield
    finally:
        native.ext = saved
        if saved is not None:
            saved.use_simd(simd)


class PortWatch:
    """The TCP ports running jobs hold (agent_ports): the ring block and mlxrun's
    channel. A thread looks at each mlxrun's children until the `with` ends (reading
    all of /proc instead is too slow on a busy machine: it missed whole jobs);
    `assert_released` then checks that nothing listens on them and no claim remains."""

    def __init__(self, np: int = 2) -> None:
        self.np = np
        self.ports: dict[str, set[int]] = {}  # mark -> ports
        self._jobs: dict[int, str] = {}  # mlxrun's pid -> its mark, until its launcher is seen
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def add(self, job: subprocess.Popen[str], run: Run) -> None:
        with self._lock:
            self.ports[run.mark] = set()
            self._jobs[job.pid] = run.mark

    def __enter__(self) -> PortWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _watch(self) -> None:
        while not self._stop.wait(0.02):
            with self._lock:
                jobs = dict(self._jobs)
            for pid, mark in jobs.items():
                ports = agent_ports(pid, self.np)
                if ports:
                    with self._lock:
                        self.ports[mark] = ports
                        del self._jobs[pid]

    def assert_released(self, run: Run) -> None:
        ports = self.ports[run.mark]
        listening = set(procfs.listening_sockets()) & ports
        assert listening == set(), f"still listening: {sorted(listening)}"
        claims = Path("/proc/net/unix").read_text()
        claimed = {p for p in ports if f"@mlxrun-port-{p}\n" in claims}
        assert claimed == set(), f"still claimed: {sorted(claimed)}"


def socket_inodes(pid: int) -> set[str]:
    """The inodes of the sockets process `pid` holds (none if it is gone)."""
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return set()
    inodes = set()
    for fd in fds:
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue  # closed since the listing
        if link.startswith("socket:["):
            inodes.add(link[len("socket:[") : -1])
    return inodes


def channel_port(pid: int) -> int | None:
    """The port of mlxrun `pid`'s channel: the TCP socket it listens on, as a local user
    could find it. Not from a launcher's or an agent's environment: mlx.launch (and a lone
    rank's agent) run in a fork of mlxrun, whose /proc entries show mlxrun's own."""
    inodes = socket_inodes(pid)
    ports = [port for port, inode in procfs.listening_sockets().items() if inode in inodes]
    return ports[0] if ports else None


def children(pid: int) -> list[int]:
    try:
        return [
            int(c)
            for t in Path(f"/proc/{pid}/task").iterdir()
            for c in (t / "children").read_text().split()
        ]
    except OSError:
        return []


def agent_ports(pid: int, np: int) -> set[int]:
    """The ports of 2-rank-or-more job `pid` (an mlxrun), as its ranks' agents name them in
    their environment (MLXRUN_CHANNEL, and the ring addresses in MLX_HOSTFILE): mlx.launch
    starts them with the job's environment, and they live as long as the job. A few small
    reads per job, so that a watch of many jobs on a loaded machine still sees each."""
    for launcher in children(pid):
        for agent in children(launcher):
            try:
                environ = Path(f"/proc/{agent}/environ").read_bytes().split(b"\0")
                found = dict(e.decode().split("=", 1) for e in environ if b"=" in e)
                ring = json.loads(Path(found["MLX_HOSTFILE"]).read_text())
                channel = int(found["MLXRUN_CHANNEL"].rsplit(":", 1)[1])
            except (OSError, KeyError, ValueError, UnicodeDecodeError):
                continue
            ports = {int(a.rsplit(":", 1)[1]) for rank in ring for a in rank}
            if len(ports) >= np:
                return ports | {channel}
    return set()


def port_claims() -> dict[str, int]:
    """Socket inode -> port of every mlxrun port claim (`@mlxrun-port-N`) on this machine."""
    claims = {}
    for line in Path("/proc/net/unix").read_text().splitlines()[1:]:
        fields = line.split()
        if len(fields) > 7 and fields[7].startswith("@mlxrun-port-"):
            claims[fields[6]] = int(fields[7].rsplit("-", 1)[1])
    return claims


def launcher_ports(
    pid: int, np: int, claims: dict[str, int] | None = None, listening: dict[int, str] | None = None
) -> set[int]:
    """The TCP ports mlxrun `pid` holds for its job once it starts the ranks: its claims on
    the ring block and its channel's port (the tables may be given, read once for many)."""
    inodes = socket_inodes(pid)
    claims = port_claims() if claims is None else claims
    listening = procfs.listening_sockets() if listening is None else listening
    ring = {port for inode, port in claims.items() if inode in inodes}
    channel = {port for port, inode in listening.items() if inode in inodes}
    return ring | channel if len(ring) >= np and channel else set()


# -- csv shards in-process, as a job's ranks read them ---------------------------------


def exchanged(data: Data, np_: int) -> list[int]:
    """Every rank's quotes_before, as a job's ranks learn them (one all_gather)."""
    counts = [sources.quote_count(data, r, np_) for r in range(np_)]
    return [sum(counts[:r]) for r in range(np_)]


def shards(data: Data, np_: int, exchange: bool = False) -> tuple[list[float], list[int]]:
    """Every rank's values, in order, and what each rank skipped as missing; each rank
    counts the quotes before it, or (`exchange`) is told them as in a job."""
    values: list[float] = []
    missing = []
    before = exchanged(data, np_) if exchange else [None] * np_
    for r in range(np_):
        shard = open_shard(data, r, np_, before[r])
        values += [v for chunk in shard.chunks for v in chunk.tolist()]
        missing.append(shard.missing)
    return values, missing


def guessed(data: Data, np_: int) -> tuple[list[float], list[int], bool]:
    """Every rank's values and missing counts as a job's ranks read them: from guessed
    starts if the ranks' bounds confirm them (the third item says so), else again from
    exchanged quote counts."""
    read, bounds = [], []
    for r in range(np_):
        shard = open_shard(data, r, np_, GUESS)
        try:
            read.append(([v for chunk in shard.chunks for v in chunk.tolist()], shard.missing))
            bounds.append([shard.first, shard.end])
        except DataError:  # a wrong start can make any error
            read.append(([], 0))
            bounds.append([-1, -1])
    if not worker.guesses_confirmed(bounds, tuple(range(np_))):
        return *shards(data, np_, exchange=True), False
    return [v for values, _ in read for v in values], [m for _, m in read], True
