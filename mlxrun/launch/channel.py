"""mlxrun's end of the channel: the job's listening socket, one connection per rank's
agent, and the hello that admits each one (frames are `rank.protocol`'s).

A connection is heard only after its first frame, a hello with the job's random token
and a rank the job expects; anything else is hung up on. Strangers cannot hold the job:
a connection must say hello within HELLO_SECONDS, at most MAX_STRANGERS may be waiting to,
a flood of connections makes room for the new ones by dropping the oldest strangers (an
agent says hello within milliseconds of connecting), and a hello is parsed strictly (no
exception of the parser's reaches the supervisor).
"""

from __future__ import annotations

import json
import os
import select
import selectors
import socket
import time
from collections.abc import Callable

from mlxrun.launch.hostfile import Hostfile
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
HELLO_SECONDS = 5.0  # an agent says hello as soon as it connects
MAX_STRANGERS = 64  # connections not yet admitted; past this the oldest is dropped
_TEXT_LIMIT = 256  # host names and the like


CHANNEL_HOST_ENV = "MLXRUN_CHANNEL_HOST"


def advertised_address(spec: JobSpec) -> tuple[str, str]:
    """(bind address, address the ranks dial) for this job's channel: one address, the
    one the ranks dial, so the channel is never open on every interface of this machine.
    That is `--listen-ip` (or MLXRUN_CHANNEL_HOST), else this machine's address on the
    route to the first remote host."""
    if spec.hostfile is None or spec.hostfile.all_local:
        return "127.0.0.1", "127.0.0.1"
    address = spec.listen_ip or os.environ.get(CHANNEL_HOST_ENV) or _route_to(spec.hostfile)
    return address, address


def _route_to(hostfile: Hostfile) -> str:
    remote = next(h for h in hostfile.hosts if not h.is_local)
    family = socket.AF_INET6 if remote.ips and ":" in remote.ips[0] else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect((remote.ips[0] if remote.ips else remote.ssh, 9))  # sends nothing
            return str(probe.getsockname()[0])
        except OSError:
            return socket.gethostbyname(socket.gethostname())


def parse_hello(payload: bytes, token: str) -> Hello:
    """Checks the token in constant time; raises ProtocolError for a stranger or for a
    hello that is not exactly the agent's (types, sizes, nesting)."""
    try:
        obj = json.loads(payload)
    except (ValueError, RecursionError) as e:
        raise ProtocolError(f"malformed hello: {type(e).__name__}") from None
    if not isinstance(obj, dict) or not isinstance(obj.get("token"), str):
        raise ProtocolError("malformed hello: not an object with a token")
    import hmac  # mlxrun's side only: the agents, which never check a token, skip OpenSSL

    if not hmac.compare_digest(obj["token"].encode(), token.encode()):
        raise ProtocolError("wrong token")
    ints = [obj.get(k) for k in ("rank", "pid", "pgid")]
    texts = [obj.get(k) for k in ("host", "machine")]
    clock = obj.get("clock", 0.0)
    if not all(type(v) is int and 0 <= v < 2**31 for v in ints):
        raise ProtocolError("malformed hello: rank, pid and pgid must be small integers")
    if not all(isinstance(v, str) and len(v) <= _TEXT_LIMIT for v in texts):
        raise ProtocolError("malformed hello: host and machine must be short strings")
    if type(clock) not in (int, float) or not 0 <= clock < 1e9:
        raise ProtocolError("malformed hello: clock must be a number of seconds")
    return Hello(ints[0], ints[1], ints[2], texts[0], texts[1], float(clock))  # type: ignore[arg-type]


class Peer:
    """One agent's connection."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.since = time.monotonic()
        self.decoder = FrameDecoder(max_frame=MAX_HELLO)
        self.hello: Hello | None = None  # set once admitted
        self.exited = False  # its exit report arrived


class Channel:
    """The listening socket and its peers, registered in the supervisor's selector (the
    server with the data "accept", each peer with itself). `admit(hello)` says whether the
    job expects that rank."""

    def __init__(
        self,
        bind: str,
        dial: str,
        token: str,
        backlog: int,
        admit: Callable[[Hello], bool],
        selector: selectors.BaseSelector,
    ) -> None:
        family = socket.AF_INET6 if ":" in bind else socket.AF_INET
        self.server = socket.create_server((bind, 0), family=family, backlog=max(128, backlog))
        self.server.setblocking(False)
        self.selector = selector
        selector.register(self.server, selectors.EVENT_READ, "accept")
        self.address = f"{dial}:{self.server.getsockname()[1]}"
        self.token = token
        self.admit = admit
        self.peers: dict[int, Peer] = {}  # by socket fd

    def accept(self) -> Peer | None:
        """The new connection, or None: none was waiting, or this process is out of file
        descriptors (then the oldest stranger is dropped, to be able to go on)."""
        try:
            sock, _ = self.server.accept()
        except BlockingIOError:
            return None
        except OSError:  # EMFILE, ENFILE, ENOBUFS: a flood must not end the job
            strangers = self.strangers()
            if strangers:
                self.drop(strangers[0])
            return None
        strangers = self.strangers()
        if len(strangers) >= MAX_STRANGERS:
            self.drop(strangers[0])
        sock.setblocking(False)
        peer = Peer(sock)
        self.peers[sock.fileno()] = peer
        self.selector.register(sock, selectors.EVENT_READ, peer)
        return peer

    def strangers(self) -> list[Peer]:
        """Connections not admitted yet, oldest first."""
        return sorted((p for p in self.peers.values() if p.hello is None), key=lambda p: p.since)

    def overdue(self) -> list[Peer]:
        """Strangers that did not say hello in time: drop them."""
        now = time.monotonic()
        return [p for p in self.strangers() if now - p.since > HELLO_SECONDS]

    def waiting(self) -> bool:
        """A connection not heard yet: accepted and not admitted, or still in the listen
        queue. Agents that connected, said everything and hung up before the supervisor
        first looked (its start was slow) wait there."""
        if self.strangers():
            return True
        queued = select.poll()
        queued.register(self.server, select.POLLIN)
        return bool(queued.poll(0))

    @property
    def agents(self) -> int:
        """Admitted connections still open: the job's own."""
        return sum(p.hello is not None for p in self.peers.values())

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
        if self.peers.pop(peer.sock.fileno(), None) is not None:
            self.selector.unregister(peer.sock)
        peer.sock.close()

    def close(self) -> None:
        for peer in list(self.peers.values()):
            self.drop(peer)
        self.selector.unregister(self.server)
        self.server.close()
