"""Where a job's fixed cost goes: the steps of `mlxrun sum --np N --json FILE`, from the
moment it is started to the moment it has exited, read from MLXRUN_TIMELINE (every mlxrun
process of the job appends a line per step; see mlxrun/rank/timeline.py).

Runs the job `--repeat` times (a 10-line file by default, or `--file`), and prints for
each step the median time since the start and the median time it took after the step
before. A step every rank takes is timed at its slowest rank: the job waits for that one. The work itself (reading and reducing) is between `joined` and `read`: on a
small file what is left is the fixed cost. Writes benchmarks/results/startup-npN.json.

Usage: python benchmarks/startup.py [--repeat 9] [--np 2] [--file F]
       (`--repeat 1` checks that it runs)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).parent
RESULTS = HERE / "results"
BIN = Path(sys.executable).parent
# In the order they happen.
STEPS = [
    ("cli start", "Python started, mlxrun's first line"),
    ("launch", "the CLI's imports, the data checked, the plan made"),
    ("launcher start", "mlx.launch forked by mlxrun (MLXRUN_NO_FORK=1: a new Python)"),
    ("launcher imported", "mlx.launch's imports (argparse, mlx.core, ...)"),
    (
        "agent start",
        "mlx.launch's bash per rank, a new Python, the agent's imports (alone: forked)",
    ),
    ("agent connected", "the agent's hello on the channel"),
    ("worker start", "the worker forked, its imports, the plan read"),
    ("joined", "mlx.core imported, MLX's ring set up (its buffers), the last rank's wait"),
    ("read", "the rank's share read and reduced: the work"),
    ("combined", "partials combined by MLX collectives"),
    ("cli exit", "results sent, ranks reaped, the table or JSON printed"),
    ("exited", "the interpreter's exit"),
]
PER_RANK = {"agent start", "agent connected", "worker start", "joined", "read", "combined"}


def one_run(argv: list[str]) -> dict[str, float]:
    """Each step's seconds since the job was started (a per-rank step: its slowest rank)."""
    with tempfile.TemporaryDirectory() as tmp:
        timeline = Path(tmp) / "timeline"
        env = {**os.environ, "MLXRUN_TIMELINE": str(timeline)}
        started = time.time()
        done = subprocess.run(argv, env=env, capture_output=True, text=True)
        ended = time.time()
        if done.returncode != 0:
            raise RuntimeError(f"the job failed: {done.stderr[-500:]}")
        seen: dict[str, list[float]] = {}
        for line in timeline.read_text().splitlines():
            at, _pid, step = line.split(" ", 2)
            seen.setdefault(step, []).append(float(at) - started)
    out = {"exited": ended - started}
    for step, times in seen.items():
        out[step] = max(times) if step in PER_RANK else min(times)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=9)
    ap.add_argument("--np", type=int, default=2)
    ap.add_argument("--file", type=Path)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = args.file or Path(tmp) / "ten.txt"
        if args.file is None:
            path.write_text("".join(f"{i}\n" for i in range(1, 11)))
        argv = [str(BIN / "mlxrun"), "sum", "--np", str(args.np), "--json", str(path)]
        runs = [one_run(argv) for _ in range(args.repeat)]
    names = [step for step, _ in STEPS if all(step in r for r in runs)]
    median = {n: statistics.median(r[n] for r in runs) for n in names}
    rows, before = [], 0.0
    what = dict(STEPS)
    print(f"mlxrun sum --np {args.np} {path.name}: medians of {args.repeat} runs")
    print(f"{'step':<20}{'at ms':>8}{'took ms':>9}  what the time before it went to")
    for n in names:
        took = median[n] - before
        rows.append({"step": n, "at_ms": median[n] * 1000, "took_ms": took * 1000})
        print(f"{n:<20}{median[n] * 1000:8.0f}{took * 1000:9.0f}  {what[n]}")
        before = median[n]
    RESULTS.mkdir(exist_ok=True)
    name = f"startup-np{args.np}" + ("" if args.file is None else f"-{path.stem}") + ".json"
    result = {"np": args.np, "file": path.name, "repeat": args.repeat, "steps": rows}
    (RESULTS / name).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
