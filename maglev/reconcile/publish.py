"""The reconciler's publishing side: backend transition events, backend statuses, frontend events
(mass-failure guard included), unmanaged-VIP warnings and the `Snapshot` readers see.

Plain functions over state the reconciler owns and passes in (or, for the snapshot, reads
through `SnapshotSource`); nothing here keeps state of its own. Called on the reconciler thread,
after each pass (events) and at the end of each turn (snapshot); the snapshot it returns is
immutable, so any thread may read it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Container, Iterable, Mapping
from types import MappingProxyType
from typing import Any, Protocol

from maglev.clock import Clock
from maglev.health.state import BackendHealth, Transition
from maglev.model import Config, FrontendState, MassFailure, ProbeTarget
from maglev.reconcile import snapshot
from maglev.reconcile.budget import Budgets
from maglev.reconcile.convergence import Convergence
from maglev.reconcile.damping import Damping
from maglev.reconcile.events import ReloadStatus
from maglev.reconcile.explain import rule_of
from maglev.reconcile.interlock import ReloadHold
from maglev.reconcile.link import VppLink
from maglev.reconcile.opstate import OpState
from maglev.reconcile.plan import GuardView, ViewRef, brief, guard_code
from maglev.reconcile.slowstart import Ramps
from maglev.reconcile.snapshot import BackendStatus, LazyViews, ProbeLog, Snapshot, Tally
from maglev.reconcile.startup import StartupGate
from maglev.reconcile.vantage import VantageGuard
from maglev.vpp.lb import VipCounters, VipKey

log = logging.getLogger(__name__)

RECENT_PROBES = snapshot.RECENT_PROBES  # probe results kept per backend for `explain`


class SnapshotSource(Protocol):
    """What a snapshot is made of, as the reconciler holds it (read only here)."""

    @property
    def config(self) -> Config: ...
    @property
    def ramps(self) -> Ramps: ...
    @property
    def budget(self) -> Budgets: ...
    @property
    def clock(self) -> Clock: ...
    @property
    def views(self) -> Mapping[str, ViewRef]: ...
    @property
    def overrides(self) -> Mapping[tuple[str, str], int]: ...
    @property
    def opstate(self) -> OpState: ...
    @property
    def link(self) -> VppLink: ...
    @property
    def gate(self) -> StartupGate: ...
    @property
    def last_sync(self) -> float | None: ...
    @property
    def last_sync_ok(self) -> bool: ...
    @property
    def unmanaged(self) -> tuple[VipKey, ...]: ...
    @property
    def tally(self) -> Tally: ...
    @property
    def convergence(self) -> Convergence: ...
    @property
    def vip_counters(self) -> tuple[VipCounters, ...]: ...
    @property
    def vip_counters_at(self) -> float | None: ...
    @property
    def config_loaded_at(self) -> float | None: ...
    @property
    def last_reload(self) -> ReloadStatus: ...
    @property
    def reloads(self) -> dict[str, int]: ...
    @property
    def reload_hold(self) -> ReloadHold | None: ...
    @property
    def guard(self) -> VantageGuard: ...
    @property
    def damping(self) -> Damping: ...
    @property
    def views_changed(self) -> int: ...  # bumped whenever `views` changes


class FrontendParts:
    """The snapshot's frontend views and mass-failure guards, kept from one snapshot to the next
    while neither the config nor the views change. Most turns only take in probe results; each
    rebuilt both by walking every frontend (a few hundred microseconds at a few thousand)."""

    __slots__ = ("changed", "config", "frontends", "guarded")

    def __init__(self) -> None:
        self.config: Config | None = None  # held, not its id: a new config may reuse an address
        self.changed = -1
        self.frontends = LazyViews({})
        self.guarded: Mapping[str, GuardView] = MappingProxyType({})

    def get(self, src: SnapshotSource) -> tuple[LazyViews, Mapping[str, GuardView]]:
        config = src.config
        if config is not self.config or src.views_changed != self.changed:
            # new values each time: snapshots already published keep the ones they were given
            # (the views they share are built once, on first read, for all of them)
            views = {n: v for n, v in src.views.items() if n in config.frontends}
            self.frontends, self.guarded = LazyViews(views), guarded(views)
            self.config, self.changed = config, src.views_changed
        return self.frontends, self.guarded


def refresh_statuses(
    statuses: dict[str, BackendStatus],
    names: Iterable[str],
    health: Mapping[str, BackendHealth],
    target_of: Mapping[str, ProbeTarget],
    probes: ProbeLog,
) -> bool:
    """Rebuild the statuses of the backends `names` (those whose state machine moved since the
    last snapshot: thousands may exist, few change); names no longer configured are skipped.
    True if any was rebuilt."""
    changed = False
    for name in names:
        h = health.get(name)
        if h is not None:
            statuses[name] = BackendStatus(
                name, h.state, h.counter, h.history, target_of.get(name), probes
            )
            changed = True
    return changed


def make_snapshot(
    src: SnapshotSource,
    statuses: Mapping[str, BackendStatus],
    parts: FrontendParts | None = None,
) -> Snapshot:
    """An immutable copy of what readers see (the mutable parts are copied; `parts` keeps the
    frontends' share between snapshots). `statuses` is taken as it is: a read-only copy that its
    caller never changes (the reconciler makes one only after a status changed)."""
    config, link = src.config, src.link
    version = link.lb.version
    frontends, mass_failure = (parts or FrontendParts()).get(src)
    return Snapshot(
        config=config,
        backends=statuses,
        frontends=frontends,
        mass_failure=mass_failure,
        overrides=MappingProxyType(dict(src.overrides)),
        opstate=src.opstate,  # a frozen value: shared as it is
        vpp_connected=link.lb.connected,
        vpp_version=version.version if version else None,
        vpp_since=link.since,
        released=src.gate.frozen(),
        last_sync=src.last_sync,
        last_sync_ok=src.last_sync_ok,
        unmanaged=src.unmanaged,
        counters=src.tally.freeze(),
        vip_counters=src.vip_counters,
        vip_counters_at=src.vip_counters_at,
        vpp_calls=MappingProxyType(dict(link.lb.call_counts())),
        config_loaded_at=src.config_loaded_at,
        last_reload=src.last_reload,
        reloads_ok=src.reloads["ok"],
        reloads_rejected=src.reloads["rejected"],
        reloads_held=src.reloads["held"],
        reload_hold=src.reload_hold,
        vantage=src.guard.status(),
        damping=src.damping.status(src.clock.monotonic(), src.clock.wall()),
        slow_start=MappingProxyType(
            src.ramps.docs(config, src.overrides, src.clock.monotonic(), src.clock.wall())
        ),
        budget=MappingProxyType(src.budget.docs(src.clock.wall() - src.clock.monotonic())),
        convergence=src.convergence.stats(),  # a frozen value, built again only after changes
    )


def weight_events(
    publish: Callable[[dict[str, Any]], None],
    frontend: str,
    old: ViewRef,
    new: ViewRef,
    held: Container[str],
) -> None:
    """A `weight` event per backend of `frontend` whose desired weight changed between views."""
    lay, d = new.evaluation.layout, new.evaluation.desired
    start, end = lay.topology.fe_slot_start[new.index], lay.topology.fe_slot_start[new.index + 1]
    olay, od = old.evaluation.layout, old.evaluation.desired
    if olay is lay and old.index == new.index:
        changed = [s for s in range(start, end) if od.slot_weight[s] != d.slot_weight[s]]
        before = {s: int(od.slot_weight[s]) for s in changed}
    else:  # another config: match backends by name
        o0, o1 = olay.topology.fe_slot_start[old.index], olay.topology.fe_slot_start[old.index + 1]
        was = {olay.slot_backend_name[s]: int(od.slot_weight[s]) for s in range(o0, o1)}
        before = {s: was.get(lay.slot_backend_name[s], 0) for s in range(start, end)}
        changed = [s for s in range(start, end) if before[s] != d.slot_weight[s]]
    for s in changed:
        backend = lay.slot_backend_name[s]
        publish(
            {
                "type": "weight",
                "frontend": frontend,
                "backend": backend,
                "from": before[s],
                "to": int(d.slot_weight[s]),
                "rule": rule_of(int(d.slot_reason[s]), backend in held),
            }
        )


def frontend_events(
    publish: Callable[[dict[str, Any]], None],
    prev: Mapping[str, ViewRef | None],
    views: Mapping[str, ViewRef],
    first_sync_done: bool,
    held: Container[str] = (),
) -> None:
    """Log and publish each frontend whose state, active pool or mass-failure guard a pass
    changed, and each backend weight it changed (with the rule that made it; `held`: backends
    whose drain the vantage guard holds).

    `prev` holds each one's view before the pass, None if it had no view yet; before the first
    full sync a frontend still unknown is not news.
    """
    for name, ref in views.items():
        old_ref = prev.get(name)
        if guard_code(old_ref) != guard_code(ref):
            guard_event(publish, name, ref)
        if old_ref is not None:
            weight_events(publish, name, old_ref, ref, held)
        before = brief(old_ref) if old_ref is not None else None
        now = brief(ref)
        if before == now:
            continue
        if before is None and not first_sync_done and now[0] is FrontendState.UNKNOWN:
            continue
        old = before[0].value if before else None
        log.info(
            "frontend %s: %s -> %s (active pool %s)",
            name,
            old or "-",
            now[0].value,
            now[1] or "-",
        )
        publish(
            {
                "type": "frontend",
                "frontend": name,
                "from": old,
                "to": now[0].value,
                "active_pool": now[1],
            }
        )


def guard_event(publish: Callable[[dict[str, Any]], None], name: str, ref: ViewRef) -> None:
    """Log (WARNING) and publish a frontend's mass-failure guard turning on, off or over."""
    g = ref.evaluation.guard(ref.index)
    kept = ref.evaluation.guarded_backends(ref.index)
    if g.active:
        doing = (
            f"keeping {len(kept)} backend(s) that are not up at their weight in VPP"
            if g.mode is MassFailure.FAIL_STATIC
            else f"serving {len(kept)} backend(s) that are not up"
        )
        log.warning(
            "frontend %s: mass-failure guard active (on-mass-failure %s): %d of %d members of "
            "pool %s healthy, below min-healthy %d; %s: %s",
            name, g.mode.value, g.healthy, g.members, g.pool or "-", g.threshold, doing,
            ",".join(kept) or "-",
        )  # fmt: skip
    else:
        log.warning(
            "frontend %s: mass-failure guard cleared (on-mass-failure %s): %d of %d members of "
            "pool %s healthy, min-healthy %d",
            name, g.mode.value, g.healthy, g.members, g.pool or "-", g.threshold,
        )  # fmt: skip
    publish(
        {
            "type": "mass-failure",
            "frontend": name,
            "active": g.active,
            "mode": g.mode.value,
            "pool": g.pool,
            "healthy": g.healthy,
            "members": g.members,
            "threshold": g.threshold,
            "backends": list(kept),
        }
    )


def guarded(views: Mapping[str, ViewRef]) -> Mapping[str, GuardView]:
    """The guard of each frontend whose mass-failure guard is active (one flag read each)."""
    return MappingProxyType(
        {
            n: r.evaluation.guard(r.index)
            for n, r in views.items()
            if r.evaluation.desired.fe_guard[r.index]
        }
    )


def note_unmanaged(unmanaged: Iterable[VipKey], logged: set[VipKey]) -> tuple[VipKey, ...]:
    """The VIPs a full pass left alone; each is warned about once (`logged` remembers)."""
    out = tuple(unmanaged)
    for k in out:
        if k not in logged:
            log.warning(
                "VPP has lb VIP %s protocol %d port %d that the config does not name; left "
                "alone (set vpp.unmanaged-vips: delete to remove such VIPs)",
                *k,
            )
            logged.add(k)
    return out


def backend_events(
    said: Iterable[Transition],
    fe_of: Mapping[str, tuple[str, ...]],
    tally: Tally,
    publish: Callable[[dict[str, Any]], None],
) -> None:
    """Count, log and publish backend transitions (one event and one log line each)."""
    logged = log.isEnabledFor(logging.INFO)
    count = tally.transition
    for t in said:
        frontends = list(fe_of.get(t.backend, ()))
        # `_value_`: the member's value without the descriptor `.value` goes through.
        old, new = t.old._value_, t.new._value_
        count(old, new)
        event = {
            "type": "backend",
            "backend": t.backend,
            "frontends": frontends,
            "from": old,
            "to": new,
            "reason": t.reason._value_ if t.reason is not None else "-",
            "detail": t.detail,
        }
        if logged:
            log.info(
                "backend %s: %s -> %s (%s: %s) frontends: %s",
                t.backend, old, new, event["reason"], t.detail or "-",
                ",".join(frontends) or "-",
                extra={"fields": {"event": "transition", **event}},
            )  # fmt: skip
        publish(event)
