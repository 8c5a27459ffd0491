"""A benchmark, seen from mlxrun: launch the ranks, gather their records, and turn the
per-rank timings into nccl-tests' rows (the average over ranks, with min, max and the
slowest rank beside it)."""

from __future__ import annotations

import csv
import io
import json
import statistics
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from mlxrun.bench.sizes import busbw_factor
from mlxrun.bench.spec import BenchSpec
from mlxrun.errors import MlxrunError, UsageError
from mlxrun.launch.job import JobSpec
from mlxrun.launch.output import RankOutput
from mlxrun.launch.supervisor import OnRecord, Supervisor
from mlxrun.launch.verdict import JobReport

DEFAULT_TIMEOUT = 600.0  # seconds: a benchmark is always bounded
COLUMNS = (
    "op",
    "dtype",
    "bytes",
    "count",
    "time_us",
    "time_us_min",
    "time_us_max",
    "slowest_rank",
    "algbw_gbps",
    "busbw_gbps",
    "wrong",
)


class BenchFailed(MlxrunError):
    """The job did not end well; the report says which rank and why."""

    def __init__(self, report: JobReport, timeout: float | None) -> None:
        super().__init__(report.reason)
        self.report = report
        self.timeout = timeout
        self.exit_code = report.outcome.exit_code


@dataclass(frozen=True)
class Row:
    op: str
    dtype: str
    bytes: int
    count: int
    time_us: float  # the average over ranks, as nccl-tests
    time_us_min: float
    time_us_max: float
    slowest_rank: int
    algbw_gbps: float
    busbw_gbps: float
    wrong: int | None  # summed over ranks; None without --check
    memcpy_fraction: float | None = None  # busbw / the slowest host's memory copy
    tcp_fraction: float | None = None  # busbw / the TCP stream between two hosts


@dataclass(frozen=True)
class Host:
    host: str
    ranks: tuple[int, ...]
    memcpy_gbps: float | None


