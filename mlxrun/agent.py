"""The agent that runs on every rank: starts the rank's command as its child
and relays the child's stdout, stderr, results and exit status to mlxrun.

mlx.launch starts `python -m mlxrun.agent -- CMD...` once per rank. The child
inherits the rank's environment (MLX_RANK, MLX_HOSTFILE, ...) so MLX sees no
difference; its stdout and stderr are pipes read here, so output that C code
writes straight to file descriptors 1 and 2 is heard too. A worker may write
JSON results to the file descriptor named by MLXRUN_RESULT_FD.

Only the standard library is imported: the agent's start-up is every job's.
"""

from __future__ import annotations

import os
import selectors
import signal
import socket
import subprocess
import sys
import time
from typing import Any

from mlxrun.channel import ADDRESS_ENV, TOKEN_ENV, Kind, encode, encode_json, machine_id
from mlxrun.channel import split_address as _split

RESULT_FD_ENV = "MLXRUN_RESULT_FD"
RANK_ENV = "MLXRUN_RANK"
MAX_LINE = 1024 * 1024  # a longer line is relayed in pieces rather than held without bound
CHUNK = 65536
STRAGGLER_SECONDS = 1.0  # how long to keep reading after the child exited


def rank_from_env(env: dict[str, str] | os._Environ[str] = os.environ) -> int:
    for name in ("MLX_RANK", "OMPI_COMM_WORLD_RANK", "PMI_RANK", RANK_ENV):
        if env.get(name, "").isdigit():
            return int(env[name])
    return 0


class Relay:
    """Cuts one of the child's streams into whole lines and sends them as frames."""

    def __init__(self, sock: socket.socket, kind: Kind) -> None:
        self.sock = sock
        self.kind = kind
        self.pending = b""

    def feed(self, data: bytes) -> None:
        buf = self.pending + data
        cut = buf.rfind(b"\n") + 1
        if cut == 0 and len(buf) >= MAX_LINE:
            cut = len(buf)
        if cut:
            self.sock.sendall(encode(self.kind, buf[:cut]))
        self.pending = buf[cut:]

    def close(self) -> None:
        if self.pending:
            self.sock.sendall(encode(self.kind, self.pending))
            self.pending = b""


def connect() -> socket.socket:
    host, port = _split(os.environ[ADDRESS_ENV])
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
    }
    sock.sendall(encode_json(Kind.HELLO, hello))
    return sock


def child_env(result_fd: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in (TOKEN_ENV, ADDRESS_ENV)}
    env["PYTHONUNBUFFERED"] = "1"
    env[RESULT_FD_ENV] = str(result_fd)
    return env


def relay(sock: socket.socket, child: subprocess.Popen[bytes], result_r: int) -> bool:
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
    results = Relay(sock, Kind.RESULT)
    exited_at: float | None = None
    while len(sel.get_map()) > 1:
        if exited_at is None and child.poll() is not None:
            exited_at = time.monotonic()
        if exited_at is not None and time.monotonic() - exited_at > STRAGGLER_SECONDS:
            break  # a grandchild holds the pipes open; the child is what we report on
        for key, _ in sel.select(timeout=0.2):
            if key.fileobj is sock:
                if not sock.recv(1):
                    return False
                continue
            fd = int(key.fd)
            data = os.read(fd, CHUNK)
            if not data:
                sel.unregister(fd)
            elif fd == result_r:
                results.feed(data)  # progress records must arrive while the rank works
            else:
                relays[fd].feed(data)
    for r in (*relays.values(), results):
        r.close()
    return True


def stop_child(child: subprocess.Popen[bytes]) -> None:
    if child.poll() is None:
        child.terminate()
        try:
            child.wait(timeout=2)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def main(argv: list[str]) -> int:
    if argv[:1] == ["--"]:
        argv = argv[1:]
    if not argv:
        print("mlxrun.agent: usage: python -m mlxrun.agent -- COMMAND...", file=sys.stderr)
        return 2
    try:
        sock = connect()
    except (OSError, KeyError) as e:
        print(f"mlxrun agent (rank {rank_from_env()}): cannot reach mlxrun: {e}", file=sys.stderr)
        return 1
    result_r, result_w = os.pipe()
    try:
        child = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            pass_fds=(result_w,),
            env=child_env(result_w),
        )
    except OSError as e:
        sock.sendall(
            encode(Kind.STDERR, f"mlxrun: cannot start {argv[0]}: {e.strerror}\n".encode())
        )
        sock.sendall(encode_json(Kind.EXIT, {"returncode": 127}))
        return 127
    os.close(result_w)

    def forward(signum: int, _frame: object) -> None:
        if child.poll() is None:
            child.send_signal(signum)

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, forward)

    if not relay(sock, child, result_r):
        stop_child(child)  # mlxrun is gone: nobody would hear this rank
        return 1
    code = child.wait()
    try:
        sock.sendall(encode_json(Kind.EXIT, {"returncode": code}))
        sock.close()
    except OSError:
        pass
    if code < 0:
        signal.signal(-code, signal.SIG_DFL)
        os.kill(os.getpid(), -code)
    return code if code >= 0 else 128 - code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
