"""Supervising one job: hearing every rank, stopping it, and handing its end to `verdict`.

The job moves through phases, each with one deadline:
- RUNNING until every rank reported success, a rank failed, the time limit passed or
  mlxrun got a signal; then every process of the job gets SIGTERM (a rank waiting in a
  collective for a dead peer would otherwise wait forever) and the job is
- STOPPING until the ranks are gone or GRACE_SECONDS passed; then SIGKILL, and
- KILLED for DRAIN_SECONDS more, to hear the last reports.
- DRAINING: the launcher exited (its ranks are gone, or going); the agents' last frames
  are heard until they hang up, or for DRAIN_SECONDS at most.

While it runs, mlxrun may ask every rank's agent what its rank is doing (an inquiry: see
`launch.stall`): when the job has been quiet for its stall timeout (a stall, if no rank
turns out busy), when its time limit is reached (the stacks are shown before it is
stopped), and on SIGUSR1 or SIGQUIT (shown, and the job goes on).
"""

from __future__ import annotations

import json
import math
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

from mlxrun.launch.channel import Channel, Peer, advertised_address
from mlxrun.launch.job import JobSpec
from mlxrun.launch.launcher import Launch
from mlxrun.launch.output import LAUNCHER, RankOutput, split_lines
from mlxrun.launch.stall import Snapshot, busy, report
from mlxrun.launch.verdict import (
    TAIL_LINES,
    JobReport,
    Outcome,
    RankStatus,
    awaiting_root_cause,
    decide,
    launcher_warning,
)
from mlxrun.rank import protocol, snapshot
from mlxrun.rank.protocol import Hello, Kind, unstamped

GRACE_SECONDS = 2.0  # SIGTERM to SIGKILL
DRAIN_SECONDS = 2.0  # after SIGKILL, or after the launcher exits, before giving up on a rank
TICK_SECONDS = 0.25  # the longest the loop sleeps: the victim grace and the deadlines need it
INQUIRY_SECONDS = 12.0  # for every agent's snapshot (its tools have 5 s each)
RAISED_SECONDS = 2.0  # a rank that printed a traceback and still runs this long is looked at
HEARTBEAT_SECONDS = 1.0
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)  # HUP: a closed terminal
STACK_SIGNALS = (signal.SIGUSR1, signal.SIGQUIT)
_ANSI = re.compile(rb"\x1b\[[0-9;]*m")

OnRecord = Callable[[RankStatus, dict[str, Any]], None]
STOPPED_BY: dict[int, Outcome] = {
    signal.SIGINT: Outcome.INTERRUPTED,
    signal.SIGTERM: Outcome.TERMINATED,
    signal.SIGHUP: Outcome.HUNG_UP,
}


class Phase(Enum):
    RUNNING = "running"
    STOPPING = "stopping"
    KILLED = "killed"
    DRAINING = "draining"
    DONE = "done"


@dataclass
class Inquiry:
    """Snapshots asked of the ranks' agents, and why: "stall", "timeout" or "asked"."""

    why: str
    waiting: set[int]
    deadline: float
    shots: list[Snapshot] = field(default_factory=list)


@contextmanager
def _signals_to(wake: socket.socket) -> Iterator[list[int]]:
    """Turns SIGINT, SIGTERM, SIGUSR1 and SIGQUIT into notes the event loop reads."""
    received: list[int] = []
    old_fd = signal.set_wakeup_fd(wake.fileno(), warn_on_full_buffer=False)
    old = {
        s: signal.signal(s, lambda n, _f: received.append(n))
        for s in (*STOP_SIGNALS, *STACK_SIGNALS)
    }
    try:
        yield received
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)
        signal.set_wakeup_fd(old_fd)


