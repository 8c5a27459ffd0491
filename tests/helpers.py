"""Helpers for tests that run the real mlxrun CLI with real mlx.launch ranks."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from mlxrun import native
from mlxrun.rank import procfs

ROOT = Path(__file__).resolve().parent.parent  # the repo
SCRIPTS = Path(__file__).parent / "scripts"
MARK = "MLXRUN_TEST_MARK"


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str
    mark: str
    tmpdir: Path


def start(
    tmp_path: Path, *args: str, env: dict[str, str] | None = None, **popen: object
) -> tuple[subprocess.Popen[str], Run]:
    """Starts `python -m mlxrun ARGS` in the background, marked and in a TMPDIR of its own,
    with text pipes unless `popen` says otherwise. The Run holds the mark and the folder."""
    mark, tmpdir = uuid.uuid4().hex, tmp_path / f"tmp-{uuid.uuid4().hex[:6]}"
    tmpdir.mkdir()
    options: dict[str, object] = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE}
    job = subprocess.Popen(  # type: ignore[call-overload]
        [sys.executable, "-m", "mlxrun", *args],
        stdin=subprocess.DEVNULL,
        text=True,
        env={**os.environ, MARK: mark, "TMPDIR": str(tmpdir), **(env or {})},
        **{**options, **popen},
    )
    return job, Run(0, "", "", mark, tmpdir)


def marked_processes(mark: str) -> list[procfs.Process]:
    """Live processes whose environment carries this test's mark."""
    needle = f"{MARK}={mark}".encode()
    return [
        p
        for p in procfs.processes()
        if p.pid != os.getpid() and p.state != "Z" and needle in p.environ.split(b"\0")
    ]


def processes_with_mark(mark: str) -> list[int]:
    return [p.pid for p in marked_processes(mark)]


def assert_no_leftovers(run: Run) -> None:
    """No process of the job alive and nothing left in the job's TMPDIR."""
    deadline = time.monotonic() + 2  # a dying process may still be in the process table
    while processes_with_mark(run.mark) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert processes_with_mark(run.mark) == []
    assert sorted(p.name for p in run.tmpdir.iterdir()) == []


def script(name: str) -> str:
    return str(SCRIPTS / name)


PARSERS = ["c", "numpy"] if native.ext is not None else ["numpy"]


@contextmanager
def parser(name: str) -> Iterator[None]:
    """Numbers are parsed in C when the extension is built, else by numpy: both must agree."""
    saved = native.ext
    native.ext = saved if name == "c" else None
    try:
        yield
    finally:
        native.ext = saved
