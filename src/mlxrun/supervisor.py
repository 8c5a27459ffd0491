"""Supervising one job: hearing every rank, deciding how it ended, stopping it.

mlx.launch exits 0 whatever its ranks did, so the verdict is made here from
what each rank's agent reports over the channel: a job succeeded only if
every rank reported exit code 0. On the first failure, a timeout or a signal
to mlxrun, every process of the job gets SIGTERM, then SIGKILL after a grace
period; a rank that waits in a collective for a dead peer would otherwise
wait forever.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import selectors
import signal
import socket
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from mlxrun import channel
from mlxrun.channel import Kind
from mlxrun.errors import ExitCode
from mlxrun.hostfile import LOCAL_SSH as LOCAL_HOST
from mlxrun.launcher import JobSpec, Launch
from mlxrun.output import LAUNCHER, RankOutput, split_lines

GRACE_SECONDS = 2.0  # SIGTERM to SIGKILL
VICTIM_GRACE_SECONDS = 1.0  # how long a rank that lost a peer waits for that peer's report
DRAIN_SECONDS = 2.0  # after SIGKILL, or after the launcher exits, before giving up on a rank
TAIL_LINES = 8
# What ranks print when another rank died first: such a rank is a victim, not the cause.
PEER_LOSS = re.compile(r"connection to a peer was lost|was closed by the peer|failed with errno")
SSH_FAILED = 255  # what ssh exits with when it cannot connect or log in
_LAUNCHER_WARN = re.compile(rb"Node with rank (\d+) exited with code (-?\d+)")
_ANSI = re.compile(rb"\x1b\[[0-9;]*m")


class Outcome(Enum):
    OK = "ok"
    FAILED = "failed"
    TIMEOUT = "timeout"
    INTERRUPTED = "interrupted"
    TERMINATED = "terminated"

    @property
    def exit_code(self) -> ExitCode:
        return _EXIT_CODES[self]


_EXIT_CODES = {
    Outcome.OK: ExitCode.OK,
    Outcome.FAILED: ExitCode.RANK_FAILED,
    Outcome.TIMEOUT: ExitCode.TIMEOUT,
    Outcome.INTERRUPTED: ExitCode.INTERRUPTED,
    Outcome.TERMINATED: ExitCode.TERMINATED,
}


@dataclass
class RankStatus:
    rank: int
    host: str = ""
    pid: int | None = None
    pgid: int | None = None
    local: bool = False
    connected: bool = False
    returncode: int | None = None
    ended_at: float | None = None  # seconds since the job started
    stopped: bool = False  # ended after mlxrun began stopping the job
    lost: bool = False  # its connection closed without an exit report
    lost_a_peer: bool = False  # it said a peer went away (ring's messages)
    stderr_tail: deque[str] = field(default_factory=lambda: deque(maxlen=TAIL_LINES))
    results: list[dict[str, Any]] = field(default_factory=list)  # records the rank's worker sent

    @property
    def failed(self) -> bool:
        return self.lost or (self.returncode is not None and self.returncode != 0)


@dataclass
class JobReport:
    outcome: Outcome
    ranks: list[RankStatus]
    seconds: float
    root_cause: RankStatus | None = None
    reason: str = ""
    launcher_tail: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.outcome is Outcome.OK


def _advertised_host(spec: JobSpec) -> tuple[str, str]:
    """(bind address, address the ranks dial) for this job's channel."""
    if spec.hostfile is None or spec.hostfile.all_local:
        return "127.0.0.1", "127.0.0.1"
    override = os.environ.get("MLXRUN_CHANNEL_HOST")
    if override:
        return "0.0.0.0", override
    remote = next(h for h in spec.hostfile.hosts if not h.is_local)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect((remote.ips[0] if remote.ips else remote.ssh, 9))  # sends nothing
            return "0.0.0.0", str(probe.getsockname()[0])
        except OSError:
            return "0.0.0.0", socket.gethostbyname(socket.gethostname())


@contextmanager
def _signals_to(wake: socket.socket) -> Iterator[list[int]]:
    """Turns SIGINT and SIGTERM into a note the event loop reads."""
    received: list[int] = []
    old_fd = signal.set_wakeup_fd(wake.fileno(), warn_on_full_buffer=False)
    old = {
        s: signal.signal(s, lambda n, _f: received.append(n))
        for s in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        yield received
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)
        signal.set_wakeup_fd(old_fd)


