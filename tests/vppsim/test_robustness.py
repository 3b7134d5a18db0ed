"""Malformed input over the real socket never crashes or stalls the emulator, and several clients
are served side by side, each with its own index and its own replies."""

from __future__ import annotations

import contextlib
import logging
import random
import struct
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from maglev.vppsim import Emulator
from tests.vppsim.wire import HEADER, RawClient

pytestmark = pytest.mark.integration


def _assert_next_is_ping(c: RawClient, context: int) -> None:
    """Requests are answered in order, so a ping sent last proves nothing else was answered."""
    body = c.recv()
    assert body is not None
    _id, ctx, retval, _ci, _pid = c.unpack("control_ping_reply", body)
    assert (ctx, retval) == (context, 0)


def test_malformed_messages_get_no_reply(emulator: Emulator) -> None:
    c = RawClient(emulator.socket_path)
    c.handshake()
    set_weight = c.pack("lb_as_set_weight", 7, 0, bytes(16), 32, 6, 80, 0, bytes(16), 5, 0)
    c.send(struct.pack(">HII", 9999, c.index, 1))  # unknown ID
    c.send(struct.pack(">HII", 0, c.index, 2))  # ID 0
    c.send(b"")  # empty body
    c.send(b"\x00")  # shorter than a message ID
    c.send(set_weight[:30])  # truncated
    c.send(c.ping(3, client_index=0))  # client_index 0: no registration, no reply
    c.send(c.ping(4, client_index=0x80000099))  # unknown registration
    c.send(c.pack("memclnt_keepalive", 5))  # VPP answers socket clients nothing
    c.send(c.pack("cli_inband", 6) + struct.pack(">I", 100) + b"show lb")  # string overruns
    c.send(c.ping(8) + b"trailing bytes are accepted")
    _assert_next_is_ping(c, 8)
    c.send(set_weight)  # the complete message is answered: no such VIP
    body = c.recv()
    assert body is not None
    assert c.unpack("lb_as_set_weight_reply", body)[1:] == (7, -6)
    c.close()


def test_framing_split_and_batched(emulator: Emulator) -> None:
    c = RawClient(emulator.socket_path)
    c.handshake()
    data = c.frame(c.ping(1))
    for i in range(len(data)):  # one byte at a time
        c.sock.sendall(data[i : i + 1])
    _assert_next_is_ping(c, 1)
    c.sock.sendall(b"".join(c.frame(c.ping(n)) for n in range(100, 400)))
    for n in range(100, 400):
        _assert_next_is_ping(c, n)
    c.close()


def test_absurd_length_drops_only_that_client(emulator: Emulator) -> None:
    good = RawClient(emulator.socket_path)
    good.handshake()
    bad = RawClient(emulator.socket_path)
    bad.handshake()
    bad.sock.sendall(HEADER.pack(0, 2**32 - 1, 0) + b"\x00\x17")
    assert bad.recv() is None  # dropped: EOF
    good.send(good.ping(11))
    _assert_next_is_ping(good, 11)


def test_client_vanishing_mid_message(emulator: Emulator) -> None:
    good = RawClient(emulator.socket_path)
    good.handshake()
    for _ in range(5):
        gone = RawClient(emulator.socket_path)
        gone.handshake()
        frame = gone.frame(gone.ping(1))
        gone.sock.sendall(frame + frame[:20])
        gone.close()
    good.send(good.ping(12))
    _assert_next_is_ping(good, 12)


def test_fuzz_then_papi_still_works(
    emulator: Emulator, connect: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="maglev.vppsim")
    vpp = connect("before")
    assert vpp.api.lb_add_del_vip(pfx="10.0.0.1/32", protocol=6, port=80).retval == 0
    rng = random.Random(20261126)
    ids = [*range(80), 0xFFFF]
    ops_before = emulator.op_count
    for round_ in range(200):
        c = RawClient(emulator.socket_path)
        if round_ % 2:
            c.handshake()
        chunks = []
        for _ in range(rng.randint(1, 30)):
            msg_id = rng.choice(ids)
            ci = c.index if rng.random() < 0.7 else rng.getrandbits(32)
            body = struct.pack(">HII", msg_id, ci, rng.getrandbits(32))
            body += rng.randbytes(rng.randint(0, 80))
            chunks.append(HEADER.pack(rng.getrandbits(64), len(body), rng.getrandbits(32)) + body)
        if rng.random() < 0.3:  # a broken tail: garbage or an absurd length
            length = rng.choice([0, 1, 15, 2**20 + 1, 2**32 - 1])
            chunks.append(rng.randbytes(8) + struct.pack(">I", length) + rng.randbytes(20))
        with contextlib.suppress(OSError):  # dropped already: fine
            c.sock.sendall(b"".join(chunks))
        c.close()
    # Each fuzz client is dropped once its bytes are consumed; then the counters are final.
    deadline = time.monotonic() + 10
    while len(emulator.clients()) > 1 and time.monotonic() < deadline:
        threading.Event().wait(0.01)
    assert len(emulator.clients()) == 1
    assert emulator.op_count - ops_before > 300  # the garbage did reach the handlers
    # the emulator is alive, and vpp-papi (old and new connections) still works
    assert vpp.api.control_ping().retval == 0
    assert len(vpp.api.lb_vip_dump()) >= 1
    other = connect("after")
    assert other.api.show_version().retval == 0
    assert other.api.lb_as_v2_dump() is not None
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_replies_routed_by_client_index(emulator: Emulator) -> None:
    a = RawClient(emulator.socket_path)
    b = RawClient(emulator.socket_path)
    ia, ib = a.handshake("a"), b.handshake("b")
    assert ia != ib and ia & 0x80000000 and ib & 0x80000000
    b.send(b.ping(21, client_index=ia))  # sent on B, named A
    b.send(b.ping(22))
    _assert_next_is_ping(a, 21)
    _assert_next_is_ping(b, 22)


def test_sockclnt_delete_replies_then_closes(emulator: Emulator) -> None:
    c = RawClient(emulator.socket_path)
    c.handshake()
    c.send(c.pack("sockclnt_delete", 5, 0x80000077))  # unknown index
    body = c.recv()
    assert body is not None
    assert c.unpack("sockclnt_delete_reply", body)[1:] == (5, -1)
    c.send(c.pack("sockclnt_delete", 6, c.index))
    body = c.recv()
    assert body is not None
    assert c.unpack("sockclnt_delete_reply", body)[1:] == (6, 1)
    assert c.recv() is None


def test_concurrent_papi_clients(emulator: Emulator, connect: Callable[..., Any]) -> None:
    clients = [connect(f"c{i}") for i in range(4)]
    assert len({c.transport.socket_index for c in clients}) == 4
    errors: list[str] = []

    def work(i: int, vpp: Any) -> None:
        key = {"pfx": f"10.0.{i}.1/32", "protocol": 6, "port": 80}
        try:
            if vpp.api.lb_add_del_vip(**key).retval:
                errors.append(f"vip {i}")
            for n in range(40):
                r = vpp.api.lb_add_del_as_v2(**key, as_address=f"10.{i}.0.{n}", weight=n)
                if r.retval:
                    errors.append(f"as {i}/{n}: {r.retval}")
            if len(vpp.api.lb_as_v2_dump(pfx=f"::10.0.{i}.1/128", protocol=6, port=80)) != 40:
                errors.append(f"dump {i}")
        except Exception as e:  # reported below, in the test thread
            errors.append(repr(e))

    threads = [threading.Thread(target=work, args=(i, c)) for i, c in enumerate(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert len(clients[0].api.lb_as_v2_dump()) == 160
    assert emulator.write_count == 164
