"""On a terminal: a colour per rank, and progress bars while a reduction runs."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from pathlib import Path

from tests.helpers import script


def on_terminal(*args: str, cwd: Path | None = None) -> tuple[int, str]:
    """Runs mlxrun with stdout and stderr on a pseudo-terminal; returns all it drew."""
    master, slave = pty.openpty()
    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlxrun", *args],
        stdin=subprocess.DEVNULL,
        stdout=slave,
        stderr=slave,
        env={**env, "TERM": "xterm-256color", "COLUMNS": "100"},
        cwd=cwd,
    )
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the other side is closed
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    return proc.wait(timeout=60), b"".join(chunks).decode(errors="replace")


def test_each_rank_has_its_own_colour() -> None:
    code, screen = on_terminal("exec", "--np", "2", "--", "python", script("classic.py"))
    assert code == 0
    assert "\x1b[36m[rank 0]\x1b[0m total 10" in screen
    assert "\x1b[33m[rank 1]\x1b[0m total 10" in screen


def test_a_long_reduction_shows_progress_per_rank(tmp_path: Path) -> None:
    spec = tmp_path / "big.toml"
    spec.write_text('[data.generate]\nkind = "random"\nn = 400000000\n[reduce]\nops = ["sum"]\n')
    code, screen = on_terminal("run", str(spec))
    assert code == 0
    assert "rank   0" in screen and "rank   1" in screen  # the bars' labels
    assert "MB/s" in screen
