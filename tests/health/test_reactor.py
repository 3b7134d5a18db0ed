"""The epoll reactor: deadlines, cancellation, sleeps, cross-thread calls, fd bookkeeping."""

from __future__ import annotations

import os
import select
import socket
import threading
import time

import pytest

from maglev.health import reactor
from maglev.health.reactor import Deadline, Job, Reactor


def test_run_one_returns_value_and_raises_errors() -> None:
    async def ok() -> int:
        await reactor.sleep(0.01)
        return 7

    async def bad() -> int:
        raise ValueError("boom")

    assert reactor.run_one(ok(), 1.0) == 7
    with pytest.raises(ValueError, match="boom"):
        reactor.run_one(bad(), 1.0)


def test_deadline_is_thrown_into_the_coroutine_and_cleans_up() -> None:
    a, b = socket.socketpair()
    a.setblocking(False)
    seen: list[str] = []

    async def waits_forever() -> None:
        try:
            with a:
                await reactor.readable(a)  # b never writes
        except OSError:
            seen.append("oserror")  # a Deadline must not look like an OSError
            raise
        finally:
            seen.append("finally")

    t0 = time.monotonic()
    with pytest.raises(Deadline):
        reactor.run_one(waits_forever(), 0.1)
    assert 0.09 < time.monotonic() - t0 < 1.0
    assert seen == ["finally"] and a.fileno() == -1
    b.close()


def test_recv_and_send_all_over_a_socketpair() -> None:
    a, b = socket.socketpair()
    a.setblocking(False)
    payload = b"x" * (4 << 20)  # larger than the socket buffers: send_all must wait

    def reader() -> None:
        got = 0
        while got < len(payload):
            got += len(b.recv(1 << 20))
        b.sendall(b"done")

    t = threading.Thread(target=reader)
    t.start()

    async def talk() -> bytes:
        await reactor.send_all(a, payload)
        return await reactor.recv(a, 10)

    assert reactor.run_one(talk(), 5.0) == b"done"
    t.join()
    a.close()
    b.close()


def test_connect_refused_raises_oserror() -> None:
    with socket.socket() as probe_port:
        probe_port.bind(("127.0.0.1", 0))
        port = probe_port.getsockname()[1]
    s = socket.socket()
    s.setblocking(False)

    async def go() -> None:
        with s:
            await reactor.connect(s, ("127.0.0.1", port))

    with pytest.raises(ConnectionRefusedError):
        reactor.run_one(go(), 1.0)


def test_many_jobs_timers_cancel_and_threadsafe_calls() -> None:
    r = Reactor()
    done: dict[str, object] = {}

    def finished(name: str) -> object:
        def cb(_job: Job, value: object, error: BaseException | None) -> None:
            done[name] = error if error is not None else value

        return cb

    async def nap(seconds: float, value: str) -> str:
        await reactor.sleep(seconds)
        return value

    fired: list[str] = []
    r.spawn(nap(0.01, "quick"), time.monotonic() + 1, finished("quick"))
    slow = r.spawn(nap(10, "slow"), time.monotonic() + 20, finished("slow"))
    r.spawn(nap(10, "late"), time.monotonic() + 0.05, finished("late"))
    cancelled = r.call_at(time.monotonic() + 0.02, fired.append, "cancelled timer")
    cancelled.cancel()
    r.call_at(time.monotonic() + 0.03, r.cancel, slow)

    r.call_at(time.monotonic() + 0.2, r.stop)
    t = threading.Thread(target=r.call_threadsafe, args=(fired.append, "from thread"))
    t.start()
    r.run()
    t.join()
    assert done["quick"] == "quick"
    assert isinstance(done["slow"], Deadline)  # cancelled jobs still report their end
    assert isinstance(done["late"], Deadline)
    assert fired == ["from thread"]
    assert r.jobs == 0 and r.closed


def test_fd_number_reuse_within_one_job() -> None:
    # A job closes one socket and opens another that gets the same fd number (DNS does: UDP, then
    # TCP): the reactor must register the new one, not trip over the stale registration.
    async def two_sockets() -> bytes:
        a, b = socket.socketpair()
        a.setblocking(False)
        b.send(b"1")
        with a:
            first = await reactor.recv(a, 1)
        b.close()
        c, d = socket.socketpair()  # likely (not surely) reuses fd
        c.setblocking(False)
        threading.Timer(0.02, d.send, (b"2",)).start()
        with c:
            second = await reactor.recv(c, 1)
        d.close()
        return first + second

    assert reactor.run_one(two_sockets(), 2.0) == b"12"


def test_calls_after_close_are_dropped_safely() -> None:
    r = Reactor()
    r.stop()
    r.run()
    assert r.closed
    other = os.eventfd(0, os.EFD_NONBLOCK)  # may well take the closed eventfd's number
    try:
        r.call_threadsafe(print, "never")
        with pytest.raises(BlockingIOError):
            os.eventfd_read(other)  # nothing was written into someone else's descriptor
    finally:
        os.close(other)


def test_lanes_watch_and_after_pass() -> None:
    r = Reactor()
    seen: list[object] = []
    passes: list[int] = []
    r.after_pass = lambda: passes.append(r.iterations)
    lane = r.lane(0.05)
    assert r.lane(0.05) is lane  # one lane per delay
    t0 = time.monotonic()
    lane.push(t0, seen.append, "first")
    lane.push(t0 + 0.01, seen.append, "second")
    a, b = socket.socketpair()
    a.setblocking(False)
    r.watch(
        a.fileno(), select.EPOLLIN | select.EPOLLONESHOT, lambda ev: seen.append(("readable", ev))
    )
    b.send(b"x")
    r.call_at(t0 + 0.2, r.stop)
    r.run()
    assert seen[0] == ("readable", select.EPOLLIN)  # before the lane's entries were due
    assert seen[1:] == ["first", "second"]
    assert passes and passes[-1] == r.iterations  # once at the end of every pass
    r.unwatch(a.fileno())
    a.close()
    b.close()
