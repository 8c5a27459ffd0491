"""The agent that runs on every rank: starts the rank's command as its child
and relays the child's stdout, stderr, results and exit status to mlxrun.

mlx.launch starts `python -m mlxrun.rank.agent -- CMD...` once per rank. The child
inherits the rank's environment (MLX_RANK, MLX_HOSTFILE, ...) so MLX sees no
difference; its stdout and stderr are pipes read here, so output that C code
writes straight to file descriptors 1 and 2 is heard too. A worker may write
JSON results to the file descriptor named by MLXRUN_RESULT_FD. mlxrun's own
modules (`python -m mlxrun.reduce.worker ...`) run in a fork of the agent rather than in
a new interpreter, on Linux (rank.forked); anything else is started as given.

Only the standard library is imported: the agent's start-up is every job's.
"""

from __future__ import annotations

import os
import selectors
import signal
import socket
import sys
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Union

from mlxrun.rank.forked import ForkedModule, module_of
from mlxrun.rank.protocol import (
    ADDRESS_ENV,
    HEARTBEAT_ENV,
    MAX_LINE,
    MAX_RESULT,
    MAX_STACK,
    READ_CHUNK,
    REMOTE_TMPDIR_ENV,
    RESULT_FD_ENV,
    TOKEN_ENV,
    FrameDecoder,
    Kind,
    encode,
    encode_json,
    machine_id,
    rank_from_env,
    split_address,
    stamped,
)
from mlxrun.rank.timeline import mark

COALESCE_SECONDS = 0.002  # how long whole lines may wait for more (Relay)
HOLD_BYTES = 256 * 1024  # ... or how many of them
TRICKLE_BYTES, TRICKLE_SECONDS = 4096, 0.001  # a read this small: wait this long for more
STRAGGLER_SECONDS = 1.0  # the longest to keep reading after the child exited
DRAIN_TICK_SECONDS = 0.05  # after it exited: a pipe quiet this long has nothing more
TICK_SECONDS = 0.2
_STARTED = time.monotonic()
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def clock() -> float:
    """The agent's stamp clock: seconds since it started (mlxrun maps it to the job's)."""
    return time.monotonic() - _STARTED


class Relay:
    """Cuts one of the child's streams into whole lines and sends them as frames; output
    frames carry the time their first bytes were read.

    Whole lines are held up to COALESCE_SECONDS (or HOLD_BYTES) before they go, so that a
    rank printing line after line (unbuffered, one write per line) sends frames of
    thousands of lines rather than one each: with a frame per line, 4 ranks x 1 M lines
    took 3.2x as long as the ranks writing to /dev/null. A line thus shows at most that
    late, and its time stamp is its frame's first line's."""

    def __init__(
        self,
        sock: socket.socket,
        kind: Kind,
        stamp: bool = True,
        max_line: int = MAX_LINE,
        coalesce: bool = True,
    ) -> None:
        self.sock = sock
        self.kind = kind
        self.stamp = stamp
        self.max_line = max_line  # a longer line is relayed in pieces, not held without bound
        self.coalesce = coalesce
        self.pending: list[bytes] = []  # read, not sent: the start of a line
        self.size = 0  # their bytes
        self.read_at = 0.0  # when the pending bytes were read
        self.held: list[bytes] = []  # whole lines, not sent yet
        self.held_size = 0
        self.held_at = 0.0  # when the first of them was read

    def feed(self, data: bytes) -> None:
        # Pieces are joined only when a line ends: re-joining the pending bytes on every
        # read made a 14 MB result record cost seconds.
        if not data:
            return
        now = clock()
        if not self.pending:
            self.read_at = now
        nl = data.rfind(b"\n")
        if nl < 0:
            self.pending.append(data)
            self.size += len(data)
            if self.size >= self.max_line:
                self.close()
            return
        self._hold(b"".join([*self.pending, data[: nl + 1]]), self.read_at)
        rest = data[nl + 1 :]
        self.pending, self.size, self.read_at = ([rest], len(rest), now) if rest else ([], 0, now)

    def due(self) -> float | None:
        """When the held lines must go (the stamp clock), or None if none are held."""
        return self.held_at + COALESCE_SECONDS if self.held else None

    def flush(self) -> None:
        if self.held:
            self._send(b"".join(self.held), self.held_at)
            self.held, self.held_size = [], 0

    def close(self) -> None:
        self.flush()
        if self.pending:
            self._send(b"".join(self.pending), self.read_at)
            self.pending, self.size = [], 0

    def _hold(self, lines: bytes, at: float) -> None:
        if self.held_size + len(lines) > self.max_line:
            self.flush()  # a frame stays within what mlxrun takes (rank.protocol)
        if not self.held:
            self.held_at = at
        self.held.append(lines)
        self.held_size += len(lines)
        if not self.coalesce or self.held_size >= HOLD_BYTES:
            self.flush()

    def _send(self, lines: bytes, at: float) -> None:
        self.sock.sendall(encode(self.kind, stamped(at, lines) if self.stamp else lines))


