"""One check worker: a thread `maglev-check-<n>` running a reactor of probe streams.

A worker owns its streams (one per `ProbeTarget`), their timers and sockets, and its counters.
Every probe runs on the worker's `reactor.Reactor`, so a blackholed backend costs a socket and a
deadline entry, never a thread: hundreds of probes can be in flight on one worker. Plain TCP
connects and plain HTTP checks run as `fast.FastProbe` callbacks (the busy path, kept lean);
every other check is a coroutine from `checks`. Other
threads talk to a worker only through `call()` (which hands the call to the reactor thread) and
read its counters (`stats`) under their lock.

Time: a worker reads its (injected) `Clock` through its reactor, for due times, probe start and
end times and lateness. A worker whose thread is never started can be driven from the calling
thread instead, one reactor pass at a time (`run_once`): tests do that on a `ManualClock` and
check the schedule exactly (see `reactor`).

Results are put on the reconciler's queue without blocking; when it is full the result is
dropped and counted (`dropped`): the stream probes again at its next interval, which heals it.

Priority: a worker sets its own thread's nice value (`health.priority`, -5 by default) so that
probes start on time when other work competes for the CPU; probes are short and cheap, so a
higher priority costs others little. Raising priority needs CAP_SYS_NICE (root has it); without
it the worker says so once and runs at the priority it has. Exec probes' children inherit it.
"""

from __future__ import annotations

import bisect
import functools
import logging
import os
import queue
import random
import threading
from collections import Counter, deque
from collections.abc import Callable
from typing import Protocol

from maglev.clock import Clock
from maglev.health import checks, fast, reactor
from maglev.health.checks.base import Outcome, Progress
from maglev.health.state import Phase
from maglev.model import CheckType, HealthCheck, ProbeResult, ProbeTarget, Reason, probe_result

log = logging.getLogger(__name__)

LATENESS_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, float("inf"))
"""Upper bounds (seconds) of the lateness histogram (start of probe minus its due time)."""

ProbeKey = tuple[CheckType, bool, Reason]

SLACK = 0.005
"""Seconds a probe may start before it is due, to share a loop pass with others."""


class ResultSink(Protocol):
    def put_nowait(self, item: ProbeResult, /) -> None: ...


def put_all(sink: ResultSink, items: list[ProbeResult]) -> int:
    """Queue `items` without blocking; returns how many did not fit (dropped).

    Into a `queue.Queue`: under one lock round with one wake-up for the lot (the queue's own
    `put_nowait` takes the lock and notifies its waiters once per item, a few microseconds of
    Python each, at thousands of results a second). The consumer is the reconciler alone, so
    one notification wakes everyone there is to wake. Any other sink: item by item.
    """
    if not isinstance(sink, queue.Queue):
        dropped = 0
        for item in items:
            try:
                sink.put_nowait(item)
            except queue.Full:
                dropped += 1
        return dropped
    with sink.not_full:
        room = len(items) if sink.maxsize <= 0 else max(0, sink.maxsize - sink._qsize())
        taken = items if room >= len(items) else items[:room]
        if taken:
            if type(sink)._put is queue.Queue._put:  # a FIFO: its deque, extended in one go
                sink.queue.extend(taken)
            else:
                for item in taken:
                    sink._put(item)
            sink.unfinished_tasks += len(taken)
            sink.not_empty.notify()
    return len(items) - len(taken)


def interval_for(check: HealthCheck, phase: Phase) -> float:
    if phase is Phase.UP:
        return check.interval
    if phase is Phase.DOWN:
        return check.down_interval
    return check.fast_interval


def jittered(base: float, jitter: float, rng: random.Random) -> float:
    """`base` moved by up to +/- `jitter` (a fraction of it), uniformly."""
    if jitter <= 0:
        return base
    return base * (1.0 + rng.uniform(-jitter, jitter))


def news(phase: Phase, ok: bool) -> bool:
    """Whether a result may move its backend's state: any result while the state machine is
    between its extremes, a failure while fully up, a success while fully down. The rest (the
    same outcome again, thousands a second at steady state) change nothing but the last probe,
    and their consumer may let them gather (`on_news` is for the others)."""
    return phase is Phase.CHANGING or ok != (phase is Phase.UP)


def first_delay(check: HealthCheck, phase: Phase, rng: random.Random) -> float:
    """Delay of a new stream's first probe: uniform over one interval of its phase.

    Spread over the whole interval (not just the jitter) so a restart with thousands of backends
    does not probe them all at once; still, every backend has its first result within one interval
    (for a new, unknown backend that is `fast_interval`).
    """
    return rng.uniform(0.0, interval_for(check, phase))


class _Stream:
    __slots__ = (
        "check",
        "due",
        "fast",
        "func",
        "gen",
        "handle",
        "job",
        "last_start",
        "phase",
        "target",
    )

    def __init__(self, target: ProbeTarget, check: HealthCheck, phase: Phase) -> None:
        self.target = target
        self.check = check
        self.func = checks.PROBES[check.type]
        self.phase = phase
        self.fast: fast.FastProbe | None = None
        self.handle: reactor._Timer | None = None
        self.job: reactor.Job | fast.FastProbe | None = None
        self.gen = 0  # bumped whenever the in-flight probe's result stops being wanted
        self.due = 0.0
        self.last_start: float | None = None