class Supervisor:
    def __init__(
        self,
        spec: JobSpec,
        output: RankOutput,
        on_record: OnRecord | None = None,
        while_starting: Callable[[], object] | None = None,
    ) -> None:
        self.spec = spec
        self.output = output
        self.on_record = on_record
        # Work of the caller's that can wait until the ranks are starting (loading its
        # display): done then, on this core, while the launcher and ranks use the other.
        self.while_starting = while_starting
        hosts = [h.ssh for h in spec.hostfile.hosts] if spec.hostfile else ["127.0.0.1"] * spec.np
        if spec.hostfile is not None and not spec.hostfile.all_local:
            output.hosts = hosts
        remote = output.hosts is not None
        self.ranks = [RankStatus(r, host=hosts[r], remote=remote) for r in range(spec.np)]
        self.machine = protocol.machine_id()
        self.start = time.monotonic()
        self.phase = Phase.RUNNING
        self.deadline = math.inf
        self.stop_reason: Outcome | None = None
        self.failures: list[RankStatus] = []  # failed before the job was stopped, in order
        self.launcher_lines: dict[int, bytes] = {0: b"", 1: b""}
        self.launcher_tail: deque[str] = deque(maxlen=TAIL_LINES)
        self.pipes_open = 2  # the launcher's stdout and stderr
        self.peers: dict[int, Peer] = {}  # by rank, once admitted
        self.clock_offset: dict[int, float] = {}  # job time minus the agent's stamp clock
        self.cpu: dict[int, float] = {}  # CPU seconds each rank used, as last heard
        self.cpu_mark: dict[int, float] = {}  # ... when the job was last active
        self.quiet_since = time.monotonic()  # the last output or progress record
        self.inquiry: Inquiry | None = None
        self.launcher_pid: int | None = None
        self.looked_at: set[int] = set()  # ranks whose traceback was followed up

    def now(self) -> float:
        return time.monotonic() - self.start

    # -- the loop -----------------------------------------------------------

    def run(self) -> JobReport:
        bind, dial = advertised_address(self.spec)
        token = secrets.token_hex(16)
        sel = selectors.DefaultSelector()
        channel = Channel(bind, dial, token, self.spec.np, self._admit, sel)
        agent_env = {protocol.TOKEN_ENV: token, protocol.ADDRESS_ENV: channel.address}
        if self.spec.stall_timeout is not None:
            agent_env[protocol.HEARTBEAT_ENV] = str(HEARTBEAT_SECONDS)
        wake_r, wake_w = socket.socketpair()
        wake_w.setblocking(False)
        try:
            # Taken before the launch, given back after its close: a signal in between
            # would otherwise end mlxrun before it removed the job's temp folder.
            with _signals_to(wake_w) as received, Launch(self.spec, agent_env) as launch:
                self.start = self.quiet_since = time.monotonic()
                if self.spec.timeout is not None:
                    self.deadline = time.monotonic() + self.spec.timeout
                launch.start()
                self.launcher_pid = launch.proc.pid if launch.proc else None
                if self.while_starting is not None:
                    self.while_starting()
                self._loop(launch, channel, sel, wake_r, received)
                self._signal_all(launch, signal.SIGKILL)
        finally:
            channel.close()
            sel.close()
            wake_r.close()
            wake_w.close()
            self.output.close()
        for r in self.ranks:
            if not r.ended:
                self._ended(r, None, lost=True)
        late = [s for s in received if s in STOP_SIGNALS]
        if late and self.stop_reason is None:
            # The job was over when it came: it stops mlxrun as it would outside a job
            # (cli.signals).
            signal.raise_signal(late[0])
        return decide(
            self.stop_reason, self.ranks, self.failures, self.now(), list(self.launcher_tail)
        )

    def _loop(
        self,
        launch: Launch,
        channel: Channel,
        sel: selectors.BaseSelector,
        wake: socket.socket,
        received: list[int],
    ) -> None:
        assert launch.proc is not None and launch.proc.stdout and launch.proc.stderr
        sel.register(wake, selectors.EVENT_READ, "wake")
        sel.register(launch.proc.stdout, selectors.EVENT_READ, 0)
        sel.register(launch.proc.stderr, selectors.EVENT_READ, 1)
        while True:
            self._advance(launch, channel, received)
            if self.phase is Phase.DONE:
                return
            # Once the launcher closed its pipes, it is about to exit: look again soon.
            tick = 0.01 if self.pipes_open == 0 else TICK_SECONDS
            wait = max(0.0, min(tick, self._next_due() - time.monotonic()))
            for key, _ in sel.select(timeout=wait):
                self._on_event(sel, key, channel)
            for stranger in channel.overdue():
                channel.drop(stranger)

    def _advance(self, launch: Launch, channel: Channel, received: list[int]) -> None:
        """Moves to the next phase when its condition or deadline has come."""
        now = time.monotonic()
        if self.phase is Phase.RUNNING:
            stops = [s for s in received if s in STOP_SIGNALS]
            asked = any(s in STACK_SIGNALS for s in received)
            received[:] = stops
            inquiry = self.inquiry
            if stops:
                self._begin_stop(launch, STOPPED_BY[stops[0]])
            elif self.output.broken:
                self._begin_stop(launch, Outcome.OUTPUT_CLOSED)  # `| head` has what it wanted
            elif self.failures and not awaiting_root_cause(self.failures, self.ranks, self.now()):
                self._begin_stop(launch, Outcome.FAILED)
            elif inquiry is not None and (not inquiry.waiting or now >= inquiry.deadline):
                self._conclude(launch, inquiry)
            elif now >= self.deadline and (inquiry is None or inquiry.why != "timeout"):
                self._inquire(channel, "timeout")  # the stacks first, then the stop
            elif inquiry is None and self._quiet_for_too_long(now):
                self._inquire(channel, "stall")
            elif inquiry is None and (raised := self._raised_but_running()):
                self._inquire(channel, "raised", only=raised)
            elif inquiry is None and asked:
                self._inquire(channel, "asked")
            elif not channel.agents and all(r.returncode == 0 for r in self.ranks):
                self.phase = Phase.DONE  # the launcher's own exit would add only latency
                return
        elif self.phase is Phase.STOPPING and now >= self.deadline:
            self._signal_all(launch, signal.SIGKILL)
            self.phase, self.deadline = Phase.KILLED, now + DRAIN_SECONDS
        exited = self.pipes_open == 0 and launch.proc is not None and launch.proc.poll() is not None
        if exited and self.phase in (Phase.RUNNING, Phase.STOPPING):
            # Agents normally hang up before the launcher exits; MPI ranks may linger.
            self.phase, self.deadline = Phase.DRAINING, now + DRAIN_SECONDS
        if self.phase in (Phase.KILLED, Phase.DRAINING):
            heard_all = not channel.agents and not channel.waiting()
            if (exited and heard_all) or now >= self.deadline:
                self.phase = Phase.DONE

    def _next_due(self) -> float:
        """When the loop must look again at the latest, whatever it hears."""
        if self.phase is not Phase.RUNNING:
            return self.deadline
        if self.inquiry is not None:
            return self.inquiry.deadline
        due = self.deadline
        if self.spec.stall_timeout is not None:
            due = min(due, self.quiet_since + self.spec.stall_timeout)
        return due

    # -- inquiries ------------------------------------------------------------

    def _quiet_for_too_long(self, now: float) -> bool:
        stall = self.spec.stall_timeout
        return stall is not None and now - self.quiet_since >= stall

    def _active(self) -> None:
        """A rank wrote output or a progress record: the job is not stalled."""
        self.quiet_since = time.monotonic()
        self.cpu_mark = dict(self.cpu)

    def _raised_but_running(self) -> set[int]:
        """Ranks that printed a traceback a while ago and have not ended, not yet looked at."""
        now = self.now()
        return {
            r.rank
            for r in self.ranks
            if r.raised_at is not None
            and now - r.raised_at > RAISED_SECONDS
            and not r.ended
            and r.rank not in self.looked_at
        }

    def _inquire(self, channel: Channel, why: str, only: set[int] | None = None) -> None:
        """Asks every rank still running (or `only` those) what it is doing (an upgrade of
        the open inquiry, if there is one)."""
        if self.inquiry is not None:
            self.inquiry.why = why
            return
        asked = {r.rank for r in self.ranks if r.rank in self.peers and not r.ended}
        if only is not None:
            asked &= only
            self.looked_at |= only
        for rank in asked:
            channel.send(self.peers[rank], Kind.REQUEST, {"stack": True})
        self.inquiry = Inquiry(why, asked, time.monotonic() + INQUIRY_SECONDS)

    def _conclude(self, launch: Launch, inquiry: Inquiry) -> None:
        self.inquiry = None
        silent = sorted(inquiry.waiting)
        if inquiry.why == "raised":
            for shot in inquiry.shots:
                if shot.exiting:  # it will never exit on its own: a failure, found now
                    rank = self.ranks[shot.rank]
                    rank.stuck_exiting, rank.ended_at = True, self.now()
                    self.failures.append(rank)
            return
        if inquiry.why == "asked":
            self.output.notice(report("stacks on request (the job goes on)", inquiry.shots, silent))
        elif inquiry.why == "timeout":
            title = f"timed out after {self.spec.timeout:g} s; where every rank was"
            self.output.notice(report(title, inquiry.shots, silent))
            self._begin_stop(launch, Outcome.TIMEOUT)
        else:
            window = time.monotonic() - self.quiet_since
            working = [s for s in inquiry.shots if busy(s, self.cpu_mark.get(s.rank, 0.0), window)]
            if working:
                self._active()  # a rank computes without a word: not a stall
                return
            title = f"stalled: for {self.spec.stall_timeout:g} s no rank wrote output or did work"
            self.output.notice(report(title, inquiry.shots, silent))
            self._begin_stop(launch, Outcome.STALLED)

    def _begin_stop(self, launch: Launch, why: Outcome) -> None:
        self.stop_reason = why
        self.phase, self.deadline = Phase.STOPPING, time.monotonic() + GRACE_SECONDS
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

    # -- what happens -------------------------------------------------------

    def _on_event(
        self, sel: selectors.BaseSelector, key: selectors.SelectorKey, channel: Channel
    ) -> None:
        tag: Any = key.data
        if tag == "accept":
            channel.accept()
        elif tag == "wake":
            key.fileobj.recv(512)  # type: ignore[union-attr]
        elif tag in (0, 1):
            data = os.read(key.fd, 65536)
            if not data:
                sel.unregister(key.fileobj)
                self.pipes_open -= 1
            self._on_launcher_output(tag, data)
        else:
            self._on_peer(channel, tag)

    def _on_peer(self, channel: Channel, peer: Peer) -> None:
        frames = channel.receive(peer)
        if frames is None:
            channel.drop(peer)
            if peer.hello is not None and not peer.exited:
                self._ended(self.ranks[peer.hello.rank], None, lost=True)
            return
        assert peer.hello is not None or not frames
        if peer.hello is not None:
            self.peers[peer.hello.rank] = peer
        for kind, payload in frames:
            self._on_frame(peer, self.ranks[peer.hello.rank], kind, payload)  # type: ignore[union-attr]

    def _admit(self, hello: Hello) -> bool:
        """A hello with the job's token: bind it to its rank, if that rank is expected."""
        if not 0 <= hello.rank < len(self.ranks) or self.ranks[hello.rank].connected:
            return False
        rank = self.ranks[hello.rank]
        rank.connected, rank.pid, rank.pgid = True, hello.pid, hello.pgid
        if self.spec.hostfile is None:  # else the host keeps the hostfile's name for it
            rank.host = hello.host
        # Its process group is signalled at the end: only if that group is the job's own.
        rank.local = hello.machine == self.machine and self._started_by_us(hello)
        self.clock_offset[hello.rank] = self.now() - hello.clock
        return True

    def _started_by_us(self, hello: Hello) -> bool:
        """Whether the hello's process is one of the launcher's (or the launcher itself)
        and leads or shares the group it names: a token holder cannot make mlxrun signal
        anyone else's processes."""
        if self.launcher_pid is None or hello.pgid <= 1:
            return False
        try:
            if os.getpgid(hello.pid) != hello.pgid:
                return False
        except OSError:
            return False
        return hello.pid in snapshot.tree(self.launcher_pid)

    def _on_frame(self, peer: Peer, rank: RankStatus, kind: Kind, payload: bytes) -> None:
        if kind in (Kind.STDOUT, Kind.STDERR):
            stamp, lines = unstamped(payload)
            at = stamp + self.clock_offset.get(rank.rank, 0.0)
            self.output.write(rank.rank, 0 if kind is Kind.STDOUT else 1, lines, at)
            if kind is Kind.STDERR:
                text = [line.decode(errors="replace") for line in split_lines(lines)]
                rank.heard_stderr(text, at)
            self._active()
        elif kind is Kind.RESULT:
            for line in split_lines(payload):
                self._on_record(rank, line)
        elif kind is Kind.HEARTBEAT:
            self.cpu[rank.rank] = float(json.loads(payload)["cpu"])
        elif kind is Kind.STACK:
            if self.inquiry is not None and rank.rank in self.inquiry.waiting:
                shot = Snapshot.from_record(rank.rank, rank.host, json.loads(payload))
                self.inquiry.shots.append(shot)
                self.inquiry.waiting.discard(rank.rank)
        elif kind is Kind.EXIT:
            peer.exited = True
            self._ended(rank, int(json.loads(payload)["returncode"]))

    def _on_record(self, rank: RankStatus, line: bytes) -> None:
        try:
            record = json.loads(line)
        except ValueError:
            return  # not from mlxrun's worker; a user's script may write anything there
        if isinstance(record, dict):
            if "progress" in record:
                self._active()
            rank.results.append(record)
            if self.on_record is not None:
                self.on_record(rank, record)

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
            text = _ANSI.sub(b"", line).decode(errors="replace")
            self.launcher_tail.append(text)
            warned = launcher_warning(text)
            if warned is not None and warned[0] < len(self.ranks):
                rank = self.ranks[warned[0]]
                if not rank.connected:  # its agent never reported: the launcher is all we have
                    self._ended(rank, warned[1])

    def _ended(self, rank: RankStatus, returncode: int | None, lost: bool = False) -> None:
        if rank.ended:
            return
        rank.returncode = returncode
        rank.lost = lost
        rank.ended_at = self.now()
        rank.stopped = self.stop_reason is not None
        if rank.failed and not rank.stopped:
            self.failures.append(rank)
        if self.inquiry is not None:
            self.inquiry.waiting.discard(rank.rank)
