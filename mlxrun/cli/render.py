"""What the CLI draws: a failed job's table and verdict, a reduction's answer and histogram,
and `mlxrun check`'s rows.

rich is imported where a table is drawn, not with this module: the CLI imports it before it
starts the ranks, and rich's tables are tens of milliseconds of every start.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from mlxrun.launch.verdict import JobReport, Outcome, RankStatus, signal_name
from mlxrun.reduce.results import JobResult

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table


def exit_text(rank: RankStatus) -> str:
    if rank.lost and not rank.connected:
        return "stopped before start" if rank.stopped else "never started"
    if rank.lost:
        return "lost"
    if rank.returncode is None:
        return "-"
    if rank.returncode < 0:
        name = signal_name(-rank.returncode)
        return f"{name} (stopped)" if rank.stopped else name
    return str(rank.returncode)


def useful_tail(lines: Iterable[str], keep: int = 3) -> list[str]:
    """The last lines worth reading: no caret underlines, no blank lines."""
    kept = [line.strip() for line in lines if line.strip().strip("^~ ")]
    return kept[-keep:]


def failure_table(report: JobReport) -> Table:
    from rich.table import Table
    from rich.text import Text

    table = Table(title=f"mlxrun: job {report.outcome.value} after {report.seconds:.1f} s")
    for column in ("rank", "host", "exit", "at (s)", "last stderr lines"):
        table.add_column(column, overflow="fold")
    for rank in report.ranks:
        is_root = rank is report.root_cause
        when = f"{rank.ended_at:.2f}" if rank.ended_at is not None else "-"
        tail = "\n".join(useful_tail(rank.stderr_tail))
        name = Text(f"{rank.rank} (root cause)" if is_root else str(rank.rank))
        style = "bold red" if is_root else ("yellow" if rank.failed and not rank.stopped else "")
        table.add_row(name, rank.host or "-", exit_text(rank), when, Text(tail), style=style)
    return table


def verdict(report: JobReport, timeout: float | None) -> str:
    if report.outcome is Outcome.FAILED:
        return f"Error: {report.reason}; the other ranks were stopped"
    if report.outcome is Outcome.TIMEOUT:
        return f"Error: timed out after {timeout:g} s; every rank was stopped"
    if report.outcome is Outcome.STALLED:
        return "Error: the job stalled (see where each rank was, above); every rank was stopped"
    if report.outcome is Outcome.INTERRUPTED:
        return "Interrupted: every rank was stopped"
    if report.outcome is Outcome.TERMINATED:
        return "Terminated: every rank was stopped"
    if report.outcome is Outcome.HUNG_UP:
        return "Hung up (SIGHUP: the terminal or session closed): every rank was stopped"
    if report.outcome is Outcome.OUTPUT_CLOSED:
        return "mlxrun: stdout was closed by its reader; every rank was stopped"
    return f"ok: {len(report.ranks)} ranks finished in {report.seconds:.2f} s"


def show_end(console: Console, report: JobReport, timeout: float | None) -> None:
    """On failure, the table and the verdict; on success, nothing (the output speaks)."""
    if report.ok:
        return
    if report.outcome in (Outcome.FAILED, Outcome.TIMEOUT, Outcome.STALLED):
        console.print(failure_table(report))
    console.print(verdict(report, timeout), markup=False, highlight=False, soft_wrap=True)


STATUS_STYLE = {"ok": "green", "warn": "yellow", "fail": "bold red", "skip": "dim"}


def check_table(rows: Iterable[Any]) -> Table:
    """The rows of `mlxrun check`: name, status, detail and, for warn and fail, the fix."""
    from rich.table import Table
    from rich.text import Text

    table = Table(title="mlxrun check")
    for column in ("check", "status", "detail", "fix"):
        table.add_column(column, overflow="fold")
    for row in rows:
        style = STATUS_STYLE.get(row.status, "")
        table.add_row(row.name, Text(row.status, style=style), Text(row.detail), Text(row.fix))
    return table


# -- a reduction's answer ------------------------------------------------------------


def show_value(value: Any) -> str:
    """Exact: floats with the digits that read back bit-identical."""
    if isinstance(value, float):
        return repr(value)
    return "-" if value is None else str(value)


def show_partial(value: Any) -> str:
    """Per-rank partials are for orientation: 6 significant digits."""
    return f"{value:.6g}" if isinstance(value, float) else show_value(value)


def result_table(result: JobResult, data: str) -> Table:
    from rich.table import Table

    table = Table(title=f"{result.name}: {data}, {result.np} ranks, {result.backend}")
    for name in ("rank", "host", "items", "bytes read", "partial", "seconds", "MB/s"):
        table.add_column(name, justify="left" if name in ("host", "partial") else "right")
    for r in result.ranks:
        partial = ", ".join(
            f"{op} {show_partial(v)}" for op, v in r.partials.items() if op != "count"
        )
        if r.missing:
            partial += f", {r.missing:,} missing skipped"
        speed = f"{r.bytes / r.seconds / 1e6:.1f}" if r.seconds > 0 else "-"
        table.add_row(
            str(r.rank), r.host, f"{r.count:,}", f"{r.bytes:,}", partial, f"{r.seconds:.3f}", speed
        )
    table.add_section()
    for op in result.ops:
        value = result.results.get(op)
        if op == "histogram" and value is not None:
            shown = "see the histogram below"
        else:
            shown = show_value(value) if value is not None else "undefined (see below)"
        table.add_row(op, "", "", "", shown, "", "", style="bold")
    nan_count = result.results.get("nan_count", 0)
    if nan_count:
        table.add_row("NaN values", "", "", "", str(nan_count), "", "", style="yellow")
    if result.missing:
        shown = f"{result.missing:,} skipped (not counted)"
        table.add_row("missing", "", "", "", shown, "", "", style="yellow")
    table.add_row(
        "total", "", f"{result.count:,}", "", "", f"{result.seconds:.3f}", "", style="dim"
    )
    return table


def histogram_table(result: JobResult) -> Table | None:
    counts = result.results.get("histogram")
    edges = result.results.get("histogram_edges")
    if not isinstance(counts, list) or not isinstance(edges, list):
        return None
    from rich.table import Table

    table = Table(title="histogram")
    for name in ("from", "to", "count", ""):
        table.add_column(name, justify="left" if not name else "right")
    top = max(counts) or 1
    for lo, hi, c in zip(edges, edges[1:], counts, strict=False):
        table.add_row(f"{lo:.6g}", f"{hi:.6g}", f"{c:,}", "#" * round(30 * c / top))
    return table
