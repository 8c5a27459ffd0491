"""The worker of a reduction job: runs on every rank, under the rank's agent.

`python -m mlxrun.reduce.worker PLAN_JSON` joins the MLX group, checks that every
peer belongs to this job, reduces its own shard, combines the partials with
MLX collectives (all_sum, all_gather) and writes one JSON record to the
result channel. Every rank computes the same final answer; mlxrun compares.

Jobs that only count, sum and average plain text or float64 arrays never import numpy
(0.1-0.15 s of every rank's start): the values are summed as they are read and the partial
states travel as Python numbers.
"""

from __future__ import annotations

import errno
import hashlib
import os
import resource
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any, NamedTuple, TypeVar

from mlxrun.data.model import Data
from mlxrun.data.shards import GUESS, Quotes, Shard, Sums, fingerprint
from mlxrun.data.sources import needs_quote_counts, open_shard, quote_count, sums_shard
from mlxrun.errors import DataError
from mlxrun.rank.group import join
from mlxrun.rank.protocol import Reporter
from mlxrun.rank.timeline import mark
from mlxrun.reduce import algebra
from mlxrun.reduce.ops import SUM_OPS
from mlxrun.reduce.plan import Plan, jsonable

T = TypeVar("T")
PROGRESS_SECONDS = 0.5
LOCAL_OPS = ("count", "sum", "mean", "min", "max", "var", "std", "prod")  # shown per rank
LOCAL_OPS_ALWAYS = ("count", "sum")  # cheap, and every rank's table row shows them


def peak_rss() -> int:
    """This process's peak resident memory in bytes (Linux counts KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


def job_fingerprint(job_id: str) -> int:
    return int.from_bytes(hashlib.sha256(job_id.encode()).digest()[:7], "big")


def join_group(plan: Plan) -> Any:
    import mlx.core as mx

    if plan.np == 1:
        return mx.distributed.init()
    return join(plan.np, plan.backend)


class Collectives:
    """The only way ranks combine anything: MLX collectives, on the CPU stream, of int64
    or float64 vectors held as Python lists."""

    def __init__(self, group: Any) -> None:
        import mlx.core as mx

        self.mx, self.group = mx, group

    def _array(self, values: list[int] | list[float], float64: bool) -> Any:
        # mx.array narrows Python floats to float32 unless told otherwise: that would lose bits.
        return self.mx.array(values, dtype=self.mx.float64 if float64 else self.mx.int64)

    def all_sum(self, values: list[int]) -> list[int]:
        mx = self.mx
        x = self._array(values, float64=False)
        return list(mx.distributed.all_sum(x, group=self.group, stream=mx.cpu).tolist())

    def all_gather(self, values: list[int] | list[float], float64: bool = False) -> list[list[Any]]:
        """One row per rank, in rank order."""
        mx = self.mx
        out = mx.distributed.all_gather(
            self._array(values, float64), group=self.group, stream=mx.cpu
        ).tolist()  # split here, not by an MLX op: that would run on a Mac's GPU (no float64)
        return [out[r * len(values) : (r + 1) * len(values)] for r in range(self.group.size())]


def verify_group(plan: Plan, group: Any, coll: Collectives) -> None:
    """Every peer must be a rank of this very job: ports can be shared by mistake."""
    if group.size() != plan.np:
        raise RuntimeError(f"expected a group of {plan.np} ranks, MLX formed one of {group.size()}")
    ids = coll.all_gather([job_fingerprint(plan.job_id)])
    if any(row != [job_fingerprint(plan.job_id)] for row in ids):
        raise RuntimeError("a rank of another job answered on this job's ports; results discarded")


class Local(NamedTuple):
    """A rank's own part of the job, before the ranks combine."""

    part: algebra.Partial
    nbytes: int
    seconds: float
    missing: int  # values skipped as missing
    bounds: tuple[int, int] = (-1, -1)  # csv/tsv: where its records began and it stopped


