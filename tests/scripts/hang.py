"""Ranks that hang, or look as if they might: `python hang.py MODE [SECONDS]`.

sleep:    rank 1 sleeps in stuck_forever() while the others wait in all_sum
deadlock: every rank waits to receive from its neighbour, and none sends
busy:     rank 1 computes for SECONDS without a word, then joins the others' all_sum
quiet:    every rank sleeps SECONDS without a word, then all_sum (no collective, no CPU)
"""

import json
import os
import sys
import time
from pathlib import Path

import mlx.core as mx

from mlxrun.rank.ring import wait_for_ring_start


def stuck_forever() -> None:
    time.sleep(1000)


def busy_for(seconds: float) -> int:
    deadline, n = time.monotonic() + seconds, 0
    while time.monotonic() < deadline:
        n += sum(i * i for i in range(1000))
    return n


mode = sys.argv[1]
seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 0.0
if "MLX_HOSTFILE" in os.environ:  # ring: MLX's 1 s connect retry would look like a stall
    wait_for_ring_start(len(json.loads(Path(os.environ["MLX_HOSTFILE"]).read_text())))
group = mx.distributed.init(strict=True)
rank, size = group.rank(), group.size()
print(f"rank {rank} of {size} ready", flush=True)
if mode == "sleep" and rank == 1:
    stuck_forever()
if mode == "busy" and rank == 1:
    busy_for(seconds)
if mode == "quiet":
    time.sleep(seconds)
if mode == "deadlock":
    peer = (rank + 1) % size
    mx.eval(mx.distributed.recv_like(mx.array([0.0]), peer, group=group, stream=mx.cpu))
total = mx.distributed.all_sum(mx.array(rank + 1.0), group=group, stream=mx.cpu)
print(f"total {total.item():g}", flush=True)
