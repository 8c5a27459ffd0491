"""The rank program of `mlxrun check`'s live test: known inputs, exact expected outputs.

`python -m mlxrun.check.probe N BACKEND` joins the group the way a user's script
would (`init(strict=False)`, which silently falls back to a group of one when
no backend comes up), runs all_sum, all_max and all_gather on values whose
results are known exactly, times a small all_sum, and writes one JSON record
to the result channel. mlxrun compares the record with the expected values.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from mlxrun.rank.group import join
from mlxrun.rank.protocol import result_stream

BANDWIDTH_BYTES = 8 * 1024 * 1024
BANDWIDTH_ROUNDS = 5


def collectives(mx: Any, group: Any) -> dict[str, Any]:
    rank = group.rank()
    dist = mx.distributed
    summed = dist.all_sum(mx.array(rank + 1, dtype=mx.int64), group=group, stream=mx.cpu)
    biggest = dist.all_max(mx.array(rank, dtype=mx.int64), group=group, stream=mx.cpu)
    gathered = dist.all_gather(mx.array([rank], dtype=mx.int64), group=group, stream=mx.cpu)
    return {"all_sum": summed.item(), "all_max": biggest.item(), "all_gather": gathered.tolist()}


def bandwidth(mx: Any, group: Any) -> float:
    """GB/s of an all_sum of 8 MiB of float32, after one warm-up round."""
    x = mx.ones((BANDWIDTH_BYTES // 4,), dtype=mx.float32)
    mx.eval(mx.distributed.all_sum(x, group=group, stream=mx.cpu))
    start = time.perf_counter()
    for _ in range(BANDWIDTH_ROUNDS):
        mx.eval(mx.distributed.all_sum(x, group=group, stream=mx.cpu))
    return BANDWIDTH_BYTES * BANDWIDTH_ROUNDS / (time.perf_counter() - start) / 1e9


def main(argv: list[str]) -> None:
    expected, backend = int(argv[0]), argv[1]
    started = time.perf_counter()
    import mlx.core as mx

    group = join(expected, backend, strict=False)
    record: dict[str, Any] = {
        "rank": group.rank(),
        "size": group.size(),
        "init_seconds": time.perf_counter() - started,
    }
    if group.size() == expected > 1:
        record.update(collectives(mx, group))
        record["gbps"] = bandwidth(mx, group)
    with result_stream() as out:
        out.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
