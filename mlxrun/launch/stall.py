"""The stall watchdog's judgement and its report, from what the agents sent: pure logic.

A job has stalled when, for the stall timeout, no rank wrote output or a progress record
and no rank was busy. A rank is busy when its processes used CPU (more than IDLE_SHARE of a
core) while it was not waiting in a collective: ring and MPI spin a core while they wait (a
waiting ring rank used 1 s of CPU per second here, an MPI one as much), so CPU alone would
call every waiting rank busy and no hang would ever be found. Where a rank's collective
cannot be seen (no native stack tool on its host), its CPU counts as busy: the watchdog then
errs towards letting a job run.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

IDLE_SHARE = 0.05  # of one core: less than this over the window is no work
UNKNOWN = "unknown"  # the collective, where no native stack could be taken


@dataclass(frozen=True)
class Snapshot:
    """One rank at one moment, as its agent saw it (rank.snapshot)."""

    rank: int
    host: str
    cpu: float
    state: str  # the process state and wait channel: `S (hrtimer_nanosleep)`
    collective: str | None  # `all_sum (ring)`, None if in none, UNKNOWN if not seen
    python: str | None  # py-spy's dump, if it could be taken
    sleeping: bool
    exiting: bool = False  # its interpreter is shutting down (and waits there)

    @classmethod
    def from_record(cls, rank: int, host: str, raw: dict[str, Any]) -> Snapshot:
        return cls(
            rank,
            host,
            float(raw.get("cpu", 0.0)),
            str(raw.get("state", "?")),
            raw["collective"] if "collective" in raw else UNKNOWN,
            raw.get("python"),
            bool(raw.get("sleeping", False)),
            bool(raw.get("exiting", False)),
        )

    @property
    def in_collective(self) -> bool:
        return self.collective not in (None, UNKNOWN)

    def where(self) -> str:
        if self.exiting:
            return "exiting (its interpreter shuts down and waits)"
        if self.in_collective:
            return f"in a collective: {self.collective}"
        if self.sleeping:
            return "sleeping"
        if self.state.startswith("R"):
            return "running"
        return f"waiting: {self.state}"


def busy(shot: Snapshot, cpu_before: float, window: float) -> bool:
    """Whether the rank did work over the last `window` seconds (see the module's doc)."""
    if shot.cpu - cpu_before <= IDLE_SHARE * window:
        return False
    return not shot.in_collective


def _ranks(ranks: Sequence[int]) -> str:
    listed = ", ".join(str(r) for r in ranks)
    return f"rank {listed}" if len(ranks) == 1 else f"ranks {listed}"


def summary(shots: Sequence[Snapshot]) -> str:
    """Who is where, naming the odd ones out: `rank 1 is not in a collective (sleeping);
    ranks 0, 2, 3 wait in all_sum (ring)`."""
    shots = sorted(shots, key=lambda s: s.rank)
    waiting: dict[str, list[int]] = {}
    for s in shots:
        if s.in_collective:
            waiting.setdefault(str(s.collective), []).append(s.rank)
    outside = [s for s in shots if not s.in_collective and s.collective != UNKNOWN]
    unseen = [s.rank for s in shots if s.collective == UNKNOWN]
    parts = []
    for s in outside:
        parts.append(f"rank {s.rank} is not in a collective ({s.where()})")
    if len(waiting) > 1:
        parts.append("ranks wait in different collectives")
    for collective, ranks in waiting.items():
        verb = "waits" if len(ranks) == 1 else "wait"
        parts.append(f"{_ranks(ranks)} {verb} in {collective}")
    if unseen:
        parts.append(f"{_ranks(unseen)}: collective not seen (no native stack tool)")
    if waiting and not outside and not unseen and len(waiting) == 1:
        parts.append("every rank waits: a deadlock, or a peer that left")
    return "; ".join(parts) if parts else "no rank answered"


def report(title: str, shots: Sequence[Snapshot], silent: Sequence[int]) -> str:
    """The text of a stack report: a title, the summary, then each rank's stack."""
    lines = [f"mlxrun: {title}", f"  {summary(shots)}"]
    for s in sorted(shots, key=lambda s: s.rank):
        lines.append(f"--- rank {s.rank} @ {s.host}: {s.where()} (cpu {s.cpu:.1f} s)")
        if s.python:
            lines += [f"    {line}" for line in s.python.splitlines()]
        else:
            lines.append(f"    no Python stack (state {s.state}; py-spy missing or not allowed)")
    for rank in silent:
        lines.append(f"--- rank {rank}: no answer (its agent is gone or did not reply in time)")
    return "\n".join(lines) + "\n"
