"""Data files that change or are not files at all: the job reads the file as it was when
it started, or says clearly why it cannot; it never hangs and never writes to the data."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
import time
from fractions import Fraction
from pathlib import Path

import pytest

from mlxrun.cli.app import main
from mlxrun.data.model import Data
from mlxrun.data.sources import check_data, open_shard


def test_a_growing_file_is_read_as_it_was_when_the_job_started(tmp_path: Path) -> None:
    # Each rank stat()ed the file itself: data appended between two ranks' looks left
    # bytes that no rank read (seen: 4 999 bytes), and the sum was silently wrong.
    path = tmp_path / "grow.txt"
    path.write_text("".join(f"{i}\n" for i in range(1, 10_001)))
    data = check_data(Data(path, "text"))
    with path.open("a") as f:
        f.write("".join(f"{i}\n" for i in range(5000)))  # after rank 0, before rank 1
    values = [v for r in range(2) for chunk in open_shard(data, r, 2).chunks for v in chunk]
    assert len(values) == 10_000 and sum(values) == 10_000 * 10_001 // 2


def test_a_growing_file_under_a_real_job(tmp_path: Path, capsys) -> None:
    path = tmp_path / "grow.txt"
    path.write_text("".join(f"{i}\n" for i in range(1, 200_001)))
    before = path.stat().st_size
    stop = threading.Event()

    def append() -> None:
        with path.open("a") as f:
            while not stop.is_set():
                f.write("1\n" * 1000)
                f.flush()
                time.sleep(0.001)

    writer = threading.Thread(target=append)
    writer.start()
    try:
        code = main(["sum", "--np", "3", str(path), "--json"])
    finally:
        stop.set()
        writer.join()
    result = json.loads(capsys.readouterr().out)
    assert code == 0
    # What the job read is the file as mlxrun saw it at the start: the first 200 000 lines
    # and k of the appended "1" lines, with no byte lost or read twice between the ranks.
    k = result["count"] - 200_000
    assert k >= 0 and result["results"]["sum"] == 200_000 * 200_001 // 2 + k
    assert path.stat().st_size > before  # it did grow meanwhile


@pytest.mark.parametrize(
    ("make", "says"),
    [
        (lambda p: p.mkdir(), "no such file"),
        (lambda p: os.mkfifo(p), "no such file"),
        (lambda p: p.write_text(""), None),
    ],
    ids=["directory", "fifo", "empty"],
)
def test_things_that_are_not_data_files(tmp_path: Path, capsys, make, says) -> None:
    path = tmp_path / "x.txt"
    make(path)
    code = main(["sum", "--np", "2", str(path), "--json"])
    captured = capsys.readouterr()
    if says is None:
        assert code == 0 and '"sum": 0' in captured.out  # an empty file: count 0, sum 0
    else:
        assert code == 2 and says in captured.err and captured.err.count("\n") == 1


def test_dev_zero_is_not_read_forever(capsys) -> None:
    code = main(["sum", "--np", "2", "/dev/zero"])
    assert code == 2 and "/dev/zero: no such file" in capsys.readouterr().err


def test_a_file_of_one_long_line_is_shared_by_the_ranks_with_flat_memory(
    tmp_path: Path, mlxrun: object
) -> None:
    # Ranks began at line starts and chunks grew to hold a whole line: rank 0 read all of
    # a 68 MB one-line file (121 MB RSS), rank 1 nothing (56 MB).
    numbers = [f"{i * 0.731 - 5e5:.6f}" for i in range(3_000_000)]
    one, many = tmp_path / "one.txt", tmp_path / "many.txt"
    one.write_text(" ".join(numbers))
    many.write_text("\n".join(numbers))
    outs = []
    for path in (one, many):
        run = mlxrun("sum", "--np", "2", "--json", str(path))  # type: ignore[operator]
        assert run.returncode == 0, run.stderr
        outs.append(json.loads(run.stdout))
    assert outs[0]["results"] == outs[1]["results"]
    ranks = outs[0]["ranks"]
    assert abs(ranks[0]["bytes"] - ranks[1]["bytes"]) < 20, ranks
    flat = max(r["max_rss"] for r in outs[1]["ranks"])
    assert max(r["max_rss"] for r in ranks) < flat + 16 * 2**20, (ranks, flat)


def _memory_cgroup(name: str, limit: int) -> Path | None:
    """A cgroup (v1 or v2) holding at most `limit` bytes of memory, page cache included;
    None where none can be made (not root, no memory controller, a read-only /sys)."""
    for root, knob in ((Path("/sys/fs/cgroup/memory"), "memory.limit_in_bytes"),
                       (Path("/sys/fs/cgroup"), "memory.max")):  # fmt: skip
        if not (root / "cgroup.procs").exists() or (knob == "memory.max") != (
            (root / "cgroup.controllers").exists()
        ):
            continue
        try:
            group = root / name
            group.mkdir()
            (group / knob).write_text(str(limit))
            return group
        except OSError:
            with contextlib.suppress(OSError):
                group.rmdir()
    return None


@pytest.mark.slow
def test_a_file_larger_than_the_jobs_memory_limit_is_summed(tmp_path: Path) -> None:
    # The whole job (mlxrun, mlx.launch, both ranks) in a cgroup of 256 MiB, page cache
    # included, summing a 600 MB file: ranks read a chunk at a time, so the kernel can drop
    # the pages already read.
    block = "".join(f"{i * 0.001 - 3:.3f}\n" for i in range(100_000))
    repeats = 600 * 2**20 // len(block) + 1
    path = tmp_path / "big.txt"
    with path.open("w") as f:
        for _ in range(repeats):
            f.write(block)
    group = _memory_cgroup(f"mlxrun-test-{os.getpid()}", 256 << 20)
    if group is None:
        pytest.skip("no memory cgroup can be made here")
    try:
        job = subprocess.run(
            [sys.executable, "-m", "mlxrun", "sum", "--np", "2", "--json", str(path)],
            preexec_fn=lambda: (group / "cgroup.procs").write_text(str(os.getpid())),
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        deadline = time.monotonic() + 10
        while group.exists() and time.monotonic() < deadline:  # once its last process is gone
            with contextlib.suppress(OSError):
                group.rmdir()
            time.sleep(0.05)
        assert not group.exists()
    assert job.returncode == 0, job.stderr
    out = json.loads(job.stdout)
    exact = sum(Fraction(f"{i * 0.001 - 3:.3f}") for i in range(100_000)) * repeats
    assert out["results"]["sum"] == float(exact)
    assert path.stat().st_size > 2 * (256 << 20)
    assert all(r["max_rss"] < 100 << 20 for r in out["ranks"]), out["ranks"]
