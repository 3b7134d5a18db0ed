"""The reconciler thread (`maglev-reconciler`): the one place VPP's lb tables change.

It owns the live config, the backends' health state machines, the operator overrides, its view
of what VPP has, and the VPP connection (an `LbClient`). Everything else talks to it through its
queue: check workers put raw `ProbeResult`s, the daemon puts reloads, operator actions and
typed requests (`events`), each answered with a frozen value. Readers get the `Snapshot` it
publishes after every turn (through a `port.ReconcilerPort`), VPP's per-VIP counters included:
they are read on a timer (`vpp.lb.counters-interval`), never on a reader's behalf.

A failure while answering a read-only request becomes an error reply; an operator's mistake
(`RequestError`) or VPP trouble (`VppError`) is the caller's answer; any other exception in the
loop is a bug and ends the thread, which stops the daemon (a half-dead controller is worse than
a restart).

Each turn it blocks for one message, drains the rest (a burst of 500 failures is one pass),
applies them, then writes to VPP (after a turn of probe results that moved no backend it lets
the next ones gather for `SETTLE` first, so steady probing does not wake it per result):
- a *targeted pass* for the frontends whose desired weights may have changed, diffed against
  its view of VPP, without a dump;
- a *full sync* (dump, diff, apply) at start, every `sync-interval`, after (re)connecting, after
  a reload, after a failed write and on operator request.

Restart neutrality: nothing is written for `startup-min-delay`; then each frontend is released
once all its backends have a known state; at `startup-max-delay` everything is released. A
restart with healthy backends therefore finds VPP already as it should be and writes nothing.
Stopping leaves VPP as it is.

Ownership: VIPs in VPP that the config does not name are left alone and logged, unless
`vpp.unmanaged-vips: delete`; a frontend removed by a reload is deleted (maglev made it).

This module holds the loop, the per-message hot path and config install; `writing` writes to VPP.
The rest runs on this thread over the state passed in: `backends`, `actions`, `link`, `startup`,
the safety rules (`vantage`, `damping`, `slowstart`, `budget`; the mass-failure guard is the
engine's), `desired`/`actual`/`plan` (the engine's input and output), `requests`, `publish`,
`convergence` (onset -> transition -> VPP reply, per stage).
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType
from typing import Any

from maglev.clock import Clock, SystemClock
from maglev.health.state import BackendHealth, Phase, Transition
from maglev.model import Config, ProbeResult, ProbeTarget
from maglev.reconcile import actions, events
from maglev.reconcile.actual import RankedActual
from maglev.reconcile.backends import (
    ProbeControl,
    carry_health_from,
    index_config,
    phase_rank,
    probe_streams,
)
from maglev.reconcile.budget import Budgets
from maglev.reconcile.convergence import Convergence
from maglev.reconcile.damping import Damping, DampingChange, tell
from maglev.reconcile.desired import EncodedStates
from maglev.reconcile.holds import Holds
from maglev.reconcile.interlock import ReloadHold
from maglev.reconcile.link import VppLink
from maglev.reconcile.opstate import OpState
from maglev.reconcile.plan import ViewRef
from maglev.reconcile.publish import (
    FrontendParts,
    backend_events,
    make_snapshot,
    refresh_statuses,
)
from maglev.reconcile.reloadhold import ReloadHolds
from maglev.reconcile.requests import Answers
from maglev.reconcile.slowstart import Ramps
from maglev.reconcile.snapshot import BackendStatus, ProbeLog, Snapshot, Tally
from maglev.reconcile.startup import StartupGate
from maglev.reconcile.vantage import GuardChange, VantageGuard
from maglev.reconcile.writing import Writes
from maglev.vpp.client import LbClient
from maglev.vpp.lb import Actual, VipCounters, VipKey

__all__ = ["DRAIN_MAX", "ProbeControl", "Reconciler", "phase_rank"]

log = logging.getLogger(__name__)

DRAIN_MAX = 100_000  # messages applied per turn before writing (bounds a turn's latency)
# After a turn that only took in probe results and changed nothing, the next results are let
# pile up this long before the thread wakes for them. Steady probing otherwise wakes it once per
# result (thousands a second), and the wake-up (the queue's condition, the GIL changing hands)
# and the turn around it (snapshot, deadlines, write checks) cost several times the result's
# own rise/fall step. Measured in the daemon at 1,000 TCP probes/s, the reconciler thread's CPU
# per probe was 43-45 us with a 10 ms settle and 19-20 us with this one. It waits on the
# inbox's bell (`events.Inbox`), which every request and every result that may move a backend
# rings: those are taken at once, and a turn that did anything goes straight back to the queue.
# Only repeats of the last outcome wait, and what they change (the last probe shown, the probe
# counters) is at most this old.
SETTLE = 0.05


class Reconciler(Writes, Holds, ReloadHolds, Answers):  # Holds first: it answers operator actions
    def __init__(
        self,
        config: Config,
        inbox: queue.Queue[Any],
        lb: LbClient,
        scheduler: ProbeControl,
        *,
        publish: Callable[[dict[str, Any]], None] = lambda ev: None,
        clock: Clock | None = None,
        dry_run: bool = False,
        stopping: threading.Event | None = None,
        on_first_sync: Callable[[], None] | None = None,
        on_config: Callable[[], None] | None = None,
        on_idle: Callable[[], object] | None = None,
        state: OpState | None = None,
        state_file: str | None = None,
    ) -> None:
        self.config = config
        self.inbox = inbox
        self.lb = lb
        self.scheduler = scheduler
        self.publish = publish
        self.clock = clock or SystemClock()
        self.dry_run = dry_run
        self.stopping = stopping or threading.Event()
        # What ends a settle early (`SETTLE`): the inbox's bell, or one nobody rings.
        self.bell = inbox.bell if isinstance(inbox, events.Inbox) else threading.Event()
        self.on_first_sync = on_first_sync
        self.on_config = on_config  # after each config is installed (the daemon settles memory)
        self._settle_due = False  # `on_config` is called once the new config's writes are done
        self.on_idle = on_idle  # after a turn that left the queue empty (the daemon tidies)
        now = self.clock.monotonic()
        self.started = now
        self.health: dict[str, BackendHealth] = {}
        self.probes = ProbeLog()  # every target's latest results (live, see `ProbeLog`)
        self.overrides: dict[tuple[str, str], int] = {}
        self.actual: Actual | None = None
        self.removed_vips: set[VipKey] = set()  # frontends a reload removed: ours to delete
        self.removals_due = False  # a reload removed some: the next pass deletes them
        self.gate = StartupGate(now)
        self.dirty: set[str] = set()
        self.full_due = True
        self.next_sync = now
        self.link = VppLink(lb, self.clock, publish, now)
        self.vip_counters: tuple[VipCounters, ...] = ()
        self.vip_counters_prev: tuple[VipCounters, ...] | None = None  # the read before
        self.vip_counters_at: float | None = None
        self.next_counters = now
        self.config_loaded_at: float | None = self.clock.wall()
        self.last_reload = events.ReloadStatus(ok=True)
        self.reloads = {"ok": 0, "rejected": 0, "held": 0}
        self.reload_hold: ReloadHold | None = None  # a reload the interlocks hold (`reloadhold`)
        self.last_sync: float | None = None
        self.last_sync_ok = False
        self.first_sync_done = False
        self.unmanaged: tuple[VipKey, ...] = ()
        self._logged_unmanaged: set[VipKey] = set()
        self.tally = Tally()
        self.views: dict[str, ViewRef] = {}
        self.views_changed = 0  # bumped with every change of `views` (the snapshot's cache)
        self._fe_parts = FrontendParts()
        self._stopped = False
        self._states: EncodedStates | None = None
        self._ranked: RankedActual | None = None  # the view of VPP ranked for _states' layout
        self._by_target: dict[ProbeTarget, tuple[str, ...]] = {}
        self._target_of: dict[str, ProbeTarget] = {}  # backend -> its probe target
        self._check_kind: dict[str, str] = {}  # healthcheck name -> its type's value
        self._fe_of: dict[str, tuple[str, ...]] = {}
        self._bstatus: dict[str, BackendStatus] = {}
        self._bview: Mapping[str, BackendStatus] | None = None  # its copy readers have
        self._touched: set[str] = set()
        self._phase: dict[ProbeTarget, Phase] = {}
        self._phase_news: dict[ProbeTarget, Phase] = {}  # for the scheduler, once per turn
        self._said: list[Transition] = []  # transitions not yet logged and published
        self._transitions = 0  # transitions seen so far (whether a turn changed anything)
        self.guard = VantageGuard(self.clock)  # health.vantage: may hold drains back
        self.damping = Damping()  # healthchecks' flap-damping: may hold backends out
        self._damp_said: list[DampingChange] = []  # told after the transitions
        self.ramps = Ramps(publish)  # slow start: ramps per (frontend, backend)
        self.budget = Budgets(publish)  # disruption budget: stepped changes per frontend
        self.convergence = Convergence(on=not dry_run)  # onset -> transition -> VPP reply
        # Operator state (from the state file, None: nothing persisted): enforced by the first
        # config's install, so the first pass already writes it (restart neutrality).
        self._start_holds(state, state_file)
        self._install_config(config, now)
        self.snapshot = self._make_snapshot()

    # --- the thread -------------------------------------------------------------------------

    def run(self) -> None:
        log.info("reconciler started (dry-run: %s)", self.dry_run)
        try:
            while not self.stopping.is_set() and not self._stopped:
                timeout = max(0.0, min(self._next_deadline() - self.clock.monotonic(), 1.0))
                try:
                    first = self.inbox.get(timeout=timeout)
                except queue.Empty:
                    first = None
                quiet = self.turn(first)
                if quiet and not self._stopped:
                    self.bell.wait(min(SETTLE, max(0.0, timeout)))
                    self.bell.clear()  # rung later (during the turn): the next settle is skipped
                if self.on_idle is not None and self.inbox.empty():
                    self.on_idle()
        finally:
            self.lb.disconnect()  # on this thread: the connection is this thread's alone
        log.info("reconciler stopped; VPP's lb tables are left as they are")

    def turn(self, first: Any = None) -> bool:
        """One turn: apply `first` and everything queued behind it, then write to VPP. True if
        the turn took in only probe results and they changed no backend's state (`SETTLE`)."""
        batch = [] if first is None else [first]
        batch.extend(events.drain(self.inbox, DRAIN_MAX - len(batch)))
        now = self.clock.monotonic()
        results: dict[ProbeTarget, ProbeResult] = {}
        transitions = self._transitions
        quiet = bool(batch)
        for msg in batch:
            if isinstance(msg, ProbeResult):
                results[msg.target] = msg  # coalesce: the latest result per target wins
            else:
                quiet = False
                # Keep order between probe results and commands: apply what came before.
                self._apply_results(results, now)
                results = {}
                self._flush_phases()
                self._tell()
                self._handle(msg, now)
        self._apply_results(results, now)
        self._expire_holds(now)
        self._release(now)
        self.dirty.update(self.ramps.tick(now))
        self.dirty.update(self.budget.tick(now))
        self._write(now)
        self._refresh_counters(now)
        self._flush_phases()  # after writing: the next probes' intervals can wait that long
        self._tell()
        self.snapshot = self._make_snapshot()
        due = self.full_due or not self.dirty.isdisjoint(self.gate.released)
        if self._settle_due and (not due or not self.lb.connected):
            self._settle_due = False  # after the config's writes: off the reload's path
            if self.on_config is not None:
                self.on_config()
        return quiet and self._transitions == transitions and not self.dirty

    def _flush_phases(self) -> None:
        if self._phase_news:
            news, self._phase_news = self._phase_news, {}
            self.scheduler.set_phases(news)

    def _next_deadline(self) -> float:
        deadlines = [self.next_sync]
        if not self.lb.connected:
            deadlines.append(self.link.reconnect_at)
        elif self.config.vpp.lb.counters_interval > 0:
            deadlines.append(self.next_counters)
        deadlines.extend(self.gate.deadlines(self.config))
        if (reuse := self.damping.deadline()) is not None:
            deadlines.append(reuse)  # a suppressed backend returns then
        if (ramp_step := self.ramps.next_at()) is not None:
            deadlines.append(ramp_step)
        if (budget_step := self.budget.next_at()) is not None:
            deadlines.append(budget_step)  # the next step of a budgeted change
        now = self.clock.monotonic()
        if (expiry := self.holds_deadline(now)) is not None:
            deadlines.append(expiry)  # an operator state ends then
        future = [d for d in deadlines if d > now]
        return min(future) if future else now + 1.0

    # --- inputs -----------------------------------------------------------------------------

    def _apply_results(self, results: dict[ProbeTarget, ProbeResult], now: float) -> None:
        if not results:
            return
        by_target, health, touched = self._by_target, self.health, self._touched
        record, probe, kinds = self.probes.record, self.tally.probe, self._check_kind
        canary = self.guard.canary_targets
        for target, res in results.items():
            record(target, res)
            probe(kinds.get(target.healthcheck, "unknown"), res.duration)
            names = by_target.get(target, ())
            moved = False
            for name in names:
                h = health[name]
                counter = h.counter
                t = h.apply(res, now)
                if t is not None:
                    moved = True
                    self._transition(t)  # (touches the backend)
                elif h.counter != counter:
                    moved = True
                    touched.add(name)  # its status shows the counter: rebuilt
            if target in canary:
                moved = True
                self.guard.canary_result(res, now)
            if moved:  # a phase follows the state and the counter: unmoved, it stands
                self._update_phase(target, names)

    def _index(self) -> None:
        """Per-config lookups: probe target -> backends, backend -> frontends."""
        self._by_target, self._target_of, self._fe_of, self._check_kind = index_config(
            self.config, self._by_target
        )

    def _update_phase(self, target: ProbeTarget, names: list[str] | tuple[str, ...]) -> None:
        if len(names) == 1 and target not in self.guard.canary_targets:  # the usual case
            phase = self.health[names[0]].phase
            if phase is None:
                return
        else:
            phases = [p for n in names if (p := self.health[n].phase) is not None]
            phases += self.guard.canary_phases(target)
            if not phases:
                return
            phase = min(phases, key=phase_rank)
        if self._phase.get(target) is not phase:  # tell the scheduler on changes only
            self._phase[target] = phase
            self._phase_news[target] = phase

    def _transition(self, t: Transition) -> None:
        self._transitions += 1
        self._touched.add(t.backend)
        if (damped := self.damping.note(t)) is not None:
            self._damped([damped])
        state = self.guard.note(t) if self.guard.on else t.new  # a held drain: still up
        if self._states is not None and self._states.layout.config is self.config:
            self._states.update(t.backend, state)
        fes = self._fe_of.get(t.backend, ())
        self.dirty.update(fes)
        if t.probed is not None:  # a probe's verdict: measured until VPP has it
            self.convergence.note(t, fes, self.health[t.backend].address)
        if state is t.new:  # a drain the vantage guard holds keeps its ramp
            self.ramps.on_transition(t, self.config, fes, self._serving, self.actual, t.at)
        self._said.append(t)  # logged and published once VPP has been written (`_tell`)

    def _guarded(self, change: GuardChange | None) -> None:
        """The vantage guard tripped or released: the engine input of the backends it names
        changes, and their frontends get a pass (a release's pending drains: one pass)."""
        if change is None:
            return
        self._restate(change.backends)
        self.publish(change.event())

    def _damped(self, changes: list[DampingChange]) -> None:
        """Flap damping suppressed or returned these backends (told after the transitions)."""
        if changes:
            self._restate(c.backend for c in changes)
            self._damp_said.extend(changes)

    def _restate(self, names: Iterable[str]) -> None:
        """Re-encode the engine input of these backends; their frontends get a pass."""
        live = self._states is not None and self._states.layout.config is self.config
        for name in names:
            if live and self._states is not None and (h := self.health.get(name)) is not None:
                self._states.update(name, self.guard.present(name, h.state))
            self.dirty.update(self._fe_of.get(name, ()))

    def _tell(self) -> None:
        """Count, log and publish this turn's transitions so far; deferred until VPP has been
        written (a burst's thousands of log lines should not delay the weights they call for)."""
        if self._said:
            said, self._said = self._said, []
            backend_events(said, self._fe_of, self.tally, self.publish)
        if self._damp_said:
            damp, self._damp_said = self._damp_said, []
            tell(damp, self.publish, self.clock.wall() - self.clock.monotonic())

    # --- config -----------------------------------------------------------------------------

    def _serving(self, name: str) -> bool:
        """Whether a frontend has been programmed (slow start never ramps a first programming)."""
        return name in self.views and name in self.gate.released

    def _install_config(self, config: Config, now: float) -> None:
        old = self.health
        new, removed, fresh = carry_health_from(old, self.config, config, now)
        for t in removed:
            self._transition(t)
        self.ramps.reloaded(self.config, config, self._serving, new, self.actual, now)
        self.health = new
        self.config = config
        self._index()
        self._guarded(self.guard.configure(config, new, now))
        self._damped(self.damping.configure(config, now))  # penalties kept per healthcheck
        # Statuses of the machines the reload kept stand; the others are built afresh.
        # (`fresh`: the names whose machine is not the one before; removed ones are gone too)
        statuses = self._bstatus
        for n in fresh.union(old.keys() - new.keys()):
            statuses.pop(n, None)
        self._bview = None  # readers get a fresh copy: names went, or come
        self._touched = fresh | (self._touched & new.keys())
        self.probes.keep_only(self._by_target, self.guard.canary_targets)
        self.overrides = actions.kept_overrides(self.overrides, config)
        self._enforce_holds(now)
        self._sync_streams()
        self._settle_due = self.on_config is not None  # once VPP has what it calls for

    def _sync_streams(self) -> None:
        targets, phases = probe_streams(self.health, self._target_of)
        self.guard.add_streams(targets, phases)  # canaries: probed like backends
        self._phase = dict(phases)
        self.scheduler.set_targets(targets, phases)

    # --- startup gating ---------------------------------------------------------------------

    def _release(self, now: float) -> None:
        released = self.gate.release(self.config, lambda b: self.health[b].state, now)
        if not released:
            return
        if self.first_sync_done:  # a reload's new frontends: VPP's lb conf is set already
            self.dirty.update(released)
        else:
            self.full_due = True  # a full sync sets VPP's lb conf first, then programs them

    # --- publishing -------------------------------------------------------------------------

    def _make_snapshot(self) -> Snapshot:
        touched, self._touched = self._touched, set()
        if touched:
            args = (self.health, self._target_of, self.probes)
            if refresh_statuses(self._bstatus, touched, *args) or self._bview is None:
                self._bview = None
        if self._bview is None:  # copied only when a status changed, not after every turn
            self._bview = MappingProxyType(dict(self._bstatus))
        return make_snapshot(self, self._bview, self._fe_parts)
