"""A CPU-bound rank: a pure-Python loop, then one all_sum (the launcher benchmark's job).

Before init the last rank waits for rank 0 to listen, as mlxrun's own workers do, so
that the benchmark compares the launchers, not the luck of MLX's 1 s ring connect retry
(which half of all 2-rank starts pay: MLX_FACTS)."""

import sys

import mlx.core as mx

from mlxrun.rank.ring import wait_for_ring_start

wait_for_ring_start(2)
world = mx.distributed.init()
n = int(sys.argv[1])
acc = 0
for i in range(n):
    acc = (acc + i * i) % 1_000_003
print(mx.distributed.all_sum(mx.array(acc)).item())
