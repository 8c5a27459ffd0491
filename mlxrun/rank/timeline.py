"""MLXRUN_TIMELINE=FILE: each mlxrun process of a job (the CLI, the launcher, every rank's
agent and worker) appends a line to FILE at each step of its start and end: the wall-clock
time, its pid and the step. `benchmarks/startup.py` reads them to say where a job's fixed
cost goes. Only a machine's own processes share a FILE, and a host without it writes
nothing. Unset, a mark costs one look at the environment. Standard library only."""

from __future__ import annotations

import os
import time

TIMELINE_ENV = "MLXRUN_TIMELINE"


def mark(step: str) -> None:
    path = os.environ.get(TIMELINE_ENV)
    if path:
        try:
            with open(path, "a") as f:  # one write of one line: lines of processes never mix
                f.write(f"{time.time():.6f} {os.getpid()} {step}\n")
        except OSError:
            pass  # a diagnostic: never a reason for a job to fail
