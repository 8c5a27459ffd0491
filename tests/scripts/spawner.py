"""Each rank starts a child that would outlive it (sleeps 60 s), then prints for ever."""

import subprocess
import time

import mlx.core as mx

rank = mx.distributed.init().rank()
subprocess.Popen(["sleep", "60"])
i = 0
while True:
    print(f"rank {rank} line {i}", flush=True)
    i += 1
    time.sleep(0.01)