class WorkerStats:
    """A worker's counters; written on its loop, read by anyone, under one lock."""

    def __init__(self, samples: int) -> None:
        self.lock = threading.Lock()
        self.probes: Counter[ProbeKey] = Counter()
        self.dropped = 0
        self.lateness: deque[float] = deque(maxlen=samples)
        self.buckets = [0] * len(LATENESS_BUCKETS)
        self.lateness_sum = 0.0


class Worker:
    def __init__(
        self,
        index: int,
        results: ResultSink,
        rng: random.Random,
        samples: int = 10_000,
        on_fatal: Callable[[BaseException], None] | None = None,
        priority: int | None = None,
        *,
        clock: Clock | None = None,
        on_news: Callable[[], object] | None = None,
    ) -> None:
        self.name = f"maglev-check-{index}"
        self.priority = priority  # the nice value asked for (None: leave the thread's own)
        self.nice: int | None = None  # the thread's nice value once running
        self.results = results
        self.rng = rng
        self.on_fatal = on_fatal
        self.on_news = on_news
        self._news = False  # a pending result may change a backend's state (`news`)
        self.stats = WorkerStats(samples)
        self.in_flight = 0
        self.error: BaseException | None = None
        # Probes due within 5 ms start in the same loop pass, up to 5 ms early: far fewer passes
        # (each an epoll_wait, a wake-up and a results flush) for an error that intervals of a
        # second or so do not notice. Measured at 1,000 and 5,000 probes/s: 13-15% less CPU
        # per probe than with 1 ms.
        self._reactor = reactor.Reactor(slack=SLACK, clock=clock)
        self._reactor.after_pass = self._flush
        self._pending: list[tuple[HealthCheck, ProbeResult, float]] = []
        self._keys: dict[tuple[int, bool, int], ProbeKey] = {}  # see `_flush`
        # Bound once: `self._fire` makes a new method object each time, kept for the interval by
        # the timer, and every object living that long is one more for the collector to walk.
        self._fire_bound = self._fire
        self._streams: dict[ProbeTarget, _Stream] = {}
        self._thread = threading.Thread(target=self._main, name=self.name, daemon=True)

    # --- any thread ---------------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def call(self, fn: Callable[..., object], *args: object) -> None:
        """Run `fn(*args)` on this worker's thread (thread-safe, returns at once)."""
        self._reactor.call_threadsafe(fn, *args)

    def stop(self, timeout: float) -> bool:
        """End every probe (killing exec children), end the thread; True when it ended."""
        if self._thread.ident is None:  # never started (driven by `run_once`, or not at all)
            self._shutdown()
            self._reactor.close()
        elif self._thread.is_alive():
            self.call(self._shutdown)
            self._reactor.stop()
            self._thread.join(timeout)
        return not self._thread.is_alive()

    def run_once(self, timeout: float = 0.0) -> float | None:
        """One pass of this worker's reactor in the calling thread, which then is the worker's
        thread: only for a worker never started (tests on a `ManualClock`, see `reactor`).
        Returns when the worker next has something due (None: nothing)."""
        if self._thread.ident is not None:
            raise RuntimeError(f"{self.name} runs on its own thread")
        return self._reactor.run_once(timeout)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    # --- worker thread ------------------------------------------------------------------

    def set_priority(self, nice: int) -> None:
        """Ask for a new nice value (applied on the worker's thread)."""
        self.priority = nice
        if self._thread.is_alive():
            self.call(self._apply_priority)

    def _main(self) -> None:
        try:
            self._apply_priority()
            self._reactor.run()
        except BaseException as e:
            self._fatal(e)
        finally:
            self._streams.clear()

    def _apply_priority(self) -> None:
        tid = threading.get_native_id()
        want = self.priority
        if want is not None:
            try:
                os.setpriority(os.PRIO_PROCESS, tid, want)  # Linux: a thread id sets one thread
            except OSError as e:
                log.warning(
                    "check worker %s: cannot set nice %d (%s; raising priority needs "
                    "CAP_SYS_NICE); it runs at nice %d",
                    self.name, want, e.strerror or e, os.getpriority(os.PRIO_PROCESS, tid),
                )  # fmt: skip
        self.nice = os.getpriority(os.PRIO_PROCESS, tid)

    def _fatal(self, e: BaseException) -> None:
        log.critical("check worker %s died: %r", self.name, e, exc_info=e)
        self.error = e
        if self.on_fatal is not None:
            self.on_fatal(e)

    def _shutdown(self) -> None:
        for s in self._streams.values():
            self._halt(s)
        self._streams.clear()

    def add(self, target: ProbeTarget, check: HealthCheck, phase: Phase) -> None:
        old = self._streams.pop(target, None)
        if old is not None:
            self._halt(old)
        s = _Stream(target, check, phase)
        if fast.eligible(check):
            done = functools.partial(self._fast_done, s)
            s.fast = fast.FastProbe(self._reactor, target.address, check, done)
        self._streams[target] = s
        self._schedule(s, self._reactor.time() + first_delay(check, phase, self.rng))

    def remove(self, target: ProbeTarget) -> None:
        s = self._streams.pop(target, None)
        if s is not None:
            self._halt(s)

    def set_phase(self, target: ProbeTarget, phase: Phase) -> None:
        s = self._streams.get(target)
        if s is None or s.phase is phase:
            return
        s.phase = phase
        if s.job is not None or s.last_start is None:
            return  # in flight: the next due is computed when it ends; first probe: keep spread
        iv = jittered(interval_for(s.check, phase), s.check.jitter, self.rng)
        self._schedule(s, max(self._reactor.time(), s.last_start + iv))

    def set_phases(self, items: list[tuple[ProbeTarget, Phase]]) -> None:
        for target, phase in items:
            self.set_phase(target, phase)

    def _halt(self, s: _Stream) -> None:
        s.gen += 1
        if s.handle is not None:
            s.handle.cancel()
            s.handle = None
        job, s.job = s.job, None
        if isinstance(job, fast.FastProbe):
            job.cancel()  # ends now; its result is discarded (no longer the stream's job)
        elif job is not None:
            self._reactor.cancel(job)  # ends now; its result is discarded (gen moved on)

    def _schedule(self, s: _Stream, due: float) -> None:
        if s.handle is not None:
            s.handle.cancel()
        s.due = due
        s.handle = self._reactor.call_at(due, self._fire_bound, s)

    def _fire(self, s: _Stream) -> None:
        s.handle = None
        fp = s.fast
        if fp is not None:
            self.in_flight += 1
            s.job = fp
            fp.begin(self._reactor.time())
            return
        r = self._reactor
        start = r.time()
        late = start - s.due
        check = s.check
        progress = Progress(Reason.L4TOUT, "timeout")
        gen = s.gen
        self.in_flight += 1

        def done(job: reactor.Job, value: object, error: BaseException | None) -> None:
            self.in_flight -= 1
            end = r.time()
            result = checks.result(s.target, check, progress, value, error, start, end)
            if s.gen != gen:
                return  # removed or replaced while in flight: nobody wants it
            s.job = None
            s.last_start = start
            self._emit(s, result, late)
            iv = jittered(interval_for(check, s.phase), check.jitter, self.rng)
            self._schedule(s, max(start + iv, end))

        job = r.spawn(s.func(s.target.address, check, progress), start + check.timeout, done)
        if not job.finished:  # (a probe may end at once, e.g. a local error)
            s.job = job

    def _fast_done(self, s: _Stream, fp: fast.FastProbe, out: Outcome, end: float) -> None:
        self.in_flight -= 1
        if s.job is not fp:
            return  # removed or replaced while in flight: nobody wants it
        s.job = None
        start = fp.start
        s.last_start = start
        result = probe_result(s.target, out.ok, out.reason, end - start, out.detail, end)
        self._emit(s, result, start - s.due)
        check = s.check
        iv = jittered(interval_for(check, s.phase), check.jitter, self.rng)
        self._schedule(s, max(start + iv, end))

    def _emit(self, s: _Stream, result: ProbeResult, late: float) -> None:
        # Queued until the end of the reactor's pass (`_flush`): one stats lock per pass, and the
        # consumer is woken once for the batch instead of once per result.
        self._pending.append((s.check, result, late))
        if not self._news:
            self._news = news(s.phase, result.ok)

    def _flush(self) -> None:
        pending = self._pending
        if not pending:
            return
        self._pending = []
        dropped = put_all(self.results, [result for _check, result, _late in pending])
        if self._news:
            self._news = False
            if self.on_news is not None:
                self.on_news()  # after the results are queued: the consumer finds them
        # Counted by the members' ids first (hashing an enum member is a Python call; a pass
        # brings few distinct keys), then once per key into the counters.
        tally: Counter[tuple[int, bool, int]] = Counter()
        keys = self._keys
        lates = []
        for check, result, late in pending:
            kid = (id(check.type), result.ok, id(result.reason))
            tally[kid] += 1
            if kid not in keys:
                keys[kid] = (check.type, result.ok, result.reason)
            lates.append(late if late > 0.0 else 0.0)
        stats = self.stats
        probes, buckets = stats.probes, stats.buckets
        with stats.lock:
            stats.dropped += dropped
            for kid, n in tally.items():
                probes[keys[kid]] += n
            stats.lateness.extend(lates)
            for late in lates:
                buckets[bisect.bisect_left(LATENESS_BUCKETS, late)] += 1
            stats.lateness_sum += sum(lates)
        if log.isEnabledFor(logging.DEBUG):
            for check, result, late in pending:
                log.debug(
                    "probe %s %s: %s %s (%.1f ms, %.1f ms late)",
                    check.name,
                    result.target.address,
                    result.reason.value,
                    result.detail,
                    result.duration * 1e3,
                    max(late, 0.0) * 1e3,
                )

    def stream_count(self) -> int:
        return len(self._streams)
