"""The adapter between the config model and the diff engine: layout, ranks, views, VPP rows."""

from __future__ import annotations

import ipaddress

import pytest

from maglev import diff
from maglev.model import Backend, BackendState, Encap, FrontendState, Protocol
from maglev.reconcile import actual as ra
from maglev.reconcile import desired as rl
from maglev.reconcile import plan as rd
from maglev.vpp import lb
from maglev.vpp.lb import AsInfo, VipInfo, VipKey
from maglev.vpp.ops import CreateVip
from tests.test_diff import Attrs, Vip, all_up, backends, config, frontend, ip

UP, DOWN, PAUSED = BackendState.UP, BackendState.DOWN, BackendState.PAUSED


def test_vip_id_turns_port_zero_into_protocol_any() -> None:
    fe = frontend(protocol=Protocol.ANY, port=0)
    assert lb.frontend_key(fe) == (ipaddress.ip_network("192.0.2.1/32"), 255, 0)
    assert lb.frontend_key(frontend(port=443))[1:] == (6, 443)


def test_ranking_keeps_order_and_fits_unknown_keys_between_known_ones() -> None:
    known = [ip("10.0.0.10"), ip("2001:db8::1"), ip("10.0.0.2")]
    r = rl.Ranking(known, rl.address_order)
    assert len(r) == 3
    assert sorted(known, key=lambda a: r.rank(a) or 0) == [
        ip("10.0.0.2"),
        ip("10.0.0.10"),
        ip("2001:db8::1"),
    ]
    extras = [ip("10.0.0.5"), ip("10.0.0.3"), ip("::1"), ip("1.1.1.1"), ip("10.0.0.2")]
    ranks, keys = r.extend({rl.address_order(a): a for a in extras})
    assert rl.address_order(ip("10.0.0.2")) not in ranks  # known keys keep their rank
    everything = {a: r.rank(a) or ranks[rl.address_order(a)] for a in known + extras}
    by_rank = sorted(everything, key=everything.__getitem__)
    assert by_rank == sorted(everything, key=rl.address_order)
    assert [r.key(everything[k]) for k in known] == known
    assert r.key(everything[ip("::1")]) is None and keys[everything[ip("::1")]] == ip("::1")
    assert r.rank(ip("192.0.2.1")) is None
    # The same ranks from the orders worked out beforehand (build_layout has them already).
    given = rl.Ranking((), rl.address_order, ((rl.address_order(a), a) for a in known + known))
    assert given.by_order == r.by_order
    assert [given.key(r.rank(a) or 0) for a in known] == known


def test_layout_orders_frontends_by_vip_and_slots_by_address() -> None:
    bes = backends(a="10.0.0.20", b="10.0.0.3", c="10.0.0.100", d="10.0.0.1")
    fes = [frontend("z", "192.0.2.9/32"), frontend("y", "192.0.2.10/32")]
    layout = rl.build_layout(config(fes, bes))
    assert [fe.name for fe in layout.frontends] == ["z", "y"]
    assert layout.slot_backend_name[:4] == ("d", "b", "a", "c")
    assert layout.slot_first_pool[:4] == ("backup", "primary", "primary", "backup")
    assert list(layout.topology.fe_slot_start) == [0, 4, 8]
    assert layout.slot_index[("y", "a")] == 6


@pytest.mark.parametrize(
    ("fes", "bes", "message"),
    [
        ([frontend("a"), frontend("b")], None, "share one VIP"),
        ([frontend(pools=[("p", {"zz": 1})])], None, "unknown backend 'zz'"),
        (
            [frontend(pools=[("p", {"a": 1, "b": 1})])],
            backends(a="10.0.0.1", b="10.0.0.1"),
            "share address",
        ),
    ],
)
def test_layout_refuses_what_validation_should_have(
    fes: list[object], bes: dict[str, Backend] | None, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        rl.build_layout(config(fes, bes))  # type: ignore[arg-type]


def test_states_default_to_unknown_and_disabled_backends_are_disabled() -> None:
    bes = {
        **backends(a="10.0.0.1", b="10.0.0.2", c="10.0.0.3"),
        "d": Backend("d", ip("10.0.0.4"), enabled=False),
    }
    layout = rl.build_layout(config([frontend()], bes))
    codes = rl.encode_states(layout, {"a": UP, "b": BackendState.REMOVED, "d": UP})
    assert list(codes) == [diff.ST_UP, diff.ST_DISABLED, diff.ST_UNKNOWN, diff.ST_DISABLED]


def test_views_explain_every_weight() -> None:
    fe = frontend(pools=[("primary", {"a": 100, "b": 100}), ("backup", {"c": 40, "d": 100})])
    layout = rl.build_layout(config([fe]))
    ev = rd.evaluate(layout, {"a": DOWN, "b": PAUSED, "c": UP}, {("www", "d"): 10})
    view = ev.views()["www"]
    assert view.state is FrontendState.UP and view.active_pool == "backup"
    assert [(b.name, b.weight, b.flush, b.reason) for b in view.backends] == [
        ("a", 0, True, "down"),
        ("b", 0, False, "paused"),
        ("c", 40, False, "active pool backup"),
        ("d", 0, False, "unknown"),
    ]


def test_standby_reason_names_the_pool() -> None:
    layout = rl.build_layout(config([frontend()]))
    view = rd.evaluate(layout, all_up()).frontend(0)
    assert [b.reason for b in view.backends] == [
        "active pool primary",
        "active pool primary",
        "standby pool backup",
        "standby pool backup",
    ]


def test_rows_and_map_give_the_same_table() -> None:
    layout = rl.build_layout(config([frontend()]))
    key: VipKey = (ipaddress.ip_network("192.0.2.1/32"), 6, 80)
    stray: VipKey = (ipaddress.ip_network("2001:db8::/64"), 17, 53)
    weights = {ip("10.0.0.2"): 5, ip("10.0.0.9"): 1, ip("10.0.0.1"): 100}
    by_map = ra.prepare_actual_map(
        layout, {stray: Vip(Attrs(1, 0, True, 0)), key: Vip(Attrs(), weights)}
    )
    rows = [VipInfo(*key, 0, 0, 1024, False), VipInfo(*stray, 1, 0, 0, True)]
    ases = [AsInfo(key, a, w, 0, 1, 0) for a, w in weights.items()] + [
        AsInfo(stray, ip("::9"), 3, 0, 1, 0)
    ]
    ases.append(AsInfo((ipaddress.ip_network("203.0.113.0/24"), 6, 80), ip("10.0.0.1"), 1, 0, 1, 0))
    by_rows = ra.prepare_actual(layout, rows, ases[:3])
    assert by_rows == by_map
    assert by_map.vip_ids == (key, stray)
    assert list(by_map.actual.act_weight) == [100, 5, 1]


def test_create_vip_carries_dscp_only_for_l3dsr() -> None:
    for encap, dscp in ((Encap.GRE4, 0), (Encap.L3DSR, 12)):
        layout = rl.build_layout(config([frontend(encap=encap, dscp=12)]))
        plan = rd.make_plan(rd.evaluate(layout, all_up()), ra.prepare_actual_map(layout, {}))
        create = plan.ops[0]
        assert isinstance(create, CreateVip) and create.dscp == dscp
