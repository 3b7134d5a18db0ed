"""Desired dataplane state: the adapter between the config model and the diff engine.

Owns the translation both ways, around a `Layout` (the config compiled for the engine, built by
`maglev.reconcile.layout` and re-exported here with its helpers): `evaluate` runs the engine on
backend states and operator overrides and yields the per-frontend views the control API shows
(state, active pool, per-backend weight and why); `prepare_actual` (VPP's rows) or
`prepare_actual_map` ({VIP key: ActualVip}) ranks what VPP has; `make_plan` diffs (all
frontends, or those `select` flags) and turns the engine's op tuples into
`maglev.reconcile.plan` ops. The rules themselves live in the engine (`maglev.diff`).
Pure; called by the reconciler thread.
"""

from __future__ import annotations

from array import array
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from operator import itemgetter
from types import ModuleType
from typing import Protocol

from maglev import diff
from maglev.model import BackendState, Encap, FrontendState, IPAddress, IPNetwork
from maglev.reconcile.layout import (
    STATE_CODE,
    Layout,
    Ranking,
    address_order,
    build_layout,
    encode_overrides,
    encode_states,
    frontend_attrs,
    nat_target_port,
    vip_id,
    vip_order,
)
from maglev.reconcile.plan import (
    ENCAP_CODE,
    AddAs,
    CreateVip,
    DeleteAs,
    DeleteVip,
    Op,
    Plan,
    SetWeight,
    VipId,
)

__all__ = [
    "STATE_CODE",
    "ActualTable",
    "ActualVipLike",
    "AsRow",
    "BackendView",
    "Evaluation",
    "FrontendView",
    "Layout",
    "Ranking",
    "VipAttrsLike",
    "VipRow",
    "address_order",
    "build_layout",
    "encode_overrides",
    "encode_states",
    "evaluate",
    "frontend_attrs",
    "make_plan",
    "nat_target_port",
    "prepare_actual",
    "prepare_actual_map",
    "select",
    "vip_id",
    "vip_order",
]

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
}


@dataclass(frozen=True, slots=True)
class BackendView:
    name: str
    address: IPAddress
    weight: int
    flush: bool  # flows are flushed when the weight is taken to 0
    reason: str  # "active pool primary", "standby pool backup", "override 30", "down", ...


@dataclass(frozen=True, slots=True)
class FrontendView:
    name: str
    state: FrontendState
    active_pool: str | None
    backends: tuple[BackendView, ...]  # in address order


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
            elif r == diff.R_STANDBY:
                text = f"standby pool {lay.slot_first_pool[s]}"
            else:
                text = _REASON_TEXT[r]
            views.append(
                BackendView(
                    lay.slot_backend_name[s], lay.slot_address[s], w, bool(d.slot_flush[s]), text
                )
            )
        return FrontendView(fe.name, _FE_STATE[d.fe_state[index]], active_name, tuple(views))

    def views(self) -> dict[str, FrontendView]:
        """Every frontend's view by name (built on demand: the sync itself does not need it)."""
        return {fe.name: self.frontend(i) for i, fe in enumerate(self.layout.frontends)}


def evaluate(
    layout: Layout,
    states: Mapping[str, BackendState],
    overrides: Mapping[tuple[str, str], int] | None = None,
    engine: ModuleType | None = None,
) -> Evaluation:
    """Run the engine (`engine`: a twin picked explicitly, default the selected one)."""
    desired = diff.compute_desired(
        layout.topology,
        encode_states(layout, states),
        encode_overrides(layout, overrides or {}),
        engine,
    )
    return Evaluation(layout, desired)


class AsRow(Protocol):
    """One live AS as read from VPP (`maglev.vpp.dumper.AsInfo` has these fields)."""

    @property
    def vip(self) -> VipId: ...
    @property
    def address(self) -> IPAddress: ...
    @property
    def weight(self) -> int: ...


class VipAttrsLike(Protocol):
    """A VIP's attributes (`maglev.reconcile.dataplane.VipAttrs` has these fields)."""

    @property
    def encap(self) -> int: ...
    @property
    def dscp(self) -> int: ...
    @property
    def src_ip_sticky(self) -> bool: ...
    @property
    def flow_table_length(self) -> int: ...


class VipRow(VipAttrsLike, Protocol):
    """One VIP as read from VPP (`maglev.vpp.dumper.VipInfo` has these fields)."""

    @property
    def prefix(self) -> IPNetwork: ...
    @property
    def protocol(self) -> int: ...
    @property
    def port(self) -> int: ...


