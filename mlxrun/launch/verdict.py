"""How a job ended, decided from what each rank reported: pure logic, no I/O.

mlx.launch exits 0 whatever its ranks did, so the verdict is made here: a job succeeded
only if every rank reported exit code 0. When ranks fail, the root cause is the first one
that did not merely lose a peer: a rank waiting in a collective for a dead peer fails too
(ring: "connection to a peer was lost"), often before the dead peer's own report arrives.
"""

from __future__ import annotations

import re
import signal
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from mlxrun.errors import ExitCode
from mlxrun.launch.hostfile import LOCAL_SSH

TAIL_LINES = 8  # stderr lines kept per rank for the failure table
VICTIM_GRACE_SECONDS = 1.0  # how long a rank that lost a peer waits for that peer's report
# What ranks print when another rank died first: such a rank is a victim, not the cause.
PEER_LOSS = re.compile(r"connection to a peer was lost|was closed by the peer|failed with errno")
SSH_FAILED = 255  # what ssh exits with when it cannot connect or log in
TRACEBACK = "Traceback (most recent call last):"
_LAUNCHER_WARN = re.compile(r"Node with rank (\d+) exited with code (-?\d+)")
# Ranks read their data through mappings: a file cut short under them ends in SIGBUS.
SIGNAL_HINTS: dict[int, str] = {signal.SIGBUS: " (a mapped file got shorter while it was read?)"}


class Outcome(Enum):
    OK = "ok"
    FAILED = "failed"
    TIMEOUT = "timeout"
    STALLED = "stalled"
    INTERRUPTED = "interrupted"
    TERMINATED = "terminated"
    HUNG_UP = "hung up"  # SIGHUP: the terminal or ssh session went away
    OUTPUT_CLOSED = "output closed"  # whoever read mlxrun's stdout stopped (`| head`)

    @property
    def exit_code(self) -> ExitCode:
        return _EXIT_CODES[self]


_EXIT_CODES = {
    Outcome.OK: ExitCode.OK,
    Outcome.FAILED: ExitCode.RANK_FAILED,
    Outcome.TIMEOUT: ExitCode.TIMEOUT,
    Outcome.STALLED: ExitCode.TIMEOUT,
    Outcome.INTERRUPTED: ExitCode.INTERRUPTED,
    Outcome.TERMINATED: ExitCode.TERMINATED,
    Outcome.HUNG_UP: ExitCode.HUNG_UP,
    Outcome.OUTPUT_CLOSED: ExitCode.OUTPUT_CLOSED,
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
    raised_at: float | None = None  # when its stderr showed a traceback (seconds into the job)
    stuck_exiting: bool = False  # raised, and its exit waits for the others (MPI_Finalize)
    remote: bool = False  # on a job across hosts: errors name its host
    stderr_tail: deque[str] = field(default_factory=lambda: deque(maxlen=TAIL_LINES))
    results: list[dict[str, Any]] = field(default_factory=list)  # records the rank's worker sent

    @property
    def ended(self) -> bool:
        return self.returncode is not None or self.lost

    @property
    def failed(self) -> bool:
        return (
            self.lost
            or self.stuck_exiting
            or (self.returncode is not None and self.returncode != 0)
        )

    def heard_stderr(self, lines: Sequence[str], at: float) -> None:
        self.stderr_tail.extend(lines)
        self.lost_a_peer = self.lost_a_peer or any(PEER_LOSS.search(line) for line in lines)
        if self.raised_at is None and any(line.startswith(TRACEBACK) for line in lines):
            self.raised_at = at


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


def launcher_warning(line: str) -> tuple[int, int] | None:
    """(rank, exit code) from mlx.launch's `Node with rank R exited with code C` line."""
    m = _LAUNCHER_WARN.search(line)
    return (int(m.group(1)), int(m.group(2))) if m else None


def awaiting_root_cause(
    failures: Sequence[RankStatus], ranks: Sequence[RankStatus], now: float
) -> bool:
    """True while every failure so far is a rank that lost a peer, for a short while: the
    peer that died first is then still exiting, and it is the root cause to report."""
    if not failures or not all(r.lost_a_peer for r in failures):
        return False
    if left_early(failures, ranks) is not None:
        return False  # the cause is known already
    return now - (failures[0].ended_at or 0.0) < VICTIM_GRACE_SECONDS


def left_early(failures: Sequence[RankStatus], ranks: Sequence[RankStatus]) -> RankStatus | None:
    """The first rank that exited 0 before the first failure, when every failure is a rank
    that lost a peer: it left while the others still needed it (`os._exit(0)` before a
    collective), and they failed for it."""
    if not failures or not all(r.lost_a_peer for r in failures):
        return None
    first = min(r.ended_at or 0.0 for r in failures)
    gone = [r for r in ranks if r.returncode == 0 and (r.ended_at or 0.0) <= first]
    return min(gone, key=lambda r: r.ended_at or 0.0) if gone else None


def decide(
    stop_reason: Outcome | None,
    ranks: list[RankStatus],
    failures: Sequence[RankStatus],
    seconds: float,
    launcher_tail: list[str],
) -> JobReport:
    """The report of a job that is over. `failures` are the ranks that failed before mlxrun
    stopped the job, in the order they ended; `stop_reason` is why mlxrun stopped it."""
    if stop_reason not in (None, Outcome.FAILED):
        assert stop_reason is not None
        return JobReport(stop_reason, ranks, seconds, None, stop_reason.value, launcher_tail)
    failed = list(failures) or [r for r in ranks if r.failed]
    if not failed:
        return JobReport(Outcome.OK, ranks, seconds, launcher_tail=launcher_tail)
    leaver = left_early(failed, ranks)
    if leaver is not None:
        reason = (
            f"{who(leaver)} exited with code 0 while the other ranks still needed it "
            "(they lost their peer)"
        )
        return JobReport(Outcome.FAILED, ranks, seconds, leaver, reason, launcher_tail)
    root = next((r for r in failed if not r.lost_a_peer), failed[0])
    return JobReport(Outcome.FAILED, ranks, seconds, root, describe_end(root), launcher_tail)


def signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def who(rank: RankStatus) -> str:
    """`rank R`, or `rank R on HOST` on a job across hosts."""
    return f"rank {rank.rank} on {rank.host}" if rank.remote else f"rank {rank.rank}"


def describe_end(rank: RankStatus) -> str:
    if rank.stuck_exiting:
        return (
            f"{who(rank)} raised an exception and then hung in its exit "
            "(under MPI, MPI_Finalize waits for ranks that wait for it)"
        )
    if rank.lost and not rank.connected:
        return f"{who(rank)} never started (see the launcher's lines)"
    if rank.lost:
        return f"{who(rank)} stopped reporting (its agent was killed or its host lost)"
    code = rank.returncode
    if code is not None and code < 0:
        hint = SIGNAL_HINTS.get(-code, "")
        return f"{who(rank)} was killed by {signal_name(-code)}{hint}"
    if code == SSH_FAILED and not rank.connected and rank.host != LOCAL_SSH:
        return (
            f"rank {rank.rank} could not start on {rank.host} (ssh exit code 255): "
            f"check `ssh -o BatchMode=yes {rank.host} true` or run `mlxrun check --hostfile FILE`"
        )
    return f"{who(rank)} exited with code {code}"
