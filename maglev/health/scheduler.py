"""The check scheduler: one probe stream per unique `ProbeTarget`, spread over N workers.

Owned by the daemon; its methods are called from the reconciler thread (or any thread: they are
thread-safe and never block on probes). The reconciler owns the state machines, so it tells the
scheduler which interval applies to a target through `set_phase()` (`Phase.UP` -> `interval`,
`Phase.CHANGING` -> `fast_interval`, `Phase.DOWN` -> `down_interval`; a new stream starts as
CHANGING unless told otherwise). `set_targets()` is the whole wanted set after a (re)load: streams
are started, stopped, or restarted when their healthcheck definition changed. Each stream lives on
one worker (the least loaded when it was added) for its whole life.

Results go to the reconciler's queue as immutable `ProbeResult`s; a full queue drops the result
and counts it (`CheckerStats.dropped_results`). `snapshot()` returns counters for metrics.

Time comes from the `clock` given (`SystemClock` by default), shared by every worker. A scheduler
that is never `start()`ed runs no threads: `run_once()` then runs one pass of each worker in the
calling thread, which is how tests drive it on a `ManualClock` (see `reactor`).
"""

from __future__ import annotations

import logging
import random
import threading
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from maglev.clock import Clock
from maglev.health.state import Phase
from maglev.health.workers import LATENESS_BUCKETS, ProbeKey, ResultSink, Worker
from maglev.model import HealthCheck, ProbeTarget

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class CheckerStats:
    """A point-in-time copy of the scheduler's counters."""

    probes: Mapping[ProbeKey, int]  # (check type, ok, reason) -> probes finished
    streams: int
    in_flight: int
    dropped_results: int
    lateness_buckets: tuple[tuple[float, int], ...]  # (upper bound s, count), not cumulative
    lateness_count: int
    lateness_sum: float
    lateness_samples: tuple[float, ...]  # most recent samples (seconds), all workers

    @property
    def total_probes(self) -> int:
        return sum(self.probes.values())


