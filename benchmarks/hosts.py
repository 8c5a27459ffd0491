"""Start-up across hosts: a 4-host job against a local 4-rank job, and against plain
`mlx.launch --hostfile` on the same hosts.

The hosts are the test suite's loopback sshd hosts (tests/hosts/loopback.py: node1..node4
on 127.0.0.2..127.0.0.5, each in its own namespaces), so this needs root, `unshare` and
openssh-server (`make test-deps`). Each job only starts: init and one all_sum. What the
4-host rows add over the local one is ssh (a session per rank) and the remote shells.

Usage: python benchmarks/hosts.py [--repeat R]   (writes benchmarks/results/hosts.json)
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent))  # the repo: tests.hosts.loopback and launcher.py's helpers

from benchmarks.launcher import compare, show  # noqa: E402
from tests.hosts.loopback import loopback_hosts, missing  # noqa: E402

BIN = Path(sys.executable).parent
PROGRAM = "import mlx.core as mx; g = mx.distributed.init(); mx.eval(mx.distributed.all_sum(1))"
PROGRAM_ARGV = [sys.executable, "-c", PROGRAM]


def free_start_port(count: int) -> int:
    """A port below which `count` more are likely free, for plain mlx.launch's ring."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    return port if port + count < 65535 else 40000


def job(argv: list[str], env: dict[str, str], ring_ports: bool = False) -> Callable[[], list[str]]:
    """One run of the job, as `compare` times it."""

    def run() -> list[str]:
        full = argv
        if ring_ports:
            full = [*argv, "--starting-port", str(free_start_port(4)), "--", *PROGRAM_ARGV]
        subprocess.run(
            full,
            check=True,
            stdout=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
            env=env,
            timeout=120,
        )
        return []

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    why = missing()
    if why is not None:
        sys.exit(f"benchmarks/hosts.py: {why}")
    with tempfile.TemporaryDirectory() as tmp, loopback_hosts(Path(tmp)) as hosts:
        hostfile = str(hosts.hostfile(4))
        env = {**os.environ, **hosts.env}
        program = PROGRAM_ARGV
        mlxrun = [str(BIN / "mlxrun"), "exec"]
        plain = [str(BIN / "mlx.launch"), "--hostfile", hostfile]
        cases = {
            "mlxrun exec --np 4 (local)": job([*mlxrun, "--np", "4", "--", *program], env),
            "mlxrun exec --hostfile (4 hosts)": job(
                [*mlxrun, "--hostfile", hostfile, "--", *program], env
            ),
            # Its own ring ports each time: its fixed default could clash with a job's.
            "mlx.launch --hostfile (4 hosts)": job(plain, env, ring_ports=True),
        }
        stats = compare(dict(cases), args.repeat)
    show("Start-up of an init-and-all_sum job", stats, "mlxrun exec --np 4 (local)", True)
    out = HERE / "results" / "hosts.json"
    out.write_text(json.dumps({"startup": stats, "repeat": args.repeat}, indent=2) + "\n")
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
