"""All-reduce bandwidth: `mlxrun bench` (ring and mpi) against mpi4py on Open MPI 5 and
torch.distributed with gloo on the CPU, in one run: the same sizes, dtype (float32),
iterations and rank counts. busbw uses nccl-tests' factor 2(n-1)/n for all of them, and
every peer reports the average over ranks of its per-rank time, as `mlxrun bench` does.

Writes benchmarks/results/collectives.json (and collectives.png with matplotlib) and prints
a table: busbw (GB/s) per size and tool (the median of `--repeat` rounds, the tools taking
turns in each), the ratio of mlxrun's ring to each peer, and the memory-copy limit
`mlxrun bench` measured on this host. Run it on an otherwise idle machine.

Usage: python benchmarks/collectives.py [--np 2,4] [-b 1K] [-e 64M] [-f 4] [-n 20] [-w 5]
       [--repeat 3]
       (the peers run this same file: --peer mpi4py|gloo)
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).parent
RESULTS = HERE / "results"
BIN = Path(sys.executable).parent
UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3}
TOOLS = ("ring", "mpi", "mpi4py", "gloo")  # ring and mpi: mlxrun bench on that backend


def parse_size(text: str) -> int:
    unit = text[-1].upper() if text[-1].isalpha() else ""
    return int(text[: len(text) - len(unit)]) * UNITS[unit]


def series(lo: int, hi: int, f: int) -> list[int]:
    out = []
    while lo <= hi:
        out.append(lo)
        lo *= f
    return out


def busbw(nbytes: int, time_us: float, n: int) -> float:
    return nbytes / (time_us * 1e-6) / 1e9 * 2 * (n - 1) / n


# -- the peers: this file, run on every rank --------------------------------------------


def timed(run: object, iters: int, warmup: int, barrier: object) -> float:
    for _ in range(warmup):
        run()  # type: ignore[operator]
    barrier()  # type: ignore[operator]
    start = time.perf_counter()
    for _ in range(iters):
        run()  # type: ignore[operator]
    return (time.perf_counter() - start) / iters * 1e6


def peer_mpi4py(sizes: list[int], iters: int, warmup: int) -> None:
    import numpy as np
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    rows = []
    for nbytes in sizes:
        x = np.ones(max(1, nbytes // 4), dtype=np.float32)
        y = np.empty_like(x)
        us = timed(lambda x=x, y=y: comm.Allreduce(x, y, op=MPI.SUM), iters, warmup, comm.Barrier)
        rows.append({"bytes": x.nbytes, "time_us": comm.allreduce(us) / comm.Get_size()})
    if comm.Get_rank() == 0:
        print(json.dumps(rows), flush=True)


def peer_gloo(sizes: list[int], iters: int, warmup: int) -> None:
    import torch
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo")
    n = dist.get_world_size()
    rows = []
    for nbytes in sizes:
        x = torch.ones(max(1, nbytes // 4), dtype=torch.float32)
        us = timed(lambda x=x: dist.all_reduce(x), iters, warmup, dist.barrier)
        t = torch.tensor([us], dtype=torch.float64)
        dist.all_reduce(t)
        rows.append({"bytes": x.numel() * 4, "time_us": float(t.item()) / n})
    if dist.get_rank() == 0:
        print(json.dumps(rows), flush=True)
    dist.destroy_process_group()


# -- the driver --------------------------------------------------------------------------


def env_with_bin() -> dict[str, str]:
    return {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}


def run_mlxrun(n: int, backend: str, a: argparse.Namespace) -> dict:
    argv = [str(BIN / "mlxrun"), "bench", "--json", "--np", str(n), "--backend", backend]
    argv += ["--op", "all_sum", "--dtype", "float32", "-b", a.b, "-e", a.e, "-f", str(a.f)]
    argv += ["-n", str(a.n), "-w", str(a.w)]
    p = subprocess.run(argv, capture_output=True, text=True, env=env_with_bin(), check=False)
    if p.returncode != 0:
        raise SystemExit(f"mlxrun bench --np {n} --backend {backend} failed:\n{p.stderr}")
    return dict(json.loads(p.stdout))


def peer_args(a: argparse.Namespace, peer: str) -> list[str]:
    return [sys.executable, __file__, "--peer", peer, "-b", a.b, "-e", a.e, "-f", str(a.f)] + [
        "-n",
        str(a.n),
        "-w",
        str(a.w),
    ]


def run_mpi4py(n: int, a: argparse.Namespace) -> list[dict]:
    argv = [str(BIN / "mpirun"), "-np", str(n), "--oversubscribe"]
    if os.geteuid() == 0:
        argv.append("--allow-run-as-root")
    argv += ["--mca", "btl", "self,tcp", "--mca", "btl_tcp_if_include", "lo"]
    p = subprocess.run(
        argv + peer_args(a, "mpi4py"), capture_output=True, text=True, env=env_with_bin()
    )
    if p.returncode != 0:
        raise SystemExit(f"mpi4py on {n} ranks failed:\n{p.stderr}")
    return list(json.loads(p.stdout.strip().splitlines()[-1]))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_gloo(n: int, a: argparse.Namespace) -> list[dict]:
    port = str(free_port())
    procs = [
        subprocess.Popen(
            peer_args(a, "gloo"),
            stdout=subprocess.PIPE,
            text=True,
            env={
                **os.environ,
                "MASTER_ADDR": "127.0.0.1",
                "MASTER_PORT": port,
                "RANK": str(r),
                "WORLD_SIZE": str(n),
                "GLOO_SOCKET_IFNAME": "lo",
                "OMP_NUM_THREADS": "1",
            },
        )
        for r in range(n)
    ]
    outs = [p.communicate()[0] for p in procs]
    if any(p.returncode for p in procs):
        raise SystemExit(f"gloo on {n} ranks failed")
    return list(json.loads(outs[0].strip().splitlines()[-1]))


def table(results: list[dict]) -> str:
    lines = []
    for res in results:
        n = res["np"]
        limit = res["memcpy_gbps"]
        lines.append(f"\n{n} ranks, float32 all-reduce, busbw GB/s (memory copy: {limit:.2f} GB/s)")
        head = f"{'bytes':>10} {'mlx ring':>9} {'mlx mpi':>9} {'mpi4py':>9} {'gloo':>9}"
        lines.append(head + f" {'ring/mpi4py':>12} {'ring/gloo':>10} {'ring/memcpy':>12}")
        for row in res["rows"]:
            ring, mpi, m4, gl = (row[k] for k in ("ring", "mpi", "mpi4py", "gloo"))
            lines.append(
                f"{row['bytes']:>10} {ring:>9.3g} {mpi:>9.3g} {m4:>9.3g} {gl:>9.3g}"
                f" {ring / m4:>11.2f}x {ring / gl:>9.2f}x {ring / limit:>11.1%}"
            )
    return "\n".join(lines)


def plot(results: list[dict], path: Path) -> None:
    try:
        import matplotlib
    except ImportError:
        return
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(6 * len(results), 4.5), squeeze=False)
    for ax, res in zip(axes[0], results, strict=True):
        xs = [r["bytes"] for r in res["rows"]]
        for key in ("ring", "mpi", "mpi4py", "gloo"):
            label = f"mlxrun bench {key}" if key in ("ring", "mpi") else key
            ax.plot(xs, [r[key] for r in res["rows"]], marker="o", label=label)
        ax.axhline(res["memcpy_gbps"], color="grey", linestyle="--", label="memory copy")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_title(f"all-reduce float32, {res['np']} ranks")
        ax.set_xlabel("bytes")
        ax.set_ylabel("busbw (GB/s)")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--peer", choices=("mpi4py", "gloo"))
    ap.add_argument("--np", default="2,4")
    ap.add_argument("-b", default="1K")
    ap.add_argument("-e", default="64M")
    ap.add_argument("-f", type=int, default=4)
    ap.add_argument("-n", type=int, default=20)
    ap.add_argument("-w", type=int, default=5)
    ap.add_argument("--repeat", type=int, default=3, help="rounds; the median is reported")
    ap.add_argument("--out", type=Path, default=RESULTS / "collectives")
    a = ap.parse_args()
    sizes = series(parse_size(a.b), parse_size(a.e), a.f)
    if a.peer == "mpi4py":
        return peer_mpi4py(sizes, a.n, a.w)
    if a.peer == "gloo":
        return peer_gloo(sizes, a.n, a.w)
    results = []
    for n in (int(x) for x in a.np.split(",")):
        # The tools take turns, round after round: a burst of load from elsewhere on the
        # machine then touches every tool, and the median per size is reported.
        runs: dict[str, list[list[float]]] = {k: [] for k in TOOLS}
        limits: list[float] = []
        sizes_seen: list[int] = []
        for _ in range(a.repeat):
            for backend in ("ring", "mpi"):
                report = run_mlxrun(n, backend, a)
                limits.append(report["memcpy_gbps"])
                sizes_seen = [r["bytes"] for r in report["rows"]]
                runs[backend].append([r["busbw_gbps"] for r in report["rows"]])
            for name, peer in (("mpi4py", run_mpi4py), ("gloo", run_gloo)):
                rows = peer(n, a)
                runs[name].append([busbw(r["bytes"], r["time_us"], n) for r in rows])
        rows_out = []
        for i, nbytes in enumerate(sizes_seen):
            row: dict[str, float] = {"bytes": nbytes}
            for name in TOOLS:
                row[name] = statistics.median(run[i] for run in runs[name])
            rows_out.append(row)
        results.append(
            {"np": n, "memcpy_gbps": statistics.median(limits), "rows": rows_out, "runs": runs}
        )
    report = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{os.uname().sysname} {os.uname().machine}, {os.cpu_count()} cores",
        "settings": {"b": a.b, "e": a.e, "f": a.f, "iters": a.n, "warmup": a.w, "repeat": a.repeat},
        "results": results,
    }
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.with_suffix(".json").write_text(json.dumps(report, indent=1) + "\n")
    plot(results, a.out.with_suffix(".png"))
    print(f"{report['date']}, {report['machine']}" + table(results))


if __name__ == "__main__":
    main()
