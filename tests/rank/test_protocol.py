"""The frames between agents and mlxrun: decoded whole however the bytes arrive, and
strangers refused (real sockets where a connection is involved)."""

from __future__ import annotations

import json
import select
import selectors
import socket
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlxrun.launch.channel import Channel, Peer, parse_hello
from mlxrun.rank.protocol import (
    FRAME_LIMITS,
    MAX_HELLO,
    MAX_RESULT,
    FrameDecoder,
    Hello,
    Kind,
    ProtocolError,
    encode,
    encode_json,
)

frames = st.lists(
    st.tuples(st.sampled_from(list(Kind)), st.binary(max_size=300)), min_size=1, max_size=12
)


@settings(max_examples=200, deadline=None)
@given(sent=frames, cuts=st.lists(st.integers(0, 4000), max_size=10))
def test_frames_come_out_whole_however_the_stream_is_cut(sent, cuts) -> None:
    stream = b"".join(encode(kind, payload) for kind, payload in sent)
    points = sorted({min(c, len(stream)) for c in cuts} | {0, len(stream)})
    decoder = FrameDecoder()
    got = []
    for lo, hi in zip(points, points[1:], strict=False):
        got += decoder.feed(stream[lo:hi])
    assert got == sent


def test_at_most_n_frames_and_the_rest_waits() -> None:
    decoder = FrameDecoder(max_frame=4)
    stream = encode(Kind.HELLO, b"hi") + encode(Kind.STDOUT, b"a long line\n")
    assert decoder.feed(stream, most=1) == [(Kind.HELLO, b"hi")]
    decoder.max_frame = 1024  # the larger frame is read under the new limit
    assert decoder.feed(b"") == [(Kind.STDOUT, b"a long line\n")]


def test_an_oversized_or_unknown_frame_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError, match="length 5"):
        FrameDecoder(max_frame=4).feed(encode(Kind.STDOUT, b"12345"))
    with pytest.raises(ProtocolError, match="kind 99"):
        FrameDecoder().feed(bytes([99, 0, 0, 0, 0]))


@pytest.mark.parametrize(("kind", "limit"), sorted(FRAME_LIMITS.items()))
def test_each_kind_of_frame_has_the_limit_of_what_an_agent_sends(kind: Kind, limit: int) -> None:
    # An agent's output frames hold at most MAX_LINE plus one read; an exit, a heartbeat
    # or a request is a few bytes: a token holder cannot make mlxrun buffer 64 MiB of them.
    assert FrameDecoder().feed(struct.pack("!BI", kind, limit) + b"x" * limit) == [
        (kind, b"x" * limit)
    ]
    with pytest.raises(ProtocolError, match=f"length {limit + 1}"):
        FrameDecoder().feed(struct.pack("!BI", kind, limit + 1))
    assert limit <= (1024 if kind in (Kind.EXIT, Kind.HEARTBEAT, Kind.REQUEST) else MAX_RESULT)


def hello(token: str, rank: int = 0) -> bytes:
    return json.dumps(
        {"token": token, "rank": rank, "pid": 1, "pgid": 1, "host": "h", "machine": "m"}
    ).encode()


def test_a_hello_needs_the_token_and_its_fields() -> None:
    assert parse_hello(hello("secret"), "secret") == Hello(0, 1, 1, "h", "m")
    with pytest.raises(ProtocolError, match="wrong token"):
        parse_hello(hello("guess"), "secret")
    with pytest.raises(ProtocolError, match="malformed"):
        parse_hello(b'{"token": "secret"}', "secret")
    with pytest.raises(ProtocolError, match="malformed"):
        parse_hello(b"[[[", "secret")


def connected(channel: Channel) -> tuple[socket.socket, Peer]:
    host, port = channel.address.rsplit(":", 1)
    client = socket.create_connection((host, int(port)), timeout=5)
    assert select.select([channel.server], [], [], 5)[0], "no connection to accept"
    peer = channel.accept()
    assert peer is not None
    return client, peer


def receive(channel: Channel, peer: Peer, want: int = 1) -> list[tuple[Kind, bytes]] | None:
    """What the peer sent, until `want` frames or its end (None), waiting 5 s at most."""
    got: list[tuple[Kind, bytes]] = []
    while len(got) < want and select.select([peer.sock], [], [], 5)[0]:
        frames = channel.receive(peer)
        if frames is None:
            return None
        got += frames
    return got


def test_the_channel_hears_a_large_frame_that_arrives_with_the_hello() -> None:
    # The hello is read under its own small limit; a big frame in the same packet must
    # still come through under the normal one.
    admitted: list[Hello] = []
    channel = Channel(
        "127.0.0.1",
        "127.0.0.1",
        "secret",
        2,
        lambda h: admitted.append(h) or True,
        selectors.DefaultSelector(),
    )
    try:
        client, peer = connected(channel)
        big = b"x" * (4 * MAX_HELLO) + b"\n"
        client.sendall(encode(Kind.HELLO, hello("secret")) + encode(Kind.STDOUT, big))
        assert receive(channel, peer) == [(Kind.STDOUT, big)]
        assert [h.rank for h in admitted] == [0]
        client.close()
    finally:
        channel.close()


def test_the_channel_refuses_strangers() -> None:
    channel = Channel(
        "127.0.0.1", "127.0.0.1", "secret", 2, lambda h: h.rank == 0, selectors.DefaultSelector()
    )
    try:
        for first in (
            encode(Kind.HELLO, hello("guess")),  # wrong token
            encode(Kind.HELLO, hello("secret", rank=7)),  # not a rank of this job
            encode_json(Kind.STDOUT, {"token": "secret"}),  # not a hello
            encode(Kind.HELLO, b"{" * (MAX_HELLO + 1)),  # over the hello's limit
        ):
            client, peer = connected(channel)
            client.sendall(first)
            assert receive(channel, peer) is None, first[:40]
            channel.drop(peer)
            client.close()
    finally:
        channel.close()