class Scheduler:
    def __init__(
        self,
        results: ResultSink,
        workers: int = 2,
        *,
        rng: random.Random | None = None,
        lateness_samples: int = 10_000,
        on_fatal: Callable[[BaseException], None] | None = None,
        priority: int | None = None,
        clock: Clock | None = None,
        on_news: Callable[[], object] | None = None,
    ) -> None:
        """`on_news` is called (on a worker's thread) after results were queued of which one may
        move a backend's state (`workers.news`); the consumer may let the others gather."""
        if workers < 1:
            raise ValueError("workers must be >= 1")
        base = rng or random.Random()
        # One generator per worker: random.Random is not meant to be shared across threads.
        self._workers = [
            Worker(
                i,
                results,
                random.Random(base.random()),
                lateness_samples,
                on_fatal,
                priority,
                clock=clock,
                on_news=on_news,
            )
            for i in range(workers)
        ]
        self._lock = threading.Lock()
        self._where: dict[ProbeTarget, Worker] = {}
        self._checks: dict[ProbeTarget, HealthCheck] = {}
        self._load = dict.fromkeys(self._workers, 0)
        self._started = False

    def start(self) -> None:
        with self._lock:
            if not self._started:
                for w in self._workers:
                    w.start()
                self._started = True

    def run_once(self, timeout: float = 0.0) -> float | None:
        """One reactor pass of each worker, in the calling thread (a scheduler never started:
        tests); each waits at most `timeout` real seconds for I/O. Returns the earliest time
        a worker next has something due (None: nothing is)."""
        with self._lock:
            if self._started:
                raise RuntimeError("the scheduler's workers run on their own threads")
        due = [d for w in self._workers if (d := w.run_once(timeout)) is not None]
        return min(due, default=None)

    def stop(self, timeout: float = 5.0) -> bool:
        """Stop every stream and worker; True when all threads ended within `timeout`."""
        ok = True
        for w in self._workers:
            ok = w.stop(timeout) and ok
        return ok

    @property
    def alive(self) -> bool:
        return all(w.alive for w in self._workers)

    def set_targets(
        self,
        targets: Mapping[ProbeTarget, HealthCheck],
        phases: Mapping[ProbeTarget, Phase] | None = None,
    ) -> tuple[int, int, int]:
        """Make the probe streams exactly `targets`; returns (added, changed, removed).

        `phases` gives the starting phase of new or changed streams (a backend whose state was
        carried over a reload); others start as CHANGING.
        """
        phases = phases or {}
        added = changed = removed = 0
        with self._lock:
            for target in list(self._where):
                if target not in targets:
                    w = self._where.pop(target)
                    del self._checks[target]
                    self._load[w] -= 1
                    w.call(w.remove, target)
                    removed += 1
            for target, check in targets.items():
                old = self._checks.get(target)
                if old == check:
                    continue
                if old is None:
                    w = min(self._workers, key=self._load.__getitem__)
                    self._where[target] = w
                    self._load[w] += 1
                    added += 1
                else:
                    w = self._where[target]
                    changed += 1
                self._checks[target] = check
                w.call(w.add, target, check, phases.get(target, Phase.CHANGING))
        if added or changed or removed:
            log.info("probe streams: %d added, %d changed, %d removed", added, changed, removed)
        return added, changed, removed

    def _worker(self, target: ProbeTarget) -> Worker | None:
        with self._lock:
            return self._where.get(target)

    def set_phase(self, target: ProbeTarget, phase: Phase) -> None:
        w = self._worker(target)
        if w is not None:
            w.call(w.set_phase, target, phase)

    def set_phases(self, phases: Mapping[ProbeTarget, Phase]) -> None:
        """`set_phase` for many targets at once: one hand-off per worker, not one per target
        (a burst of failures changes thousands)."""
        by_worker: dict[Worker, list[tuple[ProbeTarget, Phase]]] = {}
        with self._lock:
            where = self._where
            for target, phase in phases.items():
                w = where.get(target)
                if w is not None:
                    by_worker.setdefault(w, []).append((target, phase))
        for w, items in by_worker.items():
            w.call(w.set_phases, items)

    def set_priority(self, nice: int) -> None:
        """Every worker thread's nice value (takes effect at once on running workers)."""
        for w in self._workers:
            w.set_priority(nice)

    def priorities(self) -> tuple[int | None, ...]:
        """Each worker thread's nice value (None before it started)."""
        return tuple(w.nice for w in self._workers)

    def targets(self) -> frozenset[ProbeTarget]:
        with self._lock:
            return frozenset(self._where)

    def drain_lateness(self) -> tuple[float, ...]:
        """The lateness samples recorded since the last drain (seconds), clearing them."""
        out: list[float] = []
        for w in self._workers:
            st = w.stats
            with st.lock:
                out.extend(st.lateness)
                st.lateness.clear()
        return tuple(out)

    def snapshot(self, samples: bool = True) -> CheckerStats:
        probes: Counter[ProbeKey] = Counter()
        buckets = [0] * len(LATENESS_BUCKETS)
        dropped = in_flight = 0
        lsum = 0.0
        recent: list[float] = []
        for w in self._workers:
            st = w.stats
            with st.lock:
                probes.update(st.probes)
                dropped += st.dropped
                lsum += st.lateness_sum
                for i, n in enumerate(st.buckets):
                    buckets[i] += n
                if samples:
                    recent.extend(st.lateness)
            in_flight += w.in_flight
        with self._lock:
            streams = len(self._where)
        return CheckerStats(
            probes=MappingProxyType(dict(probes)),
            streams=streams,
            in_flight=in_flight,
            dropped_results=dropped,
            lateness_buckets=tuple(zip(LATENESS_BUCKETS, buckets, strict=True)),
            lateness_count=sum(buckets),
            lateness_sum=lsum,
            lateness_samples=tuple(recent),
        )
