"""Random configs, states, overrides and VPP tables: the twins agree, and the plan is right.

"Right" = applying the ops, each checked against what VPP's lb plugin would accept, to VPP's
table yields exactly the desired table (plus the unowned VIPs, untouched), a VIP's weights never
drop before its raises are done, and flush only rides on a weight taken to 0.
"""

from __future__ import annotations

import ipaddress
from array import array
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from maglev import _diff_py
from maglev.model import (
    Backend,
    BackendState,
    Config,
    Encap,
    Frontend,
    IPAddress,
    MassFailure,
    MinHealthy,
    Pool,
    PoolMember,
    Protocol,
    VppSettings,
)
from maglev.reconcile import actual as ra
from maglev.reconcile import desired as rl
from maglev.reconcile import plan as rd
from maglev.vpp import lb
from maglev.vpp.lb import ENCAP_CODE, VipKey
from maglev.vpp.ops import (
    AddAs,
    CreateVip,
    DeleteAs,
    DeleteVip,
    Plan,
    SetWeight,
)
from tests.test_diff import Attrs, Vip, load_engine

ADDRS: list[IPAddress] = [
    *(ipaddress.ip_address(f"10.0.{i // 4}.{i * 7 % 250 + 1}") for i in range(10)),
    *(ipaddress.ip_address(f"2001:db8::{i:x}") for i in range(1, 7)),
]
VIPS: list[VipKey] = [
    (ipaddress.ip_network(n), p, port)
    for n in ("192.0.2.1/32", "192.0.2.0/24", "2001:db8:1::1/128")
    for p, port in ((6, 80), (17, 80), (6, 443), (255, 0))
]
_PROTO = {6: Protocol.TCP, 17: Protocol.UDP, 255: Protocol.ANY}
Table = dict[VipKey, tuple[tuple[int, int, int, int], dict[IPAddress, int]]]


