"""A rank that prints N short lines, then joins one all_sum (the output benchmark's job).
Before init the last rank waits for rank 0 to listen (see rank_cpu.py), so that no case
pays MLX's 1 s ring connect retry by luck."""

import os
import sys

import mlx.core as mx

from mlxrun.rank.ring import wait_for_ring_start

wait_for_ring_start(int(os.environ.get("BENCH_NP", "4")))
world = mx.distributed.init()
rank, n = world.rank(), int(sys.argv[1])
write = sys.stdout.write
for i in range(n):
    write(f"rank {rank} line {i}\n")
sys.stdout.flush()
mx.eval(mx.distributed.all_sum(1))
