"""A minimal epoll reactor: one per check worker thread, driving probe coroutines and timers.

Why not asyncio: a probe is a handful of syscalls, and asyncio wraps each socket operation in a
future, a task step, a selector registration and its removal; measured, that overhead made a
probe cost several times HAProxy's CPU. This reactor keeps only what probes need:

- Probe coroutines (`async def`) await three things: `readable(fd)`, `writable(fd)` and `sleep()`.
  They yield a small request object to the driver; nothing else is awaitable here. The helpers
  `connect`, `recv`, `send_all` build socket I/O on top of them.
- File descriptors are registered EPOLLONESHOT: each wait arms the fd once (one epoll_ctl), an
  event disarms it, and closing a socket drops it from the epoll set by itself.
- Each job has a deadline; when it passes, `Deadline` (a BaseException, so a probe's
  `except OSError` cannot swallow it) is thrown into the coroutine, whose `with` blocks close
  its sockets on the way out.
- Timers are a heap with lazy cancellation; other threads hand work in through `call_threadsafe`
  (a deque and an eventfd).
- `after_pass`, when set, runs at the end of every loop pass (a worker flushes its results).
- Time comes from an injected `maglev.clock.Clock` (`SystemClock` by default), read through
  `Reactor.time` (its `monotonic`, bound once: with `SystemClock` that is `time.monotonic`
  itself, no Python call in between). Timers, lanes, deadlines and the wait for the next due
  entry (`next_due`) all use it, and so do the probes, which take their start and end times from
  `Reactor.time`.
- `run` serves until `stop()`. `run_once(timeout)` runs a single pass, waiting at most `timeout`
  real seconds for I/O (0: not at all), so a test drives a reactor on a `ManualClock` from its own
  thread: move the clock to `next_due()`, run a pass, repeat; the I/O of real sockets still
  arrives through epoll meanwhile. Whoever drives a reactor that way `close()`s it at the end.
- Besides coroutines, a descriptor can have a plain callback (`watch`): the probes of `fast`
  drive their sockets that way, with no coroutine, job or timer object per probe. Their
  deadlines go into a `Lane`: a FIFO of (when, fn, arg) for one fixed delay, so its entries come
  in time order and need no heap.

Everything except `call_threadsafe` and `stop` must be called on the reactor's own thread.
"""

from __future__ import annotations

import collections
import contextlib
import errno
import heapq
import itertools
import os
import select
import socket
import threading
from collections.abc import Callable, Coroutine, Generator
from typing import Any

from maglev.clock import Clock, SystemClock

_IN = select.EPOLLIN | select.EPOLLONESHOT
_OUT = select.EPOLLOUT | select.EPOLLONESHOT


class Deadline(BaseException):
    """Thrown into a probe coroutine when its time is up (or the worker stops)."""


class _Io:
    __slots__ = ("events", "fd", "obj")

    def __init__(self, obj: socket.socket | int, events: int) -> None:
        self.obj = obj
        self.fd = obj if isinstance(obj, int) else obj.fileno()
        self.events = events

    def __await__(self) -> Generator[_Io | _Sleep, None, None]:
        yield self


class _Sleep:
    __slots__ = ("seconds",)

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def __await__(self) -> Generator[_Io | _Sleep, None, None]:
        yield self


def readable(obj: socket.socket | int) -> _Io:
    """Wait until a socket (or a raw fd, e.g. a pidfd) is readable."""
    return _Io(obj, _IN)


def writable(obj: socket.socket | int) -> _Io:
    return _Io(obj, _OUT)


def sleep(seconds: float) -> _Sleep:
    return _Sleep(seconds)


Probe = Coroutine[_Io | _Sleep, None, Any]


async def connect(sock: socket.socket, addr: tuple[Any, ...]) -> None:
    """Connect a non-blocking socket; raises OSError like a blocking connect would."""
    err = sock.connect_ex(addr)
    if err in (errno.EINPROGRESS, errno.EAGAIN):
        await writable(sock)
        err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
    if err:
        raise OSError(err, os.strerror(err))


async def recv(sock: socket.socket, n: int) -> bytes:
    while True:
        try:
            return sock.recv(n)
        except BlockingIOError:
            await readable(sock)


