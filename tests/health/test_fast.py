"""The callback probes of `fast`: which checks take them, reuse, cancel, partial replies.

Their outcomes on the usual servers are compared with the coroutine probes' in every
`run_probe` call (see conftest); here are the cases only they have to get right.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from maglev.health import fast, reactor
from maglev.health.checks.base import Outcome
from maglev.model import CheckType, Reason
from tests.health.conftest import LO, check, run_probe

pytestmark = pytest.mark.integration


def test_which_checks_take_the_fast_path() -> None:
    assert fast.eligible(check(CheckType.TCP, port=80))
    assert not fast.eligible(check(CheckType.TCP))  # no port: the coroutine reports it
    assert not fast.eligible(check(CheckType.TCP, port=80, send="PING"))
    assert not fast.eligible(check(CheckType.TCP, port=80, expect="x"))
    assert fast.eligible(check(CheckType.HTTP))
    assert not fast.eligible(check(CheckType.HTTP, expect_body="ok"))
    assert not fast.eligible(check(CheckType.HTTPS))
    assert not fast.eligible(check(CheckType.ICMP))


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_one_probe_object_serves_many_probes_and_cancel(tcp_server: int, blackhole: int) -> None:
    r = reactor.Reactor()
    ends: list[tuple[Outcome, float]] = []

    def done(p: fast.FastProbe, outcome: Outcome, end: float) -> None:
        ends.append((outcome, end - p.start))
        if len(ends) < 3:
            p.begin(time.monotonic())  # the next probe of the stream, from the callback
        else:
            r.stop()

    good = fast.FastProbe(r, LO, check(CheckType.TCP, port=tcp_server), done)
    good.begin(time.monotonic())
    r.run()
    assert [o.reason for o, _ in ends] == [Reason.L4OK] * 3
    assert not good.busy

    # A blackholed probe cancelled in flight ends at once, as cancelled, and closes its socket.
    r = reactor.Reactor()
    cancelled: list[Outcome] = []

    def done2(p: fast.FastProbe, outcome: Outcome, end: float) -> None:
        cancelled.append(outcome)
        r.stop()

    hang = fast.FastProbe(r, LO, check(CheckType.TCP, port=blackhole, timeout=5.0), done2)
    hang.begin(time.monotonic())
    # The probe's own socket (counting the whole process's descriptors races with the test
    # server's threads closing the earlier probes' connections).
    sock = hang._sock
    assert hang.busy and sock is not None and sock.fileno() >= 0
    r.call_at(time.monotonic() + 0.05, hang.cancel)
    t0 = time.monotonic()
    r.run()
    assert time.monotonic() - t0 < 1.0
    assert [(o.ok, o.reason) for o in cancelled] == [(False, Reason.SOCKERR)]
    assert not hang.busy
    hang.cancel()  # idle: nothing to end, `done` is not called again
    assert len(cancelled) == 1
    assert sock.fileno() == -1  # its socket is closed


@contextlib.contextmanager
def _raw_server(
    reply: list[bytes],
    gap: float = 0.05,
    first: bool = False,
    linger: float = 0.0,
    sent: threading.Event | None = None,
) -> Iterator[int]:
    """Accepts connections; reads the request, writes `reply` piece by piece, closes.

    `first`: writes the reply before reading the request. `linger`: waits before closing.
    `sent` is set once the reply is written.
    """
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(8)

    def answer(conn: socket.socket) -> None:
        with conn, contextlib.suppress(OSError):
            if not first:
                conn.recv(4096)
            for piece in reply:
                conn.sendall(piece)
                threading.Event().wait(gap)
            if sent is not None:
                sent.set()
            threading.Event().wait(linger)

    def serve() -> None:
        with contextlib.suppress(OSError):
            while True:
                conn, _ = lsock.accept()
                threading.Thread(target=answer, args=(conn,), daemon=True).start()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        yield lsock.getsockname()[1]
    finally:
        lsock.close()


def test_http_head_in_pieces() -> None:
    pieces = [b"HTTP/1.1 2", b"04 No Content\r\nServer: x\r\n", b"\r\n"]
    with _raw_server(pieces) as port:
        r = run_probe(check(CheckType.HTTP, port=port))
    assert (r.ok, r.reason, r.detail) == (True, Reason.L7OK, "HTTP 204")


def test_http_truncated_and_oversized_heads() -> None:
    with _raw_server([b"HTTP/1.1 200 OK\r\nServer: x\r\n"]) as port:
        r = run_probe(check(CheckType.HTTP, port=port))
    assert (r.ok, r.reason, r.detail) == (False, Reason.L7RSP, "truncated headers")
    with _raw_server([]) as port:
        r = run_probe(check(CheckType.HTTP, port=port))
    assert (r.ok, r.reason, r.detail) == (False, Reason.L7RSP, "empty response")
    big = [b"HTTP/1.1 200 OK\r\n"] + [b"X-Pad: " + b"p" * 1000 + b"\r\n"] * 80
    with _raw_server(big, gap=0.0) as port:
        r = run_probe(check(CheckType.HTTP, port=port))
    assert (r.ok, r.reason, r.detail) == (False, Reason.L7RSP, "headers too large")


def test_http_reply_before_the_request_is_read() -> None:
    # The whole reply is there when the probe first hears of its connect, and the peer keeps the
    # connection open: edge-triggered, no further event comes, so the probe must read what is
    # already there when it has sent its request.
    sent = threading.Event()
    with _raw_server([b"HTTP/1.1 200 OK\r\n\r\n"], gap=0, first=True, linger=1, sent=sent) as port:
        r = reactor.Reactor()
        ends: list[Outcome] = []

        def done(_p: fast.FastProbe, outcome: Outcome, _end: float) -> None:
            ends.append(outcome)
            r.stop()

        fast.FastProbe(r, LO, check(CheckType.HTTP, port=port, timeout=0.5), done).begin(
            time.monotonic()
        )
        assert sent.wait(2.0)  # before the reactor looks at the connect
        r.run()
    assert [(o.ok, o.reason, o.detail) for o in ends] == [(True, Reason.L7OK, "HTTP 200")]
