"""Jobs across the loopback hosts: real ssh, real mlx.launch, real ranks on node1..node4."""

from __future__ import annotations

import pytest

from tests.helpers import script
from tests.hosts.conftest import Hosts


@pytest.mark.slow
@pytest.mark.parametrize("n", [2, 4])
def test_exec_across_hosts_labels_each_line_with_its_host(
    hosts: Hosts, mlxrun: object, n: int
) -> None:
    # `python`, not the venv's path: it must mean this interpreter on every host.
    run = mlxrun(  # type: ignore[operator]
        "exec",
        "--hostfile",
        str(hosts.hostfile(n)),
        "--",
        "python",
        script("classic.py"),
        env=hosts.env,
    )
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    for r in range(n):
        assert f"[rank {r} @ node{r + 1}] total 10" in lines, run.stdout
    assert hosts.leftovers() == {}
