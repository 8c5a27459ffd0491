# Every line names the job: `python tagged.py TAG` with TAG an integer. Each rank prints
# three lines, then all_sums TAG * (rank + 1): the total is TAG * n(n+1)/2 of its own job.
import sys

import mlx.core as mx

tag = int(sys.argv[1])
world = mx.distributed.init(strict=True)
rank = world.rank()
for line in range(3):
    print(f"job {tag} rank {rank} line {line}", flush=True)
total = mx.distributed.all_sum(
    mx.array(tag * (rank + 1), dtype=mx.int64), group=world, stream=mx.cpu
)
print(f"job {tag} total {total.item()}", flush=True)
