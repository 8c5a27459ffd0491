"""What `mlxrun bench` draws: nccl-tests' table, its footers, and a small chart of busbw
against size for a terminal. rich is imported where a table is drawn."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from mlxrun.bench.run import BenchResult, Row
from mlxrun.bench.sizes import show_size
from mlxrun.launch.verdict import RankStatus

if TYPE_CHECKING:
    from rich.console import Console
    from rich.status import Status
    from rich.table import Table

CHART_WIDTH = 40
TABLE_WIDTH = 130  # every column whole


def gbps(value: float) -> str:
    """Two decimals, as nccl-tests; three significant digits below 1 (small sizes)."""
    return f"{value:.2f}" if value >= 1 else f"{value:.3g}"


def percent(value: float) -> str:
    return f"{value:.1f}" if value >= 1 else f"{value:.2g}"


def bench_table(result: BenchResult) -> Table:
    from rich.table import Table
    from rich.text import Text

    title = (
        f"mlxrun bench: {result.np} ranks, {result.backend}, {result.stream} stream, "
        f"{result.iters} iterations after {result.warmup} warm-ups"
    )
    table = Table(
        title=title,
        caption="time in us: the average over ranks, its min and max; bandwidths in GB/s",
    )
    heads = ("size (B)", "count", "type", "op", "time", "min", "max", "slowest")
    shares = ("% memcpy", "% tcp") if result.tcp_gbps else ("% memcpy",)
    for name in (*heads, "algbw", "busbw", *shares, "#wrong"):
        table.add_column(name, justify="left" if name in ("type", "op") else "right")
    last: tuple[str, str] | None = None
    for r in result.rows:
        if last is not None and (r.op, r.dtype) != last:
            table.add_section()
        last = (r.op, r.dtype)
        wrong = Text(
            "N/A" if r.wrong is None else str(r.wrong), style="bold red" if r.wrong else ""
        )
        share = [
            "-" if f is None else percent(100 * f) for f in (r.memcpy_fraction, r.tcp_fraction)
        ]
        table.add_row(
            str(r.bytes),
            str(r.count),
            r.dtype,
            r.op,
            f"{r.time_us:.1f}",
            f"{r.time_us_min:.1f}",
            f"{r.time_us_max:.1f}",
            str(r.slowest_rank),
            gbps(r.algbw_gbps),
            gbps(r.busbw_gbps),
            *share[: len(shares)],
            wrong,
        )
    return table


def footer(result: BenchResult) -> list[str]:
    """The lines under the table, nccl-tests' last two among them."""
    lines = []
    for h in result.hosts:
        copy = f"{h.memcpy_gbps:.2f} GB/s" if h.memcpy_gbps is not None else "not measured"
        ranks = ",".join(map(str, h.ranks))
        lines.append(f"Memory copy on {h.host} (ranks {ranks}): {copy}")
    if result.tcp is not None:
        ends = f"rank {result.tcp['from']} -> rank {result.tcp['to']}"
        if "gbps" in result.tcp:
            lines.append(f"TCP stream {ends}: {result.tcp['gbps']:.2f} GB/s")
        else:
            lines.append(f"TCP stream {ends}: failed ({result.tcp.get('error')})")
    for s in result.skipped:
        what = f"{s['op']} {s['dtype']}" if "dtype" in s else s["op"]
        lines.append(f"Skipped {what}: {s['reason']}")
    wrong = result.wrong
    if wrong is None:
        lines.append("Out of bounds values: not checked (--no-check)")
    else:
        lines.append(f"Out of bounds values: {wrong} {'OK' if wrong == 0 else 'FAILED'}")
    avg = result.avg_busbw_gbps
    lines.append(
        f"Avg bus bandwidth: {gbps(avg)} GB/s" if avg is not None else "Avg bus bandwidth: -"
    )
    return lines


def chart(result: BenchResult) -> list[str]:
    """busbw against size, a bar per row, one block per op and dtype."""
    if not result.rows:
        return []
    top = max(r.busbw_gbps for r in result.rows) or 1.0
    groups: dict[tuple[str, str], list[Row]] = {}
    for r in result.rows:
        groups.setdefault((r.op, r.dtype), []).append(r)
    limit = result.memcpy_gbps
    copy = f"; memory copy {gbps(limit)} GB/s" if limit is not None else ""
    lines = [f"busbw against size (full width {gbps(top)} GB/s{copy})"]
    for (op, dtype), rows in groups.items():
        lines.append(f"{op} {dtype}")
        for r in rows:
            bar = "#" * round(CHART_WIDTH * r.busbw_gbps / top)
            lines.append(f"{show_size(r.bytes):>9} |{bar:<{CHART_WIDTH}}| {gbps(r.busbw_gbps)}")
    return lines


class BenchProgress:
    """On a terminal, one transient line that follows rank 0's rows as they finish."""

    def __init__(self, console: Callable[[], Console], total: int, enabled: bool) -> None:
        self.console, self.total, self.enabled = console, total, enabled
        self.done = 0
        self.status: Status | None = None

    def on_record(self, rank: RankStatus, record: dict[str, Any]) -> None:
        if not self.enabled or rank.rank != 0 or record.get("kind") != "row":
            return
        self.done += 1
        text = (
            f"bench: {record['op']} {record['dtype']} {show_size(record['bytes'])} done "
            f"({self.done}/{self.total})"
        )
        if self.status is None:
            console = self.console()
            if not console.is_terminal:
                self.enabled = False
                return
            self.status = console.status(text)
            self.status.start()
        else:
            self.status.update(text)

    def stop(self) -> None:
        if self.status is not None:
            self.status.stop()
