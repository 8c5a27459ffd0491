"""A reduction job, seen from mlxrun: plan it, run the workers, check the answer."""

from __future__ import annotations

import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from mlxrun.data.model import Data
from mlxrun.data.sources import check_data
from mlxrun.errors import DataError, MlxrunError, UsageError
from mlxrun.launch.job import job_spec
from mlxrun.launch.output import RankOutput
from mlxrun.launch.supervisor import OnRecord, Supervisor
from mlxrun.launch.verdict import JobReport
from mlxrun.reduce.plan import Plan
from mlxrun.reduce.results import JobResult, RankResult, agreed
from mlxrun.reduce.spec import Spec


class JobFailed(MlxrunError):
    """The job did not end well; the report says which rank and why."""

    def __init__(self, report: JobReport, timeout: float | None) -> None:
        super().__init__(report.reason)
        self.report = report
        self.timeout = timeout
        self.exit_code = report.outcome.exit_code


def final_records(report: JobReport) -> list[dict[str, Any]]:
    """Each rank's last record; a data error reported by any rank wins over the rest."""
    for rank in report.ranks:
        for record in rank.results:
            if "error" in record:
                raise DataError(str(record["error"]))
    if not report.ok:
        raise JobFailed(report, None)
    finals = [
        next((r for r in reversed(rank.results) if "results" in r), None) for rank in report.ranks
    ]
    missing = [rank.rank for rank, final in zip(report.ranks, finals, strict=True) if final is None]
    if missing:
        raise MlxrunError(f"rank {missing[0]} exited without a result")
    return [f for f in finals if f is not None]


def checked(data: Data) -> Data:
    """The data as every rank must read it (a csv's sniffed delimiter), checked here
    where this machine can see it: a per-host file may exist only on the hosts."""
    if data.placement == "per-host" and data.path is not None and not data.path.exists():
        if data.format == "csv" and data.delimiter is None:
            raise UsageError(
                f"{data.path}: not on this machine, so its delimiter cannot be sniffed here: "
                "give --delimiter (or [data] delimiter) for a per-host csv"
            )
        return data
    return check_data(data, deep=False)


def run_reduction(
    spec: Spec,
    output: RankOutput,
    on_record: OnRecord | None = None,
    while_starting: Callable[[], object] | None = None,
) -> JobResult:
    job = spec.job
    data = checked(spec.data)
    target = job_spec(
        (),
        job.np,
        job.backend,
        job.hostfile,
        job.timeout,
        job.stall_timeout,
        job.listen_ip,
        job.python,
    )
    hostfile = target.hostfile
    hosts = tuple(h.ssh for h in hostfile.hosts) if hostfile and not hostfile.all_local else ()
    plan = Plan(uuid.uuid4().hex, target.np, job.backend, data, spec.ops, spec.bins, hosts)
    command = (job.python or sys.executable, "-m", "mlxrun.reduce.worker", plan.to_json())
    started = time.perf_counter()
    report = Supervisor(replace(target, command=command), output, on_record, while_starting).run()
    seconds = time.perf_counter() - started
    try:
        records = final_records(report)
    except JobFailed as e:
        e.timeout = job.timeout
        raise
    results = agreed(records)
    missing = int(results.pop("missing", 0))
    # On a job across hosts a rank's host is the hostfile's name for it, not its hostname.
    named = [s.host for s in report.ranks] if job.hostfile is not None else None
    ranks = tuple(
        RankResult(
            r["rank"],
            named[r["rank"]] if named else r["host"],
            r["count"],
            r["bytes"],
            r["seconds"],
            r["max_rss"],
            r["partials"],
            r.get("missing", 0),
        )
        for r in sorted(records, key=lambda r: r["rank"])
    )
    return JobResult(
        name=job.name,
        np=target.np,
        backend=job.backend,
        ops=spec.ops,
        results=results,
        reasons=dict(records[0].get("reasons", {})),
        count=sum(r.count for r in ranks),
        seconds=seconds,
        ranks=ranks,
        missing=missing,
    )
