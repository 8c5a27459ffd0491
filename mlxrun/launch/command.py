"""The command each rank runs, checked here so a typo fails before any rank starts."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from mlxrun.errors import UsageError
from mlxrun.launch.launcher import base_env

PYTHONS = ("python", "python3", Path(sys.executable).name)


def _check_script(path: str) -> None:
    if not Path(path).is_file():
        raise UsageError(f"{path}: no such file (the script each rank should run)")


def resolve_command(command: list[str]) -> tuple[str, ...]:
    """`script.py ARGS` and `python ARGS` run with this interpreter (`python` on a remote
    host is its system one, which has no mlx); other commands must exist."""
    if not command:
        raise UsageError("no command given: try `mlxrun exec --np 2 -- python script.py`")
    first = command[0]
    if first.startswith("-"):
        raise UsageError(f"{first}: unknown option (put the rank's command after --)")
    if first.endswith(".py"):
        _check_script(first)
        return (sys.executable, *command)
    if first in PYTHONS:
        if len(command) > 1 and command[1].endswith(".py"):
            _check_script(command[1])
        return (sys.executable, *command[1:])
    if Path(first).name in PYTHONS and len(command) > 1 and command[1].endswith(".py"):
        _check_script(command[1])
    if shutil.which(first, path=base_env({})["PATH"]) is None:
        raise UsageError(f"{first}: command not found")
    return tuple(command)


def parse_ranks(text: str | None, np: int) -> frozenset[int] | None:
    """`--ranks 0,2` as a set of ranks; None shows them all."""
    if text is None:
        return None
    ranks: set[int] = set()
    for part in text.split(","):
        part = part.strip()
        if not part.isdigit() or int(part) >= np:
            raise UsageError(f'--ranks: "{part}" is not a rank of this job (0 to {np - 1})')
        ranks.add(int(part))
    return frozenset(ranks)
