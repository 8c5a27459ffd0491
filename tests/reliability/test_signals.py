"""Stop signals sent to mlxrun during a job."""

from __future__ import annotations

import signal
import time
from pathlib import Path

from mlxrun.launch.supervisor import GRACE_SECONDS
from tests.helpers import assert_no_leftovers, processes_with_mark, start


def test_stopping_a_reduction_does_not_wait_for_sigkill(tmp_path: Path) -> None:
    # The ranks are busy for minutes; mlxrun sends them SIGTERM, and SIGKILL only after
    # GRACE_SECONDS: a rank that ends at SIGTERM ends the job well before that.
    spec = tmp_path / "long.toml"
    spec.write_text(
        '[job]\nname = "long"\nnp = 2\n\n'
        '[data.generate]\nkind = "random"\nn = 4_000_000_000\n\n[reduce]\nops = ["sum"]\n'
    )
    job, run = start(tmp_path, "run", str(spec), "--json")
    deadline = time.monotonic() + 30
    while len(processes_with_mark(run.mark)) < 6:  # mlxrun, the launcher, 2 agents, 2 ranks
        assert time.monotonic() < deadline and job.poll() is None
        time.sleep(0.05)
    time.sleep(0.5)
    sent = time.monotonic()
    job.send_signal(signal.SIGTERM)
    run.stdout, run.stderr = job.communicate(timeout=30)
    took = time.monotonic() - sent
    run.returncode = job.returncode
    assert run.returncode == 143, run.stderr
    assert took < GRACE_SECONDS, f"{took:.2f} s"
    assert_no_leftovers(run)
