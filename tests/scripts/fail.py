# Rank 1 fails in the way argv[1] names, while the other ranks wait in all_sum.
import mmap
import os
import signal
import subprocess
import sys
import tempfile
import time

import mlx.core as mx

mode = sys.argv[1]
if (
    mode == "raise-before-init"
    and os.environ.get("MLX_RANK", os.environ.get("OMPI_COMM_WORLD_RANK")) == "1"
):
    raise RuntimeError("boom before init on rank 1")
world = mx.distributed.init()
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
    if mode == "segv":
        os.kill(os.getpid(), signal.SIGSEGV)
    if mode == "sleep":
        time.sleep(3600)
    if mode == "flood":  # 100 MB of output, then the collective
        line = b"x" * 99 + b"\n"
        for _ in range(1_000_000):
            sys.stdout.buffer.write(line)
        sys.stdout.flush()
    if mode == "closeout":  # closes its stdout and goes on
        sys.stdout.flush()
        os.close(1)
    if mode == "orphan":  # starts a child that would outlive it, then fails
        subprocess.Popen(["sleep", "60"])
        raise ValueError("boom on rank 1, leaving a child behind")
    if mode == "shrink":  # a mapped file cut short under its reader: a real SIGBUS
        with tempfile.TemporaryFile() as f:
            f.write(b"x" * mmap.PAGESIZE)
            f.flush()
            mapped = mmap.mmap(f.fileno(), mmap.PAGESIZE, access=mmap.ACCESS_READ)
            f.truncate(0)
            print(mapped[0])
total = mx.distributed.all_sum(mx.array(1)).item()
if mode == "closeout" and world.rank() == 1:
    sys.stderr.write(f"rank 1 total {total}\n")
else:
    print(total)
