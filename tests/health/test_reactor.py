"""The epoll reactor: deadlines, cancellation, sleeps, cross-thread calls, fd bookkeeping.

Time-dependent behaviour runs on a `ManualClock`, one pass at a time (`run_once`), and is checked
at exact times; real sockets still deliver their I/O through epoll meanwhile.
"""

from __future__ import annotations

import os
import select
import socket
import threading
from collections.abc import Callable

import pytest

from maglev.clock import ManualClock
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

    clock = ManualClock()
    r = Reactor(clock=clock)
    ended: list[tuple[float, BaseException | None]] = []
    deadline = clock.now + 0.1
    r.spawn(waits_forever(), deadline, lambda _j, _v, e: ended.append((clock.now, e)))
    assert r.next_due() == deadline
    for t in (clock.now, deadline - 1e-6):  # not a moment before its deadline ...
        clock.now = t
        assert r.run_once() == deadline
        assert ended == [] and seen == [] and a.fileno() != -1 and r.jobs == 1
    clock.now = deadline  # ... and at exactly its deadline
    assert r.run_once() is None
    ((at, error),) = ended
    assert at == deadline and isinstance(error, Deadline) and str(error) == "deadline"
    assert seen == ["finally"] and a.fileno() == -1 and r.jobs == 0
    r.close()
    assert r.closed
    b.close()


class _Ticking(ManualClock):
    """A clock that moves 10 ms at every reading: a loop polling it sees time go by, unhurried."""

    def monotonic(self) -> float:
        self.now += 0.01
        return self.now


def test_run_one_raises_deadline_no_sooner_than_its_timeout() -> None:
    async def waits_forever() -> None:
        await reactor.sleep(3600)

    clock = _Ticking()
    t0 = clock.now
    with pytest.raises(Deadline):
        reactor.run_one(waits_forever(), 0.1, clock)
    # Its deadline was read off the clock at the start (t0 + 0.01), and it fired on a reading
    # at or past it: never sooner, whatever the machine's pace.
    assert clock.now >= t0 + 0.01 + 0.1


def test_timers_due_within_slack_run_early_in_the_same_pass() -> None:
    clock = ManualClock()
    r = Reactor(slack=0.005, clock=clock)
    t0 = clock.now
    fired: list[tuple[str, float]] = []
    r.call_at(t0 + 0.1, lambda: fired.append(("a", clock.now)))
    r.call_at(t0 + 0.103, lambda: fired.append(("b", clock.now)))
    r.call_at(t0 + 0.2, lambda: fired.append(("c", clock.now)))
    clock.now = t0 + 0.0949
    assert r.run_once() == t0 + 0.1 and fired == []
    clock.now = t0 + 0.095  # a is 5 ms away: due within slack
    assert r.run_once() == t0 + 0.103
    assert fired == [("a", t0 + 0.095)]
    clock.now = t0 + 0.1  # b is 3 ms away
    assert r.run_once() == t0 + 0.2
    assert fired == [("a", t0 + 0.095), ("b", t0 + 0.1)]
    r.close()


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

    assert reactor.run_one(talk(), 10.0) == b"done"
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
    clock = ManualClock()
    r = Reactor(clock=clock)
    t0 = clock.now
    done: dict[str, tuple[float, object]] = {}

    def finished(name: str) -> Callable[[Job, object, BaseException | None], None]:
        def cb(_job: Job, value: object, error: BaseException | None) -> None:
            done[name] = (clock.now, error if error is not None else value)

        return cb

    async def nap(seconds: float, value: str) -> str:
        await reactor.sleep(seconds)
        return value

    fired: list[str] = []
    r.spawn(nap(0.01, "quick"), t0 + 1, finished("quick"))
    slow = r.spawn(nap(10, "slow"), t0 + 20, finished("slow"))
    r.spawn(nap(10, "late"), t0 + 0.05, finished("late"))
    r.spawn(nap(10, "left"), t0 + 30, finished("left"))
    cancelled = r.call_at(t0 + 0.02, fired.append, "cancelled timer")
    cancelled.cancel()
    r.call_at(t0 + 0.03, r.cancel, slow)
    t = threading.Thread(target=r.call_threadsafe, args=(fired.append, "from thread"))
    t.start()
    t.join()
    # Step from due time to due time, as the loop would sleep from one to the next.
    nxt = r.run_once()
    assert fired == ["from thread"]  # handed in from another thread: run in the next pass
    while nxt is not None and nxt <= t0 + 0.2:
        clock.now = nxt
        nxt = r.run_once()
    assert done["quick"] == (t0 + 0.01, "quick")  # its sleep ended, well before its deadline
    when, error = done["slow"]
    assert when == t0 + 0.03 and isinstance(error, Deadline) and str(error) == "cancelled"
    when, error = done["late"]
    assert when == t0 + 0.05 and isinstance(error, Deadline) and str(error) == "deadline"
    assert "left" not in done and r.jobs == 1
    assert fired == ["from thread"]  # the cancelled timer never ran
    r.stop()
    r.run_once()  # handles the stop ...
    iterations = r.iterations
    r.run_once()  # ... after which no pass runs
    assert r.iterations == iterations
    r.close()  # ends the job still running: it sees Deadline too
    when, error = done["left"]
    assert when == t0 + 0.05 and isinstance(error, Deadline)
    assert r.jobs == 0 and r.closed
    r.close()  # harmless


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

    assert reactor.run_one(two_sockets(), 10.0) == b"12"


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
    clock = ManualClock()
    r = Reactor(clock=clock)
    seen: list[object] = []
    passes: list[int] = []
    r.after_pass = lambda: passes.append(r.iterations)
    assert r.next_due() is None
    lane = r.lane(0.05)
    assert r.lane(0.05) is lane  # one lane per delay
    t0 = clock.now
    assert lane.push(t0, seen.append, "first") == t0 + 0.05
    assert lane.push(t0 + 0.01, seen.append, "second") == t0 + 0.06
    assert r.next_due() == t0 + 0.05  # lanes count, not only timers ...
    timer = r.call_at(t0 + 0.03, seen.append, "timer")
    assert r.next_due() == t0 + 0.03  # ... the earliest of both
    timer.cancel()
    assert r.next_due() == t0 + 0.03  # a cancelled timer still wakes the loop (then is dropped)
    a, b = socket.socketpair()
    a.setblocking(False)
    r.watch(
        a.fileno(), select.EPOLLIN | select.EPOLLONESHOT, lambda ev: seen.append(("readable", ev))
    )
    b.send(b"x")
    assert r.run_once(5.0) == t0 + 0.03  # the fd is ready: the wait ends at once
    assert seen == [("readable", select.EPOLLIN)]  # before the lane's entries were due
    for t, now_seen in [
        (t0 + 0.03, []),
        (t0 + 0.0499, []),
        (t0 + 0.05, ["first"]),
        (t0 + 0.0599, ["first"]),
        (t0 + 0.06, ["first", "second"]),
    ]:
        clock.now = t
        r.run_once()
        assert seen[1:] == now_seen, t
    assert r.next_due() is None
    assert passes == [1, 2, 3, 4, 5, 6] and r.iterations == 6  # once at the end of every pass
    r.unwatch(a.fileno())
    r.close()
    a.close()
    b.close()
