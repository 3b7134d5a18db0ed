"""The engine's output read back: desired weights and their reasons, and the plan for VPP.

`evaluate` runs the engine on backend states and operator overrides and yields the per-frontend
views the control API shows (state, active pool, per-backend weight and why); `make_plan` diffs
against VPP's ranked tables (all frontends, or those `select` flags) and turns the engine's op
tuples into `maglev.vpp.ops` ops; `plan_for` is the reconciler's plan for some frontends,
`preview` the plan a candidate config would cause. The rules themselves live in the engine
(`maglev.diff`); its inputs are built in `desired` (config) and `actual` (VPP).
Pure; called by the reconciler thread (an evaluation is immutable, so any thread may read it).
"""

from __future__ import annotations

from array import array
from collections.abc import Callable, Collection, Container, Iterator, Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import TypeAlias

from maglev import diff
from maglev.model import (
    Backend,
    BackendState,
    Config,
    FrontendState,
    IPAddress,
    MassFailure,
    UnmanagedPolicy,
)
from maglev.reconcile.actual import ActualTable, RankedActual, prepare_actual_map
from maglev.reconcile.desired import (
    EncodedStates,
    Layout,
    build_layout,
    encode_overrides,
    encode_ramps,
    encode_states,
)
from maglev.vpp.lb import ActualVip, VipKey, frontend_attrs, frontend_key, nat_target_port
from maglev.vpp.ops import AddAs, CreateVip, DeleteAs, DeleteVip, Op, Plan, SetWeight

_FE_STATE = {
    diff.FE_UNKNOWN: FrontendState.UNKNOWN,
    diff.FE_UP: FrontendState.UP,
    diff.FE_DOWN: FrontendState.DOWN,
}
_REASON_TEXT = {
    diff.R_ZERO: "weight 0",
    diff.R_DOWN: "down",
    diff.R_PAUSED: "paused",
    diff.R_DISABLED: "disabled",
    diff.R_UNKNOWN: "unknown",
    diff.R_HELD: "held: mass-failure guard (fail-static)",
    diff.R_PANIC: "panic: mass-failure guard",
    diff.R_SUPPRESSED: "suppressed: flap damping",
    diff.R_BUDGET: "budget: held by max-churn",
}
# The disruption budget's step input for one pass: (layout, desired weights without it, VPP's
# current weights, the frontends in the pass) -> per slot step or NO_BUDGET (None: no step).
BudgetStep: TypeAlias = (
    "Callable[[Layout, diff.Desired, array[int], Collection[str]], array[int] | None]"
)


@dataclass(frozen=True, slots=True)
class BackendView:
    name: str
    address: IPAddress
    weight: int
    flush: bool  # flows are flushed when the weight is taken to 0
    reason: str  # "active pool primary", "standby pool backup", "override 30", "down", ...
    code: int = diff.R_ACTIVE  # the engine's R_* reason code (what `explain` and events read)


@dataclass(frozen=True, slots=True)
class GuardView:
    """A frontend's mass-failure guard as the engine judged it (see `maglev.diff`)."""

    active: bool  # holding weights (fail-static) or serving every member (panic)
    mode: MassFailure
    pool: str | None  # the serving pool it judged
    healthy: int
    members: int
    threshold: int


@dataclass(frozen=True, slots=True)
class FrontendView:
    name: str
    state: FrontendState
    active_pool: str | None
    backends: tuple[BackendView, ...]  # in address order
    guard: GuardView | None = None


