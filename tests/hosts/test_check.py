"""`mlxrun check --hostfile` against the loopback hosts: reachable ones pass, with a live
ring test across them; a host whose sshd is down fails with its fix."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlxrun import __version__
from mlxrun.check import network
from mlxrun.check.rows import FAIL, OK
from mlxrun.launch.hostfile import parse_hostfile
from tests.hosts.loopback import Hosts


def _rows(stdout: str) -> dict[str, dict[str, str]]:
    return {row["name"]: row for row in json.loads(stdout)["checks"]}


@pytest.mark.slow
def test_check_hostfile_passes_on_reachable_hosts(hosts: Hosts, mlxrun: object) -> None:
    run = mlxrun(  # type: ignore[operator]
        "check",
        "--hostfile",
        str(hosts.hostfile(2)),
        "--backend",
        "ring",
        "--json",
        env=hosts.env,
    )
    rows = _rows(run.stdout)
    assert run.returncode == 0, rows
    for name in ("node1", "node2"):
        assert rows[f"ssh {name} (ring)"]["status"] == "ok", rows
        assert f"mlxrun {__version__}" in rows[f"ssh {name} (ring)"]["detail"], rows
    assert rows["live test (ring)"]["status"] == "ok", rows
    assert rows["free ports"]["detail"].endswith("(free here and on the remote hosts)"), rows
    assert hosts.leftovers() == {}


@pytest.mark.slow
def test_check_hostfile_names_an_unreachable_host_and_its_fix(hosts: Hosts, mlxrun: object) -> None:
    node2 = hosts.node("node2")
    node2.stop()
    try:
        run = mlxrun(  # type: ignore[operator]
            "check",
            "--hostfile",
            str(hosts.hostfile(2)),
            "--backend",
            "ring",
            "--json",
            env=hosts.env,
        )
    finally:
        node2.start()
    rows = _rows(run.stdout)
    assert run.returncode == 1, run.stdout
    assert rows["ssh node1 (ring)"]["status"] == "ok", rows
    bad = rows["ssh node2 (ring)"]
    assert bad["status"] == "fail"
    assert bad["detail"].startswith("cannot reach node2 without a password: ")
    assert "Connection refused" in bad["detail"]
    assert bad["fix"] == (
        "set up key-based ssh (ssh-copy-id node2) and check with: ssh -o BatchMode=yes node2 true"
    )
    assert rows["live test (ring)"]["status"] == "skip"


@pytest.mark.slow
def test_an_ip_not_on_its_host_is_named(hosts: Hosts, tmp_path: Path, monkeypatch) -> None:
    # Each host answers with its own `ip -o addr` over ssh; 10.0.0.7 is only compared with
    # what node2 lists, never connected to.
    path = tmp_path / "h.json"
    listed = [{"ssh": "node1", "ips": ["127.0.0.2"]}, {"ssh": "node2", "ips": ["10.0.0.7"]}]
    path.write_text(json.dumps(listed))
    for key, value in hosts.env.items():  # the hosts' ssh wrapper first on PATH, as for mlxrun
        monkeypatch.setenv(key, value)
    rows = network.host_ip_checks(parse_hostfile(path, path.read_text(), None))
    assert [r.status for r in rows] == [OK, FAIL], rows
    assert rows[1].detail.startswith("10.0.0.7 not on any interface of node2 (it has ")
    assert "127.0.0.1" in rows[1].detail and "in " + str(path) in rows[1].fix


@pytest.mark.slow
def test_check_names_a_host_whose_mlx_differs_and_one_without_mpi(hosts: Hosts, mlxrun) -> None:
    # node2's Python claims another mlx version; neither host's venv has Open MPI's prted.
    there = hosts.other_python({"node2": "0.1.0"})
    hostfile = str(hosts.hostfile(2))
    args = ["check", "--hostfile", hostfile, "--quick", "--python", there, "--json"]
    rows = _rows(mlxrun(*args, "--backend", "ring", env=hosts.env).stdout)
    assert rows["ssh node1 (ring)"]["status"] == "ok", rows
    node2 = rows["ssh node2 (ring)"]
    assert node2["status"] == "fail" and f"{there} mlx 0.1.0 mlxrun" in node2["detail"], node2
    assert "pip install mlx==" in node2["fix"]
    hosts.other_python()  # the real mlx again
    rows = _rows(mlxrun(*args, "--backend", "mpi", env=hosts.env).stdout)
    mpi = rows["mpi on node2 (mpi)"]
    assert mpi["status"] == "fail" and "mpirun cannot start its daemon there" in mpi["detail"]
    plain = ["check", "--hostfile", hostfile, "--quick", "--backend", "mpi", "--json"]
    assert _rows(mlxrun(*plain, env=hosts.env).stdout)["mpi on node2 (mpi)"]["status"] == "ok"
    hosts.other_python()  # the hosts' venvs as the other tests expect them
