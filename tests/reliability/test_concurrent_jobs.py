"""20 jobs started at once on one machine: every result correct, none mixed with another
job's. Each job reserves its own ring ports (launch.ports); two jobs on the same ports
would exchange data silently and return each other's sums."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time
from pathlib import Path

from mlxrun.launch.job import JobSpec
from mlxrun.launch.output import RankOutput
from mlxrun.launch.supervisor import Supervisor
from mlxrun.launch.verdict import Outcome
from tests.helpers import PortWatch, Run, assert_no_leftovers, script, start

SUMS, EXECS = 20, 4
NUMBERS = 20_000  # per file: small, the test is about the jobs meeting, not the reading
LIMIT_SECONDS = 180  # for all of them, on 2 cores


def test_twenty_jobs_at_once_keep_to_themselves(tmp_path: Path) -> None:
    rng = random.Random(20)
    files: list[tuple[Path, int]] = []
    for i in range(SUMS):
        numbers = [rng.randrange(-(10**12), 10**12) for _ in range(NUMBERS)]
        path = tmp_path / f"job{i}.txt"
        path.write_text("".join(f"{n}\n" for n in numbers))
        files.append((path, sum(numbers)))
    tags = [1000 + 7 * i for i in range(EXECS)]  # a mixed-up total would match no job
    started = time.monotonic()
    jobs: list[tuple[subprocess.Popen[str], Run]] = []
    with PortWatch() as watch:
        try:
            for path, _ in files:
                jobs.append(start(tmp_path, "sum", "--np", "2", "--json", str(path)))
                watch.add(*jobs[-1])
            for tag in tags:
                command = ("python", script("tagged.py"), str(tag))
                jobs.append(start(tmp_path, "exec", "--np", "2", "--", *command))
                watch.add(*jobs[-1])
            deadline = started + LIMIT_SECONDS
            for job, run in jobs:
                left = max(1.0, deadline - time.monotonic())
                run.stdout, run.stderr = job.communicate(timeout=left)
                run.returncode = job.returncode
        finally:
            for job, _ in jobs:
                if job.poll() is None:  # over the limit: its agents stop its ranks
                    job.kill()
                    job.communicate()
    took = time.monotonic() - started
    print(f"{len(jobs)} jobs at once took {took:.1f} s")

    for (path, expected), (_, run) in zip(files, jobs[:SUMS], strict=True):
        assert run.returncode == 0, f"{path.name}: {run.stderr}"
        result = json.loads(run.stdout)
        assert result["results"]["sum"] == expected, path.name
        assert result["count"] == NUMBERS
    for tag, (_, run) in zip(tags, jobs[SUMS:], strict=True):
        assert run.returncode == 0, f"job {tag}: {run.stderr}"
        lines = run.stdout.splitlines()
        expected_lines = {
            f"[rank {r}] job {tag} rank {r} line {i}" for r in (0, 1) for i in range(3)
        }
        expected_lines |= {f"[rank {r}] job {tag} total {tag * 3}" for r in (0, 1)}
        assert set(lines) == expected_lines and len(lines) == len(expected_lines), run.stdout
    for _, run in jobs:
        assert_no_leftovers(run)
        assert len(watch.ports[run.mark]) == 3  # the ring's two and the channel
        watch.assert_released(run)


def test_ranks_that_finished_before_mlxrun_first_looked_are_heard() -> None:
    # What made some of the 20 jobs fail with "rank 0 never started": on a busy machine
    # mlxrun's own start (loading its display) outlasted the whole job. The agents had
    # connected, sent everything and hung up, and their connections still waited in the
    # listen queue when mlxrun saw the launcher gone and no agent.
    spec = JobSpec((sys.executable, script("classic.py")), 2)
    report = Supervisor(spec, RankOutput(quiet=True), while_starting=lambda: time.sleep(4)).run()
    assert report.outcome is Outcome.OK, report.reason
    assert [(r.connected, r.returncode) for r in report.ranks] == [(True, 0), (True, 0)]
