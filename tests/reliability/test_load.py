"""Output under load: a consumer that stops reading (a paused terminal, `| less`) slows
the job instead of filling mlxrun's memory, and no line is lost."""

from __future__ import annotations

import time
from pathlib import Path

from tests.helpers import assert_no_leftovers, script, start


def rss_of(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def test_a_reader_that_pauses_loses_no_line_and_mlxrun_holds_little(tmp_path: Path) -> None:
    n = 200_000  # per rank, about 13 MB of output in all
    job, run = start(tmp_path, "exec", "--np", "2", "--", "python", script("flood.py"), str(n))
    time.sleep(1.5)  # under way (a readline here would buffer what communicate skips)
    rss = [rss_of(job.pid)]
    for _ in range(30):  # 3 s without reading: the pipes fill and stay full
        time.sleep(0.1)
        rss.append(rss_of(job.pid))
    assert job.poll() is None  # held up by its reader, not done
    rest, err = job.communicate(timeout=120)
    assert job.returncode == 0, err[-2000:]
    lines = rest.splitlines()
    for r in range(2):
        mine = [line for line in lines if line.startswith(f"[rank {r}] r{r} out ")]
        assert mine == [f"[rank {r}] r{r} out {i} " + "x" * (i % 97) for i in range(n)]
    # What mlxrun held while nobody read: its own frame at most, not the ranks' output.
    assert max(rss) - rss[0] < 8 << 20, [r >> 20 for r in rss]
    assert_no_leftovers(run)