@dataclass(frozen=True, slots=True)
class Evaluation:
    """The engine's desired state for one (config, states, overrides)."""

    layout: Layout
    desired: diff.Desired

    def frontend(self, index: int) -> FrontendView:
        lay, d = self.layout, self.desired
        fe = lay.frontends[index]
        active = d.fe_active[index]
        active_name = fe.pools[active].name if active >= 0 else None
        start, end = lay.topology.fe_slot_start[index], lay.topology.fe_slot_start[index + 1]
        views = []
        for s in range(start, end):
            w, r = d.slot_weight[s], d.slot_reason[s]
            if r == diff.R_ACTIVE:
                text = f"active pool {active_name}"
            elif r == diff.R_OVERRIDE:
                text = f"override {w}"
            elif r == diff.R_SLOW_START:
                text = f"slow start: active pool {active_name}"
            elif r == diff.R_STANDBY:
                text = f"standby pool {lay.slot_first_pool[s]}"
            else:
                text = _REASON_TEXT[r]
            views.append(
                BackendView(
                    lay.slot_backend_name[s], lay.slot_address[s], w, bool(d.slot_flush[s]), text, r
                )
            )
        return FrontendView(
            fe.name, _FE_STATE[d.fe_state[index]], active_name, tuple(views), self.guard(index)
        )

    def guard(self, index: int) -> GuardView:
        """The mass-failure guard of one frontend (cheap: no per-backend work)."""
        fe = self.layout.frontends[index]
        d = self.desired
        pool, healthy, members, threshold = d.fe_guard_counts[4 * index : 4 * index + 4]
        return GuardView(
            d.fe_guard[index] != diff.GUARD_NONE,
            fe.on_mass_failure,
            fe.pools[pool].name if pool >= 0 else None,
            healthy,
            members,
            threshold,
        )

    def guarded_backends(self, index: int) -> tuple[str, ...]:
        """The backends of one frontend that its mass-failure guard keeps serving."""
        lay, reason = self.layout, self.desired.slot_reason
        start, end = lay.topology.fe_slot_start[index], lay.topology.fe_slot_start[index + 1]
        kept = (diff.R_HELD, diff.R_PANIC)
        return tuple(lay.slot_backend_name[s] for s in range(start, end) if reason[s] in kept)

    def views(self) -> dict[str, FrontendView]:
        """Every frontend's view by name (built on demand: the sync itself does not need it)."""
        return {fe.name: self.frontend(i) for i, fe in enumerate(self.layout.frontends)}


def evaluate(
    layout: Layout,
    states: Mapping[str, BackendState],
    overrides: Mapping[tuple[str, str], int] | None = None,
    engine: ModuleType | None = None,
    table: ActualTable | None = None,
    suppressed: Container[str] = (),
    ramps: Mapping[tuple[str, str], int] | None = None,
    budget: Mapping[tuple[str, str], int] | None = None,
) -> Evaluation:
    """Run the engine (`engine`: a twin picked explicitly, default the selected one) against
    VPP's ranked tables (`table`; None: VPP has nothing, so the guard can keep nothing);
    `suppressed` names the backends flap damping holds out; `ramps` are the slow-start ramps
    per (frontend, backend) in per mille (None: none); `budget` the disruption-budget steps
    per (frontend, backend) (None: none)."""
    desired = diff.compute_desired(
        layout.topology,
        encode_states(layout, states, suppressed),
        encode_overrides(layout, overrides or {}),
        layout.no_overrides
        if table is None
        else diff.current_weights(layout.topology, table.actual, engine),
        engine,
        None if ramps is None else encode_ramps(layout, ramps),
        None if budget is None else encode_overrides(layout, budget),  # same shape: -1 none
    )
    return Evaluation(layout, desired)


@dataclass(frozen=True, slots=True)
class ViewRef:
    """Where a frontend's view comes from: its index in one (immutable) engine evaluation."""

    evaluation: Evaluation
    index: int


