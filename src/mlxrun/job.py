"""A reduction job, seen from mlxrun: plan it, run the workers, check the answer."""

from __future__ import annotations

import sys
import time
import uuid
from collections.abc import Callable
from typing import Any

from mlxrun.errors import DataError, MlxrunError
from mlxrun.hostfile import load_hostfile
from mlxrun.launcher import JobSpec
from mlxrun.output import RankOutput
from mlxrun.plan import Plan
from mlxrun.results import JobResult, RankResult, agreed
from mlxrun.spec import Data, Spec
from mlxrun.supervisor import JobReport, RankStatus, Supervisor

OnRecord = Callable[[RankStatus, dict[str, Any]], None]


class JobFailed(MlxrunError):
    """The job did not end well; the report says which rank and why."""

    def __init__(self, report: JobReport, timeout: float | None) -> None:
        super().__init__(report.reason)
        self.report = report
        self.timeout = timeout
        self.exit_code = report.outcome.exit_code


def check_data(data: Data) -> None:
    """Fails before any rank starts on what can be seen from here (a missing file, a bad column)."""
    if data.path is None:
        return
    if not data.path.is_file():
        raise DataError(f"{data.path}: no such file")
    if data.format == "text":
        return
    if data.format in ("csv", "tsv"):
        from mlxrun.sources import column_index, csv_header

        delimiter = b"\t" if data.format == "tsv" else b","
        column_index(data.path, csv_header(data.path, delimiter), data.column)
        return
    # numpy reads array headers: imported only here, it stays out of text jobs' start-up.
    from mlxrun.arrays import array_view

    array_view(data)


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


def run_reduction(
    spec: Spec,
    output: RankOutput,
    on_record: OnRecord | None = None,
    while_starting: Callable[[], object] | None = None,
) -> JobResult:
    check_data(spec.data)
    job = spec.job
    hostfile = load_hostfile(job.hostfile, job.backend) if job.hostfile else None
    np_ = len(hostfile.hosts) if hostfile else job.np
    plan = Plan(uuid.uuid4().hex, np_, job.backend, spec.data, spec.ops, spec.bins)
    command = (sys.executable, "-m", "mlxrun.worker", plan.to_json())
    started = time.perf_counter()
    report = Supervisor(
        JobSpec(command, np_, job.backend, hostfile), output, job.timeout, on_record, while_starting
    ).run()
    seconds = time.perf_counter() - started
    try:
        records = final_records(report)
    except JobFailed as e:
        e.timeout = job.timeout
        raise
    results = agreed(records)
    ranks = tuple(
        RankResult(
            r["rank"], r["host"], r["count"], r["bytes"], r["seconds"], r["max_rss"], r["partials"]
        )
        for r in sorted(records, key=lambda r: r["rank"])
    )
    return JobResult(
        name=job.name,
        np=np_,
        backend=job.backend,
        ops=spec.ops,
        results=results,
        reasons=dict(records[0].get("reasons", {})),
        count=sum(r.count for r in ranks),
        seconds=seconds,
        ranks=ranks,
    )
