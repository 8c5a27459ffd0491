"""The plan of a reduction job: what mlxrun tells every rank's worker, and how values
travel as JSON (rank-side: no rich, nothing slow to import)."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from mlxrun.data.model import Data, Generate


@dataclass(frozen=True)
class Plan:
    """What every rank is told: the same for all of them."""

    job_id: str
    np: int
    backend: str
    data: Data
    ops: tuple[str, ...]
    bins: int
    hosts: tuple[str, ...] = ()  # each rank's host as the hostfile names it; () if all here

    def to_json(self) -> str:
        raw = asdict(self)
        raw["data"]["path"] = str(self.data.path) if self.data.path else None
        return json.dumps(raw)

    @classmethod
    def from_json(cls, text: str) -> Plan:
        raw = json.loads(text)
        d = raw["data"]
        gen = Generate(**d["generate"]) if d["generate"] else None
        data = Data(
            Path(d["path"]) if d["path"] else None,
            d["format"],
            d["column"],
            d["dtype"],
            gen,
            d["delimiter"],
            d["missing"],
            tuple(d["null_values"]),
            d["size"],
            d["placement"],
            d["quoted_newlines"],
        )
        return cls(
            raw["job_id"],
            raw["np"],
            raw["backend"],
            data,
            tuple(raw["ops"]),
            raw["bins"],
            tuple(raw["hosts"]),
        )


def jsonable(value: Any) -> Any:
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return value
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value
