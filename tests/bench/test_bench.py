"""`mlxrun bench` for real: two ranks through mlx.launch, tiny sizes, few iterations."""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from mlxrun.bench.run import COLUMNS
from mlxrun.bench.spec import CORRUPT_ENV
from mlxrun.cli.app import main
from tests.helpers import Run, assert_no_leftovers

TINY = ("-b", "1K", "-e", "4K", "-n", "2", "-w", "1")
HAVE_MATPLOTLIB = importlib.util.find_spec("matplotlib") is not None
JSON_KEYS = {"np", "backend", "hosts", "memcpy_gbps", "avg_busbw_gbps", "wrong", "rows", "skipped"}


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


@pytest.fixture(scope="module")
def full(tmp_path_factory: pytest.TempPathFactory) -> tuple[Run, Path]:
    """One run of every op on two dtypes, with the CSV and the PNG beside the JSON."""

    out = tmp_path_factory.mktemp("bench")
    plot = ["--plot", str(out / "busbw.png")] if HAVE_MATPLOTLIB else []
    p = subprocess.run(
        [sys.executable, "-m", "mlxrun", "bench", "--json", *TINY, "--op", "all"]
        + ["--dtype", "float32,bfloat16", "--csv", str(out / "rows.csv")]
        + [*plot, "--min-busbw", "0"],
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
        env={k: v for k, v in os.environ.items() if k != CORRUPT_ENV},
    )
    return Run(p.returncode, p.stdout, p.stderr, "", out), out


def test_a_correct_run_has_no_wrong_value_and_the_json_shape(full) -> None:
    run, _ = full
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)  # exactly one object
    assert JSON_KEYS <= set(report)
    assert (report["np"], report["backend"], report["wrong"]) == (2, "ring", 0)
    assert report["memcpy_gbps"] > 0 and report["avg_busbw_gbps"] > 0
    assert [h["ranks"] for h in report["hosts"]] == [[0, 1]]
    ops = ("all_sum", "all_max", "all_min", "all_gather", "send_recv")
    want = [(op, dt, b) for op in ops for dt in ("float32", "bfloat16") for b in (1024, 2048, 4096)]
    assert [(r["op"], r["dtype"], r["bytes"]) for r in report["rows"]] == want
    for r in report["rows"]:
        assert set(COLUMNS) <= set(r)
        assert r["wrong"] == 0
        assert r["time_us_min"] <= r["time_us"] <= r["time_us_max"]
        assert r["slowest_rank"] in (0, 1)
        assert r["algbw_gbps"] == pytest.approx(r["bytes"] / r["time_us"] / 1e3)
        factor = {"all_gather": 0.5, "send_recv": 1.0}.get(r["op"], 1.0)  # 2 ranks
        assert r["busbw_gbps"] == pytest.approx(r["algbw_gbps"] * factor)
    gather = next(r for r in report["rows"] if r["op"] == "all_gather" and r["dtype"] == "float32")
    assert gather["count"] == 128  # per rank, as nccl-tests; bytes are the whole output


def test_ring_skips_sum_scatter_with_the_reason(full) -> None:
    report = json.loads(full[0].stdout)
    (skip,) = report["skipped"]
    assert skip["op"] == "sum_scatter"
    assert "ring backend has no sum_scatter" in skip["reason"]
    assert "not supported" in skip["reason"]  # MLX's own words


