# Rank 1 fails in the way argv[1] names, while the other ranks wait in all_sum.
import mmap
import os
import signal
import sys
import tempfile
import time

import mlx.core as mx

world = mx.distributed.init()
mode = sys.argv[1]
print(f"rank {world.rank()} pid {os.getpid()} started", flush=True)
if world.rank() == 1:
    if mode == "raise":
        raise ValueError("boom on rank 1")
    if mode == "exit":
        sys.exit(3)
    if mode == "leave":  # exits cleanly, while the others still need it in all_sum
        os._exit(0)
    if mode == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    if mode == "sleep":
        time.sleep(3600)
    if mode == "shrink":  # a mapped file cut short under its reader: a real SIGBUS
        with tempfile.TemporaryFile() as f:
            f.write(b"x" * mmap.PAGESIZE)
            f.flush()
            mapped = mmap.mmap(f.fileno(), mmap.PAGESIZE, access=mmap.ACCESS_READ)
            f.truncate(0)
            print(mapped[0])
print(mx.distributed.all_sum(mx.array(1)).item())
