"""The C kernels alone, in one process, against numpy in the same run: exact binning of
float64 (AVX2 and the portable loop, forced with use_simd(False)) against numpy's inexact
pairwise sum, in ns per value, and the text parser with its exact sum (`sum_text`: with
SIMD, the vector reader (AVX2 or NEON) or, where it timed faster on a chunk's first
stretch, the portable one; and the portable one alone) in MB/s of one core, on the 17-digit
floats and the 12- and 19-digit integers of benchmarks/run.py's files (a 100 MB head of
each, in memory), against fast_float's from_chars (parse and an inexact sum only) on the
same bytes where a C++ compiler and its header are here (fastfloat.cpp; Debian:
libfast-float-dev). Medians of `--repeat` alternating runs.
Writes benchmarks/results/kernels.json.

Usage: python benchmarks/kernels.py [--repeat 7]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import numpy as np

from mlxrun import native

HERE = Path(__file__).parent
DATA, RESULTS = HERE / "data", HERE / "results"
VALUES = 32_000_000  # 256 MB of float64: out of every cache
CHUNK = 1 << 20  # values per call, as the ranks bin them
TEXT_BYTES = 100_000_000
TEXT_CHUNK = 8 << 20  # as the ranks map them


class Measured(NamedTuple):
    """What a peer in another process timed itself (its start-up left out)."""

    seconds: float


def timed(run: Callable[[], object]) -> float:
    start = time.perf_counter()
    result = run()
    return result.seconds if isinstance(result, Measured) else time.perf_counter() - start


def build_fast_float(work: Path) -> Path | None:
    """fastfloat.cpp built in `work`; None where there is no C++ compiler or no fast_float
    header."""
    compiler = shutil.which("c++") or shutil.which("g++") or shutil.which("clang++")
    program = work / "fastfloat"
    source = Path(__file__).with_name("fastfloat.cpp")
    build = [compiler or "c++", "-O2", "-std=c++17", "-o", str(program), str(source)]
    if compiler is None or subprocess.run(build, capture_output=True).returncode != 0:
        return None
    return program


def fast_float(program: Path, path: Path, size: int) -> Callable[[], Measured]:
    """The built fastfloat run on the first `size` bytes of `path`."""

    def run() -> Measured:
        out = subprocess.run([program, path, str(size)], capture_output=True, check=True)
        return Measured(float(out.stdout.split()[0]))

    return run


def bin_all(x: np.ndarray, simd: bool) -> Callable[[], None]:
    def run() -> None:
        was = native.ext.use_simd(simd)
        try:
            for k in range(0, len(x), CHUNK):
                native.binned(x[k : k + CHUNK])
        finally:
            native.ext.use_simd(was)

    return run


def sum_text(data: bytes, simd: bool) -> Callable[[], None]:
    def run() -> None:
        was = native.ext.use_simd(simd)
        high, low = native.empty_bins(), native.empty_bins()
        try:
            view, pos = memoryview(data), 0
            while pos < len(data):
                end = data.find(b"\n", min(pos + TEXT_CHUNK, len(data) - 1)) + 1 or len(data)
                native.ext.sum_text(view[pos:end], high, low)
                pos = end
        finally:
            native.ext.use_simd(was)

    return run


def alternate(cases: dict[str, Callable[[], object]], repeat: int) -> dict[str, float]:
    times: dict[str, list[float]] = {name: [] for name in cases}
    for r in range(repeat):
        order = list(cases) if r % 2 == 0 else list(reversed(cases))
        for name in order:
            times[name].append(timed(cases[name]))
    return {name: statistics.median(t) for name, t in times.items()}


def text_speeds(path: Path, peer: Path | None, result: dict[str, object]) -> None:
    if not path.exists():
        print(f"  {path.name}: not made yet (python benchmarks/run.py makes it)")
        return
    with path.open("rb") as f:
        head = f.read(TEXT_BYTES)
    head = head[: head.rfind(b"\n") + 1]
    cases: dict[str, Callable[[], object]] = {
        "vector reader where faster": sum_text(head, True),
        "portable": sum_text(head, False),
    }
    if peer is not None:
        cases["fast_float from_chars, inexact"] = fast_float(peer, path, TEXT_BYTES)
    else:
        print("  (no C++ compiler or fast_float header: fast_float left out)")
    speeds = alternate(cases, 5)
    for how, seconds in speeds.items():
        mb = len(head) / seconds / 1e6
        result["text_mb_per_s"][f"{path.name} ({how})"] = mb  # type: ignore[index]
        print(f"  {path.name}, {how}: {mb:.0f} MB/s on one core")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=7)
    args = ap.parse_args()
    if native.ext is None:
        raise SystemExit("the C extension is not built")
    rng = np.random.default_rng(1)
    x = rng.standard_normal(VALUES) * 1000.0
    binning = alternate(
        {
            "binned, AVX2 where the CPU has it": bin_all(x, True),
            "binned, portable loop": bin_all(x, False),
            "numpy sum (pairwise, inexact)": x.sum,
        },
        args.repeat,
    )
    result: dict[str, object] = {"binning_ns_per_value": {}, "text_mb_per_s": {}}
    print(f"exact binning of {VALUES:,} float64 (256 MB), medians of {args.repeat}")
    numpy_ns = binning["numpy sum (pairwise, inexact)"] / VALUES * 1e9
    for name, seconds in binning.items():
        ns = seconds / VALUES * 1e9
        result["binning_ns_per_value"][name] = ns  # type: ignore[index]
        print(f"  {name:<36}{ns:6.2f} ns/value  {ns / numpy_ns:5.2f}x numpy")
    work = Path(tempfile.mkdtemp())
    try:
        peer = build_fast_float(work)  # once, for both files
        for name in ("floats_100M.txt", "ints_100M.txt", "ints19_100M.txt"):
            text_speeds(DATA / name, peer, result)
    finally:
        shutil.rmtree(work)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "kernels.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
