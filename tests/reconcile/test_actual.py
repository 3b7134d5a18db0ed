"""The incrementally ranked view of VPP equals a fresh ranking after any sequence of ops."""

from __future__ import annotations

import ipaddress

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from maglev.model import Encap, IPAddress
from maglev.reconcile.actual import ActualTable, RankedActual, prepare_actual_map
from maglev.reconcile.desired import build_layout
from maglev.vpp.lb import ActualVip, VipAttrs, VipKey
from maglev.vpp.ops import AddAs, CreateVip, DeleteAs, DeleteVip, Op, SetWeight, record
from tests.test_diff import backends, config, frontend, ip

CFG = config(
    [
        frontend("www", "192.0.2.1/32"),
        frontend("api", "192.0.2.2/32", port=443),
        frontend("six", "2001:db8::1/128", encap=Encap.GRE6),
    ],
    backends(a="10.0.0.1", b="10.0.0.2", c="10.0.0.3", d="2001:db8:1::4"),
)
LAYOUT = build_layout(CFG)
KNOWN_VIPS: list[VipKey] = [
    (ipaddress.ip_network("192.0.2.1/32"), 6, 80),
    (ipaddress.ip_network("192.0.2.2/32"), 6, 443),
    (ipaddress.ip_network("2001:db8::1/128"), 6, 80),
]
VIPS = [*KNOWN_VIPS, (ipaddress.ip_network("192.0.2.9/32"), 17, 53)]  # the last: unmanaged
KNOWN_ADDRS = [ip("10.0.0.1"), ip("10.0.0.2"), ip("10.0.0.3"), ip("2001:db8:1::4")]
ADDRS: list[IPAddress] = [*KNOWN_ADDRS, ip("10.0.0.7")]  # the last: not in the config


def as_lists(t: ActualTable) -> tuple[object, ...]:
    return (
        tuple(list(a) for a in t.actual),
        t.vip_ids,
        dict(t.extra_vips),
        dict(t.extra_addresses),
    )


def op_of(kind: int, vip: VipKey, addr: IPAddress, weight: int, flag: bool) -> Op:
    net, proto, port = vip
    if kind == 0:
        return SetWeight(net, proto, port, addr, weight, flag)
    if kind == 1:
        return AddAs(net, proto, port, addr, weight)
    if kind == 2:
        return DeleteAs(net, proto, port, addr, flag)
    if kind == 3:
        encap = Encap.L3DSR if flag else Encap.GRE4
        return CreateVip(net, proto, port, encap, weight % 64, flag, 1024)
    return DeleteVip(net, proto, port)


STEP = st.tuples(
    st.integers(0, 5),  # 0-4: op kinds; 5: a dump replaces the view
    st.sampled_from(VIPS),
    st.sampled_from(ADDRS),
    st.integers(0, 100),
    st.booleans(),
    st.booleans(),  # rank between steps
)


def fresh_view(weights: int) -> dict[VipKey, ActualVip]:
    return {
        k: ActualVip(VipAttrs(0, 0, False, 1024), {a: weights for a in KNOWN_ADDRS[:3]})
        for k in KNOWN_VIPS
    }


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(STEP, max_size=40), st.booleans())
def test_incremental_table_equals_a_fresh_ranking(
    steps: list[tuple[int, VipKey, IPAddress, int, bool, bool]], subset: bool
) -> None:
    actual = fresh_view(100)
    ranked = RankedActual(LAYOUT)

    def check() -> None:
        view = {k: v for k, v in actual.items() if not subset or k != KNOWN_VIPS[1]}
        assert as_lists(ranked.table(view)) == as_lists(prepare_actual_map(LAYOUT, view))

    check()
    batch: list[Op] = []
    for kind, vip, addr, weight, flag, rank_now in steps:
        if kind == 5:  # a full sync: new objects, same or different content
            record(actual, batch)
            ranked.record_all(batch)
            batch = []
            actual = fresh_view(weight)
        else:
            batch.append(op_of(kind, vip, addr, weight, flag))
        if rank_now:
            record(actual, batch)
            ranked.record_all(batch)
            batch = []
            check()
    record(actual, batch)
    ranked.record_all(batch)
    check()


def test_unknown_addresses_fall_back_and_ops_update_in_place() -> None:
    actual = fresh_view(100)
    ranked = RankedActual(LAYOUT)
    first = ranked.table(actual)
    www = KNOWN_VIPS[0]
    op = SetWeight(*www, ip("10.0.0.2"), 0, True)
    record(actual, [op])
    ranked.record_all([op])
    after = ranked.table(actual)
    assert as_lists(after) == as_lists(prepare_actual_map(LAYOUT, actual))
    assert list(after.actual.act_weight) != list(first.actual.act_weight)
    stray = AddAs(*www, ip("10.0.0.7"), 5)  # an AS the config does not know
    record(actual, [stray])
    ranked.record_all([stray])
    table = ranked.table(actual)
    assert table.extra_addresses  # ranked by the general path
    assert as_lists(table) == as_lists(prepare_actual_map(LAYOUT, actual))
