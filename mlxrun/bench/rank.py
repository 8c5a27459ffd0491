"""The program every rank of `mlxrun bench` runs: `python -m mlxrun.bench.rank SPEC_JSON`.

It joins the group, checks that every peer is of this job, measures the host's memory-copy
bandwidth (the first rank on each host, while the others wait), finds which ops the backend
lacks, then for every op, dtype and size: `warmup` untimed runs, a barrier, `iters` timed
runs, and with `check` one more untimed run compared with the exact answer. Each of these
is a JSON record on the result channel, sent as soon as it is known.

Buffers hold small integers (see `sizes.check_modulus`): every result is then exact in
every dtype, so `wrong` counts real errors only. No rich, typer or CLI here.
"""

from __future__ import annotations

import hashlib
import os
import socket
import sys
import time
from collections.abc import Callable
from typing import Any

from mlxrun.bench import tcp
from mlxrun.bench.sizes import ITEMSIZE, array_bytes, check_modulus, counts
from mlxrun.bench.spec import CORRUPT_ENV, BenchSpec
from mlxrun.rank.group import join
from mlxrun.rank.protocol import Reporter

MEMCPY_BYTES = 128 * 1024 * 1024  # larger than any last-level cache of these machines
MEMCPY_ROUNDS = 5
GPU_NOTE = (
    "on a Mac, --stream gpu runs the collectives on the Metal GPU stream: data is copied "
    "between GPU and CPU memory around each transfer, and a collective that waits long for "
    "a peer can trip Metal's command-buffer watchdog (the job then fails with a GPU timeout)"
)


def memcpy_gbps() -> float:
    """The best of a few numpy copies of a large buffer: GB/s of bytes copied."""
    import numpy as np

    src = np.ones(MEMCPY_BYTES, dtype=np.uint8)
    dst = np.empty_like(src)
    np.copyto(dst, src)  # the first copy faults the pages in
    best = float("inf")
    for _ in range(MEMCPY_ROUNDS):
        started = time.perf_counter()
        np.copyto(dst, src)
        best = min(best, time.perf_counter() - started)
    return MEMCPY_BYTES / best / 1e9


class Bench:
    def __init__(self, spec: BenchSpec, mx: Any, group: Any, stream: Any) -> None:
        self.spec, self.mx, self.group, self.stream = spec, mx, group, stream
        self.rank, self.np = group.rank(), group.size()
        self.dist = mx.distributed
        self.m = check_modulus(self.np)
        corrupt = os.environ.get(CORRUPT_ENV, "")
        self.corrupt = corrupt.isdigit() and int(corrupt) == self.rank

    def barrier(self) -> None:
        mx = self.mx
        mx.eval(self.dist.all_sum(mx.array(1, dtype=mx.int32), group=self.group, stream=mx.cpu))

    def verify_group(self) -> None:
        """Every peer must be a rank of this job: two jobs on the same ports cross-talk."""
        mx = self.mx
        mark = int.from_bytes(hashlib.sha256(self.spec.job_id.encode()).digest()[:7], "big")
        x = mx.array([mark], dtype=mx.int64)
        seen = self.dist.all_gather(x, group=self.group, stream=mx.cpu).tolist()
        if seen != [mark] * self.np:
            raise RuntimeError("a rank of another job answered on this job's ports; stopped")

    def tcp_stream(self) -> dict[str, Any] | None:
        """Between two hosts, one raw TCP stream: the network's limit. Every rank takes
        part in the port's all_gather and the barrier after; the two ends time out."""
        if not self.spec.tcp_ranks:
            return None
        mx = self.mx
        listener, sender = self.spec.tcp_ranks
        server = tcp.listen() if self.rank == listener else None
        port = server.getsockname()[1] if server is not None else 0
        ports = self.dist.all_gather(
            mx.array([port], dtype=mx.int64), group=self.group, stream=mx.cpu
        )
        port = int(ports.tolist()[listener])
        record: dict[str, Any] | None = None
        try:
            if server is not None:
                tcp.serve(server)
            elif self.rank == sender:
                gbps = tcp.stream(self.spec.tcp_address, port)
                record = {"kind": "tcp", "from": sender, "to": listener, "gbps": gbps}
        except OSError as e:
            # The sender reports; the listener's failure (no sender came) follows from its.
            if self.rank == sender:
                why = f"{self.spec.tcp_address}:{port}: {e}"
                record = {"kind": "tcp", "from": sender, "to": listener, "error": why}
        self.barrier()
        return record

    def lacks(self, op: str) -> str | None:
        """Why the backend cannot run `op`, or None. Every rank asks the same question of
        the same backend, so they all get the same answer (no rank is left waiting)."""
        if op != "sum_scatter":
            return None
        mx = self.mx
        try:
            x = mx.zeros((self.np,), dtype=mx.float32)
            mx.eval(self.dist.sum_scatter(x, group=self.group, stream=self.stream))
        except (RuntimeError, ValueError) as e:
            return f"the {self.spec.backend} backend has no sum_scatter (MLX: {e})"
        return None

    def runner(self, op: str) -> Callable[[Any], Any]:
        mx, d, g, s = self.mx, self.dist, self.group, self.stream
        if op == "send_recv":
            # A ring exchange with the neighbours (ring allows no other peers). A send and a
            # recv in one eval deadlock, and a blocking send needs its receiver: even ranks
            # send first, odd ranks receive first.
            nxt, prv = (self.rank + 1) % self.np, (self.rank - 1) % self.np

            def exchange(x: Any) -> Any:
                if self.rank % 2 == 0:
                    mx.eval(d.send(x, nxt, group=g, stream=s))
                    y = d.recv_like(x, prv, group=g, stream=s)
                    mx.eval(y)
                else:
                    y = d.recv_like(x, prv, group=g, stream=s)
                    mx.eval(y)
                    mx.eval(d.send(x, nxt, group=g, stream=s))
                return y

            return exchange
        fn = getattr(d, op)

        def collective(x: Any) -> Any:
            y = fn(x, group=g, stream=s)
            mx.eval(y)
            return y

        return collective

    def index(self, start: int, n: int) -> Any:
        """start, start+1, ...: int32 where it fits (half the memory of int64)."""
        mx = self.mx
        dtype = mx.int32 if start + n + self.np < 2**31 else mx.int64
        return mx.arange(start, start + n, dtype=dtype)

    def pattern(self, n: int, rank: int, dtype: Any) -> Any:
        """A rank's buffer: element i holds (i + rank) mod m."""
        return ((self.index(0, n) + rank) % self.m).astype(dtype)

    def expected(self, op: str, n_in: int, dtype: Any) -> Any:
        """The exact result on this rank. A reduction's value at i depends on i mod m
        only: it is looked up in a table of m values (no per-rank copies in memory)."""
        mx, m, n = self.mx, self.m, self.np
        if op == "all_gather":
            return mx.concatenate([self.pattern(n_in, r, dtype) for r in range(n)])
        if op == "send_recv":
            return self.pattern(n_in, (self.rank - 1) % n, dtype)  # the left neighbour's
        ranks = [[(k + r) % m for r in range(n)] for k in range(m)]
        if op == "all_max":
            values = [max(v) for v in ranks]
        elif op == "all_min":
            values = [min(v) for v in ranks]
        else:  # all_sum, sum_scatter
            values = [sum(v) for v in ranks]
        table = mx.array(values, dtype=dtype)
        start, length = 0, n_in
        if op == "sum_scatter":
            length = n_in // n
            start = self.rank * length
        return mx.take(table, self.index(start, length) % m)

    def row(self, op: str, dtype_name: str, nbytes: int) -> dict[str, Any]:
        mx = self.mx
        dtype = getattr(mx, dtype_name)
        count, n_in, _ = counts(op, nbytes, ITEMSIZE[dtype_name], self.np)
        x = self.pattern(n_in, self.rank, dtype)
        mx.eval(x)
        run = self.runner(op)
        for _ in range(self.spec.warmup):
            run(x)
        self.barrier()
        started = time.perf_counter()
        for _ in range(self.spec.iters):
            run(x)
        seconds = time.perf_counter() - started
        wrong = None
        if self.spec.check:
            y = run(x)
            if self.corrupt:  # the test-only hook: as if one element arrived damaged
                y = y + (mx.arange(y.size) == 0).astype(dtype)
            wrong = int(mx.sum(y != self.expected(op, n_in, dtype)).item())
        return {
            "kind": "row",
            "rank": self.rank,
            "op": op,
            "dtype": dtype_name,
            "bytes": array_bytes(op, nbytes, ITEMSIZE[dtype_name], self.np),
            "count": count,
            "time_us": seconds / self.spec.iters * 1e6,
            "wrong": wrong,
        }


