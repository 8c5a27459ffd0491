# Prints many numbered lines on stdout, some on stderr, and a last line without newline.
import os
import sys

import mlx.core as mx

rank = mx.distributed.init().rank()
n = int(sys.argv[1])
for i in range(n):
    print(f"r{rank} out {i} " + "x" * (i % 97))
    if i % 1000 == 0:
        print(f"r{rank} err {i}", file=sys.stderr)
sys.stdout.flush()
os.write(1, f"r{rank} raw fd1\n".encode())
os.write(2, f"r{rank} raw fd2\n".encode())
sys.stdout.write(f"r{rank} last-no-newline")
