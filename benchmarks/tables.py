"""Summing one column of a table: mlxrun against polars, pyarrow and pandas, in one run.

Generates (and caches under benchmarks/data/) an 8-column CSV of `--rows` records (8 M
by default: about 0.5 GB) as tools write it (quoted strings with commas, integers,
floats of 17 digits, an empty field now and then), the same data as Parquet, and the
summed column alone as plain text (so that CSV and text can be compared per byte). The
exact sum is computed once, with math.fsum, when the data is made.

Then, like run.py: every tool alternately, `--repeat` times; median seconds, MB/s, the
ratio to `mlxrun sum --np 2` on the same file, peak memory and whether the answer is
exact. Targets (issue 12): on the CSV, mlxrun --np 2 at least 1.2x faster than polars
read_csv(columns=[COL]) plus the sum, and per byte within 1.5x of mlxrun on the text
file; on the Parquet file, at least as fast as pyarrow's read_table(columns=[COL]) plus
pyarrow.compute.sum. Writes benchmarks/results/tables.json.

Usage: python benchmarks/tables.py [--repeat 3] [--rows 8000000]
       (`--rows 2000 --repeat 1` checks that it runs)
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import statistics
import sys
from pathlib import Path

import numpy as np
from run import RESULTS, Tool, _json_sum, _number, _py, available, correct, run_once

HERE = Path(__file__).parent
DATA = HERE / "data"
BIN = Path(sys.executable).parent
COLUMN = "fare"
BLOCK = 500_000
HEADER = "id,vendor,passengers,distance,fare,tip,note,zone\n"


def make_tables(rows: int) -> tuple[Path, Path, Path]:
    """The CSV, its Parquet twin and the column as text, with the exact sum beside them."""
    stem = DATA / f"trips_{rows}"
    csv, parquet, text = (stem.with_suffix(s) for s in (".csv", ".parquet", ".txt"))
    exact_file = stem.with_suffix(".sum")
    if all(p.exists() for p in (csv, parquet, text, exact_file)):
        return csv, parquet, text
    print(f"making {csv.name} ({rows:,} records) ...", flush=True)
    rng = np.random.default_rng(12)
    fares: list[float] = []
    with csv.open("w") as out, text.open("w") as col:
        out.write(HEADER)
        for start in range(0, rows, BLOCK):
            n = min(BLOCK, rows - start)
            fare = (rng.standard_normal(n) * 20 + 30).tolist()
            tip = rng.random(n).round(2).tolist()
            distance = (rng.random(n) * 40).tolist()
            passengers = rng.integers(1, 7, n).tolist()
            zone = rng.integers(1, 266, n).tolist()
            lines = []
            for i in range(n):
                note = '"late, ""rush"" hour"' if i % 97 == 0 else ("" if i % 5 else "ok")
                lines.append(
                    f'{start + i},"V{i % 3}",{passengers[i]},{distance[i]!r},{fare[i]!r},'
                    f"{tip[i]},{note},{zone[i]}\n"
                )
            out.write("".join(lines))
            col.write("".join(f"{v!r}\n" for v in fare))
            fares += fare
    exact_file.write_text(repr(math.fsum(fares)) + "\n")
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    pq.write_table(pacsv.read_csv(csv), parquet)
    return csv, parquet, text


def _mlxrun(np_: int, column: str | None = COLUMN) -> Tool:
    col = ["-c", column] if column else []
    name = f"mlxrun sum --np {np_}" + ("" if column else " (the column as text)")
    return Tool(
        name, lambda p: [str(BIN / "mlxrun"), "sum", "--np", str(np_), *col, "--json", str(p)],
        _json_sum,
    )  # fmt: skip


CSV_TOOLS = [
    _mlxrun(2),
    _mlxrun(1),
    Tool(
        "polars read_csv(columns=[COL]).sum()",
        _py(f"import sys, polars as pl; print(repr(pl.read_csv(sys.argv[1], columns=['{COLUMN}'])['{COLUMN}'].sum()))"),
        _number,
    ),
    Tool(
        "pyarrow.csv include_columns + pc.sum",
        _py(
            "import sys, pyarrow.csv as c, pyarrow.compute as pc\n"
            f"t = c.read_csv(sys.argv[1], convert_options=c.ConvertOptions(include_columns=['{COLUMN}']))\n"
            f"print(repr(pc.sum(t['{COLUMN}']).as_py()))"
        ),
        _number,
    ),
    Tool(
        "pandas read_csv(usecols=[COL]).sum()",
        _py(f"import sys, pandas as pd; print(repr(pd.read_csv(sys.argv[1], usecols=['{COLUMN}'])['{COLUMN}'].sum().item()))"),
        _number,
    ),
]  # fmt: skip
TEXT_TOOLS = [_mlxrun(2, None)]
PARQUET_TOOLS = [
    _mlxrun(2),
    _mlxrun(1),
    Tool(
        "pq.read_table(columns=[COL]) + pc.sum",
        _py(
            "import sys, pyarrow.parquet as pq, pyarrow.compute as pc\n"
            f"print(repr(pc.sum(pq.read_table(sys.argv[1], columns=['{COLUMN}'])['{COLUMN}']).as_py()))"
        ),
        _number,
    ),
    Tool(
        "polars read_parquet(columns=[COL]).sum()",
        _py(f"import sys, polars as pl; print(repr(pl.read_parquet(sys.argv[1], columns=['{COLUMN}'])['{COLUMN}'].sum()))"),
        _number,
    ),
]  # fmt: skip


def installed(tool: Tool) -> bool:
    """A peer runs only where its library is installed (`make bench` installs them)."""
    for module in ("polars", "pandas", "pyarrow"):
        if tool.name.startswith((module, "pq." if module == "pyarrow" else module)):
            if importlib.util.find_spec(module) is None:
                print(f"skipped: {tool.name} ({module} is not installed)")
                return False
    return available(tool)


def bench(files: dict[Path, list[Tool]], exact: float, repeat: int) -> list[dict[str, object]]:
    """Every tool on its file, alternately across all files: peers share the same drift."""
    jobs = [(path, tool) for path, tools in files.items() for tool in tools if installed(tool)]
    times: dict[tuple[Path, str], list[float]] = {(p, t.name): [] for p, t in jobs}
    rss: dict[tuple[Path, str], int] = {}
    answers: dict[tuple[Path, str], float | int | None] = {}
    for _ in range(repeat):
        for path, tool in jobs:
            seconds, peak, out = run_once(tool, path)
            key = (path, tool.name)
            times[key].append(seconds)
            rss[key] = max(rss.get(key, 0), peak)
            answers[key] = tool.answer(out)
    rows = []
    for path, tool in jobs:
        key = (path, tool.name)
        base = (
            statistics.median(times[(path, "mlxrun sum --np 2")]) if path.suffix != ".txt" else None
        )
        t = statistics.median(times[key])
        rows.append(
            {
                "file": path.name,
                "tool": tool.name,
                "seconds": t,
                "mb_per_s": path.stat().st_size / t / 1e6,
                "vs_mlxrun_np2": t / base if base else None,
                "peak_rss_mb": rss[key] / 1e6,
                "answer": answers[key],
                "correct": correct(answers[key], exact),
            }
        )  # fmt: skip
    return rows


def show(rows: list[dict[str, object]], exact: float) -> None:
    print(f"\nexact sum of {COLUMN}: {exact!r}")
    print(f"{'file':<24}{'tool':<42}{'seconds':>9}{'MB/s':>8}{'x np2':>7}{'peak MB':>9}  correct")
    for r in rows:
        ratio = f"{r['vs_mlxrun_np2']:.2f}" if r["vs_mlxrun_np2"] is not None else "-"
        ok = {True: "yes", False: "NO", None: "-"}[r["correct"]]  # type: ignore[index]
        print(
            f"{r['file']:<24}{r['tool']:<42}{r['seconds']:>9.2f}{r['mb_per_s']:>8.0f}"
            f"{ratio:>7}{r['peak_rss_mb']:>9.0f}  {ok}"
        )


def targets(rows: list[dict[str, object]]) -> dict[str, float]:
    def row(file_suffix: str, tool: str) -> dict[str, object]:
        return next(r for r in rows if str(r["file"]).endswith(file_suffix) and r["tool"] == tool)

    mine = row(".csv", "mlxrun sum --np 2")
    out = {}
    polars = [r for r in rows if str(r["tool"]).startswith("polars read_csv")]
    if polars:
        out["csv: polars / mlxrun (target >= 1.2)"] = float(polars[0]["seconds"]) / float(
            mine["seconds"]
        )  # type: ignore[arg-type]
    text = row(".txt", "mlxrun sum --np 2 (the column as text)")
    out["csv per byte: text MB/s / csv MB/s (target <= 1.5)"] = float(text["mb_per_s"]) / float(
        mine["mb_per_s"]
    )  # type: ignore[arg-type]
    arrow = [r for r in rows if str(r["tool"]).startswith("pq.read_table")]
    if arrow:
        pmine = row(".parquet", "mlxrun sum --np 2")
        out["parquet: pyarrow / mlxrun (target >= 1.0)"] = float(arrow[0]["seconds"]) / float(
            pmine["seconds"]
        )  # type: ignore[arg-type]
    for name, value in out.items():
        print(f"{name}: {value:.2f}")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--rows", type=int, default=8_000_000)
    args = parser.parse_args()
    DATA.mkdir(exist_ok=True)
    RESULTS.mkdir(exist_ok=True)
    csv, parquet, text = make_tables(args.rows)
    exact = float(csv.with_suffix(".sum").read_text())
    rows = bench({csv: CSV_TOOLS, text: TEXT_TOOLS, parquet: PARQUET_TOOLS}, exact, args.repeat)
    show(rows, exact)
    result = {
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
        "rows": rows,
        "targets": targets(rows),
    }
    name = {8_000_000: "tables.json"}.get(args.rows, f"tables-{args.rows}.json")
    out = RESULTS / (name if args.rows >= 1_000_000 else "tables-small.json")
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