class _Conn:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.decoder = channel.FrameDecoder(max_frame=channel.MAX_HELLO)
        self.rank: RankStatus | None = None
        self.exited = False


class Supervisor:
    def __init__(
        self,
        spec: JobSpec,
        output: RankOutput,
        timeout: float | None = None,
        on_record: Callable[[RankStatus, dict[str, Any]], None] | None = None,
        while_starting: Callable[[], object] | None = None,
    ) -> None:
        self.spec = spec
        self.on_record = on_record
        # Work of the caller's that can wait until the ranks are starting (loading its
        # display): done then, on this core, while the launcher and ranks use the other.
        self.while_starting = while_starting
        self.output = output
        self.timeout = timeout
        hosts = [h.ssh for h in spec.hostfile.hosts] if spec.hostfile else ["127.0.0.1"] * spec.np
        self.ranks = [RankStatus(r, host=hosts[r]) for r in range(spec.np)]
        self.token = secrets.token_hex(16)
        self.machine = channel.machine_id()
        self.start = time.monotonic()
        self.failures: list[RankStatus] = []
        self.stop_reason: Outcome | None = None
        self.stopping_since = 0.0  # meaningful once stop_reason is set
        self.killed = False
        self.launcher_lines: dict[int, bytes] = {0: b"", 1: b""}
        self.launcher_tail: deque[str] = deque(maxlen=TAIL_LINES)
        self.conns: dict[int, _Conn] = {}
        self.pipes_open = 2  # the launcher's stdout and stderr

    # -- what happens -------------------------------------------------------

    def now(self) -> float:
        return time.monotonic() - self.start

    def _ended(self, rank: RankStatus, returncode: int | None, lost: bool = False) -> None:
        if rank.returncode is not None or rank.lost:
            return
        rank.returncode = returncode
        rank.lost = lost
        rank.ended_at = self.now()
        rank.stopped = self.stop_reason is not None
        if rank.failed and not rank.stopped:
            self.failures.append(rank)

    def _on_frame(self, conn: _Conn, kind: Kind, payload: bytes) -> None:
        if conn.rank is None:
            self._on_hello(conn, kind, payload)
            return
        rank = conn.rank
        if kind is Kind.STDOUT:
            self.output.write(rank.rank, 0, payload)
        elif kind is Kind.STDERR:
            self.output.write(rank.rank, 1, payload)
            lines = [line.decode(errors="replace") for line in split_lines(payload)]
            rank.stderr_tail.extend(lines)
            rank.lost_a_peer = rank.lost_a_peer or any(PEER_LOSS.search(line) for line in lines)
        elif kind is Kind.RESULT:
            for line in split_lines(payload):
                self._on_record(rank, line)
        elif kind is Kind.EXIT:
            conn.exited = True
            self._ended(rank, int(json.loads(payload)["returncode"]))

    def _on_record(self, rank: RankStatus, line: bytes) -> None:
        try:
            record = json.loads(line)
        except ValueError:
            return  # not from mlxrun's worker; a user's script may write anything there
        if isinstance(record, dict):
            rank.results.append(record)
            if self.on_record is not None:
                self.on_record(rank, record)

    def _on_hello(self, conn: _Conn, kind: Kind, payload: bytes) -> None:
        if kind is not Kind.HELLO:
            raise channel.ProtocolError("first frame is not a hello")
        hello = channel.parse_hello(payload, self.token)
        if not 0 <= hello.rank < len(self.ranks) or self.ranks[hello.rank].connected:
            raise channel.ProtocolError(f"unexpected rank {hello.rank}")
        rank = self.ranks[hello.rank]
        rank.connected, rank.host, rank.pid, rank.pgid = True, hello.host, hello.pid, hello.pgid
        rank.local = hello.machine == self.machine
        conn.rank = rank
        conn.decoder = channel.FrameDecoder()

    def _on_launcher_output(self, which: int, data: bytes) -> None:
        """mlx.launch's own lines: relayed labelled, and read for rank failures."""
        buf = self.launcher_lines[which] + data
        cut = buf.rfind(b"\n") + 1 if data else len(buf)
        self.launcher_lines[which] = buf[cut:]
        if not cut:
            return
        # Its colour codes would reach files and pipes as garbage; mlxrun colours the label.
        self.output.write(LAUNCHER, which, _ANSI.sub(b"", buf[:cut]))
        for line in split_lines(buf[:cut]):
            text = _ANSI.sub(b"", line)
            self.launcher_tail.append(text.decode(errors="replace"))
            m = _LAUNCHER_WARN.search(text)
            if m and int(m.group(1)) < len(self.ranks):
                rank = self.ranks[int(m.group(1))]
                if not rank.connected:  # its agent never reported: the launcher is all we have
                    self._ended(rank, int(m.group(2)))

    # -- stopping -------------------------------------------------------------

    def _all_ranks_done(self) -> bool:
        """Every rank reported exit code 0 and hung up."""
        return not self.conns and all(r.returncode == 0 for r in self.ranks)

    def _only_victims_so_far(self) -> bool:
        """True while every failure is a rank that lost a peer, for a short while: the
        peer that died first is then still exiting, and it is the root cause to report."""
        first = self.failures[0].ended_at or 0.0
        victims = all(r.lost_a_peer for r in self.failures)
        return victims and self.now() - first < VICTIM_GRACE_SECONDS

    def _begin_stop(self, launch: Launch, why: Outcome) -> None:
        if self.stop_reason is not None:
            return
        self.stop_reason = why
        self.stopping_since = time.monotonic()
        self._signal_all(launch, signal.SIGTERM)

    def _signal_all(self, launch: Launch, sig: int) -> None:
        launch.signal_group(sig)
        # MPI puts each rank in a process group of its own.
        for r in self.ranks:
            if r.local and r.pgid is not None and r.returncode is None:
                try:
                    os.killpg(r.pgid, sig)
                except (ProcessLookupError, PermissionError):
                    pass

    # -- the loop -----------------------------------------------------------

    def run(self) -> JobReport:
        bind, dial = _advertised_host(self.spec)
        server = socket.create_server((bind, 0), backlog=max(128, self.spec.np))
        server.setblocking(False)
        agent_env = {
            channel.TOKEN_ENV: self.token,
            channel.ADDRESS_ENV: f"{dial}:{server.getsockname()[1]}",
        }
        wake_r, wake_w = socket.socketpair()
        wake_w.setblocking(False)
        try:
            with Launch(self.spec, agent_env) as launch, _signals_to(wake_w) as received:
                self.start = time.monotonic()
                launch.start()
                if self.while_starting is not None:
                    self.while_starting()
                self._loop(launch, server, wake_r, received)
                self._signal_all(launch, signal.SIGKILL)
        finally:
            for conn in self.conns.values():
                conn.sock.close()
            server.close()
            wake_r.close()
            wake_w.close()
            self.output.close()
        return self._report()

    def _loop(
        self, launch: Launch, server: socket.socket, wake: socket.socket, received: list[int]
    ) -> None:
        assert launch.proc is not None and launch.proc.stdout and launch.proc.stderr
        sel = selectors.DefaultSelector()
        sel.register(server, selectors.EVENT_READ, "accept")
        sel.register(wake, selectors.EVENT_READ, "wake")
        sel.register(launch.proc.stdout, selectors.EVENT_READ, 0)
        sel.register(launch.proc.stderr, selectors.EVENT_READ, 1)
        launcher_done_at: float | None = None
        while True:
            self._check(launch, received)
            if launcher_done_at is None and self.pipes_open == 0 and launch.proc.poll() is not None:
                launcher_done_at = time.monotonic()
            if launcher_done_at is not None:
                # Agents normally hang up before the launcher exits; MPI ranks may linger.
                if not self.conns or time.monotonic() - launcher_done_at > DRAIN_SECONDS:
                    break
            if self.stop_reason is None and self._all_ranks_done():
                break  # nothing is left to hear: the launcher's own exit adds only latency
            if (
                self.killed
                and time.monotonic() - self.stopping_since > GRACE_SECONDS + DRAIN_SECONDS
            ):
                break
            # Once the launcher closed its pipes, it is about to exit: look again soon.
            for key, _ in sel.select(timeout=0.01 if self.pipes_open == 0 else 0.25):
                self._on_event(sel, key, server)
        for r in self.ranks:
            if r.returncode is None and not r.lost:
                self._ended(r, None, lost=True)

    def _check(self, launch: Launch, received: list[int]) -> None:
        if self.stop_reason is None:
            if received:
                self._begin_stop(
                    launch,
                    Outcome.INTERRUPTED if received[0] == signal.SIGINT else Outcome.TERMINATED,
                )
            elif self.failures and not self._only_victims_so_far():
                self._begin_stop(launch, Outcome.FAILED)
            elif self.timeout is not None and self.now() > self.timeout:
                self._begin_stop(launch, Outcome.TIMEOUT)
        elif not self.killed and time.monotonic() - self.stopping_since > GRACE_SECONDS:
            self.killed = True
            self._signal_all(launch, signal.SIGKILL)

    def _on_event(
        self, sel: selectors.BaseSelector, key: selectors.SelectorKey, server: socket.socket
    ) -> None:
        tag: Any = key.data
        if tag == "accept":
            try:
                sock, _ = server.accept()
            except BlockingIOError:
                return
            sock.setblocking(False)
            self.conns[sock.fileno()] = _Conn(sock)
            sel.register(sock, selectors.EVENT_READ, "conn")
        elif tag == "wake":
            key.fileobj.recv(512)  # type: ignore[union-attr]
        elif tag in (0, 1):
            data = os.read(key.fd, 65536)
            if not data:
                sel.unregister(key.fileobj)
                self.pipes_open -= 1
            self._on_launcher_output(tag, data)
        else:
            self._on_conn(sel, self.conns[key.fd])

    def _on_conn(self, sel: selectors.BaseSelector, conn: _Conn) -> None:
        try:
            data = conn.sock.recv(262144)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        try:
            for kind, payload in conn.decoder.feed(data):
                self._on_frame(conn, kind, payload)
        except channel.ProtocolError:
            data = b""  # a stranger, or a broken agent: hang up
        if not data:
            sel.unregister(conn.sock)
            del self.conns[conn.sock.fileno()]
            conn.sock.close()
            if conn.rank is not None and not conn.exited:
                self._ended(conn.rank, None, lost=True)

    def _report(self) -> JobReport:
        seconds = self.now()
        if self.stop_reason not in (None, Outcome.FAILED):
            assert self.stop_reason is not None
            return JobReport(
                self.stop_reason,
                self.ranks,
                seconds,
                None,
                self.stop_reason.value,
                list(self.launcher_tail),
            )
        failed = self.failures or [r for r in self.ranks if r.failed]
        if not failed:
            return JobReport(
                Outcome.OK, self.ranks, seconds, launcher_tail=list(self.launcher_tail)
            )
        root = next((r for r in failed if not r.lost_a_peer), failed[0])
        return JobReport(
            Outcome.FAILED, self.ranks, seconds, root, describe_end(root), list(self.launcher_tail)
        )


# Ranks read their data through mappings: a file cut short under them ends in SIGBUS.
SIGNAL_HINTS: dict[int, str] = {signal.SIGBUS: " (a mapped file got shorter while it was read?)"}


def signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def describe_end(rank: RankStatus) -> str:
    if rank.lost and not rank.connected:
        return f"rank {rank.rank} never started (see the launcher's lines)"
    if rank.lost:
        return f"rank {rank.rank} stopped reporting (its agent was killed or its host lost)"
    code = rank.returncode
    if code is not None and code < 0:
        hint = SIGNAL_HINTS.get(-code, "")
        return f"rank {rank.rank} was killed by {signal_name(-code)}{hint}"
    if code == SSH_FAILED and not rank.connected and rank.host != LOCAL_HOST:
        return (
            f"rank {rank.rank} could not start on {rank.host} (ssh exit code 255): "
            f"check `ssh -o BatchMode=yes {rank.host} true` or run `mlxrun check --hostfile FILE`"
        )
    return f"rank {rank.rank} exited with code {code}"