def _norm(a: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
    encap, dscp, sticky, length = a
    return (encap, dscp if encap == ENCAP_CODE[Encap.L3DSR] else 0, sticky, length or 65536)


# Strategies built once: building them inside each draw costs more than the test itself.
_WEIGHT = st.sampled_from([0, 1, 50, 100])
_ENCAP = st.sampled_from([Encap.GRE4, Encap.GRE6, Encap.L3DSR, Encap.NAT4])
_DSCP = st.sampled_from([0, 10])
_BOOL = st.booleans()
_LENGTH = st.sampled_from([1024, 65536])
_STATE = st.sampled_from(list(BackendState))
_OVERRIDE = st.sampled_from([0, 7, 100])
_TENTHS = st.integers(0, 9)
# A disruption-budget step: mostly none, else any weight (the engine clamps it).
_BUDGET = st.one_of(st.just(-1), st.integers(-3, 120), st.sampled_from([0, 1, 50, 100]))
_RAMP = st.one_of(st.just(1000), st.integers(-5, 1005), st.sampled_from([0, 1, 250, 999]))
_VPP_ATTRS = st.builds(
    Attrs, st.sampled_from([0, 1, 2, 3]), _DSCP, _BOOL, st.sampled_from([0, 1024, 65536])
)
_ADDRS = st.lists(st.sampled_from(ADDRS), min_size=1, max_size=10, unique=True)
_VIPS = st.lists(st.sampled_from(VIPS), max_size=5, unique=True)
_EXTRA_VIPS = st.lists(st.sampled_from(VIPS), max_size=3, unique=True)
_STRAY = st.dictionaries(st.sampled_from(ADDRS), st.sampled_from([0, 50]), max_size=3)
_OWNED = st.sets(st.sampled_from(VIPS))
_MIN_HEALTHY = st.one_of(
    st.builds(MinHealthy, st.sampled_from([0, 2500, 3333, 5000, 6667, 10000]), st.just(True)),
    st.builds(MinHealthy, st.integers(0, 5), st.just(False)),
)
_MASS_FAILURE = st.sampled_from(list(MassFailure))


@st.composite
def worlds(draw: st.DrawFn) -> dict[str, Any]:
    addrs = draw(_ADDRS)
    backends = {f"b{i}": Backend(f"b{i}", a) for i, a in enumerate(addrs)}
    names = list(backends)
    pick_name = st.sampled_from(names)
    pools_s = st.lists(st.lists(st.tuples(pick_name, _WEIGHT), max_size=4), max_size=3)
    frontends = {}
    for i, (net, proto, port) in enumerate(draw(_VIPS)):
        pools = tuple(
            Pool(f"p{j}", tuple(PoolMember(b, w) for b, w in members))
            for j, members in enumerate(draw(pools_s))
        )
        frontends[f"f{i}"] = Frontend(
            f"f{i}",
            net,
            _PROTO[proto],
            port,
            draw(_ENCAP),
            pools,
            dscp=draw(_DSCP),
            src_ip_sticky=draw(_BOOL),
            flow_table_length=draw(_LENGTH),
            flush_on_down=draw(_BOOL),
            min_healthy=draw(_MIN_HEALTHY),
            on_mass_failure=draw(_MASS_FAILURE),
        )
    config = Config(VppSettings(), {}, backends, frontends)
    states = draw(st.dictionaries(pick_name, _STATE))
    suppressed = draw(st.sets(pick_name))  # flap damping: ST_SUPPRESSED where up
    overrides = draw(
        st.dictionaries(
            st.tuples(st.sampled_from([*frontends, "gone"]), pick_name), _OVERRIDE, max_size=4
        )
    )
    actual: dict[VipKey, Vip] = {}
    for fe in frontends.values():
        if draw(_TENTHS) >= 8:  # absent from VPP
            continue
        if draw(_TENTHS) < 8:  # mostly in place: the merge-join path
            encap, dscp, sticky, length = lb.frontend_attrs(fe).codes()
            attrs = Attrs(encap, dscp, bool(sticky), length)
        else:
            attrs = draw(_VPP_ATTRS)
        mine = [backends[n].address for n in fe.backend_names()]
        pick = st.sampled_from(mine + ADDRS[:3])
        actual[lb.frontend_key(fe)] = Vip(attrs, draw(st.dictionaries(pick, _WEIGHT, max_size=6)))
    for key in draw(_EXTRA_VIPS):
        if key not in actual:
            actual[key] = Vip(Attrs(), draw(_STRAY))
    owned = draw(_OWNED)
    selected = None
    if draw(_BOOL) and frontends:
        selected = draw(st.sets(st.sampled_from(list(frontends))))
    nslots = sum(len(fe.backend_names()) for fe in frontends.values())
    ramp = array("i", draw(st.lists(_RAMP, min_size=nslots, max_size=nslots)))
    budget = None
    if draw(_BOOL):
        budget = array("i", draw(st.lists(_BUDGET, min_size=nslots, max_size=nslots)))
    return {
        "config": config,
        "ramp": ramp,
        "budget": budget,
        "states": states,
        "suppressed": suppressed,
        "overrides": overrides,
        "actual": actual,
        "owned": owned,
        "selected": selected,
    }


def _engine_run(engine: Any, w: dict[str, Any]) -> tuple[Any, Any, Any]:
    layout = rl.build_layout(w["config"])
    sts = rl.encode_states(layout, w["states"], w["suppressed"])
    ovs = rl.encode_overrides(layout, w["overrides"])
    table = ra.prepare_actual_map(layout, w["actual"])
    owned = array("b", [int(k in w["owned"]) for k in table.vip_ids])
    names = w["selected"] if w["selected"] is not None else w["config"].frontends
    selected = rd.select(layout, names)
    current = engine.current_weights(layout.topology, table.actual)
    desired = engine.compute_desired(layout.topology, sts, ovs, current, w["ramp"], w["budget"])
    if w["budget"] is not None:
        free = engine.compute_desired(layout.topology, sts, ovs, current, w["ramp"])
        _check_budget(layout, sts, current, w["budget"], desired, free)
    diffed = engine.diff_tables(layout.topology, desired, table.actual, owned, selected)
    return current, desired, diffed


def _check_budget(
    layout: Any, sts: Any, current: Any, budget: Any, desired: Any, free: Any
) -> None:
    """A budget step holds an up slot at the step clamped between VPP's weight and its weight
    without the budget (`free`); every other slot gets what it gets without one (a drain goes
    through at once)."""
    topo = layout.topology
    for s, step in enumerate(budget):
        w0, w = free[0][s], desired[0][s]
        if step < 0 or sts[topo.slot_backend[s]] != _diff_py.ST_UP:
            assert (w, desired[2][s]) == (w0, free[2][s])
            continue
        lo, hi = sorted((max(current[s], 0), w0))
        assert w == min(max(step, lo), hi)
        assert desired[2][s] == (_diff_py.R_BUDGET if w != w0 else free[2][s])


def apply(table: Table, plan: Plan) -> Table:
    """The ops on a copy of `table`, each checked as VPP's lb plugin would."""
    t = {k: (a, dict(ws)) for k, (a, ws) in table.items()}
    for op in plan.ops:
        if isinstance(op, CreateVip):
            assert op.vip not in t, op
            attrs = (ENCAP_CODE[op.encap], op.dscp, int(op.src_ip_sticky), op.flow_table_length)
            t[op.vip] = (attrs, {})
        elif isinstance(op, DeleteVip):
            assert op.vip in t and not t[op.vip][1], op  # VPP refuses a VIP that has ASes
            del t[op.vip]
        elif isinstance(op, AddAs):
            assert op.address not in t[op.vip][1], op
            t[op.vip][1][op.address] = op.weight
        elif isinstance(op, SetWeight):
            old = t[op.vip][1][op.address]
            assert old != op.weight and (not op.flush or op.weight == 0), op
            t[op.vip][1][op.address] = op.weight
        else:
            assert isinstance(op, DeleteAs) and op.flush, op
            del t[op.vip][1][op.address]
    return t


def _check_order(plan: Plan, table: Table) -> None:
    """Per VIP: no raise after a drop (outside a re-create), VIP groups in sorted order."""
    seen: list[VipKey] = []
    dropped: set[VipKey] = set()
    weights = {k: dict(ws) for k, (_, ws) in table.items()}
    for op in plan.ops:
        if not seen or seen[-1] != op.vip:
            assert op.vip not in seen, "ops of one VIP are not contiguous"
            seen.append(op.vip)
        if isinstance(op, DeleteVip | CreateVip):
            dropped.discard(op.vip)
            weights[op.vip] = {}
        elif isinstance(op, AddAs) or (
            isinstance(op, SetWeight) and op.weight > weights[op.vip][op.address]
        ):
            assert op.vip not in dropped, f"raise after a drop: {op}"
            weights[op.vip][op.address] = op.weight
        else:
            dropped.add(op.vip)
            weights[op.vip].pop(op.address, None)
    assert seen == sorted(seen, key=rl.vip_order)


# One test for both properties: generating the worlds is the expensive part.
@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(worlds())
def test_twins_agree_and_the_plan_yields_the_desired_table(w: dict[str, Any]) -> None:
    assert _engine_run(_diff_py, w) == _engine_run(load_engine("cython"), w)

    layout = rl.build_layout(w["config"])
    table = ra.prepare_actual_map(layout, w["actual"])
    ev = rd.evaluate(layout, w["states"], w["overrides"], table=table, suppressed=w["suppressed"])
    selected = None if w["selected"] is None else rd.select(layout, w["selected"])
    plan = rd.make_plan(ev, table, frozenset(w["owned"]), selected)
    before: Table = {
        k: ((v.attrs.encap, v.attrs.dscp, int(v.attrs.src_ip_sticky), v.attrs.flow_table_length),
            dict(v.weights))
        for k, v in w["actual"].items()
    }  # fmt: skip
    after = apply(before, plan)
    _check_order(plan, before)

    expected: Table = {}
    named = {lb.frontend_key(fe) for fe in layout.frontends}
    for i, fe in enumerate(layout.frontends):
        key = lb.frontend_key(fe)
        if w["selected"] is not None and fe.name not in w["selected"]:
            if key in before:
                expected[key] = before[key]
            continue
        view = ev.frontend(i)
        expected[key] = (
            lb.frontend_attrs(fe).codes(),
            {b.address: b.weight for b in view.backends},
        )
    unowned = [k for k in before if k not in named and k not in w["owned"]]
    for k in unowned:
        expected[k] = before[k]
    assert {k: (_norm(a), ws) for k, (a, ws) in after.items()} == {
        k: (_norm(a), ws) for k, (a, ws) in expected.items()
    }
    assert plan.unmanaged == tuple(sorted(unowned, key=rl.vip_order))
