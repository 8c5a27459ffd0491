"""A CPU-bound rank: a pure-Python loop, then one all_sum (the launcher benchmark's job)."""

import sys

import mlx.core as mx

world = mx.distributed.init()
n = int(sys.argv[1])
acc = 0
for i in range(n):
    acc = (acc + i * i) % 1_000_003
print(mx.distributed.all_sum(mx.array(acc)).item())
