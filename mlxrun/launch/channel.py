"""mlxrun's end of the channel: the job's listening socket, one connection per rank's
agent, and the hello that admits each one (frames are `rank.protocol`'s).

A connection is heard only after its first frame, a hello with the job's random token
and a rank the job expects; anything else is hung up on.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Callable

from mlxrun.launch.job import JobSpec
from mlxrun.rank.protocol import (
    MAX_FRAME,
    MAX_HELLO,
    FrameDecoder,
    Hello,
    Kind,
    ProtocolError,
    encode_json,
)

Frames = list[tuple[Kind, bytes]]
RECV_BYTES = 262144


def advertised_address(spec: JobSpec) -> tuple[str, str]:
    """(bind address, address the ranks dial) for this job's channel."""
    if spec.hostfile is None or spec.hostfile.all_local:
        return "127.0.0.1", "127.0.0.1"
    override = os.environ.get("MLXRUN_CHANNEL_HOST")
    if override:
        return "0.0.0.0", override
    remote = next(h for h in spec.hostfile.hosts if not h.is_local)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect((remote.ips[0] if remote.ips else remote.ssh, 9))  # sends nothing
            return "0.0.0.0", str(probe.getsockname()[0])
        except OSError:
            return "0.0.0.0", socket.gethostbyname(socket.gethostname())


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
            float(obj.get("clock", 0.0)),
        )
    except (ValueError, KeyError, TypeError) as e:
        raise ProtocolError(f"malformed hello: {e}") from e
    if not ok:
        raise ProtocolError("wrong token")
    return hello


class Peer:
    """One agent's connection."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.decoder = FrameDecoder(max_frame=MAX_HELLO)
        self.hello: Hello | None = None  # set once admitted
        self.exited = False  # its exit report arrived


class Channel:
    """The listening socket and its peers. `admit(hello)` says whether the job expects
    that rank; the supervisor's selector calls `accept` and `receive` when they are ready."""

    def __init__(
        self, bind: str, dial: str, token: str, backlog: int, admit: Callable[[Hello], bool]
    ) -> None:
        self.server = socket.create_server((bind, 0), backlog=max(128, backlog))
        self.server.setblocking(False)
        self.address = f"{dial}:{self.server.getsockname()[1]}"
        self.token = token
        self.admit = admit
        self.peers: dict[int, Peer] = {}  # by socket fd

    def accept(self) -> Peer | None:
        try:
            sock, _ = self.server.accept()
        except BlockingIOError:
            return None
        sock.setblocking(False)
        peer = Peer(sock)
        self.peers[sock.fileno()] = peer
        return peer

    def receive(self, peer: Peer) -> Frames | None:
        """The frames that arrived from an admitted peer; None once it is gone (it hung
        up, or it is a stranger or a broken agent): then `drop` it."""
        try:
            data = peer.sock.recv(RECV_BYTES)
        except BlockingIOError:
            return []
        except OSError:
            data = b""
        if data:
            try:
                return self._frames(peer, data)
            except ProtocolError:
                pass
        return None

    def _frames(self, peer: Peer, data: bytes) -> Frames:
        if peer.hello is None:
            first = peer.decoder.feed(data, most=1)  # the rest waits for the larger limit
            if not first:
                return []
            kind, payload = first[0]
            if kind is not Kind.HELLO:
                raise ProtocolError("first frame is not a hello")
            hello = parse_hello(payload, self.token)
            if not self.admit(hello):
                raise ProtocolError(f"unexpected rank {hello.rank}")
            peer.hello = hello
            peer.decoder.max_frame = MAX_FRAME
            data = b""
        return peer.decoder.feed(data)

    def send(self, peer: Peer, kind: Kind, obj: object) -> None:
        """A small request to an agent; one that cannot take it is gone or going."""
        try:
            peer.sock.send(encode_json(kind, obj))
        except OSError:
            pass

    def drop(self, peer: Peer) -> None:
        self.peers.pop(peer.sock.fileno(), None)
        peer.sock.close()

    def close(self) -> None:
        for peer in list(self.peers.values()):
            self.drop(peer)
        self.server.close()
