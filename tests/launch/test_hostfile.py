"""Hostfile validation, what mlx.launch gets, and the parts of a job across hosts that need\nno process: the channel's address, the labels, the rank command."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from mlxrun.errors import SpecError, UsageError
from mlxrun.launch.channel import CHANNEL_HOST_ENV, advertised_address
from mlxrun.launch.command import resolve_command
from mlxrun.launch.hostfile import parse_hostfile
from mlxrun.launch.job import JobSpec, job_spec
from mlxrun.launch.launcher import hostfile_json
from mlxrun.launch.output import LAUNCHER, label

PATH = Path("hosts.json")
# The shape of `mlx.distributed_config`'s output for three Macs over Thunderbolt (JACCL):
# each host's device toward every other, null toward itself. No Thunderbolt here: the
# backend itself cannot run on this machine, only the file can be checked.
JACCL = {
    "backend": "ring",
    "envs": ["MLX_METAL_FAST_SYNCH=1", "FOO=a b"],
    "hosts": [
        {"ssh": "m1", "ips": ["10.0.0.1"], "rdma": [None, "rdma_en3", "rdma_en4"]},
        {"ssh": "m2", "ips": ["10.0.0.2"], "rdma": ["rdma_en3", None, "rdma_en5"]},
        {"ssh": "m3", "ips": ["10.0.0.3"], "rdma": [["rdma_en4", "rdma_en6"], "rdma_en5", None]},
    ],
}


def test_rdma_and_envs_reach_mlx_launch_unchanged() -> None:
    hostfile = parse_hostfile(PATH, json.dumps(JACCL), None)
    assert json.loads(hostfile_json(hostfile)) == JACCL


def test_a_hostfile_without_rdma_gets_none() -> None:
    plain = [{"ssh": "n1", "ips": ["10.0.0.1"]}, {"ssh": "n2", "ips": ["10.0.0.2"]}]
    out = json.loads(hostfile_json(parse_hostfile(PATH, json.dumps(plain), None)))
    assert out == {"backend": "ring", "envs": [], "hosts": plain}


@pytest.mark.parametrize(
    ("host", "rdma", "message"),
    [
        (
            1,
            ["rdma_en3", None],
            "hosts.json: hosts[1] -> rdma: must list one entry per host (3), null for this "
            'host itself: e.g. [null, "rdma_en2"] (see `mlx.distributed_config`)',
        ),
        (
            1,
            ["rdma_en3", "rdma_en4", "rdma_en5"],
            "hosts.json: hosts[1] -> rdma[1]: must be null: a host has no RDMA link to itself",
        ),
        (
            0,
            [None, 7, "rdma_en4"],
            'hosts.json: hosts[0] -> rdma[1]: must be a device name such as "rdma_en2", a '
            "list of names, or null",
        ),
        (0, "rdma_en3", "hosts.json: hosts[0] -> rdma: must list one entry per host (3)"),
    ],
)
def test_a_bad_rdma_matrix_names_the_entry_and_the_fix(
    host: int, rdma: object, message: str
) -> None:
    bad = json.loads(json.dumps(JACCL))
    bad["hosts"][host]["rdma"] = rdma
    with pytest.raises(SpecError) as e:
        parse_hostfile(PATH, json.dumps(bad), None)
    assert str(e.value).startswith(message)


def _job(hosts: list[dict[str, object]], listen_ip: str | None = None) -> JobSpec:
    hostfile = parse_hostfile(PATH, json.dumps(hosts), None)
    return JobSpec(("true",), len(hosts), hostfile=hostfile, listen_ip=listen_ip)


def test_the_channel_binds_the_one_address_ranks_dial(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(CHANNEL_HOST_ENV, raising=False)
    remote = [{"ssh": "node1", "ips": ["127.0.0.2"]}, {"ssh": "node2", "ips": ["127.0.0.3"]}]
    # The route to 127.0.0.2 leaves from this machine's loopback address.
    assert advertised_address(_job(remote)) == ("127.0.0.1", "127.0.0.1")
    assert advertised_address(_job(remote, "127.0.0.9")) == ("127.0.0.9", "127.0.0.9")
    monkeypatch.setenv(CHANNEL_HOST_ENV, "127.0.0.8")
    assert advertised_address(_job(remote)) == ("127.0.0.8", "127.0.0.8")
    local = [{"ssh": "127.0.0.1"}, {"ssh": "127.0.0.1"}]
    assert advertised_address(_job(local)) == ("127.0.0.1", "127.0.0.1")


def test_listen_ip_must_be_an_ip() -> None:
    with pytest.raises(UsageError) as e:
        job_spec(("true",), 2, "ring", None, None, listen_ip="node1")
    assert str(e.value).startswith('--listen-ip: "node1" is not an IP address')


def test_labels_name_the_host_on_jobs_across_hosts() -> None:
    assert label(3, False, host="node4") == b"[rank 3 @ node4] "
    assert label(3, False) == b"[rank 3] "
    assert label(LAUNCHER, False, host="node1") == b"[launcher] "


def test_python_means_this_interpreter(tmp_path: Path) -> None:
    job = tmp_path / "job.py"
    job.write_text("")
    for python in ("python", "python3"):
        assert resolve_command([python, str(job), "-x"]) == (sys.executable, str(job), "-x")
    assert resolve_command([python, "-c", "pass"]) == (sys.executable, "-c", "pass")
    assert resolve_command(["/bin/sh", "-c", "true"]) == ("/bin/sh", "-c", "true")
