"""A reduction job's answer: checked across ranks, shown as a table or as JSON.

JSON keeps every value exact: integers of any size stay JSON integers, floats
are written with the shortest text that reads back bit-identical, and NaN and
infinities (not JSON numbers) are the strings "nan", "inf" and "-inf".
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from mlxrun.errors import ExitCode, MlxrunError


@dataclass(frozen=True)
class RankResult:
    rank: int
    host: str
    count: int
    bytes: int
    seconds: float
    max_rss: int  # peak resident memory of the rank's worker, bytes
    partials: dict[str, Any]
    missing: int = 0  # values skipped as missing (--missing skip)


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
    missing: int = 0  # values skipped as missing, all ranks

    def to_json(self) -> str:
        ranks = [
            {
                "rank": r.rank,
                "host": r.host,
                "count": r.count,
                "missing": r.missing,
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
            "missing": self.missing,
            "seconds": self.seconds,
            "ranks": ranks,
        }
        if self.reasons:
            record["undefined"] = self.reasons
        return json.dumps(record)


class RanksDisagree(MlxrunError):
    exit_code = ExitCode.RANK_FAILED


def agreed(records: list[dict[str, Any]]) -> dict[str, Any]:
    """The one answer every rank computed; anything else is a bug worth stopping for."""
    first = records[0]["results"]
    for record in records[1:]:
        if record["results"] != first:  # JSON values: NaN arrives as "nan", equal to itself
            raise RanksDisagree(
                f"ranks 0 and {record['rank']} computed different results: "
                f"{json.dumps(first, sort_keys=True)} vs "
                f"{json.dumps(record['results'], sort_keys=True)}"
            )
    return dict(records[0]["results"])