class Share(NamedTuple):
    """What a rank reads: part `part` of `parts` of `data`, which `peers` (ranks, in
    order, this one among them) split between them: every rank for a shared file; with
    placement = "per-host", the ranks of one host, splitting that host's own file."""

    data: Data
    part: int
    parts: int
    peers: tuple[int, ...]

    @classmethod
    def whole(cls, plan: Plan, rank: int) -> Share:
        return cls(plan.data, rank, plan.np, tuple(range(plan.np)))


def share_of(plan: Plan, rank: int, coll: Collectives) -> Share:
    """This rank's share. Per host, the host's ranks agree on the file's size (the
    smallest any of them saw: a file that grows while they look still has those bytes)."""
    data = plan.data
    if data.placement != "per-host" or not plan.hosts or data.path is None:
        return Share.whole(plan, rank)
    peers = tuple(r for r, host in enumerate(plan.hosts) if host == plan.hosts[rank])
    try:
        size = data.path.stat().st_size
    except OSError:
        size = -1  # reading will say why
    seen = coll.all_gather([size])
    agreed = min(seen[r][0] for r in peers)
    return Share(
        replace(data, size=agreed if agreed >= 0 else None), peers.index(rank), len(peers), peers
    )


def same_file(plan: Plan, rank: int, coll: Collectives) -> str | None:
    """On a job across hosts, whether this rank's host sees the file rank 0's host sees: a
    stale or different copy would give a silently wrong answer. Every rank takes part (one
    all_gather); the error names the host."""
    data = plan.data
    if len(set(plan.hosts)) < 2 or data.placement == "per-host" or data.size is None:
        return None
    assert data.path is not None  # a file: it has a size
    try:
        short = data.path.stat().st_size < data.size
        mine = [2, 0, 0] if short else [1, *fingerprint(data.path, data.size)]
    except OSError:
        mine = [0, 0, 0]
    rows = coll.all_gather(mine)
    if rows[rank] == rows[0]:
        return None
    here, first = plan.hosts[rank], plan.hosts[0]
    if mine[0] == 0:
        return f"{data.path}: not readable on {here} (the ranks on {first} can read it)"
    what = "is shorter than" if mine[0] == 2 else "differs from"
    return (
        f"{data.path}: the copy on {here} {what} the one on {first} (its first "
        f"{data.size:,} bytes, sampled); put the same file on every host"
    )


def first_guess(plan: Plan) -> Quotes:
    """csv/tsv ranks of a job first guess where their records begin (see
    mlxrun.data.delimited), unless the file is known to hold quoted newlines; the others
    need no quotes."""
    guess = needs_quote_counts(plan.data) and not plan.data.quoted_newlines
    return GUESS if plan.np > 1 and guess else None


def guesses_confirmed(bounds: list[list[int]], peers: tuple[int, ...]) -> bool:
    """Whether the peers' guessed first records were right, given each rank's [first, end]
    ([-1, -1]: it failed): every peer read to its end, and each began where the one before
    it stopped (see mlxrun.data.delimited). A failure confirms nothing, as a wrong start can
    cause any error: the ranks then read again from counted quotes, and an error they meet
    is real."""
    if any(bounds[rank][1] < 0 for rank in peers):
        return False
    return all(bounds[r][0] == bounds[b][1] for b, r in zip(peers, peers[1:], strict=False))


def guesses_hold(share: Share, mine: Local | None, coll: Collectives) -> bool:
    """guesses_confirmed for every rank: one all_gather of the bounds, and one all_sum so
    that all ranks agree also where peer groups differ (per-host files)."""
    rows = coll.all_gather(list(mine.bounds) if mine else [-1, -1])
    return coll.all_sum([int(not guesses_confirmed(rows, share.peers))])[0] == 0


def quotes_before(plan: Plan, share: Share, rank: int, coll: Collectives) -> int | None:
    """csv/tsv: the quotes before this rank's share of the bytes, from every rank's count
    of its own share (one all_gather), so that no rank reads the bytes before its share to
    find its first record. Every rank takes part, also one that cannot count: reading, it
    meets the same error and reports it."""
    if plan.np == 1 or not needs_quote_counts(plan.data):
        return None
    try:
        own = quote_count(share.data, share.part, share.parts)
    except DataError:
        own = 0
    rows = coll.all_gather([own])
    return int(sum(rows[r][0] for r in share.peers if r < rank))