def stack_frame(shot: dict[str, Any]) -> bytes:
    """The STACK frame of a snapshot, its Python stack trimmed to fit the frame limit (a
    process of thousands of threads)."""
    frame = encode_json(Kind.STACK, shot)
    if len(frame) > MAX_STACK and isinstance(shot.get("python"), str):
        keep = MAX_STACK // 2
        frame = encode_json(Kind.STACK, {**shot, "python": shot["python"][:keep] + "\n..."})
    return frame


def connect() -> socket.socket:
    host, port = split_address(os.environ[ADDRESS_ENV])
    sock = socket.create_connection((host, port), timeout=30)
    sock.settimeout(None)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    hello: dict[str, Any] = {
        "token": os.environ[TOKEN_ENV],
        "rank": rank_from_env(),
        "pid": os.getpid(),
        "pgid": os.getpgid(0),
        "host": socket.gethostname(),
        "machine": machine_id(),
        "clock": clock(),
    }
    sock.sendall(encode_json(Kind.HELLO, hello))
    return sock


def child_env(result_fd: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in (TOKEN_ENV, ADDRESS_ENV)}
    env["PYTHONUNBUFFERED"] = "1"
    env[RESULT_FD_ENV] = str(result_fd)
    return env


if TYPE_CHECKING:  # subprocess is imported only for a command that is not mlxrun's own
    import subprocess

    Child = Union[subprocess.Popen[bytes], ForkedModule]  # noqa: UP007 - 3.10 has no |


def own_module(argv: list[str]) -> str | None:
    """The module of `python -m mlxrun.X ...` run by this very interpreter, if that is argv,
    to be run in a fork. Not under MPI: a fork ends with os._exit, which skips the
    interpreter's teardown and with it MPI_Finalize, and mpirun then calls the rank's exit
    improper and kills the others (seen: `mlxrun bench --np 4 --backend mpi`)."""
    if "OMPI_COMM_WORLD_RANK" in os.environ or "PMI_RANK" in os.environ:
        return None
    module = module_of(argv)
    if (
        module is not None
        and module.startswith("mlxrun.")
        and module.replace(".", "").isidentifier()
    ):
        return module
    return None


def start_child(argv: list[str], result_w: int) -> Child:
    module = own_module(argv)
    if module is not None:
        env = child_env(result_w)
        # mlxrun's reductions never call BLAS, and the threads OpenBLAS starts when numpy
        # loads spin on the core the other rank needs: two ranks importing at once took
        # 0.29-0.38 s with them, 0.19-0.27 s without.
        env.setdefault("OPENBLAS_NUM_THREADS", "1")
        return ForkedModule(module, argv[3:], env, keep=(result_w,))
    import subprocess

    return subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        pass_fds=(result_w,),
        env=child_env(result_w),
    )


class Requests:
    """What mlxrun asks of this agent: heartbeats of the rank's CPU time (when the job has
    a stall watchdog) and snapshots of what the rank is doing."""

    def __init__(self, sock: socket.socket, child: Child) -> None:
        self.sock, self.child = sock, child
        self.decoder = FrameDecoder()
        every = os.environ.get(HEARTBEAT_ENV)
        self.every = float(every) if every else None
        self.next_beat = time.monotonic()

    def on_readable(self) -> bool:
        """Reads mlxrun's frames; False when mlxrun hung up."""
        data = self.sock.recv(4096)
        if not data:
            return False
        for kind, _payload in self.decoder.feed(data):
            if kind is Kind.REQUEST:
                from mlxrun.rank.snapshot import snapshot  # only when a stack is asked for

                self.sock.sendall(stack_frame(snapshot(self.child.pid)))
        return True

    def beat(self) -> None:
        if self.every is None or time.monotonic() < self.next_beat or self.child.poll() is not None:
            return
        from mlxrun.rank.snapshot import cpu_seconds

        self.sock.sendall(encode_json(Kind.HEARTBEAT, {"cpu": cpu_seconds(self.child.pid)}))
        self.next_beat = time.monotonic() + self.every


def flush_in_order(relays: Iterable[Relay]) -> None:
    """Sends what every relay holds, the earliest read first: stdout and stderr lines keep
    the order in which they were read."""
    for r in sorted((r for r in relays if r.held), key=lambda r: r.held_at):
        r.flush()


