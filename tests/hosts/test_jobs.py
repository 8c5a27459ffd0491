"""Jobs across the loopback hosts: real ssh, real mlx.launch, real ranks on node1..node4."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time
from fractions import Fraction
from pathlib import Path

import pytest

from mlxrun.rank import procfs
from tests.helpers import script, start
from tests.hosts.loopback import Hosts


@pytest.mark.slow
@pytest.mark.parametrize("n", [2, 4])
def test_exec_across_hosts_labels_each_line_with_its_host(
    hosts: Hosts, mlxrun: object, n: int
) -> None:
    before = set(Path("/tmp").glob("tmp.*"))
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
    # mlx.launch's own remote temp files (a rank's pid, its ring hostfile) went with them.
    new = [p for p in set(Path("/tmp").glob("tmp.*")) - before if p.is_file()]
    assert [p for p in new if "127.0.0.2:" in p.read_text(errors="replace")] == []


def _numbers(path: Path, count: int) -> Path:
    """Floats whose sum a naive left-to-right float sum gets wrong."""
    rng = random.Random(11)
    path.write_text(
        "".join(
            f"{rng.uniform(-1e6, 1e6)!r}\n{rng.uniform(-1, 1) * 1e-9!r}\n" for _ in range(count)
        )
    )
    return path


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["ring", "mpi"])
@pytest.mark.parametrize("n", [2, 4])
def test_sum_across_hosts_is_exactly_the_local_sum(
    hosts: Hosts, mlxrun: object, tmp_path: Path, n: int, backend: str
) -> None:
    # The file is under the test's tmp folder, which every host sees (only DATA_PATH differs).
    data = _numbers(tmp_path / "numbers.txt", 5000)
    local = mlxrun("stats", "--np", str(n), "--json", str(data))  # type: ignore[operator]
    assert local.returncode == 0, local.stderr
    hostfile = str(hosts.hostfile(n))
    run = mlxrun(  # type: ignore[operator]
        "stats", "--hostfile", hostfile, "--backend", backend, "--json", str(data), env=hosts.env
    )
    assert run.returncode == 0, run.stderr
    here, there = json.loads(local.stdout), json.loads(run.stdout)
    assert there["results"] == here["results"]
    assert there["results"]["sum"] == float(sum(map(Fraction, data.read_text().split())))
    assert [r["host"] for r in there["ranks"]] == [f"node{i + 1}" for i in range(n)]
    assert hosts.leftovers() == {}


@pytest.mark.slow
def test_run_takes_the_hostfile_of_its_spec(hosts: Hosts, mlxrun: object, tmp_path: Path) -> None:
    data = _numbers(tmp_path / "numbers.txt", 1000)
    hostfile = hosts.hostfile(2)
    spec = tmp_path / "job.toml"
    spec.write_text(
        f'[job]\nhostfile = "{hostfile}"\n[data]\npath = "{data}"\n[reduce]\nops = ["sum"]\n'
    )
    run = mlxrun("run", str(spec), "--json", env=hosts.env)  # type: ignore[operator]
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    assert out["np"] == 2
    assert out["results"]["sum"] == float(sum(map(Fraction, data.read_text().split())))


@pytest.mark.slow
def test_bench_across_hosts(hosts: Hosts, mlxrun: object) -> None:
    run = mlxrun(  # type: ignore[operator]
        "bench",
        "--hostfile",
        str(hosts.hostfile(2)),
        "-b",
        "1K",
        "-e",
        "2K",
        "--iters",
        "2",
        "--warmup-iters",
        "1",
        "--json",
        env=hosts.env,
    )
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    assert out["np"] == 2
    assert [row["wrong"] for row in out["rows"]] == [0, 0]
    assert hosts.leftovers() == {}


@pytest.mark.slow
def test_a_stall_report_shows_a_remote_ranks_stack(hosts: Hosts, mlxrun: object) -> None:
    # py-spy and eu-stack run in the agent on the rank's own host (here: its own PID
    # namespace), so a stuck remote rank's stack reaches the report as a local one does.
    run = mlxrun(  # type: ignore[operator]
        "exec",
        "--hostfile",
        str(hosts.hostfile(2)),
        "--stall-timeout",
        "4",
        "--",
        "python",
        script("hang.py"),
        "sleep",
        env=hosts.env,
        timeout=90,
    )
    assert run.returncode == 124, run.stderr
    assert "rank 1 is not in a collective (sleeping); rank 0 waits in all_sum (ring)" in run.stderr
    remote = run.stderr.split("--- rank 1 @ node2:")[1].split("---")[0]
    assert "stuck_forever (hang.py:" in remote
    assert hosts.leftovers() == {}


def _tokens_of_agents() -> dict[int, bytes]:
    """The token in each remote rank agent's environment, by pid (a remote host's
    processes are in a PID namespace of their own: other jobs' local agents are left out)."""
    here = os.readlink("/proc/self/ns/pid")
    found, parents = {}, {}
    for p in procfs.processes():
        try:
            remote = os.readlink(f"/proc/{p.pid}/ns/pid") != here
        except OSError:
            continue
        if remote and "mlxrun.rank.agent" in p.cmdline and "mlx_launch" not in p.cmdline:
            for entry in p.environ.split(b"\0"):
                if entry.startswith(b"MLXRUN_TOKEN="):
                    found[p.pid] = entry.split(b"=", 1)[1]
                    parents[p.pid] = p.ppid
    # A third such process showed once under MPI. A process an agent forks keeps the agent's
    # command line until it execs, so a rank's agent is the one whose parent is not one.
    return {pid: token for pid, token in found.items() if parents[pid] not in found}


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["ring", "mpi"])
def test_the_token_is_on_no_command_line_of_any_host(
    hosts: Hosts, tmp_path: Path, backend: str
) -> None:
    # The hosts' PID namespaces nest in this one, so every host's processes are visible
    # here: the agents' environments give the token, and every command line is searched.
    # Up to two more tries only where Open MPI's daemon failed to start on a loopback host
    # (prted exit status 213, "A daemon failed to report back": 1 in 5 runs of this test
    # here, twice in a row once): that is not what this test is about, and mlxrun reported
    # it as it should. Each failed try must have left nothing behind.
    tries = 3
    for attempt in range(tries):
        job, _ = start(
            tmp_path,
            "exec",
            "--hostfile",
            str(hosts.hostfile(2)),
            "--backend",
            backend,
            "--",
            "python",
            script("sleepy.py"),
            env=hosts.env,
        )
        agents = _wait_for_agents(job)
        if len(agents) == 2:
            break
        job.send_signal(signal.SIGINT)
        out, err = job.communicate(timeout=30)
        if attempt < tries - 1 and "A daemon failed to report back" in out + err:
            assert hosts.leftovers() == {}
            continue
        pytest.fail(f"agents {agents}; job exit {job.returncode}; {out[-2000:]}{err[-2000:]}")
    try:
        assert len(set(agents.values())) == 1, agents
        token = next(iter(agents.values())).decode()
        assert [p.cmdline for p in procfs.processes() if token in p.cmdline] == []
    finally:
        job.send_signal(signal.SIGINT)
        job.communicate(timeout=30)
    assert job.returncode == 130
    assert hosts.leftovers() == {}


