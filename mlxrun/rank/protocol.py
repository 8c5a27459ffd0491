"""The protocol between the ranks and mlxrun: framed messages over TCP, and the
environment variables that tell a rank's processes where to report.

mlx.launch merges the ranks' output into one stream and splices lines of
different ranks together, so every rank's agent reports to mlxrun over a
connection of its own (mlxrun's end is `launch.channel`). A peer is heard only
after its first frame, a hello, carries the job's random token.

A frame is a 5-byte header (kind, payload length) followed by the payload. Output frames
start with the time the agent read them (8 bytes, seconds since the agent started), so that
mlxrun can show when a rank wrote each line. This module is imported on every rank: it uses
the standard library only.
"""

from __future__ import annotations

import json
import os
import socket
import struct
import sys
from enum import IntEnum
from typing import IO, Any, NamedTuple

# Take the fallbacks of the Linux-only mechanisms on Linux too (rank.procfs lists them).
PORTABLE_ENV = "MLXRUN_PORTABLE"

HEADER = struct.Struct("!BI")
MAX_HELLO = 4096
MAX_LINE = 1024 * 1024  # an output line longer than this is relayed in pieces
READ_CHUNK = 65536  # what an agent reads from its child at once
MAX_RESULT = 64 * 1024 * 1024  # one JSON record of a rank's results (1M histogram bins fit)
MAX_STACK = 4 * 1024 * 1024  # a stack report (rank.snapshot); the agent trims a longer one

TOKEN_ENV = "MLXRUN_TOKEN"  # the job's secret: the agent's hello carries it
ADDRESS_ENV = "MLXRUN_CHANNEL"  # host:port of mlxrun's listening socket
RESULT_FD_ENV = "MLXRUN_RESULT_FD"  # the pipe a rank's program writes JSON records to
RANK_ENV = "MLXRUN_RANK"  # set by mlxrun where no launcher sets a rank (one rank)
REMOTE_TMPDIR_ENV = "MLXRUN_REMOTE_TMPDIR"  # a remote rank's temp folder: its agent removes it
HEARTBEAT_ENV = "MLXRUN_HEARTBEAT"  # seconds between the agent's CPU-time reports, if set
STAMP = struct.Struct("!d")


class Kind(IntEnum):
    HELLO = 1  # JSON: token, rank, pid, pgid, host, machine, clock
    STDOUT = 2  # a stamp, then one or more whole lines (a last line may lack its newline)
    STDERR = 3
    RESULT = 4  # JSON written by mlxrun's worker
    EXIT = 5  # JSON: returncode (negative: killed by that signal)
    HEARTBEAT = 6  # JSON: cpu (seconds the rank's processes have used so far)
    STACK = 7  # JSON: what the rank is doing (rank.snapshot), as asked
    REQUEST = 8  # mlxrun to the agent, JSON: {"stack": true} asks for a STACK


class ProtocolError(Exception):
    """A peer sent something that is not a frame of this protocol."""


def encode(kind: Kind, payload: bytes) -> bytes:
    return HEADER.pack(kind, len(payload)) + payload


# The longest frame of each kind that an agent sends: anything longer is an attack or a bug.
FRAME_LIMITS = {
    Kind.HELLO: MAX_HELLO,
    Kind.STDOUT: STAMP.size + MAX_LINE + READ_CHUNK,
    Kind.STDERR: STAMP.size + MAX_LINE + READ_CHUNK,
    Kind.RESULT: MAX_RESULT,
    Kind.EXIT: 1024,
    Kind.HEARTBEAT: 1024,
    Kind.STACK: MAX_STACK,
    Kind.REQUEST: 1024,
}
MAX_FRAME = max(FRAME_LIMITS.values())


def encode_json(kind: Kind, obj: Any) -> bytes:
    return encode(kind, json.dumps(obj).encode())


class FrameDecoder:
    """Turns a byte stream into frames; keeps partial frames between feeds."""

    def __init__(self, max_frame: int = MAX_FRAME) -> None:
        self._buf = bytearray()
        self.max_frame = max_frame  # a longer frame is a ProtocolError

    def feed(self, data: bytes, most: int | None = None) -> list[tuple[Kind, bytes]]:
        """Adds `data`; returns the whole frames now at hand, at most `most` of them (the
        rest stays buffered, to be read under a limit set after them)."""
        self._buf += data
        frames: list[tuple[Kind, bytes]] = []
        offset = 0
        while len(self._buf) - offset >= HEADER.size and (most is None or len(frames) < most):
            kind, length = HEADER.unpack_from(self._buf, offset)
            if kind not in Kind._value2member_map_ or length > min(
                self.max_frame, FRAME_LIMITS[Kind(kind)]
            ):
                raise ProtocolError(f"bad frame header (kind {kind}, length {length})")
            end = offset + HEADER.size + length
            if end > len(self._buf):
                break
            frames.append((Kind(kind), bytes(self._buf[offset + HEADER.size : end])))
            offset = end
        del self._buf[:offset]
        return frames


def stamped(seconds: float, lines: bytes) -> bytes:
    return STAMP.pack(seconds) + lines


def unstamped(payload: bytes) -> tuple[float, bytes]:
    """(seconds, lines) of an output frame's payload."""
    if len(payload) < STAMP.size:
        raise ProtocolError("output frame without its time stamp")
    return STAMP.unpack_from(payload)[0], payload[STAMP.size :]


class Hello(NamedTuple):  # not a dataclass: `dataclasses` costs every agent 15 ms to import
    rank: int
    pid: int
    pgid: int
    host: str
    machine: str
    clock: float = 0.0  # the agent's stamp clock when it said hello


def machine_id() -> str:
    """Tells two processes apart by machine: same id means the same kernel (Linux's boot
    id; elsewhere, or with MLXRUN_PORTABLE=1, the host name)."""
    if os.environ.get(PORTABLE_ENV) != "1":
        try:
            with open("/proc/sys/kernel/random/boot_id") as f:
                return f.read().strip()
        except OSError:
            pass
    return socket.gethostname()


def split_address(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)


def rank_from_env(env: dict[str, str] | os._Environ[str] = os.environ) -> int:
    """The rank as the launcher set it: ring (MLX_RANK), Open MPI, PMI, or mlxrun alone."""
    for name in ("MLX_RANK", "OMPI_COMM_WORLD_RANK", "PMI_RANK", RANK_ENV):
        if env.get(name, "").isdigit():
            return int(env[name])
    return 0


class Reporter:
    """Writes a rank program's JSON records to its result stream, one per line, at once."""

    def __init__(self) -> None:
        self.out = result_stream()

    def send(self, record: dict[str, Any]) -> None:
        self.out.write(json.dumps(record) + "\n")
        self.out.flush()


def result_stream() -> IO[str]:
    """Where a rank's program writes its JSON records, one per line: the agent's result
    pipe, or stdout when run by hand."""
    fd = os.environ.get(RESULT_FD_ENV)
    return os.fdopen(int(fd), "w") if fd else sys.stdout