@dataclass(frozen=True)
class BenchResult:
    np: int
    backend: str
    stream: str
    iters: int
    warmup: int
    checked: bool
    hosts: tuple[Host, ...]
    rows: tuple[Row, ...]
    skipped: tuple[dict[str, str], ...] = field(default_factory=tuple)
    tcp: dict[str, Any] | None = None  # {"from", "to", "gbps"} or {"from", "to", "error"}

    @property
    def tcp_gbps(self) -> float | None:
        return None if self.tcp is None else self.tcp.get("gbps")

    @property
    def memcpy_gbps(self) -> float | None:
        """The limit: the slowest host's memory copy."""
        measured = [h.memcpy_gbps for h in self.hosts if h.memcpy_gbps is not None]
        return min(measured) if measured else None

    @property
    def avg_busbw_gbps(self) -> float | None:
        """nccl-tests' `Avg bus bandwidth`: the mean of every row's busbw."""
        return statistics.fmean(r.busbw_gbps for r in self.rows) if self.rows else None

    @property
    def wrong(self) -> int | None:
        if not self.checked:
            return None
        return sum(r.wrong or 0 for r in self.rows)

    def to_dict(self) -> dict[str, Any]:
        return {
            "np": self.np,
            "backend": self.backend,
            "stream": self.stream,
            "iters": self.iters,
            "warmup": self.warmup,
            "hosts": [asdict(h) | {"ranks": list(h.ranks)} for h in self.hosts],
            "memcpy_gbps": self.memcpy_gbps,
            "tcp_gbps": self.tcp_gbps,
            "tcp": self.tcp,
            "avg_busbw_gbps": self.avg_busbw_gbps,
            "wrong": self.wrong,
            "rows": [asdict(r) for r in self.rows],
            "skipped": list(self.skipped),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    def to_csv(self) -> str:
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        columns = (*COLUMNS, "memcpy_fraction", "tcp_fraction")
        writer.writerow(columns)
        for r in self.rows:
            d = asdict(r)
            writer.writerow(["" if d[c] is None else d[c] for c in columns])
        return buf.getvalue()


def aggregate(spec: BenchSpec, records: list[dict[str, Any]], hosts: list[str]) -> BenchResult:
    """The rows from every rank's records. A row whose ranks disagree on its bytes is a bug
    of the rank program, not a result: MlxrunError."""
    by_key: dict[tuple[str, str, int], list[dict[str, Any]]] = {}
    host_of: dict[int, str] = {}
    memcpy: dict[int, float] = {}
    skipped: list[dict[str, str]] = []
    stream: dict[str, Any] | None = None
    for rec in records:
        kind = rec.get("kind")
        if kind == "row":
            by_key.setdefault((rec["op"], rec["dtype"], rec["bytes"]), []).append(rec)
        elif kind == "host":
            host_of[rec["rank"]] = str(rec["host"])
            if rec.get("memcpy_gbps") is not None:
                memcpy[rec["rank"]] = float(rec["memcpy_gbps"])
        elif kind == "tcp":
            stream = {k: v for k, v in rec.items() if k != "kind"}
        elif kind == "skip":
            skipped.append({k: str(v) for k, v in rec.items() if k != "kind"})
    names = [host_of.get(r, hosts[r] if r < len(hosts) else "?") for r in range(spec.np)]
    grouped: dict[str, list[int]] = {}
    for rank, name in enumerate(names):
        grouped.setdefault(name, []).append(rank)
    host_rows = tuple(
        Host(name, tuple(ranks), next((memcpy[r] for r in ranks if r in memcpy), None))
        for name, ranks in grouped.items()
    )
    limit = min((h.memcpy_gbps for h in host_rows if h.memcpy_gbps is not None), default=None)
    tcp_limit = None if stream is None else stream.get("gbps")
    rows = []
    for (op, dtype, nbytes), recs in by_key.items():
        if len(recs) != spec.np:
            raise MlxrunError(f"{op} {dtype} {nbytes} B: {len(recs)} of {spec.np} ranks reported")
        times = [float(r["time_us"]) for r in recs]
        avg = statistics.fmean(times)
        slowest = max(recs, key=lambda r: float(r["time_us"]))
        algbw = nbytes / (avg * 1e-6) / 1e9 if avg > 0 else 0.0
        busbw = algbw * busbw_factor(op, spec.np)
        wrong = None if not spec.check else sum(int(r["wrong"] or 0) for r in recs)
        rows.append(
            Row(
                op,
                dtype,
                nbytes,
                int(recs[0]["count"]),
                avg,
                min(times),
                max(times),
                int(slowest["rank"]),
                algbw,
                busbw,
                wrong,
                busbw / limit if limit else None,
                busbw / tcp_limit if tcp_limit else None,
            )
        )
    return BenchResult(
        spec.np,
        spec.backend,
        spec.stream,
        spec.iters,
        spec.warmup,
        spec.check,
        host_rows,
        tuple(rows),
        tuple(skipped),
        stream,
    )


def run_bench(
    spec: BenchSpec,
    job: JobSpec,
    output: RankOutput,
    on_record: OnRecord | None = None,
    while_starting: Callable[[], object] | None = None,
) -> BenchResult:
    """Runs the benchmark on `job`'s ranks (its command is replaced by the rank program)."""
    command = (sys.executable, "-m", "mlxrun.bench.rank", spec.to_json())
    timeout = job.timeout if job.timeout is not None else DEFAULT_TIMEOUT
    target = replace(job, command=command, timeout=timeout)  # every other setting kept
    report = Supervisor(target, output, on_record, while_starting).run()
    records = [rec for rank in report.ranks for rec in rank.results]
    for rec in records:
        if rec.get("kind") == "error":  # every rank found the same before joining
            raise UsageError(str(rec["error"]))
    if not report.ok:
        raise BenchFailed(report, timeout)
    missing = [r.rank for r in report.ranks if not any(x.get("kind") == "done" for x in r.results)]
    if missing:
        raise MlxrunError(f"rank {missing[0]} exited before the benchmark was done")
    hosts = [h.ssh for h in job.hostfile.hosts] if job.hostfile else ["127.0.0.1"] * job.np
    return aggregate(spec, records, hosts)
