"""`mlxrun bench --plot FILE.png`: busbw against size per op and dtype, with the memory
copy drawn as the limit. matplotlib is an optional extra: `pip install 'mlxrun[plot]'`."""

from __future__ import annotations

from pathlib import Path

from mlxrun.bench.run import BenchResult
from mlxrun.bench.sizes import show_size
from mlxrun.errors import UsageError

WIDTH_IN, HEIGHT_IN, DPI = 8.0, 5.0, 100  # an 800 x 500 pixel image


def check_plot_target(path: Path) -> None:
    """Before the benchmark runs: matplotlib present and the file writable."""
    try:
        import matplotlib  # noqa: F401 - only asked for with --plot
    except ImportError:
        raise UsageError(
            "--plot needs matplotlib, which is not installed: pip install 'mlxrun[plot]'"
        ) from None
    if path.suffix.lower() != ".png":
        raise UsageError(f"--plot {path}: the chart is a PNG image; name it FILE.png")
    if not path.parent.is_dir():
        raise UsageError(f"--plot {path}: no folder {path.parent}")


def plot(result: BenchResult, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")  # no display needed
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(WIDTH_IN, HEIGHT_IN), dpi=DPI)
    groups: dict[tuple[str, str], list[tuple[int, float]]] = {}
    for r in result.rows:
        groups.setdefault((r.op, r.dtype), []).append((r.bytes, r.busbw_gbps))
    for (op, dtype), points in groups.items():
        xs, ys = zip(*points, strict=True)
        ax.plot(xs, ys, marker="o", label=f"{op} {dtype}")
    if result.memcpy_gbps is not None:
        ax.axhline(result.memcpy_gbps, color="grey", linestyle="--", label="memory copy")
    ax.set_xscale("log", base=2)
    ticks = sorted({r.bytes for r in result.rows})
    ax.set_xticks(ticks, [show_size(t) for t in ticks], rotation=45, fontsize=7)
    ax.set_xlabel("size")
    ax.set_ylabel("busbw (GB/s)")
    ax.set_title(f"mlxrun bench: {result.np} ranks, {result.backend}")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    try:
        fig.savefig(path, dpi=DPI)  # no bbox_inches="tight": the size stays 800 x 500
    except OSError as e:
        raise UsageError(f"--plot {path}: cannot write ({e.strerror})") from None
    finally:
        plt.close(fig)