def main(argv: list[str]) -> None:
    spec = BenchSpec.from_json(argv[0])
    out = Reporter()
    import mlx.core as mx

    if spec.stream == "gpu" and not mx.is_available(mx.gpu):
        # Every rank finds the same, before joining: none is left waiting for another.
        out.send(
            {
                "kind": "error",
                "error": f"--stream gpu: this MLX has no GPU on {socket.gethostname()} (a Linux CPU build); run without --stream gpu. ({GPU_NOTE}.)",
            }
        )
        return
    if spec.stream == "cpu":
        mx.set_default_device(mx.cpu)  # buffers and checks too: a Mac's GPU has no float64
    group = join(spec.np, spec.backend)
    if group.size() != spec.np:
        raise RuntimeError(f"expected a group of {spec.np} ranks, MLX formed one of {group.size()}")
    bench = Bench(spec, mx, group, mx.cpu if spec.stream == "cpu" else mx.gpu)
    bench.verify_group()
    gbps = memcpy_gbps() if bench.rank in spec.memcpy_ranks else None
    bench.barrier()  # the others wait: a copy beside the collectives would measure neither
    out.send(
        {"kind": "host", "rank": bench.rank, "host": socket.gethostname(), "memcpy_gbps": gbps}
    )
    stream = bench.tcp_stream()
    if stream is not None:
        out.send(stream)
    done, total = 0, len(spec.ops) * len(spec.dtypes) * len(spec.sizes)
    for op in spec.ops:
        reason = bench.lacks(op)
        if reason is not None:
            if bench.rank == 0:
                out.send({"kind": "skip", "op": op, "reason": reason})
            continue
        for dtype in spec.dtypes:
            if dtype == "float64" and spec.stream == "gpu":
                if bench.rank == 0:
                    out.send(
                        {
                            "kind": "skip",
                            "op": op,
                            "dtype": dtype,
                            "reason": "float64: not on the GPU stream (Metal has no float64)",
                        }
                    )
                continue
            for nbytes in spec.sizes:
                done += 1
                # "progress": a finished row is the job's sign of life (stall watchdog).
                out.send(bench.row(op, dtype, nbytes) | {"progress": done, "total": total})
    out.send({"kind": "done", "rank": bench.rank})


if __name__ == "__main__":
    main(sys.argv[1:])