async def send_all(sock: socket.socket, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            view = view[sock.send(view) :]
        except BlockingIOError:
            await writable(sock)


class _Timer:
    __slots__ = ("args", "cancelled", "fn", "when")

    def __init__(self, when: float, fn: Callable[..., object], args: tuple[object, ...]) -> None:
        self.when = when
        self.fn = fn
        self.args = args
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class Lane:
    """Calls due `delay` after they were queued; FIFO, so their times never decrease.

    Cancellation is up to the callee (it ignores a stale `arg`): entries are never removed early.
    """

    __slots__ = ("delay", "items")

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.items: collections.deque[tuple[float, Callable[[Any], object], Any]] = (
            collections.deque()
        )

    def push(self, now: float, fn: Callable[[Any], object], arg: Any) -> float:
        """Queue `fn(arg)` for `now + delay` (`now` must not go back); returns that time."""
        when = now + self.delay
        self.items.append((when, fn, arg))
        return when


class Job:
    """One running probe coroutine."""

    __slots__ = ("coro", "done", "fds", "finished", "timer", "waiting")

    def __init__(
        self, coro: Probe, done: Callable[[Job, object, BaseException | None], None]
    ) -> None:
        self.coro = coro
        self.done = done
        self.fds: dict[int, socket.socket | int] = {}  # fd -> what this job registered
        self.timer: _Timer | None = None
        self.waiting = -1  # fd waited on, -1 for none
        self.finished = False


class Reactor:
    def __init__(self, slack: float = 0.0, *, clock: Clock | None = None) -> None:
        self.slack = slack
        self.clock = clock or SystemClock()
        self.time: Callable[[], float] = self.clock.monotonic  # bound once: read on every probe
        self.iterations = 0
        self._ep = select.epoll()
        self._wake = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self._ep.register(self._wake, select.EPOLLIN)
        self._wake_lock = threading.Lock()
        self._calls: collections.deque[tuple[Callable[..., object], tuple[object, ...]]] = (
            collections.deque()
        )
        self._timers: list[tuple[float, int, _Timer]] = []
        self._seq = itertools.count()
        self._owner: dict[int, Job] = {}
        self._handlers: dict[int, Callable[[int], object]] = {}
        self._lanes: dict[float, Lane] = {}
        self._jobs: set[Job] = set()
        self._stopping = False
        self.closed = False
        self.after_pass: Callable[[], object] | None = None  # called at the end of each pass

    # --- any thread ---------------------------------------------------------------------

    def call_threadsafe(self, fn: Callable[..., object], *args: object) -> None:
        self._calls.append((fn, args))
        # Under the lock: once closed, the eventfd's number may belong to another file.
        with self._wake_lock:
            if not self.closed:
                os.eventfd_write(self._wake, 1)

    def stop(self) -> None:
        self.call_threadsafe(self._request_stop)

    # --- reactor thread -----------------------------------------------------------------

    def _request_stop(self) -> None:
        self._stopping = True

    def call_at(self, when: float, fn: Callable[..., object], *args: object) -> _Timer:
        t = _Timer(when, fn, args)
        heapq.heappush(self._timers, (when, next(self._seq), t))
        return t

    def lane(self, delay: float) -> Lane:
        """The lane of calls due `delay` after they are queued (shared by every caller)."""
        lane = self._lanes.get(delay)
        if lane is None:
            lane = self._lanes[delay] = Lane(delay)
        return lane

    def watch(self, fd: int, events: int, handler: Callable[[int], object]) -> None:
        """Call `handler(events)` when `fd` (a descriptor new to epoll) gets `events`.

        The caller must `unwatch` before it closes `fd` (closing drops it from epoll).
        """
        self._ep.register(fd, events)
        self._handlers[fd] = handler

    def handle(self, fd: int, handler: Callable[[int], object]) -> None:
        """Like `watch`, for a descriptor its caller added to the epoll set itself (`epoll`)."""
        self._handlers[fd] = handler

    @property
    def epoll(self) -> select.epoll:
        """The reactor's epoll set (for `handle`); the reactor's thread only."""
        return self._ep

    def unwatch(self, fd: int) -> None:
        self._handlers.pop(fd, None)

    def spawn(
        self,
        coro: Probe,
        deadline: float,
        done: Callable[[Job, object, BaseException | None], None],
    ) -> Job:
        """Start `coro` now; `done(job, value, error)` is called when it ends."""
        job = Job(coro, done)
        self._jobs.add(job)
        job.timer = self.call_at(deadline, self._expire, job)
        self._step(job, None)
        return job

    def cancel(self, job: Job) -> None:
        """End a job now (its coroutine sees `Deadline`); `done` is still called."""
        if not job.finished:
            self._step(job, Deadline("cancelled"))

    def _expire(self, job: Job) -> None:
        job.timer = None
        if not job.finished:
            self._step(job, Deadline("deadline"))

    def _step(self, job: Job, exc: BaseException | None) -> None:
        job.waiting = -1
        try:
            req = job.coro.send(None) if exc is None else job.coro.throw(exc)
        except StopIteration as e:
            self._finish(job, e.value, None)
            return
        except BaseException as e:
            self._finish(job, None, e)
            return
        if isinstance(req, _Io):
            fd = req.fd
            try:
                self._arm(job, fd, req.obj, req.events)
            except OSError as e:
                self._step(job, e)
                return
            job.waiting = fd
        else:
            self.call_at(self.time() + req.seconds, self._wake_job, job)

    def _wake_job(self, job: Job) -> None:
        if not job.finished:
            self._step(job, None)

    def _arm(self, job: Job, fd: int, obj: socket.socket | int, events: int) -> None:
        if job.fds.get(fd) is obj:
            try:
                self._ep.modify(fd, events)
                return
            except FileNotFoundError:
                pass  # that fd was closed and its number reused by this job: register anew
        try:
            self._ep.register(fd, events)
        except FileExistsError:
            self._ep.modify(fd, events)
        job.fds[fd] = obj
        self._owner[fd] = job

    def _finish(self, job: Job, value: object, error: BaseException | None) -> None:
        job.finished = True
        self._jobs.discard(job)
        if job.timer is not None:
            job.timer.cancel()
            job.timer = None
        for fd, obj in job.fds.items():
            if self._owner.get(fd) is job:
                del self._owner[fd]
                # Normally the probe closed its socket already and epoll forgot it by itself.
                if isinstance(obj, int) or obj.fileno() != -1:
                    with contextlib.suppress(OSError):
                        self._ep.unregister(fd)
        job.done(job, value, error)

    def next_due(self) -> float | None:
        """When the earliest timer or lane entry is due (None: none is pending).

        The loop sleeps until then; a test on a `ManualClock` moves the clock there. Cancelled
        timers and stale lane entries count: they are dropped only when due, so the loop wakes
        for them too (cheaper than removing them early) and a test stepping here sees the very
        passes the loop would run.
        """
        timers = self._timers
        nxt = timers[0][0] if timers else None
        for lane in self._lanes.values():
            items = lane.items
            if items and (nxt is None or items[0][0] < nxt):
                nxt = items[0][0]
        return nxt

    def run(self) -> None:
        """Serve until `stop()`; then end every job (they see `Deadline`) and close."""
        try:
            self._serve(None)
        finally:
            self.close()

    def run_once(self, timeout: float = 0.0) -> float | None:
        """Run one pass of the loop, waiting at most `timeout` real seconds for I/O; returns
        `next_due()` after it.

        For tests driving the reactor from their own thread (its clock usually a `ManualClock`):
        I/O that is ready is handled, then calls handed in, then every timer and lane entry due
        by the clock (within `slack`), then `after_pass`. Runs no pass once `stop()` was handled.
        """
        self._serve(timeout)
        return self.next_due()

    def _serve(self, once: float | None) -> None:
        """The loop: passes until `stop()`, or a single pass waiting at most `once` seconds."""
        ep, timers, owner, calls = self._ep, self._timers, self._owner, self._calls
        handlers, lanes = self._handlers, self._lanes
        wake = self._wake
        now = self.time
        next_due = self.next_due
        while not self._stopping:
            self.iterations += 1
            if calls:
                timeout = 0.0
            else:
                nxt = next_due()
                timeout = 1.0 if nxt is None else max(0.0, nxt - now())
                if once is not None and timeout > once:
                    timeout = once
            for fd, ev in ep.poll(timeout):
                handler = handlers.get(fd)
                if handler is not None:
                    handler(ev)
                    continue
                if fd == wake:
                    with contextlib.suppress(BlockingIOError):
                        os.eventfd_read(wake)
                    continue
                job = owner.get(fd)
                if job is not None and job.waiting == fd:
                    self._step(job, None)
            while calls:
                fn, args = calls.popleft()
                fn(*args)
            # Timers due within `slack` run now too: fewer wake-ups under load, each one a
            # syscall pair and a context switch, for at most `slack` early.
            horizon = now() + self.slack
            while timers and timers[0][0] <= horizon:
                t = heapq.heappop(timers)[2]
                if not t.cancelled:
                    t.fn(*t.args)
            for lane in lanes.values():
                items = lane.items
                while items and items[0][0] <= horizon:
                    _when, lfn, arg = items.popleft()
                    lfn(arg)
            if self.after_pass is not None:
                self.after_pass()
            if once is not None:
                return

    def close(self) -> None:
        """End every job (they see `Deadline`), then release the epoll set and the eventfd.

        `run` does this when it returns; whoever drives a reactor with `run_once` calls it.
        Callback probes (`watch`) are their owners' to end first. Closing twice is harmless.
        """
        if self.closed:
            return
        for job in list(self._jobs):
            self.cancel(job)
        self._close()

    def _close(self) -> None:
        with self._wake_lock:
            self.closed = True
            self._ep.close()
            os.close(self._wake)

    @property
    def jobs(self) -> int:
        return len(self._jobs)


def run_one(coro: Probe, timeout: float, clock: Clock | None = None) -> Any:
    """Drive one coroutine to its end on a private reactor (tests, one-off probes)."""
    r = Reactor(clock=clock)
    out: list[tuple[object, BaseException | None]] = []

    def done(_job: Job, value: object, error: BaseException | None) -> None:
        out.append((value, error))
        r._stopping = True

    r.spawn(coro, r.time() + timeout, done)
    if not out:
        r.run()
    else:
        r._close()
    value, error = out[0]
    if error is not None:
        raise error
    return value
