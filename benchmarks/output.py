"""Output relay under load: 4 ranks that each print 1 M short lines, relayed by mlxrun
exec (every line whole and labelled) against the same ranks writing to /dev/null.

Cases, run alternately `--repeat` times (medians):
- ranks started directly (the environment mlx.launch gives them), stdout /dev/null,
  block-buffered (Python's default there) and unbuffered (as mlxrun runs them);
- mlx.launch -n 4, its stdout /dev/null (it splices lines of different ranks);
- mlxrun exec --np 4, its stdout /dev/null;
- mlxrun exec --np 4 into a file, whose lines are then checked: all there, whole,
  labelled, each rank's in order.
Also mlxrun's own peak memory (VmHWM) in the relayed runs. Target: mlxrun within 1.5x of
the ranks writing to /dev/null.

Usage: python benchmarks/output.py [--lines 1000000] [--repeat 3]
(writes benchmarks/results/output.json)
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).parent
BIN = Path(sys.executable).parent
RANK = str(HERE / "rank_lines.py")
NP = 4


def direct(lines: int, unbuffered: bool = False) -> None:
    """The ranks started by hand, as mlx.launch would start them, stdout to /dev/null;
    `unbuffered`: as mlxrun starts them (PYTHONUNBUFFERED=1: each line is written when
    printed, so that it shows as it happens)."""
    from benchmarks.launcher import free_port_pair

    port = free_port_pair()
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump([[f"127.0.0.1:{port + r}"] for r in range(NP)], f)
    procs = [
        subprocess.Popen(
            [sys.executable, RANK, str(lines)],
            env={
                **os.environ,
                "MLX_RANK": str(r),
                "MLX_HOSTFILE": f.name,
                **({"PYTHONUNBUFFERED": "1"} if unbuffered else {}),
            },
            stdout=subprocess.DEVNULL,
        )
        for r in range(NP)
    ]
    codes = [p.wait() for p in procs]
    os.unlink(f.name)
    assert codes == [0] * NP, codes


def peak_memory(pid: int, stop: threading.Event, out: list[int]) -> None:
    """Samples the process's VmHWM (peak resident memory) until it ends."""
    while not stop.is_set():
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    out.append(int(line.split()[1]) * 1024)
        except OSError:
            return
        time.sleep(0.05)


def run(argv: list[str], stdout: int | object) -> tuple[float, int]:
    """(seconds, peak bytes of the process itself)."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=stdout, stdin=subprocess.DEVNULL)  # type: ignore[call-overload]
    stop, peaks = threading.Event(), [0]
    sampler = threading.Thread(target=peak_memory, args=(proc.pid, stop, peaks))
    sampler.start()
    code = proc.wait()
    seconds = time.perf_counter() - start
    stop.set()
    sampler.join()
    assert code == 0, argv
    return seconds, max(peaks)


def check_lines(path: Path, lines: int) -> None:
    label = re.compile(rb"\[rank (\d)\] rank (\d) line (\d+)\n")
    nxt = [0] * NP
    with path.open("rb") as f:
        for line in f:
            m = label.fullmatch(line)
            assert m and m.group(1) == m.group(2), line
            r = int(m.group(1))
            assert int(m.group(3)) == nxt[r], (line, nxt[r])
            nxt[r] += 1
    assert nxt == [lines] * NP, nxt


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    sys.path.insert(0, str(HERE.parent))
    rank = [sys.executable, RANK, str(args.lines)]
    mlxrun = [str(BIN / "mlxrun"), "exec", "--np", str(NP), "--", *rank]
    launch = [str(BIN / "mlx.launch"), "-n", str(NP), "--", *rank]
    times: dict[str, list[float]] = {}
    peaks: dict[str, list[int]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        relayed = Path(tmp) / "out.txt"
        for _ in range(args.repeat):
            start = time.perf_counter()
            direct(args.lines)
            times.setdefault("ranks to /dev/null", []).append(time.perf_counter() - start)
            start = time.perf_counter()
            direct(args.lines, unbuffered=True)
            times.setdefault("ranks to /dev/null, unbuffered", []).append(
                time.perf_counter() - start
            )
            for name, argv, sink in (
                ("mlx.launch -n 4 > /dev/null", launch, "null"),
                ("mlxrun exec --np 4 > /dev/null", mlxrun, "null"),
                ("mlxrun exec --np 4 > file", mlxrun, "file"),
            ):
                with open(os.devnull if sink == "null" else relayed, "wb") as out:
                    seconds, peak = run(argv, out)
                times.setdefault(name, []).append(seconds)
                peaks.setdefault(name, []).append(peak)
                if sink == "file":
                    check_lines(relayed, args.lines)
    base = statistics.median(times["ranks to /dev/null"])
    print(f"\n{NP} ranks x {args.lines:,} lines, medians of {args.repeat} (target: mlxrun <= 1.5x)")
    print(f"{'how':<34}{'median s':>10}{'ratio':>8}{'peak MB':>10}")
    rows = {}
    for name, t in times.items():
        median = statistics.median(t)
        peak = max(peaks.get(name, [0])) / 2**20
        rows[name] = {"median": median, "ratio": median / base, "peak_mb": peak, "runs": t}
        shown = f"{peak:>10.0f}" if name in peaks and not name.startswith("mlx.launch") else ""
        print(f"{name:<34}{median:>10.3f}{median / base:>8.2f}{shown}")
    print("every relayed line checked: whole, labelled, each rank's in order")
    out = HERE / "results" / "output.json"
    out.write_text(json.dumps({"np": NP, "lines": args.lines, "rows": rows}, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
