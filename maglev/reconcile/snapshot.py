"""What the reconciler publishes for readers: immutable snapshots, counters, histograms.

The reconciler thread builds a new `Snapshot` after every turn and swaps the reference; the
control API and the metrics collector read the latest one without locks (through
`maglev.reconcile.port.ReconcilerPort`). Everything a reader shows is here, VPP's counters
included (refreshed by the reconciler on a timer): reading never sends VPP a request.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import deque
from collections.abc import Container, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from maglev.health.state import Transition
from maglev.model import BackendState, Config, ProbeResult, ProbeTarget
from maglev.reconcile.churn import ChurnReport
from maglev.reconcile.damping import DampingStatus
from maglev.reconcile.events import ReloadStatus
from maglev.reconcile.interlock import ReloadHold
from maglev.reconcile.opstate import OpState
from maglev.reconcile.plan import FrontendView, GuardView, ViewRef
from maglev.reconcile.vantage import VantageStatus
from maglev.vpp.lb import VipCounters, VipKey

RECENT_PROBES = 5  # probe results kept per target for `explain`


class ProbeLog:
    """The latest probe results of every target, and the last few of each.

    Written by the reconciler thread alone, as it takes results in: a dict store and a deque
    append per result, nothing allocated, nothing copied. It is live, not a snapshot: a status
    shows the latest result the reconciler has taken in (a result that moves nothing changes no
    status, so steady probing leaves the snapshot's statuses as they are; building a status and
    copying every status after each turn cost more than the rest of the result's path). Readers
    on any thread get whole values: a dict lookup and a deque's copy run under the GIL without
    giving it up, and the results themselves are immutable.
    """

    __slots__ = ("_recent", "keep", "last")

    def __init__(self, keep: int = RECENT_PROBES) -> None:
        self.keep = keep
        self.last: dict[ProbeTarget, ProbeResult] = {}
        self._recent: dict[ProbeTarget, deque[ProbeResult]] = {}

    def record(self, target: ProbeTarget, result: ProbeResult) -> None:
        self.last[target] = result
        ring = self._recent.get(target)
        if ring is None:
            ring = self._recent[target] = deque(maxlen=self.keep)
        ring.append(result)

    def recent(self, target: ProbeTarget) -> tuple[ProbeResult, ...]:
        ring = self._recent.get(target)
        return () if ring is None else tuple(ring)

    def keep_only(self, *kept: Container[ProbeTarget]) -> None:
        """Forget the targets in none of `kept` (a reload removed them)."""
        gone = [t for t in self.last if not any(t in k for k in kept)]
        for t in gone:
            del self.last[t]
            self._recent.pop(t, None)


@dataclass(frozen=True, slots=True)
class BackendStatus:
    """A backend's state machine as of the snapshot; its probe results read through `probes`
    (live: see `ProbeLog`)."""

    name: str
    state: BackendState
    counter: int
    history: tuple[Transition, ...]
    target: ProbeTarget | None = None
    probes: ProbeLog | None = field(default=None, compare=False, repr=False)

    @property
    def last_probe(self) -> ProbeResult | None:
        if self.probes is None or self.target is None:
            return None
        return self.probes.last.get(self.target)

    @property
    def recent(self) -> tuple[ProbeResult, ...]:
        """The last few probe results, oldest first."""
        if self.probes is None or self.target is None:
            return ()
        return self.probes.recent(self.target)


PROBE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
PASS_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)


@dataclass(frozen=True, slots=True)
class Histogram:
    """Cumulative-free bucket counts (one per upper bound, plus +Inf last), sum and count."""

    bounds: tuple[float, ...]
    counts: tuple[int, ...]
    total: float = 0.0
    count: int = 0

    @classmethod
    def empty(cls, bounds: tuple[float, ...]) -> Histogram:
        return cls(bounds, (0,) * (len(bounds) + 1))

    def observe(self, v: float) -> Histogram:
        i = _bucket(self.bounds, v)
        counts = list(self.counts)
        counts[i] += 1
        return Histogram(self.bounds, tuple(counts), self.total + v, self.count + 1)


# Convergence (`maglev.reconcile.convergence`): 1 ms (a write's replies) to 60 s (a slow healthcheck's fall x interval, or an outage).
CONVERGENCE_BUCKETS = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0,
    60.0,
)  # fmt: skip
CONVERGENCE_STAGES = ("queue", "detect", "write", "total")


@dataclass(frozen=True, slots=True)
class Converged:
    """One settled transition (seconds per stage; `write`, `total` None: nothing written)."""

    backend: str
    old: BackendState
    new: BackendState
    queue: float
    detect: float
    write: float | None
    total: float | None


@dataclass(frozen=True, slots=True)
class ConvergenceStats:
    """What readers see: a histogram per stage, the outcomes, the last few convergences."""

    stages: tuple[tuple[str, Histogram], ...] = tuple(
        (s, Histogram.empty(CONVERGENCE_BUCKETS)) for s in CONVERGENCE_STAGES
    )
    written: int = 0  # measured to a VPP reply
    unwritten: int = 0  # their first pass wrote nothing for them
    dropped: int = 0  # beyond the transitions that may wait for a write: not measured
    pending: int = 0  # waiting for a write now
    recent: tuple[Converged, ...] = ()  # newest last


@dataclass(frozen=True, slots=True)
class Counters:
    passes: int = 0
    full_syncs: int = 0
    ops_ok: int = 0
    ops_failed: int = 0
    last_pass_seconds: float = 0.0
    pass_seconds: tuple[float, ...] = ()  # recent pass latencies
    pass_hist: Histogram = field(default_factory=lambda: Histogram.empty(PASS_BUCKETS))
    transitions: Mapping[tuple[str, str], int] = field(default_factory=dict)
    probe_durations: Mapping[str, Histogram] = field(default_factory=dict)
    buckets_moved: Mapping[str, int] = field(default_factory=dict)  # by frontend, applied plans
    churn_skipped: int = 0  # frontends of applied plans whose churn was over the time budget


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What the reconciler publishes for readers (control API, metrics): never mutated."""

    config: Config
    backends: Mapping[str, BackendStatus]
    frontends: Mapping[str, FrontendView]
    overrides: Mapping[tuple[str, str], int]
    vpp_connected: bool
    vpp_version: str | None
    vpp_since: float | None
    released: frozenset[str]
    last_sync: float | None
    last_sync_ok: bool
    unmanaged: tuple[VipKey, ...]
    counters: Counters = field(default_factory=Counters)
    vip_counters: tuple[VipCounters, ...] = ()  # VPP's per-VIP packet counters
    vip_counters_at: float | None = None  # wall-clock time they were read
    vpp_calls: Mapping[tuple[str, str], int] = field(default_factory=dict)  # (message, result)
    config_loaded_at: float | None = None  # wall-clock time the live config was read
    last_reload: ReloadStatus = field(default_factory=lambda: ReloadStatus(ok=True))
    reloads_ok: int = 0
    reloads_rejected: int = 0
    reloads_held: int = 0
    reload_hold: ReloadHold | None = None  # a reload the reload interlocks hold
    vantage: VantageStatus = field(default_factory=VantageStatus)  # the vantage guard
    mass_failure: Mapping[str, GuardView] = field(default_factory=dict)  # guard active
    damping: Mapping[str, DampingStatus] = field(default_factory=dict)  # flap damping, by backend
    # (frontend, backend) -> {step, steps, weight, until (wall clock)} of each slow-start ramp
    slow_start: Mapping[tuple[str, str], Mapping[str, Any]] = field(default_factory=dict)
    opstate: OpState = field(default_factory=OpState)  # operator states in force, time boxes
    # frontend -> {step, steps, max_churn, share, indivisible, weights, target, next_step (wall
    # clock)} of each budgeted change in progress (`maglev.reconcile.budget`)
    budget: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    convergence: ConvergenceStats = field(default_factory=ConvergenceStats)  # per stage


def _bucket(bounds: tuple[float, ...], v: float) -> int:
    """Index of the first bound >= v (len(bounds) past the last): a Prometheus `le` bucket."""
    return bisect_left(bounds, v)


class Tally:
    """The reconciler's counters while it works (mutable, its thread only); `freeze()` copies.

    Counting must cost next to nothing per probe result: a burst can bring thousands.
    """

    def __init__(self) -> None:
        self.passes = self.full_syncs = self.ops_ok = self.ops_failed = 0
        self.last_pass = 0.0
        self.recent: deque[float] = deque(maxlen=256)
        self.pass_counts = [0] * (len(PASS_BUCKETS) + 1)
        self.pass_total = 0.0
        self.transitions: dict[tuple[str, str], int] = {}
        self.probes: dict[str, tuple[list[int], list[float]]] = {}  # kind -> (counts, [sum])
        self.moved: dict[str, int] = {}  # frontend -> buckets its applied plans moved
        self.churn_skipped = 0

    def probe(self, kind: str, seconds: float) -> None:
        entry = self.probes.get(kind)
        if entry is None:
            entry = self.probes[kind] = ([0] * (len(PROBE_BUCKETS) + 1), [0.0])
        entry[0][_bucket(PROBE_BUCKETS, seconds)] += 1
        entry[1][0] += seconds

    def transition(self, old: str, new: str) -> None:
        self.transitions[(old, new)] = self.transitions.get((old, new), 0) + 1

    def buckets_moved(self, report: ChurnReport) -> None:
        moved = self.moved
        for f in report.frontends:
            moved[f.frontend] = moved.get(f.frontend, 0) + f.moved
        self.churn_skipped += report.skipped

    def pass_done(self, seconds: float) -> None:
        self.passes += 1
        self.last_pass = seconds
        self.recent.append(seconds)
        self.pass_counts[_bucket(PASS_BUCKETS, seconds)] += 1
        self.pass_total += seconds

    def freeze(self) -> Counters:
        return Counters(
            passes=self.passes,
            full_syncs=self.full_syncs,
            ops_ok=self.ops_ok,
            ops_failed=self.ops_failed,
            last_pass_seconds=self.last_pass,
            pass_seconds=tuple(self.recent),
            pass_hist=Histogram(
                PASS_BUCKETS, tuple(self.pass_counts), self.pass_total, self.passes
            ),
            transitions=dict(self.transitions),
            probe_durations={
                k: Histogram(PROBE_BUCKETS, tuple(c), t[0], sum(c))
                for k, (c, t) in self.probes.items()
            },
            buckets_moved=dict(self.moved),
            churn_skipped=self.churn_skipped,
        )


class LazyViews(Mapping[str, FrontendView]):
    """Frontend name -> view, each built on first access from its evaluation.

    Building every view after every pass would cost more than the pass itself with thousands of
    frontends; readers (control API) ask for a few. The evaluations are never mutated, so any
    thread may build a view; the cache is a plain dict (a race builds the same value twice).
    """

    def __init__(self, refs: Mapping[str, ViewRef]) -> None:
        self._refs = refs
        self._cache: dict[str, FrontendView] = {}

    def __getitem__(self, name: str) -> FrontendView:
        v = self._cache.get(name)
        if v is None:
            r = self._refs[name]
            v = self._cache[name] = r.evaluation.frontend(r.index)
        return v

    def __iter__(self) -> Iterator[str]:
        return iter(self._refs)

    def __len__(self) -> int:
        return len(self._refs)
