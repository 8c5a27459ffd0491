"""A reduction job's answer: checked across ranks, shown as a table or as JSON.

JSON keeps every value exact: integers of any size stay JSON integers, floats
are written with the shortest text that reads back bit-identical, and NaN and
infinities (not JSON numbers) are the strings "nan", "inf" and "-inf".

rich is imported where a table is drawn, after the ranks have started (see `report`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mlxrun.errors import MlxrunError

if TYPE_CHECKING:
    from rich.table import Table


@dataclass(frozen=True)
class RankResult:
    rank: int
    host: str
    count: int
    bytes: int
    seconds: float
    max_rss: int  # peak resident memory of the rank's worker, bytes
    partials: dict[str, Any]


@dataclass(frozen=True)
class JobResult:
    name: str
    np: int
    backend: str
    ops: tuple[str, ...]
    results: dict[str, Any]  # JSON-ready: see jsonable
    reasons: dict[str, str]
    count: int
    seconds: float
    ranks: tuple[RankResult, ...]

    def to_json(self) -> str:
        ranks = [
            {
                "rank": r.rank,
                "host": r.host,
                "count": r.count,
                "bytes": r.bytes,
                "seconds": r.seconds,
                "max_rss": r.max_rss,
                "partials": r.partials,
            }
            for r in self.ranks
        ]
        record = {
            "job": self.name,
            "np": self.np,
            "backend": self.backend,
            "results": {op: self.results.get(op) for op in self.ops},
            "count": self.count,
            "seconds": self.seconds,
            "ranks": ranks,
        }
        if self.reasons:
            record["undefined"] = self.reasons
        return json.dumps(record)


class RanksDisagree(MlxrunError):
    exit_code = 1  # type: ignore[assignment]


def agreed(records: list[dict[str, Any]]) -> dict[str, Any]:
    """The one answer every rank computed; anything else is a bug worth stopping for."""
    first = json.dumps(records[0]["results"], sort_keys=True)
    for record in records[1:]:
        if json.dumps(record["results"], sort_keys=True) != first:
            raise RanksDisagree(
                f"ranks 0 and {record['rank']} computed different results: "
                f"{first} vs {json.dumps(record['results'], sort_keys=True)}"
            )
    return dict(records[0]["results"])


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
