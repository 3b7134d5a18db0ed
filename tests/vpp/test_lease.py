"""Reading socket-transport frames straight off a socket (a real socket pair)."""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterator

import pytest

from maglev.vpp.lease import MAX_MESSAGE, FrameReader


def frame(body: bytes) -> bytes:
    return struct.pack(">QII", 0, len(body), 0) + body


def reply(msg_id: int, context: int, retval: int) -> bytes:
    return frame(struct.pack(">HIi", msg_id, context, retval) + b"\x00" * 4)


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    a, b = socket.socketpair()
    yield a, b
    a.close()
    b.close()


def test_many_replies_per_read_and_split_frames(pair: tuple[socket.socket, socket.socket]) -> None:
    ours, vpp = pair
    r = FrameReader(ours, timeout=2)
    data = reply(50, 1, 0) + reply(50, 2, -6) + reply(51, 3, 0)
    nxt = reply(50, 4, -81)
    vpp.sendall(data + nxt[:7])  # three whole replies and the start of a fourth
    assert r.read_replies() == [(50, 1, 0), (50, 2, -6), (51, 3, 0)]
    vpp.sendall(nxt[7:20])
    vpp.sendall(nxt[20:])
    assert r.read_replies() == [(50, 4, -81)]
    assert r.buf == bytearray()


def test_short_bodies_read_as_context_zero(pair: tuple[socket.socket, socket.socket]) -> None:
    ours, vpp = pair
    r = FrameReader(ours, timeout=2)
    vpp.sendall(frame(struct.pack(">H", 77) + b"\x01") + frame(b"\x05") + reply(50, 9, 0))
    assert r.read_replies() == [(77, 0, 0), (0, 0, 0), (50, 9, 0)]


def test_timeout_close_and_oversized_frame(pair: tuple[socket.socket, socket.socket]) -> None:
    ours, vpp = pair
    assert FrameReader(ours, timeout=0.05).read_replies() is None  # nothing came
    vpp.sendall(struct.pack(">QII", 0, MAX_MESSAGE + 1, 0))
    assert FrameReader(ours, timeout=1).read_replies() is None
    a, b = socket.socketpair()
    b.close()
    assert FrameReader(a, timeout=1).read_replies() is None  # closed by the peer
    a.close()
