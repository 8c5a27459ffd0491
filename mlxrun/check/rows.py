"""A row of `mlxrun check`'s report, and the one way its checks run a helper command."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass

OK, WARN, FAIL, SKIP = "ok", "warn", "fail", "skip"
COMMAND_SECONDS = 10.0


@dataclass(frozen=True)
class Check:
    name: str
    status: str
    detail: str
    fix: str = ""


def on_host(host: str, command: str) -> list[str]:
    """`command` run on `host` through ssh as the checks run it: never asking for a
    password, giving up after 5 s, taking a new host's key (a known one must match)."""
    options = ("BatchMode=yes", "ConnectTimeout=5", "StrictHostKeyChecking=accept-new")
    return ["ssh", *(arg for option in options for arg in ("-o", option)), host, command]


def run(command: list[str], env: dict[str, str] | None = None) -> tuple[int, str]:
    """A helper command's exit code and output; never hangs, never raises."""
    try:
        p = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=COMMAND_SECONDS,
            env=env,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        return 127, str(e)
    return p.returncode, (p.stdout + p.stderr).strip()
