"""The channel between the ranks and mlxrun: framed messages over TCP.

mlx.launch merges the ranks' output into one stream and splices lines of
different ranks together, so every rank's agent reports to mlxrun over a
connection of its own. The listening socket is chosen per job and a peer is
heard only after its first frame carries the job's random token.

A frame is a 5-byte header (kind, payload length) followed by the payload.
This module is imported on every rank: it uses the standard library only.
"""

from __future__ import annotations

import json
import socket
import struct
from enum import IntEnum
from typing import Any, NamedTuple

HEADER = struct.Struct("!BI")
MAX_FRAME = 64 * 1024 * 1024
MAX_HELLO = 4096

TOKEN_ENV = "MLXRUN_TOKEN"
ADDRESS_ENV = "MLXRUN_CHANNEL"


class Kind(IntEnum):
    HELLO = 1  # JSON: token, rank, pid, pgid, host, machine
    STDOUT = 2  # one or more whole lines (a last line may lack its newline)
    STDERR = 3
    RESULT = 4  # JSON written by mlxrun's worker
    EXIT = 5  # JSON: returncode (negative: killed by that signal)


class ProtocolError(Exception):
    """A peer sent something that is not a frame of this protocol."""


def encode(kind: Kind, payload: bytes) -> bytes:
    return HEADER.pack(kind, len(payload)) + payload


def encode_json(kind: Kind, obj: Any) -> bytes:
    return encode(kind, json.dumps(obj).encode())


class FrameDecoder:
    """Turns a byte stream into frames; keeps partial frames between feeds."""

    def __init__(self, max_frame: int = MAX_FRAME) -> None:
        self._buf = bytearray()
        self._max = max_frame

    def feed(self, data: bytes) -> list[tuple[Kind, bytes]]:
        self._buf += data
        frames: list[tuple[Kind, bytes]] = []
        offset = 0
        while len(self._buf) - offset >= HEADER.size:
            kind, length = HEADER.unpack_from(self._buf, offset)
            if kind not in Kind._value2member_map_ or length > self._max:
                raise ProtocolError(f"bad frame header (kind {kind}, length {length})")
            end = offset + HEADER.size + length
            if end > len(self._buf):
                break
            frames.append((Kind(kind), bytes(self._buf[offset + HEADER.size : end])))
            offset = end
        del self._buf[:offset]
        return frames


class Hello(NamedTuple):  # not a dataclass: `dataclasses` costs every agent 15 ms to import
    rank: int
    pid: int
    pgid: int
    host: str
    machine: str


def parse_hello(payload: bytes, token: str) -> Hello:
    """Checks the token in constant time; raises ProtocolError for a stranger."""
    try:
        import hmac  # mlxrun's side only: the agents, which never check a token, skip OpenSSL

        obj = json.loads(payload)
        ok = hmac.compare_digest(str(obj["token"]).encode(), token.encode())
        hello = Hello(
            int(obj["rank"]),
            int(obj["pid"]),
            int(obj["pgid"]),
            str(obj["host"]),
            str(obj["machine"]),
        )
    except (ValueError, KeyError, TypeError) as e:
        raise ProtocolError(f"malformed hello: {e}") from e
    if not ok:
        raise ProtocolError("wrong token")
    return hello


def machine_id() -> str:
    """Tells two processes apart by machine: same id means the same kernel."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip()
    except OSError:
        return socket.gethostname()


def split_address(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)
