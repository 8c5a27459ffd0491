"""Helpers for tests that run the real mlxrun CLI with real mlx.launch ranks."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).parent / "scripts"
MARK = "MLXRUN_TEST_MARK"


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str
    mark: str
    tmpdir: Path


def processes_with_mark(mark: str) -> list[int]:
    """Pids of live processes whose environment carries this test's mark."""
    needle = f"{MARK}={mark}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if needle in environ.split(b"\0") and state != "Z":
            found.append(int(entry.name))
    return found


def assert_no_leftovers(run: Run) -> None:
    """No process of the job alive and nothing left in the job's TMPDIR."""
    deadline = time.monotonic() + 2  # a dying process may still be in the process table
    while processes_with_mark(run.mark) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert processes_with_mark(run.mark) == []
    assert sorted(p.name for p in run.tmpdir.iterdir()) == []


@pytest.fixture
def mlxrun(tmp_path: Path) -> Iterator[object]:
    """Runs `python -m mlxrun ARGS` as a user would, in its own TMPDIR."""

    def run(*args: str, timeout: float = 120, env: dict[str, str] | None = None) -> Run:
        mark = uuid.uuid4().hex
        tmpdir = tmp_path / f"tmp-{mark[:8]}"
        tmpdir.mkdir()
        full_env = {**os.environ, MARK: mark, "TMPDIR": str(tmpdir), **(env or {})}
        full_env.pop("MLXRUN_DEBUG", None)
        p = subprocess.run(
            [sys.executable, "-m", "mlxrun", *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=full_env,
            stdin=subprocess.DEVNULL,
        )
        return Run(p.returncode, p.stdout, p.stderr, mark, tmpdir)

    yield run


def script(name: str) -> str:
    return str(SCRIPTS / name)