def reduce_shard(plan: Plan, share: Share, reporter: Reporter, quotes: Quotes = None) -> Local:
    # Counts, sums and means need no stored numbers: text and csv are summed as they are
    # parsed, float64 arrays as they are read.
    data, part_no, parts, _ = share
    sums = sums_shard(data, part_no, parts, quotes) if set(plan.ops) <= SUM_OPS else None
    if sums is not None:
        part = algebra.Partial(needs=SUM_OPS)
        seconds = consume(sums, lambda s: part.merge(partial_of(s)), reporter)
        return Local(part, sums.bytes_total, seconds, sums.missing, (sums.first, sums.end))
    from mlxrun.reduce import kernels  # numpy: only where numbers are stored

    shard = open_shard(data, part_no, parts, quotes)
    part = algebra.Partial(needs=frozenset(plan.ops) | frozenset(LOCAL_OPS_ALWAYS))
    seconds = consume(shard, lambda c: kernels.add_chunk(part, c), reporter)
    # Totals and bounds are known once read.
    return Local(part, shard.bytes_total, seconds, shard.missing, (shard.first, shard.end))


def read_share(
    plan: Plan, rank: int, share: Share, reporter: Reporter, quotes: Quotes
) -> tuple[Local | None, str | None]:
    """The rank's part, or the data error that stopped it (naming the host on a job
    across hosts)."""
    try:
        return reduce_shard(plan, share, reporter, quotes), None
    except DataError as e:
        return None, f"{e} (on {plan.hosts[rank]})" if plan.hosts else str(e)


def partial_of(s: Sums) -> algebra.Partial:
    """A summed chunk's state. In a chunk with any float, the integers count as the floats
    they round to, as when the chunk is parsed into an array."""
    scaled = 0
    if not s.all_int:
        scaled = algebra.fold_bins(s.high, s.low) + algebra.scaled_int(s.int_sum + s.rounding)
    specials = (s.nan, s.posinf, s.neginf)
    return algebra.partial_of_sums(s.n, s.all_int, specials, s.int_sum, scaled, s.rounding)


def consume(shard: Shard[T], add: Callable[[T], None], reporter: Reporter) -> float:
    """Feeds every chunk to `add`, reporting progress; returns the seconds it took."""
    start = last = time.perf_counter()
    for chunk in shard.chunks:
        add(chunk)
        now = time.perf_counter()
        if now - last > PROGRESS_SECONDS:
            reporter.send({"progress": shard.bytes_done, "total": shard.bytes_total})
            last = now
    return time.perf_counter() - start


def histogram(
    plan: Plan, share: Share, state: algebra.Partial, coll: Collectives, quotes: Quotes
) -> algebra.Histogram | str:
    """The second pass: bins need the global min and max first. Every rank runs the
    all_sum, also where there can be no bins (the reason is then the answer)."""
    from mlxrun.reduce import kernels

    counts = [0] * plan.bins
    try:
        lo, hi = kernels.histogram_range(state, plan.bins)
    except ValueError as e:
        coll.all_sum(counts)
        return str(e)
    for chunk in open_shard(share.data, share.part, share.parts, quotes).chunks:
        chunk_counts = kernels.histogram_counts(chunk, lo, hi, plan.bins).tolist()
        counts = [a + b for a, b in zip(counts, chunk_counts, strict=True)]
    return algebra.Histogram(coll.all_sum(counts), kernels.histogram_edges(lo, hi, plan.bins))


ERROR_BYTES = 4096  # of a data error's text, shared by every rank