def relay(sock: socket.socket, child: Child, result_r: int) -> bool:
    """Relays until the child's streams close; False if mlxrun went away."""
    assert child.stdout is not None and child.stderr is not None
    sel = selectors.DefaultSelector()
    relays = {
        child.stdout.fileno(): Relay(sock, Kind.STDOUT),
        child.stderr.fileno(): Relay(sock, Kind.STDERR),
    }
    for fd in relays:
        sel.register(fd, selectors.EVENT_READ)
    sel.register(result_r, selectors.EVENT_READ)
    sel.register(sock, selectors.EVENT_READ)
    # A record is one line, sent whole: one cut in two would be two lines of bad JSON.
    results = Relay(
        sock, Kind.RESULT, stamp=False, max_line=MAX_RESULT - READ_CHUNK, coalesce=False
    )
    requests = Requests(sock, child)
    exited_at: float | None = None
    while len(sel.get_map()) > 1:
        if exited_at is None and child.poll() is not None:
            exited_at = time.monotonic()
        if exited_at is not None and time.monotonic() - exited_at > STRAGGLER_SECONDS:
            break  # a grandchild holds the pipes open; the child is what we report on
        requests.beat()
        timeout = TICK_SECONDS if exited_at is None else DRAIN_TICK_SECONDS
        due = [d for d in (r.due() for r in relays.values()) if d is not None]
        if due:
            timeout = max(0.0, min(timeout, min(due) - clock()))
        events = sel.select(timeout=timeout)
        if not events or any(d <= clock() for d in due):
            flush_in_order(relays.values())
        if exited_at is not None and not events:
            break  # the child is gone and its pipes are quiet: what holds them is not ours
        read = 0
        for key, _ in events:
            if key.fileobj is sock:
                if not requests.on_readable():
                    return False
                continue
            fd = int(key.fd)
            data = os.read(fd, READ_CHUNK)
            read += len(data)
            if not data:
                sel.unregister(fd)
            elif fd == result_r:
                results.feed(data)  # progress records must arrive while the rank works
            else:
                relays[fd].feed(data)
        if 0 < read < TRICKLE_BYTES and exited_at is None:
            # A trickle (a write per line): let the pipe fill a moment rather than wake
            # for every line, which cost the rank a context switch each.
            time.sleep(TRICKLE_SECONDS)
    flush_in_order(relays.values())
    for r in (*relays.values(), results):
        r.close()
    return True


def stop_child(child: Child) -> None:
    """SIGTERM to the child and everything it started, SIGKILL to what is left 2 s later:
    a rank's own children must not outlive it (on a remote host nobody else would stop
    them). The family is taken first: once the child is gone, its children are not."""
    import subprocess

    from mlxrun.rank.snapshot import tree

    family = tree(child.pid) if child.poll() is None else []
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in family:
            try:
                os.kill(pid, sig)
            except OSError:
                pass  # gone already
        try:
            child.wait(timeout=2)
        except subprocess.TimeoutExpired:
            pass
    child.wait()


def main(argv: list[str]) -> int:
    try:
        code = run(argv)
    finally:
        remove_remote_tmpdir()
    if code < 0:  # ends the way the child ended
        signal.signal(-code, signal.SIG_DFL)
        os.kill(os.getpid(), -code)
    return code if code >= 0 else 128 - code


def remove_remote_tmpdir() -> None:
    """A remote rank's temp folder (`rank.mlx_launch`): on that host nobody else would."""
    folder = os.environ.get(REMOTE_TMPDIR_ENV)
    if folder and os.path.basename(folder).startswith("mlxrun-remote."):
        import shutil

        shutil.rmtree(folder, ignore_errors=True)


def run(argv: list[str]) -> int:
    """The rank's life: its exit code, negative for a signal (as Popen gives it)."""
    mark("agent start")
    if argv[:1] == ["--"]:
        argv = argv[1:]
    if not argv:
        print("usage: python -m mlxrun.rank.agent -- COMMAND...", file=sys.stderr)
        return 2
    try:
        sock = connect()
    except (OSError, KeyError) as e:
        print(f"mlxrun agent (rank {rank_from_env()}): cannot reach mlxrun: {e}", file=sys.stderr)
        return 1
    mark("agent connected")
    result_r, result_w = os.pipe()
    started: list[Child] = []
    pending: list[int] = []

    def forward(signum: int, _frame: object) -> None:
        if not started:
            pending.append(signum)  # before the child exists: passed on once it does
        elif started[0].poll() is None:
            started[0].send_signal(signum)

    # Installed before the child starts: a signal in between would end this agent and leave
    # the child running with nobody to stop it.
    for sig in STOP_SIGNALS:
        signal.signal(sig, forward)
    try:
        child = start_child(argv, result_w)
    except OSError as e:
        message = f"mlxrun: cannot start {argv[0]}: {e.strerror}\n".encode()
        sock.sendall(encode(Kind.STDERR, stamped(clock(), message)))
        sock.sendall(encode_json(Kind.EXIT, {"returncode": 127}))
        return 127
    started.append(child)
    os.close(result_w)
    for signum in pending:
        child.send_signal(signum)

    try:
        heard = relay(sock, child, result_r)
    except OSError:  # the connection broke: mlxrun or its host is gone
        heard = False
    if not heard:
        stop_child(child)  # nobody would hear this rank
        return 1
    code = child.wait()
    try:
        sock.sendall(encode_json(Kind.EXIT, {"returncode": code}))
        sock.close()
    except OSError:
        pass
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