def test_the_csv_has_one_row_per_size_and_op_with_the_json_columns(full) -> None:
    run, out = full
    with open(out / "rows.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    report = json.loads(run.stdout)
    assert len(rows) == len(report["rows"])
    assert list(rows[0])[: len(COLUMNS)] == list(COLUMNS)
    assert [(r["op"], int(r["bytes"]), int(r["wrong"])) for r in rows] == [
        (r["op"], r["bytes"], r["wrong"]) for r in report["rows"]
    ]


@pytest.mark.skipif(not HAVE_MATPLOTLIB, reason="needs the plot extra (make test installs it)")
def test_the_plot_is_written_800_by_500(full) -> None:
    assert png_size(full[1] / "busbw.png") == (800, 500)


def test_a_corrupted_buffer_is_counted_and_exits_1(mlxrun) -> None:
    run = mlxrun("bench", "--json", *TINY, "--op", "all_sum,all_gather", env={CORRUPT_ENV: "1"})
    assert run.returncode == 1, run.stderr
    report = json.loads(run.stdout)
    assert [r["wrong"] for r in report["rows"]] == [1] * 6  # one damaged element per row
    assert report["wrong"] == 6
    assert "Error: 6 values differ from the exact result (#wrong)" in run.stderr
    assert_no_leftovers(run)


def test_the_table_the_footer_and_the_busbw_gate(mlxrun) -> None:
    run = mlxrun(
        "bench", "-b", "1K", "-e", "1K", "-n", "1", "-w", "0", "--op", "all_sum,sum_scatter",
        "--min-busbw", "1000000",
    )  # fmt: skip
    assert run.returncode == 1, run.stderr
    assert "mlxrun bench: 2 ranks, ring" in run.stdout
    assert "Skipped sum_scatter: the ring backend has no sum_scatter" in run.stdout
    assert "Out of bounds values: 0 OK" in run.stdout
    assert "Avg bus bandwidth: " in run.stdout
    assert "is below --min-busbw 1e+06" in run.stderr
    assert_no_leftovers(run)


def test_a_benchmark_that_runs_too_long_is_stopped(mlxrun) -> None:
    run = mlxrun("bench", "-b", "1M", "-e", "1M", "-n", "100000", "-w", "0", "--timeout", "2")
    assert run.returncode == 124, run.stderr
    assert "Error: timed out after 2 s; every rank was stopped" in run.stderr
    assert_no_leftovers(run)


@pytest.mark.mpi
def test_mpi_runs_every_dtype_exactly(mlxrun) -> None:
    run = mlxrun(
        "bench", "--json", "--backend", "mpi", "-b", "64", "-e", "64", "-n", "1", "-w", "0",
        "--op", "all", "--dtype", "all",
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    assert report["wrong"] == 0 and len(report["rows"]) == 5 * 6
    assert [s["op"] for s in report["skipped"]] == ["sum_scatter"]
    assert "mpi backend has no sum_scatter" in report["skipped"][0]["reason"]


def test_gpu_stream_on_a_machine_without_one_says_so(mlxrun) -> None:
    run = mlxrun("bench", *TINY, "--stream", "gpu")
    assert run.returncode == 2
    assert run.stderr.startswith("Error: --stream gpu: this MLX has no GPU on ")
    assert "on a Mac, --stream gpu runs the collectives on the Metal GPU stream" in run.stderr
    assert_no_leftovers(run)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("-b", "1X"), 'Error: -b: not a size: "1X"'),
        (("-b", "4K", "-e", "1K"), "Error: -b 4096 is larger than -e 1024"),
        (("--op", "all_reduce"), 'Error: --op: unknown "all_reduce"'),
        (("--np", "1"), "Error: --np must be at least 2"),
        (("--backend", "nccl"), "Error: --backend nccl: this machine's MLX cannot run nccl ranks"),
        (("--plot", "chart.jpg"), "Error: --plot chart.jpg: the chart is a PNG image"),
        (("--min-busbw", "-1"), "Error: --min-busbw must be a number of GB/s"),
        (("--csv", "/"), "Error: --csv /: is a folder"),
        (("--csv", "/no/such/rows.csv"), "Error: --csv /no/such/rows.csv: no folder /no/such"),
    ],
)
def test_bad_flags_are_one_line_and_exit_2(capsys, args: tuple[str, ...], message: str) -> None:
    assert main(["bench", *args]) == 2
    assert capsys.readouterr().err.startswith(message)


def test_plot_without_matplotlib_names_the_extra(capsys, monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if the extra were absent
    assert main(["bench", "--plot", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("Error: --plot needs matplotlib") and "mlxrun[plot]" in err


def test_on_a_terminal_a_chart_follows_the_table() -> None:
    from tests.cli.test_terminal import on_terminal

    code, screen = on_terminal("bench", *TINY)
    assert code == 0
    assert "busbw against size (full width " in screen
    assert "    1 KiB |" in screen and "    4 KiB |" in screen
    assert "Out of bounds values: 0 OK" in screen


@pytest.mark.mpi
def test_four_mpi_ranks_finalize_and_the_run_succeeds(mlxrun) -> None:
    # mlxrun's rank programs ran in a fork of the agent ending in os._exit, which skips
    # MPI_Finalize: prterun then called a rank's exit improper and the job failed.
    run = mlxrun(
        "bench", "--np", "4", "--backend", "mpi", "-b", "1K", "-e", "64K", "-n", "2", "-w", "1"
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert "Out of bounds values: 0 OK" in run.stdout