def make_plan(
    evaluation: Evaluation,
    table: ActualTable,
    owned: Collection[VipKey] = frozenset(),
    selected: array[int] | None = None,
    engine: ModuleType | None = None,
) -> Plan:
    """The ordered ops turning VPP's tables (`table`) into the desired ones.

    VIPs in VPP that the config does not name are deleted only when listed in `owned`; the
    others come back as `Plan.unmanaged`. `selected` (per frontend index, default all) limits
    the pass to some frontends: the VIPs of the others are left as they are.
    """
    layout = evaluation.layout
    owned_flags = array("b", [int(k in owned) for k in table.vip_ids])
    if selected is None:
        selected = array("b", [1]) * len(layout.frontends)
    ops, unmanaged = diff.diff_tables(
        layout.topology, evaluation.desired, table.actual, owned_flags, selected, engine
    )
    fe_by_rank = dict(zip(layout.topology.fe_vip, layout.frontends, strict=True))

    def vip_of(rank: int) -> VipKey:
        k = layout.vip_ranks.key(rank)
        return table.extra_vips[rank] if k is None else k

    # A burst brings thousands of ops, a VIP's together: its id is looked up once per run.
    as_key, extra_addresses = layout.as_ranks.key, table.extra_addresses
    set_weight, add_as, delete_as = diff.OP_SET_WEIGHT, diff.OP_ADD_AS, diff.OP_DELETE_AS
    out: list[Op] = []
    if not ops:
        return Plan(ops=(), unmanaged=tuple(vip_of(r) for r in unmanaged))
    last_vr = ops[0][1]
    net, proto, port = vip_of(last_vr)
    for code, vr, ar, weight, flush in ops:
        if vr != last_vr:
            net, proto, port = vip_of(vr)
            last_vr = vr
        if code in (set_weight, add_as, delete_as):
            a = as_key(ar)
            if a is None:
                a = extra_addresses[ar]
            if code == set_weight:
                out.append(SetWeight(net, proto, port, a, weight, bool(flush)))
            elif code == add_as:
                out.append(AddAs(net, proto, port, a, weight))
            else:
                out.append(DeleteAs(net, proto, port, a, bool(flush)))
        elif code == diff.OP_CREATE_VIP:
            fe = fe_by_rank[vr]
            out.append(
                CreateVip(
                    net,
                    proto,
                    port,
                    fe.encap,
                    frontend_attrs(fe).dscp,
                    fe.src_ip_sticky,
                    fe.flow_table_length,
                    nat_target_port(fe),
                )
            )
        else:
            out.append(DeleteVip(net, proto, port))
    return Plan(ops=tuple(out), unmanaged=tuple(vip_of(r) for r in unmanaged))


def select(layout: Layout, names: Collection[str]) -> array[int]:
    """The `selected` flags of `make_plan` for the named frontends."""
    return array("b", [int(fe.name in names) for fe in layout.frontends])


def plan_for(
    config: Config,
    states: EncodedStates,
    names: set[str],
    overrides: Mapping[tuple[str, str], int],
    actual: Mapping[VipKey, ActualVip],
    owned: set[VipKey],
    full: bool,
    ranked: RankedActual | None = None,
    ramp: array[int] | None = None,
    budget: BudgetStep | None = None,
) -> tuple[Plan, dict[str, ViewRef]]:
    """The plan for the named frontends, with the whole config's layout, and their views.

    Frontends not named (held at startup, or untouched by a targeted pass) are left as VPP has
    them. `ranked` (of the same layout) ranks the view incrementally; `ramp` (per slot, per
    mille, from `slowstart.Ramps.encode`) caps slow-starting weights; `budget` (from
    `budget.Budgets.decide`) gives the disruption budget's steps. A full plan also covers the
    VIPs the config does not name (deleted when in `owned`, else reported unmanaged); a targeted
    one reads only the named frontends' VIPs and those in `owned` (deleted: a reload removed them).
    """
    layout = states.layout
    everyone = len(names) == len(config.frontends)
    if not full:
        key_of, everything = layout.keys, actual
        actual = {k: v for n in names if (v := actual.get(k := key_of[n])) is not None}
        actual.update((k, v) for k in owned if (v := everything.get(k)) is not None)
    if ranked is not None and ranked.layout is layout:
        table = ranked.table(actual)
    else:
        table = prepare_actual_map(layout, actual)
    topology = layout.topology
    current = diff.current_weights(topology, table.actual)
    codes, ovs = states.codes, encode_overrides(layout, overrides)
    desired = diff.compute_desired(topology, codes, ovs, current, ramp=ramp)
    # The disruption budget measures the change the engine wants, then holds it to a step.
    steps = None if budget is None else budget(layout, desired, current, names)
    if steps is not None:
        desired = diff.compute_desired(topology, codes, ovs, current, ramp=ramp, budget=steps)
    ev = Evaluation(layout, desired)
    selected = None if everyone else select(layout, names)
    plan = make_plan(ev, table, owned, selected)
    index = layout.frontend_index
    return plan, {n: ViewRef(ev, index[n]) for n in names}


