"""How often a 2-rank job's start stalls in MLX's ring set-up, idle and beside busy processes.

MLX's ring set-up retries a refused connect only after a whole second (MLX_FACTS). Two
races refuse one: the last rank connecting to rank 0 before rank 0 listens, and rank 0
connecting back to the last rank before that one listens (rank 0's accept of the last
rank's connect wakes it, and the woken rank often runs first). mlxrun's workers hold the
first off (the last rank waits for rank 0's socket) and make the second rare (the rank
that connects back runs its set-up under SCHED_BATCH, which does not preempt the rank
that woke it): see mlxrun/rank/ring.py.

Runs `--runs` starts each of mlx.launch with a program that only joins the ring and
all_sums, and of `mlxrun sum --np 2` of a 10-line file, alternately, idle and beside
`--hogs` busy processes; a start that takes over STALL_SECONDS stalled (an unstalled one
takes 0.1-0.5 s here). Writes benchmarks/results/ringstart.json.

Usage: python benchmarks/ringstart.py [--runs 30] [--hogs 1]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).parent
RESULTS = HERE / "results"
BIN = Path(sys.executable).parent
STALL_SECONDS = 0.95
JOIN = "import mlx.core as mx\nmx.eval(mx.distributed.all_sum(mx.distributed.init(backend='ring').rank()))\n"
HOG = "while True: pass"


def tools(work: Path) -> dict[str, list[str]]:
    program = work / "join.py"
    program.write_text(JOIN)
    data = work / "ten.txt"
    data.write_text("".join(f"{k}\n" for k in range(1, 11)))
    return {
        "mlx.launch": [
            str(BIN / "mlx.launch"),
            "-n",
            "2",
            "--backend",
            "ring",
            "--",
            sys.executable,
            str(program),
        ],
        "mlxrun sum --np 2": [str(BIN / "mlxrun"), "sum", "--np", "2", "--json", str(data)],
    }


def starts(argvs: dict[str, list[str]], runs: int) -> dict[str, list[float]]:
    seconds: dict[str, list[float]] = {name: [] for name in argvs}
    for _ in range(runs):
        for name, argv in argvs.items():
            started = time.perf_counter()
            subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
            seconds[name].append(time.perf_counter() - started)
    return seconds


def under_load(argvs: dict[str, list[str]], runs: int, hogs: int) -> dict[str, list[float]]:
    busy = [subprocess.Popen([sys.executable, "-c", HOG]) for _ in range(hogs)]
    try:
        return starts(argvs, runs)
    finally:
        for p in busy:
            p.kill()
            p.wait()


def summary(seconds: list[float]) -> dict[str, float | int]:
    return {
        "runs": len(seconds),
        "stalled": sum(s > STALL_SECONDS for s in seconds),
        "median": round(statistics.median(seconds), 3),
        "max": round(max(seconds), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--hogs", type=int, default=1)
    args = parser.parse_args()
    result: dict[str, dict[str, dict[str, float | int]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        argvs = tools(Path(tmp))
        for load in (0, args.hogs):
            seconds = under_load(argvs, args.runs, load)
            result[f"{load} busy"] = {name: summary(s) for name, s in seconds.items()}
    print(f"2-rank ring starts that stalled (over {STALL_SECONDS} s), {args.runs} each:")
    print(f"{'':24}{'idle':>22}{f'{args.hogs} busy process(es)':>28}")
    for name in argvs:
        cells = []
        for load in result.values():
            s = load[name]
            cells.append(f"{s['stalled']}/{s['runs']} (median {s['median']:.2f} s)")
        print(f"{name:24}{cells[0]:>22}{cells[1]:>28}")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "ringstart.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {RESULTS / 'ringstart.json'}")


if __name__ == "__main__":
    main()
