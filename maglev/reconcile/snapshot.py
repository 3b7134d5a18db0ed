"""What the reconciler publishes for readers: immutable snapshots, counters, histograms.

The reconciler thread builds a new `Snapshot` after every turn and swaps the reference; the
control API and the metrics collector read the latest one without locks.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from maglev.health.state import Transition
from maglev.model import BackendState, Config, ProbeResult
from maglev.reconcile.desired import Evaluation, FrontendView
from maglev.vpp.dumper import VipKey


@dataclass(frozen=True, slots=True)
class BackendStatus:
    name: str
    state: BackendState
    counter: int
    history: tuple[Transition, ...]
    last_probe: ProbeResult | None


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
        i = next((k for k, b in enumerate(self.bounds) if v <= b), len(self.bounds))
        counts = list(self.counts)
        counts[i] += 1
        return Histogram(self.bounds, tuple(counts), self.total + v, self.count + 1)


@dataclass(frozen=True, slots=True)
class Counters:
    passes: int = 0
    full_syncs: int = 0
    ops_ok: int = 0
    ops_failed: int = 0
    dropped_messages: int = 0
    last_pass_seconds: float = 0.0
    pass_seconds: tuple[float, ...] = ()  # recent pass latencies
    pass_hist: Histogram = field(default_factory=lambda: Histogram.empty(PASS_BUCKETS))
    transitions: Mapping[tuple[str, str], int] = field(default_factory=dict)
    probe_durations: Mapping[str, Histogram] = field(default_factory=dict)


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


@dataclass(frozen=True, slots=True)
class ViewRef:
    """Where a frontend's view comes from: its index in one (immutable) engine evaluation."""

    evaluation: Evaluation
    index: int


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
