"""The `mlxrun` fixture: the real CLI, run as a user would (helpers are in `helpers`)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import MARK, Run


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
