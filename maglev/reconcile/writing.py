"""Writing to VPP, on the reconciler thread: connect, full sync, targeted pass, apply.

`Writes` is a part of `maglev.reconcile.reconciler.Reconciler` (its base class), kept in its own
module so the loop stays readable; it runs on the reconciler thread over the reconciler's state
(declared below for the type checker): the VPP connection, the view of VPP, the startup gate,
the safety rules' state and the engine input it encodes.
"""

from __future__ import annotations

import logging
import time
from array import array
from collections.abc import Callable, Collection, Sequence
from typing import Any

from maglev.clock import Clock
from maglev.diff import Desired
from maglev.errors import VppError
from maglev.health.state import BackendHealth
from maglev.model import Config, UnmanagedPolicy
from maglev.reconcile import churn
from maglev.reconcile.actual import RankedActual
from maglev.reconcile.budget import Budgets
from maglev.reconcile.churn import FrontendIndex
from maglev.reconcile.convergence import Convergence
from maglev.reconcile.damping import Damping, DampingChange
from maglev.reconcile.desired import EncodedStates, Layout, StateView, build_layout
from maglev.reconcile.link import VppLink
from maglev.reconcile.plan import ViewRef, plan_for
from maglev.reconcile.publish import frontend_events, note_unmanaged
from maglev.reconcile.slowstart import Ramps
from maglev.reconcile.snapshot import Tally
from maglev.reconcile.startup import StartupGate
from maglev.reconcile.vantage import GuardChange, VantageGuard
from maglev.vpp.client import LbClient
from maglev.vpp.lb import Actual, LbConf, VipCounters, VipKey, frontend_key
from maglev.vpp.ops import Op, Plan, record

log = logging.getLogger(__name__)

RETRY_AFTER_FAILURE = 2.0


