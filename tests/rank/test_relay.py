"""The agent's line relay: a rank's stream cut into whole lines, sent as frames over a
real socket pair and read back with the decoder mlxrun uses."""

from __future__ import annotations

import socket
import threading

from hypothesis import given, settings
from hypothesis import strategies as st

from mlxrun.rank.agent import COALESCE_SECONDS, MAX_LINE, Relay
from mlxrun.rank.protocol import FrameDecoder, Kind, unstamped


def relayed(pieces: list[bytes], coalesce: bool = False) -> list[bytes]:
    """The frames' payloads a Relay sends for these reads, then its close (by default
    each line as soon as it is whole: how lines are cut, not how they are batched)."""
    a, b = socket.socketpair()
    payloads: list[bytes] = []
    stamps: list[float] = []

    def read() -> None:  # as mlxrun does, while the agent sends: a full socket would block it
        decoder = FrameDecoder()
        while data := b.recv(65536):
            for kind, payload in decoder.feed(data):
                if kind is Kind.STDOUT:
                    stamps.append(unstamped(payload)[0])
                    payloads.append(unstamped(payload)[1])

    with a, b:
        b.settimeout(10)
        reader = threading.Thread(target=read)
        reader.start()
        relay = Relay(a, Kind.STDOUT, coalesce=coalesce)
        for piece in pieces:
            relay.feed(piece)
        relay.close()
        a.shutdown(socket.SHUT_WR)
        reader.join(timeout=10)
        assert not reader.is_alive()
    assert stamps == sorted(stamps)  # when each frame's bytes were read, in order
    return payloads


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.binary(max_size=40).map(lambda b: b.replace(b"\x00", b"\n")), max_size=20),
    st.booleans(),
)
def test_every_frame_but_the_last_ends_a_line_and_nothing_is_lost(
    pieces: list[bytes], coalesce: bool
) -> None:
    payloads = relayed(pieces, coalesce)
    assert b"".join(payloads) == b"".join(pieces)
    assert all(p.endswith(b"\n") for p in payloads[:-1])
    assert all(payloads)


def test_a_partial_line_waits_for_its_end() -> None:
    assert relayed([b"hel", b"lo\nwor", b"ld\n"]) == [b"hello\n", b"world\n"]


def test_a_last_line_without_newline_is_sent_at_close() -> None:
    assert relayed([b"one\ntwo"]) == [b"one\n", b"two"]


def test_a_line_longer_than_the_limit_is_sent_in_pieces() -> None:
    # Held whole it would grow without bound: past MAX_LINE it goes as it is.
    chunk = b"x" * 65536
    payloads = relayed([chunk] * (MAX_LINE // len(chunk) + 1) + [b"y\n"])
    assert len(payloads) == 2
    assert len(payloads[0]) >= MAX_LINE and payloads[1].endswith(b"y\n")


def test_lines_read_close_together_go_in_one_frame() -> None:
    # A rank printing a line per write: one frame per COALESCE_SECONDS, not per line.
    assert relayed([b"a\n", b"b\n", b"c\nd", b"\n"], coalesce=True) == [b"a\nb\nc\nd\n"]


def test_held_lines_are_due_after_the_coalescing_time() -> None:
    a, b = socket.socketpair()
    with a, b:
        relay = Relay(a, Kind.STDOUT)
        assert relay.due() is None
        relay.feed(b"one\n")
        due = relay.due()
        assert due is not None and due == relay.held_at + COALESCE_SECONDS
        relay.flush()
        assert relay.due() is None
        b.settimeout(5)
        kind, payload = FrameDecoder().feed(b.recv(65536))[0]
        assert kind is Kind.STDOUT and unstamped(payload)[1] == b"one\n"
