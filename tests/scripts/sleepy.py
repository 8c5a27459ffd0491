# Every rank announces itself, then sleeps: a job to interrupt.
import time

import mlx.core as mx

world = mx.distributed.init()
print(f"rank {world.rank()} ready", flush=True)
time.sleep(3600)
