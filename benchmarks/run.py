"""Summing a large numeric file: mlxrun against the tools people reach for, in one run.

Generates (and caches under benchmarks/data/) text files of 10 M and 100 M floats, of
100 M 12-digit integers and of 100 M 19-digit ones (whose sums pass 2**63), one per line,
and a 2 GB .npy of float64. Runs every tool on each file
alternately, `--repeat` times, and reports the median seconds, MB/s, the ratio to
`mlxrun sum --np 2`, peak memory, whether the answer is exactly right (compared with the
exact sum, computed once with math.fsum / Python ints when the data is made) and, for
mlxrun, the seconds its slowest rank spent reading and reducing (the rest of its time is
start-up and combining, a fixed cost).
Writes benchmarks/results/sums.json and sums.png.

Usage: python benchmarks/run.py [--repeat 3] [--sizes 10M,100M] [--skip-npy]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from launcher import compare  # the same alternating runs and statistics

HERE = Path(__file__).parent
DATA = HERE / "data"
RESULTS = HERE / "results"
BIN = Path(sys.executable).parent
GEN_BLOCK = 1_000_000


# -- data -------------------------------------------------------------------------------


def make_text(path: Path, n: int, kind: str) -> None:
    """n values, one per line, and the exact sum beside them (PATH.sum)."""
    if path.exists() and path.with_suffix(".sum").exists():
        return
    print(f"making {path.name} ({n:,} {kind}) ...", flush=True)
    rng = np.random.default_rng(42)
    exact: float | int = 0
    with open(path, "w") as f:
        for start in range(0, n, GEN_BLOCK):
            size = min(GEN_BLOCK, n - start)
            if kind == "ints":
                block = rng.integers(-(10**12), 10**12, size)
                exact += int(block.sum(dtype=np.int64))  # |sum| < 2**63 per block
                f.write("\n".join(map(str, block.tolist())) + "\n")
            elif kind == "ints19":  # 19 digits: a sum of two can pass 2**63
                values = (
                    rng.integers(10**18, 2**63 - 1, size) * rng.choice([-1, 1], size)
                ).tolist()
                exact += sum(values)  # Python's ints: exact
                f.write("\n".join(map(str, values)) + "\n")
            else:
                block = rng.standard_normal(size) * 1000.0
                f.write("\n".join(map(repr, block.tolist())) + "\n")
    if kind == "floats":
        exact = _exact_float_sum(path)
    path.with_suffix(".sum").write_text(repr(exact) + "\n")


def _exact_float_sum(path: Path) -> float:
    # One fsum over every value as written (blockwise fsums would round twice).
    with open(path) as f:
        return math.fsum(float(line) for line in f)


def make_npy(path: Path, n: int) -> None:
    if path.exists() and path.with_suffix(".sum").exists():
        return
    print(f"making {path.name} ({n:,} float64) ...", flush=True)
    rng = np.random.default_rng(7)
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float64, shape=(n,))
    for start in range(0, n, GEN_BLOCK * 8):
        size = min(GEN_BLOCK * 8, n - start)
        out[start : start + size] = rng.standard_normal(size)
    out.flush()
    exact = math.fsum(
        float(v)
        for start in range(0, n, GEN_BLOCK)
        for v in out[start : start + GEN_BLOCK].tolist()
    )
    del out
    path.with_suffix(".sum").write_text(repr(exact) + "\n")


# -- tools --------------------------------------------------------------------------------


@dataclass
class Tool:
    name: str
    argv: Callable[[Path], list[str]]
    answer: Callable[[str], float | int | None]  # parse the tool's stdout
    kinds: tuple[str, ...] = ("floats", "ints")


def _py(code: str) -> Callable[[Path], list[str]]:
    return lambda path: [sys.executable, "-c", code, str(path)]


def _mlxrun(np_: int, op: str = "sum") -> Callable[[Path], list[str]]:
    return lambda path: [str(BIN / "mlxrun"), op, "--np", str(np_), "--json", str(path)]


def _json_sum(out: str) -> float | int | None:
    value = json.loads(out)["results"]["sum"]
    return float(value) if isinstance(value, str) else value


def _number(out: str) -> float | int | None:
    text = out.strip().splitlines()[-1] if out.strip() else ""
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            return None


TEXT_TOOLS = [
    Tool(
        "cat > /dev/null (read limit)",
        lambda p: ["sh", "-c", f"cat '{p}' > /dev/null"],
        lambda out: None,
    ),
    Tool("mlxrun sum --np 2", _mlxrun(2), _json_sum),
    Tool("mlxrun sum --np 1", _mlxrun(1), _json_sum),
    Tool("mlxrun stats --np 2", _mlxrun(2, "stats"), _json_sum),
    Tool(
        "awk '{s+=$1} END {print s}'", lambda p: ["awk", "{s+=$1} END {print s}", str(p)], _number
    ),
    Tool(
        "awk printf %.17g", lambda p: ["awk", '{s+=$1} END {printf "%.17g\\n", s}', str(p)], _number
    ),
    Tool("datamash sum 1", lambda p: ["datamash", "sum", "1"], _number),
    Tool(
        "numpy.loadtxt",
        _py("import sys, numpy as np; print(repr(float(np.loadtxt(sys.argv[1]).sum())))"),
        _number,
    ),
    Tool(
        "pandas read_csv (C engine)",
        _py(
            "import sys, pandas as pd; print(repr(pd.read_csv(sys.argv[1], header=None)[0].sum().item()))"
        ),
        _number,
    ),
    Tool(
        "pyarrow.csv (all threads)",
        _py(
            "import sys, pyarrow.csv as c, pyarrow.compute as pc\n"
            "t = c.read_csv(sys.argv[1], read_options=c.ReadOptions(column_names=['x']))\n"
            "print(repr(pc.sum(t['x']).as_py()))"
        ),
        _number,
    ),
    Tool(
        "polars read_csv (all threads)",
        _py(
            "import sys, polars as pl; print(repr(pl.read_csv(sys.argv[1], has_header=False)[:, 0].sum()))"
        ),
        _number,
    ),
]

NPY_TOOLS = [
    Tool("mlxrun sum --np 2", _mlxrun(2), _json_sum),
    Tool("mlxrun sum --np 1", _mlxrun(1), _json_sum),
    Tool(
        "numpy.load(mmap).sum()",
        _py(
            "import sys, numpy as np; print(repr(float(np.load(sys.argv[1], mmap_mode='r').sum())))"
        ),
        _number,
    ),
]


def run_once(tool: Tool, path: Path) -> tuple[float, int, str]:
    """(seconds, peak RSS bytes of the tool's largest process, stdout)."""
    stdin = open(path, "rb") if tool.name.startswith("datamash") else subprocess.DEVNULL  # noqa: SIM115
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(tool.argv(path), stdin=stdin, stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)  # this tool's own peak memory
        seconds = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        text = out.read().decode()
        if proc.returncode != 0:
            raise RuntimeError(f"{tool.name} failed: {err.read().decode()[-500:]}")
    if stdin is not subprocess.DEVNULL:
        stdin.close()
    if tool.name.startswith("mlxrun"):  # per rank, as each worker measured itself
        return seconds, max(r["max_rss"] for r in json.loads(text)["ranks"]), text
    return seconds, usage.ru_maxrss * 1024, text


def available(tool: Tool) -> bool:
    first = tool.argv(Path("x"))[0]
    if tool.name.startswith("datamash"):
        return shutil.which("datamash") is not None
    return shutil.which(first) is not None or Path(first).exists()


def exact_of(path: Path) -> float | int:
    text = path.with_suffix(".sum").read_text().strip()
    return int(text) if path.name.startswith("ints") else float(text)


def correct(answer: float | int | None, exact: float | int) -> bool | None:
    if answer is None:
        return None
    if isinstance(exact, int):
        return isinstance(answer, int) and answer == exact
    return float(answer) == exact


def bench_file(path: Path, tools: list[Tool], repeat: int) -> list[dict[str, object]]:
    size = path.stat().st_size
    kind = "ints" if path.name.startswith("ints") else "floats"
    chosen = [t for t in tools if kind in t.kinds and available(t)]
    times: dict[str, list[float]] = {t.name: [] for t in chosen}
    work: dict[str, list[float]] = {t.name: [] for t in chosen}  # mlxrun: its slowest rank's
    rss: dict[str, int] = {}
    answers: dict[str, float | int | None] = {}
    for _ in range(repeat):  # alternate, so drift in the machine hits every tool alike
        for tool in chosen:
            seconds, peak, out = run_once(tool, path)
            times[tool.name].append(seconds)
            if tool.name.startswith("mlxrun"):  # reading and reducing; the rest is fixed cost
                work[tool.name].append(max(r["seconds"] for r in json.loads(out)["ranks"]))
            rss[tool.name] = max(rss.get(tool.name, 0), peak)
            answers[tool.name] = tool.answer(out)
    exact = exact_of(path)
    base = statistics.median(times["mlxrun sum --np 2"])
    rows = []
    for tool in chosen:
        t = statistics.median(times[tool.name])
        rows.append(
            {
                "file": path.name,
                "tool": tool.name,
                "seconds": t,
                "mb_per_s": size / t / 1e6,
                "vs_mlxrun_np2": t / base,
                "peak_rss_mb": rss[tool.name] / 1e6,
                "rank_work_seconds": statistics.median(work[tool.name])
                if work[tool.name]
                else None,
                "answer": answers[tool.name],
                "correct": correct(answers[tool.name], exact),
            }
        )
    return rows


def show(rows: list[dict[str, object]]) -> None:
    print(f"\n{rows[0]['file']}  ({'exact sum: ' + repr(exact_of(DATA / str(rows[0]['file'])))})")
    print(
        f"{'tool':<34}{'seconds':>9}{'MB/s':>9}{'x mlxrun np2':>14}{'peak MB':>9}{'work s':>8}"
        "  correct  answer"
    )
    for r in rows:
        ok = {True: "yes", False: "NO", None: "-"}[r["correct"]]  # type: ignore[index]
        work = f"{r['rank_work_seconds']:.2f}" if r.get("rank_work_seconds") is not None else "-"
        print(
            f"{r['tool']:<34}{r['seconds']:>9.2f}{r['mb_per_s']:>9.0f}{r['vs_mlxrun_np2']:>14.2f}"
            f"{r['peak_rss_mb']:>9.0f}{work:>8}  {ok:<7}  {r['answer']}"
        )


def startup(repeat: int) -> dict[str, dict[str, float]]:
    """Median and fastest run of each, and how many runs paid MLX's 1 s ring connect retry
    (a bare 2-rank start pays it in about half of all runs: MLX_FACTS)."""
    tiny = DATA / "ten.txt"
    tiny.write_text("".join(f"{i}\n" for i in range(1, 11)))
    init = [sys.executable, "-c", "import mlx.core as mx; mx.distributed.init()"]
    cases = {
        "mlx.launch -n 2 (init only)": [str(BIN / "mlx.launch"), "-n", "2", "--", *init],
        "mlxrun sum --np 2 (10 lines)": [str(BIN / "mlxrun"), "sum", "--np", "2", str(tiny)],
    }
    stats = compare(dict(cases), repeat)
    print(f"\nstart-up, {repeat} runs each: median, fastest, runs over 1 s (the ring retry)")
    for name, st in stats.items():
        print(f"{name:<34}{st['median']:>9.3f} s{st['fastest']:>9.3f} s{st['over_1s']:>5}")
    return stats


def scaling(path: Path, repeat: int) -> dict[str, dict[str, float]]:
    """--np 1 against --np 2, alternately and more often than the table's runs: their ratio
    is the noisiest target here (the same run varies by up to 1.5x on this VM)."""
    cases = {f"mlxrun sum --np {n}": _mlxrun(n)(path) for n in (1, 2)}
    stats = compare(dict(cases), repeat)
    one, two = (stats[f"mlxrun sum --np {n}"]["median"] for n in (1, 2))
    print(f"\n{path.name}, {repeat} alternating runs each: median, fastest")
    for name, st in stats.items():
        print(f"{name:<34}{st['median']:>9.3f} s{st['fastest']:>9.3f} s")
    print(f"--np 2 is {one / two:.2f}x faster than --np 1 (medians)")
    return stats


def chart(rows: list[dict[str, object]], out: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed: no chart")
        return
    files = list(dict.fromkeys(str(r["file"]) for r in rows))
    fig, axes = plt.subplots(len(files), 1, figsize=(9, 3.2 * len(files)), squeeze=False)
    for ax, name in zip(axes[:, 0], files, strict=True):
        limit = [r for r in rows if r["file"] == name and str(r["tool"]).startswith("cat")]
        mine = [r for r in rows if r["file"] == name and r not in limit]  # cat dwarfs them
        labels = [str(r["tool"]) for r in mine]
        speeds = [float(r["mb_per_s"]) for r in mine]  # type: ignore[arg-type]
        colours = ["tab:green" if label.startswith("mlxrun") else "tab:gray" for label in labels]
        ax.barh(labels, speeds, color=colours)
        ax.invert_yaxis()
        read = f" (cat, the read limit: {float(limit[0]['mb_per_s']):.0f} MB/s)" if limit else ""  # type: ignore[arg-type]
        ax.set_title(name + read)
        ax.set_xlabel("MB/s (higher is better)")
    fig.tight_layout()
    fig.savefig(out, dpi=90)
    print(f"wrote {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--sizes", default="10M,100M")
    parser.add_argument("--skip-npy", action="store_true")
    parser.add_argument("--chart-only", action="store_true", help="redraw sums.png from sums.json")
    args = parser.parse_args()
    if args.chart_only:
        chart(json.loads((RESULTS / "sums.json").read_text())["rows"], RESULTS / "sums.png")
        return
    DATA.mkdir(exist_ok=True)
    RESULTS.mkdir(exist_ok=True)
    sizes = {"10M": 10_000_000, "100M": 100_000_000}
    files = []
    for label in args.sizes.split(","):
        make_text(DATA / f"floats_{label}.txt", sizes[label], "floats")
        files.append(DATA / f"floats_{label}.txt")
    if "100M" in args.sizes:
        make_text(DATA / "ints_100M.txt", sizes["100M"], "ints")
        make_text(DATA / "ints19_100M.txt", sizes["100M"], "ints19")
        files += [DATA / "ints_100M.txt", DATA / "ints19_100M.txt"]
    rows: list[dict[str, object]] = []
    for path in files:
        file_rows = bench_file(path, TEXT_TOOLS, args.repeat)
        show(file_rows)
        rows += file_rows
    if not args.skip_npy:
        npy = DATA / "floats_2GB.npy"
        make_npy(npy, 2 * 1024**3 // 8)
        npy_rows = bench_file(npy, NPY_TOOLS, args.repeat)
        show(npy_rows)
        rows += npy_rows
    result = {
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
        "rows": rows,
        "startup": startup(args.repeat * 5),
    }
    if "100M" in args.sizes:
        result["scaling"] = scaling(DATA / "floats_100M.txt", args.repeat * 3)
    (RESULTS / "sums.json").write_text(json.dumps(result, indent=2) + "\n")
    chart(rows, RESULTS / "sums.png")
    print(f"wrote {RESULTS / 'sums.json'}")


if __name__ == "__main__":
    main()
