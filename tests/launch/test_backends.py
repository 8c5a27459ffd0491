"""Every backend mlx.launch offers: the list read from the installed MLX, what nccl and
jaccl need of a hostfile, and the exact arguments mlxrun hands to mlx.launch.

nccl needs CUDA GPUs and jaccl Thunderbolt RDMA between Macs; this machine has neither,
so these jobs are not started here: the tests stop at what mlx.launch would be given.
The hosts' IPs are loopback addresses, where a port probe is refused at once."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlxrun.cli.app import main
from mlxrun.errors import SpecError, UsageError
from mlxrun.launch import backends
from mlxrun.launch.hostfile import parse_hostfile
from mlxrun.launch.job import JobSpec, job_spec
from mlxrun.launch.launcher import Launch
from mlxrun.rank.group import init_name

PATH = Path("hosts.json")


def rdma_hosts(n: int, backend: str) -> dict[str, object]:
    """A hostfile as `mlx.distributed_config --backend jaccl` writes it, for n Macs."""
    return {
        "backend": backend,
        "envs": ["MLX_METAL_FAST_SYNCH=0"],
        "hosts": [
            {
                "ssh": f"mac{i + 1}",
                "ips": [f"127.0.0.{i + 2}"],
                "rdma": [None if j == i else f"rdma_en{i + j + 2}" for j in range(n)],
            }
            for i in range(n)
        ],
    }


def test_the_list_is_read_from_the_installed_launcher() -> None:
    # MLX 0.32.4's mlx.launch dispatches on these five.
    assert backends.offered() == ("ring", "mpi", "nccl", "jaccl", "jaccl-ring")
    source = backends.launcher_source()
    assert source is not None
    older = "\n".join(line for line in source.read_text().splitlines() if "jaccl" not in line)
    assert backends.offered_in(older) == ("ring", "mpi", "nccl")


def test_a_backend_the_installed_mlx_lacks_is_named(monkeypatch, capsys) -> None:
    # An older MLX cannot be installed next to this one: its launcher's list is given here.
    monkeypatch.setattr(backends, "offered", lambda: ("ring", "mpi"))
    assert main(["exec", "--backend", "nccl", "--", "true"]) == 2
    assert capsys.readouterr().err.strip() == (
        "Error: --backend: the installed MLX's mlx.launch does not offer nccl (it offers "
        "ring, mpi): upgrade mlx, or choose one of those"
    )


def test_jaccl_needs_a_hostfile(capsys) -> None:
    assert main(["exec", "--backend", "jaccl", "--np", "2", "--", "true"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("Error: --backend jaccl needs --hostfile: a hostfile whose hosts")


@pytest.mark.parametrize(
    ("backend", "edit", "message"),
    [
        (
            "jaccl",
            lambda h: h["hosts"][0].pop("ips"),
            "hosts.json: hosts[0] -> ips: missing: jaccl needs rank 0's IP",
        ),
        (
            "nccl",
            lambda h: h["hosts"][0].pop("ips"),
            "hosts.json: hosts[0] -> ips: missing: nccl needs rank 0's IP",
        ),
        (
            "jaccl",
            lambda h: h["hosts"][2].pop("rdma"),
            "hosts.json: hosts[2] -> rdma: missing: jaccl needs the RDMA device toward each",
        ),
        (
            "jaccl",
            lambda h: h["hosts"][0]["rdma"].__setitem__(2, None),
            "hosts.json: hosts[0] -> rdma[2]: null, but jaccl needs an RDMA device from mac1 "
            "to mac3 (is their Thunderbolt cable in?)",
        ),
        (
            "jaccl-ring",
            lambda h: h["hosts"][1]["rdma"].__setitem__(2, None),
            "hosts.json: hosts[1] -> rdma[2]: null, but jaccl-ring needs an RDMA device from "
            "mac2 to mac3",
        ),
    ],
)
def test_what_nccl_and_jaccl_need_of_a_hostfile(backend, edit, message) -> None:
    hosts = rdma_hosts(4, backend)
    edit(hosts)
    with pytest.raises(SpecError) as e:
        parse_hostfile(PATH, json.dumps(hosts), None)
    assert str(e.value).startswith(message)


def test_jaccl_ring_needs_only_its_neighbours() -> None:
    hosts = rdma_hosts(4, "jaccl-ring")
    hosts["hosts"][0]["rdma"][2] = None  # mac1 and mac3 are not neighbours on a ring of 4
    assert parse_hostfile(PATH, json.dumps(hosts), None).backend == "jaccl-ring"


def argv_of(backend: str, tmp_path: Path, n: int = 3) -> tuple[list[str], dict[str, object]]:
    """What mlxrun would run for a job on n hosts, and the hostfile it hands over."""
    path = tmp_path / f"{backend}.json"
    path.write_text(json.dumps(rdma_hosts(n, backend)))
    spec = job_spec(("python", "job.py"), None, backend, path, None)
    with Launch(spec, {"MLXRUN_CHANNEL": "127.0.0.1:5"}) as launch:
        launch.reserve()
        argv = launch.argv()
        handed = json.loads(Path(argv[argv.index("--hostfile") + 1]).read_text())
    return argv, handed


@pytest.mark.parametrize("backend", ["jaccl", "jaccl-ring"])
def test_jaccl_gets_the_hostfile_unchanged_and_a_coordinator_port_of_its_own(
    backend: str, tmp_path: Path
) -> None:
    argv, handed = argv_of(backend, tmp_path)
    launcher = argv[: argv.index("--")]
    port = int(launcher[launcher.index("--starting-port") + 1])
    assert launcher[2:] == [
        "mlxrun.rank.mlx_launch",
        "--backend",
        backend,
        "--hostfile",
        launcher[6],
        "--starting-port",
        str(port),
        "--env=MLXRUN_CHANNEL=127.0.0.1:5",
        "--env=PYTHONUNBUFFERED=1",
    ]
    assert port != 32323  # mlx.launch's default, which two jobs would share
    assert handed == rdma_hosts(3, backend)  # rdma and envs as written
    assert init_name(backend) == "jaccl"  # both are MLX's jaccl backend


def test_two_nccl_jobs_get_their_own_nccl_port(tmp_path: Path) -> None:
    first, _ = argv_of("nccl", tmp_path)
    second, _ = argv_of("nccl", tmp_path)
    ports = [int(a[a.index("--nccl-port") + 1]) for a in (first, second)]
    assert 12345 not in ports and "--starting-port" not in first
    assert init_name("nccl") == "nccl"


def test_a_local_nccl_job_gets_a_port_too() -> None:
    spec = JobSpec(("python", "job.py"), 4, "nccl")  # job_spec refuses it here: no CUDA
    with Launch(spec, {}) as launch:
        launch.reserve()
        argv = launch.argv()
    assert argv[argv.index("-n") + 1] == "4" and "--nccl-port" in argv


def test_a_backend_this_machines_mlx_cannot_run_is_refused_before_anything_starts(
    capsys,
) -> None:
    # Real: this machine's MLX (Linux, CPU) has neither nccl nor jaccl.
    assert main(["sum", "--backend", "nccl", "--np", "2", "configs/data/numbers.txt"]) == 2
    assert capsys.readouterr().err.strip() == (
        "Error: --backend nccl: this machine's MLX cannot run nccl ranks: it needs CUDA GPUs "
        "and an MLX built for them (pip install 'mlx[cuda]')"
    )


def test_an_unknown_backend() -> None:
    with pytest.raises(UsageError, match='unknown backend "gloo"'):
        job_spec(("true",), 2, "gloo", None, None)
