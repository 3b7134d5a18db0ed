"""Desired dataplane state: the adapter between the config model and the diff engine.

Owns the translation both ways: `build_layout` compiles a `Config` once (per load) into the
engine's flat `Topology` plus the lookup tables to map ranks back to frontends, backends and
addresses; `evaluate` runs the engine on backend states and operator overrides and yields the
per-frontend views the control API shows (state, active pool, per-backend weight and why);
`prepare_actual` (VPP's rows) or `prepare_actual_map` ({VIP key: ActualVip}) ranks what VPP
has; `make_plan` diffs (all frontends, or those `select` flags) and turns the engine's op tuples
into `maglev.reconcile.plan` ops. The rules themselves live in the engine (`maglev.diff`).
Pure; called by the reconciler thread.
"""

from __future__ import annotations

import bisect
from array import array
from collections.abc import Callable, Collection, Hashable, Iterable, Mapping
from dataclasses import dataclass
from operator import itemgetter
from types import ModuleType
from typing import Generic, Protocol, TypeVar

from maglev import diff
from maglev.model import (
    BackendState,
    Config,
    Encap,
    Frontend,
    FrontendState,
    IPAddress,
    IPNetwork,
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

STATE_CODE: dict[BackendState, int] = {
    BackendState.UNKNOWN: diff.ST_UNKNOWN,
    BackendState.UP: diff.ST_UP,
    BackendState.DOWN: diff.ST_DOWN,
    BackendState.PAUSED: diff.ST_PAUSED,
    BackendState.DISABLED: diff.ST_DISABLED,
    BackendState.REMOVED: diff.ST_DISABLED,  # on its way out: no traffic, flows flushed
}
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

# Ranks are spaced so addresses the config does not know (ASes still in VPP, VIPs maglev did not
# make) can be ranked in between without renumbering the config's.
_GAP = 1 << 24

K = TypeVar("K", bound=Hashable)


def vip_id(fe: Frontend) -> VipId:
    """The VIP key of a frontend as VPP reports it (VPP turns port 0 into protocol 255)."""
    return (fe.address, 255 if fe.port == 0 else fe.protocol.number, fe.port)


def vip_order(v: VipId) -> int:
    """Sort key: IPv4 before IPv6, numeric address, prefix length, protocol, port."""
    net, proto, port = v
    addr = int(net.network_address) | ((net.version == 6) << 128)
    return (((addr << 8 | net.prefixlen) << 8) | proto) << 16 | port


def address_order(a: IPAddress) -> int:
    """Sort key: IPv4 before IPv6, then numeric address (one int: cheaper than a tuple)."""
    return int(a) | ((a.version == 6) << 128)


def nat_target_port(fe: Frontend) -> int:
    """The backends' port of a NAT frontend (its own port unless `target-port` says otherwise)."""
    if fe.encap not in (Encap.NAT4, Encap.NAT6):
        return 0
    return fe.target_port or fe.port


def frontend_attrs(fe: Frontend) -> tuple[int, int, int, int]:
    """(encap code, dscp, src_ip_sticky, flow table length) as the engine compares them.

    VPP reports dscp only for L3DSR VIPs (elsewhere the byte means nothing), so it is 0 there.
    """
    dscp = fe.dscp if fe.encap is Encap.L3DSR else 0
    return (ENCAP_CODE[fe.encap], dscp, int(fe.src_ip_sticky), fe.flow_table_length)


class Ranking(Generic[K]):
    """Order-preserving int ranks for a fixed set of keys, extendable per call.

    Indexed by each key's int sort key (`order(key)`) rather than the key itself: hashing an
    `ipaddress` object costs several times more than computing its sort key.
    """

    __slots__ = ("_keys", "_sort", "by_order", "order")

    def __init__(self, keys: Iterable[K], order: Callable[[K], int]) -> None:
        by: dict[int, K] = {}
        for k in keys:
            by.setdefault(order(k), k)
        self._sort = sorted(by)
        self._keys = [by[o] for o in self._sort]
        self.order = order
        self.by_order = {o: (i + 1) * _GAP for i, o in enumerate(self._sort)}

    def __len__(self) -> int:
        return len(self._sort)

    def rank(self, key: K) -> int | None:
        return self.by_order.get(self.order(key))

    def key(self, rank: int) -> K | None:
        i, rest = divmod(rank, _GAP)
        return self._keys[i - 1] if rest == 0 and 0 < i <= len(self._keys) else None

    def extend(self, extras: Mapping[int, K]) -> tuple[dict[int, int], dict[int, K]]:
        """Ranks for keys outside the fixed set, given as {order: key}, between their known
        neighbours: ({order: rank}, {rank: key})."""
        gaps: dict[int, list[int]] = {}
        for o in extras:
            if o not in self.by_order:
                gaps.setdefault(bisect.bisect_left(self._sort, o), []).append(o)
        ranks: dict[int, int] = {}
        keys: dict[int, K] = {}
        for pos, orders in gaps.items():
            if len(orders) >= _GAP:
                raise ValueError("too many unknown keys between two known ones")
            orders.sort()
            for n, o in enumerate(orders, start=1):
                ranks[o] = pos * _GAP + n
                keys[pos * _GAP + n] = extras[o]
        return ranks, keys


@dataclass(frozen=True, slots=True)
class Layout:
    """A config compiled for the engine. Slot = one backend of one frontend (one AS)."""

    config: Config
    frontends: tuple[Frontend, ...]  # in VIP order (= engine frontend index)
    topology: diff.Topology
    backend_names: tuple[str, ...]  # engine backend index -> name
    slot_backend_name: tuple[str, ...]
    slot_address: tuple[IPAddress, ...]
    slot_first_pool: tuple[str, ...]  # first pool (config order) listing the backend
    slot_index: Mapping[tuple[str, str], int]  # (frontend, backend) -> slot
    vip_ranks: Ranking[VipId]
    as_ranks: Ranking[IPAddress]
    no_overrides: array[int]

    @property
    def vip_ids(self) -> tuple[VipId, ...]:
        return tuple(vip_id(fe) for fe in self.frontends)


def build_layout(config: Config) -> Layout:
    """Compile `config`; ValueError on what validation should have refused (clashing VIPs,
    unknown backends, two backends of one frontend on the same address)."""
    fes = list(config.frontends.values())
    vip_ranks: Ranking[VipId] = Ranking((vip_id(fe) for fe in fes), vip_order)
    if len(vip_ranks) != len(fes):
        raise ValueError("two frontends share one VIP (address, protocol, port)")
    ranked = sorted(
        ((vip_ranks.by_order[vip_order(vip_id(fe))], fe) for fe in fes), key=itemgetter(0)
    )
    fes = [fe for _, fe in ranked]
    for fe in fes:
        for name in fe.backend_names():
            if name not in config.backends:
                raise ValueError(f"frontends.{fe.name}: unknown backend {name!r}")
    used = {name for fe in fes for name in fe.backend_names()}
    backend_names = tuple(n for n in config.backends if n in used)
    bindex = {n: i for i, n in enumerate(backend_names)}
    border = {n: address_order(config.backends[n].address) for n in backend_names}
    as_ranks: Ranking[IPAddress] = Ranking(
        (config.backends[n].address for n in backend_names), address_order
    )
    brank = {n: as_ranks.by_order[o] for n, o in border.items()}
    fe_vip, fe_attrs, fe_flush = array("q"), array("i"), array("b")
    fe_slot_start, fe_pool_start, pool_member_start = array("i", [0]), array("i", [0]), array("i")
    slot_as, slot_backend, member_slot, member_weight = (
        array("q"),
        array("i"),
        array("i"),
        array("i"),
    )
    names: list[str] = []
    addresses: list[IPAddress] = []
    first_pool: list[str] = []
    slot_index: dict[tuple[str, str], int] = {}
    for vrank, fe in ranked:
        fe_vip.append(vrank)
        fe_attrs.extend(frontend_attrs(fe))
        fe_flush.append(int(fe.flush_on_down))
        pool_of: dict[str, str] = {}
        for pool in fe.pools:
            for m in pool.members:
                pool_of.setdefault(m.backend, pool.name)
        base = len(slot_as)
        for n in sorted(pool_of, key=brank.__getitem__):
            rank = brank[n]
            if len(slot_as) > base and slot_as[-1] == rank:
                raise ValueError(f"frontends.{fe.name}: two backends share address of {n!r}")
            slot_index[(fe.name, n)] = len(slot_as)
            slot_as.append(rank)
            slot_backend.append(bindex[n])
            names.append(n)
            addresses.append(config.backends[n].address)
            first_pool.append(pool_of[n])
        fe_slot_start.append(len(slot_as))
        for pool in fe.pools:
            pool_member_start.append(len(member_slot))
            for m in pool.members:
                member_slot.append(slot_index[(fe.name, m.backend)])
                member_weight.append(m.weight)
        fe_pool_start.append(len(pool_member_start))
    pool_member_start.append(len(member_slot))
    topology = diff.Topology(
        fe_vip, fe_attrs, fe_flush, fe_slot_start, slot_as, slot_backend, fe_pool_start,
        pool_member_start, member_slot, member_weight,
    )  # fmt: skip
    return Layout(
        config=config,
        frontends=tuple(fes),
        topology=topology,
        backend_names=backend_names,
        slot_backend_name=tuple(names),
        slot_address=tuple(addresses),
        slot_first_pool=tuple(first_pool),
        slot_index=slot_index,
        vip_ranks=vip_ranks,
        as_ranks=as_ranks,
        no_overrides=array("i", [-1]) * len(slot_as),
    )


def encode_states(layout: Layout, states: Mapping[str, BackendState]) -> array[int]:
    """State code per engine backend index; missing -> unknown; `enabled: false` -> disabled."""
    backends = layout.config.backends
    unknown = BackendState.UNKNOWN
    return array(
        "b",
        [
            STATE_CODE[states.get(n, unknown)] if backends[n].enabled else diff.ST_DISABLED
            for n in layout.backend_names
        ],
    )


def encode_overrides(layout: Layout, overrides: Mapping[tuple[str, str], int]) -> array[int]:
    """Override weight per slot, -1 where none; overrides naming no slot are ignored."""
    out = array("i", layout.no_overrides)
    for key, weight in overrides.items():
        slot = layout.slot_index.get(key)
        if slot is not None:
            out[slot] = weight
    return out


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

    def addr_of(rank: int) -> IPAddress:
        a = layout.as_ranks.key(rank)
        return table.extra_addresses[rank] if a is None else a

    out: list[Op] = []
    for code, vr, ar, weight, flush in ops:
        net, proto, port = vip_of(vr)
        if code == diff.OP_SET_WEIGHT:
            out.append(SetWeight(net, proto, port, addr_of(ar), weight, bool(flush)))
        elif code == diff.OP_ADD_AS:
            out.append(AddAs(net, proto, port, addr_of(ar), weight))
        elif code == diff.OP_DELETE_AS:
            out.append(DeleteAs(net, proto, port, addr_of(ar), bool(flush)))
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