def guard_code(ref: ViewRef | None) -> int:
    """A frontend's GUARD_* code in its view (none without a view)."""
    return diff.GUARD_NONE if ref is None else ref.evaluation.desired.fe_guard[ref.index]


def brief(ref: ViewRef) -> tuple[FrontendState, str | None]:
    """A frontend's state and active pool, without building its whole view."""
    d = ref.evaluation.desired
    fe = ref.evaluation.layout.frontends[ref.index]
    active = d.fe_active[ref.index]
    return _FE_STATE[d.fe_state[ref.index]], fe.pools[active].name if active >= 0 else None


def _start(
    old: Backend | None, b: Backend, name: str, states: Mapping[str, BackendState]
) -> BackendState:
    same = old is b or (
        old is not None and old.address == b.address and old.healthcheck == b.healthcheck
    )
    if not b.enabled:
        return BackendState.DISABLED
    if same and (state := states.get(name)) is not None:
        return state
    return BackendState.UP if b.healthcheck is None else BackendState.UNKNOWN


def candidate_states(
    current: Config, candidate: Config, states: Mapping[str, BackendState]
) -> dict[str, BackendState]:
    """The backend states a reload to `candidate` would start from: backends that keep their
    address and healthcheck keep their current state; others start as they would after a
    reload (unknown; disabled when not enabled; up without a healthcheck)."""
    olds = current.backends
    return {n: _start(olds.get(n), b, n, states) for n, b in candidate.backends.items()}


class CandidateStates(Mapping[str, BackendState]):
    """`candidate_states` read through, one backend at a time: a reload judges the backends of
    the frontends it touches, not a dict of every backend."""

    __slots__ = ("_candidate", "_current", "_states")

    def __init__(
        self, current: Config, candidate: Config, states: Mapping[str, BackendState]
    ) -> None:
        self._current, self._candidate, self._states = current.backends, candidate.backends, states

    def __getitem__(self, name: str) -> BackendState:
        return _start(self._current.get(name), self._candidate[name], name, self._states)

    def __iter__(self) -> Iterator[str]:
        return iter(self._candidate)

    def __len__(self) -> int:
        return len(self._candidate)


def preview(
    current: Config,
    candidate: Config,
    states: Mapping[str, BackendState],
    overrides: Mapping[tuple[str, str], int],
    actual: Mapping[VipKey, ActualVip],
    removed_vips: set[VipKey],
    suppressed: Container[str] = (),
) -> Plan:
    """The full plan `candidate` would cause now (`suppressed`: held out by flap damping).

    Backends start as `candidate_states` says.
    """
    cand_states = candidate_states(current, candidate, states)
    layout = build_layout(candidate)
    table = prepare_actual_map(layout, actual)
    ev = evaluate(layout, cand_states, overrides, table=table, suppressed=suppressed)
    named = set(layout.keys.values())
    removed = {frontend_key(fe) for fe in current.frontends.values()} - named
    owned = removed | removed_vips
    if candidate.vpp.unmanaged_vips is UnmanagedPolicy.DELETE:
        owned |= set(actual) - named
    return make_plan(ev, table, owned)
