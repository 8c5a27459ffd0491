"""rank.forked: a module run in a real fork of the test process starts as `python -m`
would start it, and the jobs that use it (mlx.launch and a lone rank's agent forked by
mlxrun) answer as they do from a new interpreter (MLXRUN_NO_FORK=1)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from mlxrun.rank.forked import NO_FORK_ENV, ForkedModule
from tests.helpers import children, launcher_ports, socket_inodes, start

linux = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="forks only on Linux")
PROBE = """
import json, os, signal, sys, tempfile
fd = int(sys.argv[1])
print(json.dumps({
    "argv": sys.argv[1:],
    "env": os.environ.get("PROBE"),
    "sigterm": signal.getsignal(signal.SIGTERM) == signal.SIG_DFL,
    "sigint": signal.getsignal(signal.SIGINT) is signal.default_int_handler,
    "sigusr1": signal.getsignal(signal.SIGUSR1) == signal.SIG_IGN,
    "own_session": os.getsid(0) == os.getpid(),
    "stdin": sys.stdin.read(),
    "tempdir": tempfile.gettempdir(),
    "parents_socket": os.readlink(f"/dev/fd/{fd}") if os.path.exists(f"/dev/fd/{fd}") else None,
}))
sys.stderr.write("to stderr\\n")
code = os.environ.get("EXIT")
if code == "raise":
    raise ValueError("from the module")
sys.exit(int(code or 0))
"""


@pytest.fixture
def probe(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    (tmp_path / "forked_probe.py").write_text(PROBE)
    monkeypatch.syspath_prepend(str(tmp_path))
    return "forked_probe"


def run(module: str, args: list[str], env: dict[str, str], **kw: object) -> tuple[int, str, str]:
    child = ForkedModule(module, args, env, **kw)  # type: ignore[arg-type]
    assert child.stdout is not None and child.stderr is not None
    with child.stdout, child.stderr:
        out, err = child.stdout.read(), child.stderr.read()
    return child.wait(timeout=30), out.decode(), err.decode()


@linux
def test_the_fork_starts_as_python_m_would(probe: str, tmp_path: Path) -> None:
    held = socket.socket()  # a descriptor of the parent's: the child must not hold it
    fd = held.fileno()
    before = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGUSR1)}
    signal.signal(signal.SIGTERM, lambda *_: None)  # caught here: default in the child
    signal.signal(signal.SIGUSR1, signal.SIG_IGN)  # ignored here: ignored after exec too
    tempfile.gettempdir()  # cached here: the child must see its own TMPDIR
    try:
        env = {"PROBE": "yes", "TMPDIR": str(tmp_path)}
        code, out, err = run(probe, [str(fd), "b"], env, new_session=True)
    finally:
        for sig, handler in before.items():
            signal.signal(sig, handler)
        held.close()
    assert code == 0, err
    assert err == "to stderr\n"
    seen = json.loads(out)
    assert seen == {
        "argv": [str(fd), "b"],
        "env": "yes",
        "sigterm": True,
        "sigint": True,
        "sigusr1": True,
        "own_session": True,
        "stdin": "",
        "tempdir": str(tmp_path),
        "parents_socket": os.devnull,
    }


@linux
def test_a_kept_descriptor_stays_and_exit_codes_pass_through(probe: str) -> None:
    r, w = os.pipe()
    try:
        code, out, _ = run(probe, [str(w)], {"EXIT": "3"}, keep=(w,))
        assert code == 3
        assert json.loads(out)["parents_socket"].startswith("pipe:")
        assert json.loads(out)["own_session"] is False
    finally:
        os.close(r)
        os.close(w)


@linux
def test_an_exception_is_printed_and_exits_1(probe: str) -> None:
    code, _, err = run(probe, ["0"], {"EXIT": "raise"})
    assert code == 1
    assert err.splitlines()[-1] == "ValueError: from the module"


CAN_FORK = """
import os, sys, threading
from mlxrun.rank.forked import can_fork
print(can_fork())
if sys.argv[1] == "thread":
    stop = threading.Event()
    t = threading.Thread(target=stop.wait)
    t.start()
    print(can_fork())
    stop.set()
    t.join()
    print(can_fork())
elif sys.argv[1] == "mlx":
    import mlx.core
    print(can_fork())
elif sys.argv[1] == "darwin":
    sys.platform = "darwin"  # a Mac's Python: never a bare fork
    print(can_fork())
"""


@linux
@pytest.mark.parametrize(
    ("case", "env", "seen"),
    [
        ("thread", {}, ["True", "False", "True"]),  # only while a second thread runs
        ("mlx", {}, ["True", "False"]),
        ("darwin", {}, ["True", "False"]),
        ("none", {NO_FORK_ENV: "1"}, ["False"]),
        ("none", {"MLXRUN_PORTABLE": "1"}, ["False"]),
    ],
)
def test_when_it_forks(case: str, env: dict[str, str], seen: list[str]) -> None:
    """In a fresh interpreter: this test process may hold threads and MLX already."""
    clean = {k: v for k, v in os.environ.items() if k not in (NO_FORK_ENV, "MLXRUN_PORTABLE")}
    out = subprocess.run(
        [sys.executable, "-c", CAN_FORK, case], env={**clean, **env}, capture_output=True, text=True
    )
    assert out.stdout.split() == seen, out.stderr


@pytest.mark.parametrize("np", ["1", "2"])
def test_jobs_answer_the_same_forked_or_not(mlxrun, tmp_path: Path, np: str) -> None:  # type: ignore[no-untyped-def]
    data = tmp_path / "n.txt"
    data.write_text("".join(f"{i}.5\n" for i in range(1000)))
    forked = mlxrun("sum", "--np", np, "--json", str(data))
    fresh = mlxrun("sum", "--np", np, "--json", str(data), env={NO_FORK_ENV: "1"})
    for r in (forked, fresh):
        assert r.returncode == 0, r.stderr
    assert json.loads(forked.stdout)["results"] == json.loads(fresh.stdout)["results"]
    assert json.loads(forked.stdout)["results"]["sum"] == sum(i + 0.5 for i in range(1000))


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="reads /proc")
def test_a_forked_launcher_holds_none_of_mlxruns_sockets(tmp_path: Path) -> None:
    """The real job: mlx.launch, forked by mlxrun, holds neither the channel's listening
    socket nor the port claims (a rank could not bind a port a claim held)."""
    sleeper = ("python", "-c", "import time; time.sleep(3)")
    job, _ = start(tmp_path, "exec", "--np", "2", "--", *sleeper)
    try:
        deadline = time.monotonic() + 20
        while not launcher_ports(job.pid, 2) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert launcher_ports(job.pid, 2), "the job's ports never showed"
        launchers = children(job.pid)
        assert len(launchers) == 1  # the launcher
        (launcher,) = launchers
        assert "mlxrun" in Path(f"/proc/{launcher}/cmdline").read_text()  # a fork of mlxrun
        assert socket_inodes(launcher) & socket_inodes(job.pid) == set()
    finally:
        job.communicate(timeout=60)
    assert job.returncode == 0