class ActualVipLike(Protocol):
    """One VIP of VPP: attributes and the weight of each live AS (`dataplane.ActualVip`)."""

    @property
    def attrs(self) -> VipAttrsLike: ...
    @property
    def weights(self) -> Mapping[IPAddress, int]: ...


@dataclass(frozen=True, slots=True)
class ActualTable:
    """VPP's tables ranked for the engine, with the keys the config does not know."""

    actual: diff.Actual
    vip_ids: tuple[VipId, ...]  # per engine actual-VIP index
    extra_vips: Mapping[int, VipId]
    extra_addresses: Mapping[int, IPAddress]


def prepare_actual(layout: Layout, vips: Iterable[VipRow], ases: Iterable[AsRow]) -> ActualTable:
    """Rank VPP's VIP and live AS rows (ASes of VIPs not in `vips` are ignored)."""
    attrs: dict[VipId, VipAttrsLike] = {}
    for v in vips:
        attrs.setdefault((v.prefix, v.protocol, v.port), v)
    weights: dict[VipId, dict[IPAddress, int]] = {k: {} for k in attrs}
    last_key: VipId | None = None
    last: dict[IPAddress, int] | None = None
    for a in ases:
        # Rows of one VIP usually come together and often share the key object: hashing the
        # key's network once per VIP instead of once per row saves much of the time here.
        if a.vip is not last_key:
            last_key = a.vip
            last = weights.get(a.vip)
        if last is not None:
            last[a.address] = a.weight
    return _rank_table(layout, attrs, {k: w.items() for k, w in weights.items()})


def prepare_actual_map(layout: Layout, actual: Mapping[VipId, ActualVipLike]) -> ActualTable:
    """`prepare_actual` for a view of VPP kept as {VIP key: ActualVip} (no row objects)."""
    return _rank_table(
        layout,
        {k: v.attrs for k, v in actual.items()},
        {k: v.weights.items() for k, v in actual.items()},
    )


def _rank_table(
    layout: Layout,
    attrs: Mapping[VipId, VipAttrsLike],
    weights: Mapping[VipId, Iterable[tuple[IPAddress, int]]],  # one entry per address
) -> ActualTable:
    l3dsr = ENCAP_CODE[Encap.L3DSR]
    vips = {layout.vip_ranks.order(k): k for k in attrs}
    extra_vrank, extra_vips = layout.vip_ranks.extend(vips)
    vby, aby, aorder = layout.vip_ranks.by_order, layout.as_ranks.by_order, layout.as_ranks.order
    rows: list[tuple[int, VipId, list[tuple[int, int]]]] = []
    missing: dict[int, IPAddress] = {}
    for vo, k in vips.items():
        members = []
        for a, w in weights[k]:
            o = aorder(a)
            if o not in aby:
                missing[o] = a
            members.append((o, w))
        members.sort()  # sort keys order exactly as ranks do
        rows.append((vby.get(vo) or extra_vrank[vo], k, members))
    rows.sort(key=itemgetter(0))
    extra_arank, extra_addresses = layout.as_ranks.extend(missing)
    act_vip, act_attrs, act_as_start = array("q"), array("i"), array("i", [0])
    act_as, act_weight = array("q"), array("i")
    for vrank, k, members in rows:
        at = attrs[k]
        act_vip.append(vrank)
        # VPP reports dscp only for L3DSR VIPs; elsewhere the byte means nothing.
        dscp = at.dscp if at.encap == l3dsr else 0
        act_attrs.extend((at.encap, dscp, int(at.src_ip_sticky), at.flow_table_length))
        for o, w in members:
            act_as.append(aby.get(o) or extra_arank[o])
            act_weight.append(w)
        act_as_start.append(len(act_as))
    return ActualTable(
        actual=diff.Actual(act_vip, act_attrs, act_as_start, act_as, act_weight),
        vip_ids=tuple(k for _, k, _ in rows),
        extra_vips=extra_vips,
        extra_addresses=extra_addresses,
    )


def make_plan(
    evaluation: Evaluation,
    table: ActualTable,
    owned: Collection[VipId] = frozenset(),
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

    def vip_of(rank: int) -> VipId:
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
            _, dscp, _, _ = frontend_attrs(fe)
            out.append(
                CreateVip(
                    net,
                    proto,
                    port,
                    fe.encap,
                    dscp,
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
