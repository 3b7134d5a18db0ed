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
from collections.abc import Callable, Iterator

import pytest

from maglev.clock import ManualClock
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


def _drive(r: reactor.Reactor, done: Callable[[], bool], deadline: float = 10.0) -> None:
    """Run passes of `r` (its clock standing still) until `done()`, within a real deadline."""
    give_up = time.monotonic() + deadline
    while not done():
        assert time.monotonic() < give_up, "the probe never ended"
        r.run_once(0.01)


def test_one_probe_object_serves_many_probes_and_cancel(tcp_server: int, blackhole: int) -> None:
    r = reactor.Reactor()
    ends: list[tuple[Outcome, float]] = []

    def done(p: fast.FastProbe, outcome: Outcome, end: float) -> None:
        ends.append((outcome, end - p.start))
        if len(ends) < 3:
            p.begin(r.time())  # the next probe of the stream, from the callback
        else:
            r.stop()

    good = fast.FastProbe(r, LO, check(CheckType.TCP, port=tcp_server), done)
    good.begin(r.time())
    r.run()
    assert [o.reason for o, _ in ends] == [Reason.L4OK] * 3
    assert all(duration >= 0 for _, duration in ends)
    assert not good.busy

    # A blackholed probe cancelled in flight ends then, as cancelled, and closes its socket.
    clock = ManualClock()
    r = reactor.Reactor(clock=clock)
    cancelled: list[tuple[Outcome, float]] = []

    def done2(p: fast.FastProbe, outcome: Outcome, end: float) -> None:
        cancelled.append((outcome, end))

    hang = fast.FastProbe(r, LO, check(CheckType.TCP, port=blackhole, timeout=5.0), done2)
    t0 = clock.now
    hang.begin(r.time())
    assert hang.start == t0
    # The probe's own socket (counting the whole process's descriptors races with the test
    # server's threads closing the earlier probes' connections).
    fd = hang._fd
    assert hang.busy and fd >= 0
    inode = os.readlink(f"/proc/self/fd/{fd}")
    assert inode.startswith("socket:")
    r.call_at(t0 + 0.05, hang.cancel)
    assert r.next_due() == t0 + 0.05  # the cancel comes before the deadline (in the lane)
    clock.now = t0 + 0.05
    assert r.run_once() == t0 + 5.0  # (the deadline's entry stays queued, now stale)
    assert [(o.ok, o.reason, o.detail, end) for o, end in cancelled] == [
        (False, Reason.SOCKERR, "cancelled", t0 + 0.05)  # at the cancel, not at the deadline
    ]
    assert not hang.busy
    assert hang._fd == -1
    # Its socket is closed (the number may already serve another file).
    with contextlib.suppress(FileNotFoundError):
        assert os.readlink(f"/proc/self/fd/{fd}") != inode
    hang.cancel()  # idle: nothing to end, `done` is not called again
    clock.now = t0 + 5.0  # nor by the stale deadline
    assert r.run_once() is None
    assert len(cancelled) == 1
    r.close()


def test_deadline_ends_the_probe_at_exactly_start_plus_timeout(blackhole: int) -> None:
    clock = ManualClock()
    r = reactor.Reactor(clock=clock)
    ends: list[tuple[Outcome, float]] = []
    c = check(CheckType.TCP, port=blackhole, timeout=0.3)
    hang = fast.FastProbe(r, LO, c, lambda _p, o, end: ends.append((o, end)))
    t0 = clock.now
    hang.begin(t0)
    assert r.next_due() == t0 + 0.3
    clock.now = t0 + 0.3 - 1e-6
    r.run_once()
    assert ends == [] and hang.busy
    clock.now = t0 + 0.3
    r.run_once()
    assert ends == [(Outcome(False, Reason.L4TOUT, "connect timeout after 0.3s"), t0 + 0.3)]
    assert not hang.busy
    r.close()


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
    # already there when it has sent its request. (On a manual clock: however long the server
    # takes, the deadline cannot come first.)
    sent = threading.Event()
    with _raw_server([b"HTTP/1.1 200 OK\r\n\r\n"], gap=0, first=True, linger=1, sent=sent) as port:
        r = reactor.Reactor(clock=ManualClock())
        ends: list[Outcome] = []

        def done(_p: fast.FastProbe, outcome: Outcome, _end: float) -> None:
            ends.append(outcome)

        fast.FastProbe(r, LO, check(CheckType.HTTP, port=port, timeout=0.5), done).begin(r.time())
        assert sent.wait(10.0)  # before the reactor looks at the connect
        _drive(r, lambda: bool(ends))
        r.close()
    assert [(o.ok, o.reason, o.detail) for o in ends] == [(True, Reason.L7OK, "HTTP 200")]