def first_error(coll: Collectives, error: str | None) -> str:
    """The lowest failing rank's error, known to every rank (one all_gather of its bytes),
    so that each reports it: the first rank to exit may be one that read nothing wrong,
    and mlxrun must not hear its exit before the error (seen on jobs across hosts)."""
    raw = (error or "").encode()[:ERROR_BYTES]
    rows = coll.all_gather([len(raw), *raw, *[0] * (ERROR_BYTES - len(raw))])
    size, *text = next(row for row in rows if row[0] > 0)
    return bytes(text[:size]).decode(errors="replace")


def run(plan: Plan, reporter: Reporter) -> int:
    mark("worker start")
    group = join_group(plan)
    mark("joined")
    coll = Collectives(group)
    verify_group(plan, group, coll)
    rank = group.rank()
    unreadable = same_file(plan, rank, coll)
    share = share_of(plan, rank, coll)
    quotes = first_guess(plan)
    if quotes is None:
        quotes = quotes_before(plan, share, rank, coll)
    mine, error = (
        (None, unreadable) if unreadable else read_share(plan, rank, share, reporter, quotes)
    )
    if quotes == GUESS and not guesses_hold(share, mine, coll):
        # A guess was wrong, or a rank failed: every rank reads again, from counted quotes.
        quotes = quotes_before(plan, share, rank, coll)
        if unreadable is None:
            mine, error = read_share(plan, rank, share, reporter, quotes)
    mark("read")
    # Agree on bad data before combining: peers then end cleanly instead of losing a connection.
    # The same all_sum totals the values skipped as missing.
    failed, missing = coll.all_sum([int(error is not None), mine.missing if mine else 0])
    if failed:
        reporter.send({"error": first_error(coll, error)})
        return 2
    assert mine is not None
    part = mine.part
    local = algebra.finalize(part, [op for op in LOCAL_OPS if op in part.needs])
    local.values.pop("nan_count", None)
    enc = part.encode()
    state = algebra.combine(
        coll.all_sum(enc.summed),
        coll.all_gather(enc.gathered_ints),
        coll.all_gather(enc.gathered_floats, float64=True),
    )
    hist = histogram(plan, share, state, coll, quotes) if "histogram" in plan.ops else None
    final = algebra.finalize(state, plan.ops, histogram=hist)
    final.values["missing"] = missing
    mark("combined")
    reporter.send(
        {
            "rank": rank,
            "host": socket.gethostname(),
            "count": part.count,
            "missing": mine.missing,
            "bytes": mine.nbytes,
            "seconds": mine.seconds,
            "max_rss": peak_rss(),
            "partials": jsonable(local.values),
            "results": jsonable(final.values),
            "reasons": final.reasons,
        }
    )
    return 0


def _failure(e: Exception) -> str:
    if isinstance(e, MemoryError) or (isinstance(e, OSError) and e.errno == errno.ENOMEM):
        limit = resource.getrlimit(resource.RLIMIT_AS)[0]
        shown = "" if limit == resource.RLIM_INFINITY else f" ({limit >> 20} MiB by ulimit -v)"
        return (
            f"out of memory{shown}: {type(e).__name__}: {e}; a rank needs about 150 MiB "
            "of address space for MLX and its reader, whatever the file's size"
        )
    return f"{type(e).__name__}: {e}"


def main(argv: list[str]) -> None:
    reporter = Reporter()
    try:
        code = run(Plan.from_json(argv[0]), reporter)
    except Exception as e:  # noqa: BLE001 - reported, then the rank exits non-zero
        if os.environ.get("MLXRUN_DEBUG") == "1":
            import traceback

            traceback.print_exc()
        print(f"mlxrun worker: {_failure(e)}", file=sys.stderr)
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    if code:
        # Not sys.exit: under MPI a failed rank would hang in MPI_Finalize (MLX_FACTS).
        os._exit(code)
    if os.environ.get("OMPI_COMM_WORLD_RANK") is None:
        # Everything is reported: skip tearing down the interpreter and MLX (tens of ms).
        # Under MPI a rank must finalize, or mpirun reports it as failed.
        os._exit(0)


if __name__ == "__main__":
    main(sys.argv[1:])