def _wait_for_agents(job: subprocess.Popen[str]) -> dict[int, bytes]:
    """The job's remote agents and their tokens, once both show (at most 90 s: mpirun's
    start over ssh can be slow), or what showed before the job ended."""
    agents: dict[int, bytes] = {}
    deadline = time.monotonic() + 90
    while len(agents) < 2 and time.monotonic() < deadline and job.poll() is None:
        agents = _tokens_of_agents()
        time.sleep(0.1)
    return agents


@pytest.mark.slow
def test_a_host_with_a_different_copy_of_a_shared_file_is_named(hosts: Hosts, mlxrun) -> None:
    # Each host sees its own folder at DATA_PATH: the same path, a copy of its own.
    from tests.hosts.loopback import DATA_PATH

    good = "".join(f"{i}.25\n" for i in range(100_000)).encode()
    stale = bytearray(good)
    stale[len(good) // 3] = ord("7")  # one digit, in a sampled block; the size unchanged
    for path, content in (
        (DATA_PATH / "shared.txt", good),
        (hosts.node("node1").data / "shared.txt", good),
        (hosts.node("node2").data / "shared.txt", bytes(stale)),
        (hosts.node("node3").data / "shared.txt", good[: len(good) // 2]),
    ):
        path.write_bytes(content)
    run = mlxrun(
        "sum", "--hostfile", str(hosts.hostfile(2)), str(DATA_PATH / "shared.txt"), env=hosts.env
    )
    assert run.returncode == 2, run.stderr
    assert run.stderr.strip().endswith(
        f"Error: {DATA_PATH}/shared.txt: the copy on node2 differs from the one on node1 "
        f"(its first {len(good):,} bytes, sampled); put the same file on every host"
    ), run.stderr
    (hosts.node("node2").data / "shared.txt").write_bytes(good)
    three = hosts.hostfile(3)
    run = mlxrun("sum", "--hostfile", str(three), str(DATA_PATH / "shared.txt"), env=hosts.env)
    assert (
        run.returncode == 2 and "the copy on node3 is shorter than the one on node1" in run.stderr
    )
    assert hosts.leftovers() == {}


@pytest.mark.slow
def test_per_host_files_are_combined(hosts: Hosts, mlxrun, tmp_path: Path) -> None:
    # node1 holds two ranks (its file split between them), node2 one; this machine has
    # no such file at all.
    from tests.hosts.loopback import DATA_PATH

    mine = {"node1": [f"{i}.5" for i in range(1001)], "node2": [f"-{i}" for i in range(77)]}
    for node, numbers in mine.items():
        (hosts.node(node).data / "own.txt").write_text("\n".join(numbers) + "\n")
    (DATA_PATH / "own.txt").unlink(missing_ok=True)
    hostfile = tmp_path / "h.json"
    entries = [("node1", "127.0.0.2"), ("node1", "127.0.0.2"), ("node2", "127.0.0.3")]
    hostfile.write_text(json.dumps([{"ssh": s, "ips": [ip]} for s, ip in entries]))
    args = ["stats", "--hostfile", str(hostfile), "--placement", "per-host", "--json"]
    run = mlxrun(*args, str(DATA_PATH / "own.txt"), env=hosts.env)
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    every = [Fraction(x) for numbers in mine.values() for x in numbers]
    assert out["count"] == len(every) == 1078
    assert out["results"]["sum"] == float(sum(every))
    ranks = out["ranks"]
    assert [r["host"] for r in ranks] == ["node1", "node1", "node2"]
    assert ranks[0]["count"] > 0 and ranks[1]["count"] > 0  # node1's file split in two
    assert ranks[0]["count"] + ranks[1]["count"] == 1001 and ranks[2]["count"] == 77
    # A host without the file fails the job, naming the host and the path.
    (hosts.node("node2").data / "own.txt").unlink()
    run = mlxrun(*args, str(DATA_PATH / "own.txt"), env=hosts.env)
    assert run.returncode == 2, run.stderr
    assert run.stderr.strip().endswith(f"Error: {DATA_PATH}/own.txt: no such file (on node2)")
    assert hosts.leftovers() == {}


@pytest.mark.slow
def test_python_names_the_hosts_interpreter(hosts: Hosts, mlxrun) -> None:
    there = hosts.other_python()
    hostfile = str(hosts.hostfile(2))
    show = ["python", "-c", "import sys, mlx.core; print(sys.executable)"]
    run = mlxrun("exec", "--hostfile", hostfile, "--python", there, "--", *show, env=hosts.env)
    assert run.returncode == 0, run.stderr
    assert sorted(run.stdout.splitlines()) == [
        f"[rank 0 @ node1] {there}",
        f"[rank 1 @ node2] {there}",
    ]
    check = mlxrun(
        "check", "--hostfile", hostfile, "--backend", "ring", "--python", there, "--json",
        env=hosts.env,
    )  # fmt: skip
    rows = {row["name"]: row for row in json.loads(check.stdout)["checks"]}
    assert rows["ssh node2 (ring)"]["status"] == "ok", rows
    assert rows["live test (ring)"]["status"] == "ok", rows
    run = mlxrun("exec", "--hostfile", hostfile, "--python", "venv/bin/python", "--", "true")
    assert (
        run.returncode == 2 and '--python: "venv/bin/python" is not an absolute path' in run.stderr
    )
    assert hosts.leftovers() == {}
