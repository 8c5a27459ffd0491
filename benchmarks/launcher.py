"""Launcher overhead: the same 2 ranks spawned directly, by mlx.launch and by mlxrun exec.

mlx.launch's threads spin while ranks run (MLX_FACTS); on 2 cores that halves
a CPU-bound job. mlxrun's target: at most 1.1x the time of ranks spawned
directly. Also start-up: a job that does nothing but init.

Usage: python benchmarks/launcher.py [--loop N] [--repeat R]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).parent
BIN = Path(sys.executable).parent
RANK = str(HERE / "rank_cpu.py")


def free_port_pair() -> int:
    while True:
        with socket.socket() as a:
            a.bind(("127.0.0.1", 0))
            port = a.getsockname()[1]
        if port < 65000:
            return port


def direct(n: int) -> list[str]:
    """Two ranks started by hand with the environment mlx.launch would give them."""
    port = free_port_pair()
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump([[f"127.0.0.1:{port}"], [f"127.0.0.1:{port + 1}"]], f)
    procs = [
        subprocess.Popen(
            [sys.executable, RANK, str(n)],
            env={**os.environ, "MLX_RANK": str(r), "MLX_HOSTFILE": f.name},
            stdout=subprocess.DEVNULL,
        )
        for r in range(2)
    ]
    codes = [p.wait() for p in procs]
    os.unlink(f.name)
    assert codes == [0, 0], codes
    return []


def timed(argv: list[str] | Callable[[], list[str]]) -> float:
    start = time.perf_counter()
    if callable(argv):
        argv()
    else:
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    return time.perf_counter() - start


def compare(
    cases: dict[str, list[str] | Callable[[], list[str]]], repeat: int
) -> dict[str, dict[str, float]]:
    """Runs the cases alternately `repeat` times: each one's median and fastest seconds,
    and how many runs took over 1 s (for a job that only starts, MLX's ring retry)."""
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(repeat):
        for name, argv in cases.items():
            times[name].append(timed(argv))
    return {
        name: {
            "median": statistics.median(t),
            "fastest": min(t),
            "over_1s": sum(x > 1.0 for x in t),
            "runs": len(t),
        }
        for name, t in times.items()
    }


def show(title: str, stats: dict[str, dict[str, float]], base: str, retries: bool) -> None:
    print(f"\n{title}")
    print(f"{'how':<32}{'median s':>10}{'ratio':>8}{'fastest s':>11}", end="")
    print(f"{'over 1 s':>10}" if retries else "")
    for name, st in stats.items():
        ratio = st["median"] / stats[base]["median"]
        print(f"{name:<32}{st['median']:>10.3f}{ratio:>8.2f}{st['fastest']:>11.3f}", end="")
        print(f"{st['over_1s']:>6}/{st['runs']}" if retries else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--loop", type=int, default=12_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    launch = [str(BIN / "mlx.launch"), "-n", "2"]
    mlxrun = [str(BIN / "mlxrun"), "exec", "--np", "2", "--"]
    cpu = compare(
        {
            "ranks spawned directly": lambda: direct(args.loop),
            "mlx.launch -n 2": [*launch, "--", sys.executable, RANK, str(args.loop)],
            "mlxrun exec --np 2": [*mlxrun, sys.executable, RANK, str(args.loop)],
        },
        args.repeat,
    )
    show(
        "CPU-bound 2-rank job (target: mlxrun <= 1.10x direct)",
        cpu,
        "ranks spawned directly",
        False,
    )
    init = [sys.executable, "-c", "import mlx.core as mx; mx.distributed.init()"]
    startup = compare(
        {
            "mlx.launch -n 2 (init only)": [*launch, "--", *init],
            "mlxrun exec --np 2 (init only)": [*mlxrun, *init],
        },
        args.repeat * 3,
    )
    show("Start-up of an empty 2-rank job", startup, "mlx.launch -n 2 (init only)", True)
    out = HERE / "results" / "launcher.json"
    out.write_text(
        json.dumps({"cpu_bound": cpu, "startup": startup, "loop": args.loop}, indent=2) + "\n"
    )
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