class Writes:
    """The writing half of the reconciler (see the module docstring)."""

    # Owned and set by the reconciler (declared for the type checker).
    config: Config
    health: dict[str, BackendHealth]
    overrides: dict[tuple[str, str], int]
    lb: LbClient
    link: VppLink
    clock: Clock
    dry_run: bool
    actual: Actual | None
    dirty: set[str]
    full_due: bool
    next_sync: float
    next_counters: float
    vip_counters: tuple[VipCounters, ...]
    vip_counters_prev: tuple[VipCounters, ...] | None
    vip_counters_at: float | None
    last_sync: float | None
    last_sync_ok: bool
    first_sync_done: bool
    on_first_sync: Callable[[], None] | None
    removed_vips: set[VipKey]
    removals_due: bool
    unmanaged: tuple[VipKey, ...]
    _logged_unmanaged: set[VipKey]
    gate: StartupGate
    guard: VantageGuard
    damping: Damping
    ramps: Ramps
    budget: Budgets
    tally: Tally
    convergence: Convergence
    views: dict[str, ViewRef]
    views_changed: int
    publish: Callable[[dict[str, Any]], None]
    _states: EncodedStates | None
    _ranked: RankedActual | None
    _fe_index: FrontendIndex | None = None  # built on first use

    def _guarded(self, change: GuardChange | None) -> None:
        raise NotImplementedError

    def _damped(self, changes: list[DampingChange]) -> None:
        raise NotImplementedError

    def _tell(self) -> None:
        raise NotImplementedError

    # --- writing ----------------------------------------------------------------------------

    def _connect(self, now: float) -> bool:
        if self.lb.connected:
            return True
        if not self.link.connect(now):
            return False
        self.actual = None  # whatever we knew may be stale: read VPP again
        self.full_due = True
        return True

    def _lost(self, why: str, now: float) -> None:
        self.link.lost(why, now)
        self.actual = None
        self.full_due = True

    def _write(self, now: float) -> None:
        self._guarded(self.guard.evaluate(now, self.health))  # before any weight is written
        self._damped(self.damping.expire(now))  # suppressions over: those backends return
        if self.link.dropped:
            self._lost("connection closed", now)
        if not self._connect(now):
            return
        try:
            if self.full_due or now >= self.next_sync or self.actual is None:
                self._full_sync(now)
            elif self.dirty or self.removals_due:
                self._pass(set(self.dirty), now)
        except VppError as e:
            self._lost(str(e), now)
            return
        if not self.lb.connected:
            self._lost("connection closed", now)

    def _refresh_counters(self, now: float) -> None:
        """VPP's per-VIP counters into the snapshot, every `counters-interval` (0: never)."""
        interval = self.config.vpp.lb.counters_interval
        if interval <= 0 or now < self.next_counters or not self.lb.connected:
            return
        self.next_counters = now + interval
        try:
            self._counted(self.lb.read_counters())
        except VppError as e:
            self._lost(str(e), now)

    def _counted(self, counters: tuple[VipCounters, ...]) -> None:
        if self.vip_counters_at is not None:  # the reload interlocks compare the last two reads
            self.vip_counters_prev = self.vip_counters
        self.vip_counters = counters
        self.vip_counters_at = self.clock.wall()

    def _full_sync(self, now: float) -> None:
        got = self.lb.read()
        self.actual = got.actual
        self._counted(got.counters)
        self.next_counters = now + self.config.vpp.lb.counters_interval
        if not self.dry_run and self.gate.released:
            self._ensure_conf(got.state.conf)
        self.full_due = False
        self.next_sync = now + self.config.vpp.lb.sync_interval
        ok = self._pass(None, now)
        self.last_sync = self.clock.wall()
        self.last_sync_ok = ok
        self.tally.full_syncs += 1
        if ok and not self.first_sync_done and self.gate.all_released:
            self.first_sync_done = True
            if self.on_first_sync is not None:
                self.on_first_sync()

    def _ensure_conf(self, conf: LbConf | None) -> None:
        try:
            self.lb.ensure_conf(conf, self.config.vpp.lb)
        except VppError as e:
            log.error("setting VPP's lb conf failed: %s", e)

    def _owned(self) -> set[VipKey]:
        """VIPs the diff may delete: frontends a reload removed, or all unknown VIPs by policy."""
        assert self.actual is not None
        owned = set(self.removed_vips)
        if self.config.vpp.unmanaged_vips is UnmanagedPolicy.DELETE:
            named = {frontend_key(fe) for fe in self.config.frontends.values()}
            owned |= {k for k in self.actual if k not in named}
        return owned

    def _encoded(self) -> EncodedStates:
        """The engine input for the live config (encoded again after a reload)."""
        if self._states is None or self._states.layout.config is not self.config:
            layout = build_layout(self.config)
            view = self.guard.view(StateView(self.health))
            self._states = EncodedStates(layout, view, self.damping.suppressed)
            self._ranked = RankedActual(layout)
        return self._states

    def _frontend_index(self) -> FrontendIndex:
        """VIP -> frontend for the live config (for churn reports; built once per config)."""
        if self._fe_index is None or self._fe_index.config is not self.config:
            self._fe_index = FrontendIndex(self.config)
        return self._fe_index

    def plan_for(
        self, names: set[str], full: bool, now: float | None = None
    ) -> tuple[Plan, dict[str, ViewRef]]:
        """The plan for the named frontends against our view of VPP (nothing is sent); `now`
        (default: the clock's) is when the disruption budget's steps are judged. It starts and
        re-plans budgeted changes, so it is for passes that apply their plan."""
        assert self.actual is not None
        at = self.clock.monotonic() if now is None else now
        self._encoded()
        assert self._states is not None
        # A targeted pass deletes the VIPs a reload removed (and reads only those beside its own).
        owned = self._owned() if full else {k for k in self.removed_vips if k in self.actual}

        def steps(
            layout: Layout, desired: Desired, current: array[int], names: Collection[str]
        ) -> array[int] | None:
            return self.budget.decide(layout, desired, current, names, at)

        return plan_for(
            self.config, self._states, names, self.overrides, self.actual, owned, full,
            self._ranked, self.ramps.encode(self._states.layout),
            steps if self.budget.configured(self.config) else None,
        )  # fmt: skip

    def _pass(self, only: set[str] | None, now: float) -> bool:
        """Diff released frontends (all, or `only`) against the view of VPP and apply. True if clean."""
        assert self.actual is not None
        t0 = time.perf_counter()
        names = set(self.gate.released) if only is None else (only & self.gate.released)
        self.dirty -= names
        removals, self.removals_due = self.removals_due, False
        if not names and only is not None and not removals:
            return True
        plan, views = self.plan_for(names, only is None, now)
        before = {n: self.views.get(n) for n in views}
        self.views.update(views)
        self.views_changed += 1
        if only is None:
            self.unmanaged = note_unmanaged(plan.unmanaged, self._logged_unmanaged)
        ok = self._apply(plan, now, None if only is None else names)
        if ok:
            self.removed_vips = {k for k in self.removed_vips if k in self.actual}
        dt = time.perf_counter() - t0
        self.tally.pass_done(dt)
        self._tell()  # the backends' transitions first, then what they did to frontends
        frontend_events(self.publish, before, views, self.first_sync_done, self.guard.held)
        return ok

    def _apply(self, plan: Plan, now: float, names: set[str] | None) -> bool:
        assert self.actual is not None
        if not plan.ops:
            self.convergence.settle(names, (), (), now)  # nothing to write for their changes
            return True
        log.info("%s", plan.summary())
        if log.isEnabledFor(logging.DEBUG):  # thousands of lines in a burst
            for line in plan.lines():
                log.debug("plan: %s", line)
        # The touched VIPs as VPP has them before the write: the "before" of the churn report.
        vips, recreated = churn.touched(plan.ops)
        before = churn.side(self.actual, vips)
        if self.dry_run:
            log.info("dry run: not applying %d operation(s)", len(plan.ops))
            for line in plan.lines():
                log.info("dry run: would %s", line)
            self._record(plan.ops)  # pretend, so the same plan is not logged on every pass
            report = churn.between(
                vips, before, self.actual, self._frontend_index(), recreated, churn.APPLIED_BUDGET
            )
            churn.log_report(report, dry_run=True)
            return True
        applied = self.lb.apply(plan.ops, self.actual)
        replied = self.clock.monotonic()  # apply returns as the batch's last reply is read
        if self._ranked is not None:
            self._ranked.record_all(applied.done)
        self.tally.ops_ok += len(applied.done)
        self.tally.ops_failed += applied.failed
        # After the write, so it never delays the weights; from what VPP now has (the ops that
        # succeeded), so the log and the counters say what really moved.
        report = churn.between(
            vips, before, self.actual, self._frontend_index(), recreated, churn.APPLIED_BUDGET
        )
        churn.log_report(report)
        self.tally.buckets_moved(report)
        self.convergence.settle(names, applied.done, plan.ops, replied)
        if applied.failed:
            # Our view may be wrong now: re-read VPP soon and retry what is still missing.
            self.next_sync = min(self.next_sync, now + RETRY_AFTER_FAILURE)
            return False
        return True

    def _record(self, ops: Sequence[Op]) -> None:
        """Record operations a dry run pretended to apply in the view of VPP."""
        assert self.actual is not None
        record(self.actual, ops)
        if self._ranked is not None:
            self._ranked.record_all(ops)
