"""MLXRUN_TIMELINE: a real job's processes write every step of its start and end, in order,
and a timeline that cannot be written changes nothing about the job."""

from __future__ import annotations

import json
from pathlib import Path

STEPS = ["cli start", "launch", "launcher start", "launcher imported", "agent start",
         "agent connected", "worker start", "joined", "read", "combined", "cli exit"]  # fmt: skip
PER_RANK = {"agent start", "agent connected", "worker start", "joined", "read", "combined"}


def test_a_job_writes_its_steps_in_order(mlxrun, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    data, timeline = tmp_path / "n.txt", tmp_path / "timeline"
    data.write_text("1\n2\n3\n4\n")
    run = mlxrun("sum", "--np", "2", "--json", str(data), env={"MLXRUN_TIMELINE": str(timeline)})
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["results"]["sum"] == 10
    seen: dict[str, list[tuple[float, int]]] = {}
    for line in timeline.read_text().splitlines():
        at, pid, step = line.split(" ", 2)
        seen.setdefault(step, []).append((float(at), int(pid)))
    assert set(seen) == set(STEPS)
    for step in STEPS:  # once per rank, by two processes, or once
        assert len({pid for _, pid in seen[step]}) == (2 if step in PER_RANK else 1), step
    latest = [max(at for at, _ in seen[step]) for step in STEPS]
    earliest = [min(at for at, _ in seen[step]) for step in STEPS]
    for step, before, after in zip(STEPS[1:], latest[:-1], earliest[1:], strict=True):
        # One rank's step may come before another's previous step, not before a job's step.
        if step not in PER_RANK or STEPS[STEPS.index(step) - 1] not in PER_RANK:
            assert before <= after, step


def test_an_unwritable_timeline_changes_nothing(mlxrun, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    data = tmp_path / "n.txt"
    data.write_text("1\n2\n")
    env = {"MLXRUN_TIMELINE": str(tmp_path / "no" / "such" / "folder")}
    run = mlxrun("sum", "--np", "2", str(data), env=env)
    assert run.returncode == 0, run.stderr
    assert run.stderr == ""
