"""The diff engine's rules, on both twins explicitly and through `maglev.diff`'s selection."""

from __future__ import annotations

import importlib
import ipaddress
import os
from collections.abc import Iterable, Mapping
from types import ModuleType
from typing import Any

import pytest

from maglev import _diff_py
from maglev.model import (
    Backend,
    BackendState,
    Config,
    Encap,
    Frontend,
    FrontendState,
    IPAddress,
    Pool,
    PoolMember,
    Protocol,
    VppSettings,
)
from maglev.reconcile import actual as ra
from maglev.reconcile import desired as rl
from maglev.reconcile import plan as rd
from maglev.vpp.lb import ENCAP_CODE, ActualVip, VipAttrs, VipKey
from maglev.vpp.ops import (
    AddAs,
    CreateVip,
    DeleteAs,
    DeleteVip,
    Plan,
    SetWeight,
)

UP, DOWN, UNKNOWN = BackendState.UP, BackendState.DOWN, BackendState.UNKNOWN
PAUSED, DISABLED = BackendState.PAUSED, BackendState.DISABLED


def load_engine(name: str) -> ModuleType | None:
    """A twin by name; "selected" = None, i.e. whatever `maglev.diff` selected."""
    if name == "python":
        return _diff_py
    if name == "selected":
        return None
    try:
        return importlib.import_module("maglev._diff")
    except ImportError:
        if os.environ.get("MAGLEV_REQUIRE_EXTENSIONS", "") in ("1", "true", "yes"):
            raise
        pytest.skip("the compiled engine maglev._diff is not built")


@pytest.fixture(params=["python", "cython", "selected"])
def engine(request: pytest.FixtureRequest) -> ModuleType | None:
    return load_engine(request.param)


# --- building blocks ----------------------------------------------------------------------


def Attrs(
    encap: int = 0, dscp: int = 0, src_ip_sticky: bool = False, flow_table_length: int = 1024
) -> VipAttrs:
    """VPP's attributes of a VIP, as the dumper would record them."""
    return VipAttrs.of(encap, dscp, src_ip_sticky, flow_table_length)


def Vip(attrs: VipAttrs | None = None, weights: dict[IPAddress, int] | None = None) -> ActualVip:
    return ActualVip(attrs or Attrs(), dict(weights or {}))


def ip(a: str) -> IPAddress:
    return ipaddress.ip_address(a)


def backends(**addrs: str) -> dict[str, Backend]:
    return {n: Backend(n, ip(a)) for n, a in addrs.items()}


def frontend(
    name: str = "www",
    address: str = "192.0.2.1/32",
    pools: Iterable[tuple[str, Mapping[str, int]]] = (
        ("primary", {"a": 100, "b": 100}),
        ("backup", {"c": 100, "d": 100}),
    ),
    **kw: object,
) -> Frontend:
    ps = tuple(Pool(p, tuple(PoolMember(b, w) for b, w in m.items())) for p, m in pools)
    opts: dict[str, object] = {"protocol": Protocol.TCP, "port": 80, "encap": Encap.GRE4}
    opts.update(kw)
    return Frontend(name, ipaddress.ip_network(address), pools=ps, **opts)  # type: ignore[arg-type]


def config(fes: Iterable[Frontend], bes: Mapping[str, Backend] | None = None) -> Config:
    if bes is None:
        bes = backends(a="10.0.0.1", b="10.0.0.2", c="10.0.0.3", d="10.0.0.4")
    return Config(VppSettings(), {}, dict(bes), {f.name: f for f in fes})


WWW: VipKey = (ipaddress.ip_network("192.0.2.1/32"), 6, 80)


def vip_of(fe: Frontend, weights: Mapping[str, int], **attrs: Any) -> ActualVip:
    """VPP's view of `fe` with the given weights (backend name -> weight) and attributes."""
    fields: dict[str, Any] = {
        "encap": ENCAP_CODE[fe.encap],
        "dscp": 0,
        "src_ip_sticky": fe.src_ip_sticky,
        "flow_table_length": fe.flow_table_length,
    }
    a = Attrs(**{**fields, **attrs})
    addr = {"a": "10.0.0.1", "b": "10.0.0.2", "c": "10.0.0.3", "d": "10.0.0.4"}
    return Vip(a, {ip(addr[n]): w for n, w in weights.items()})


def run(
    engine: ModuleType | None,
    cfg: Config,
    states: Mapping[str, BackendState],
    actual: Mapping[VipKey, ActualVip] | None = None,
    overrides: Mapping[tuple[str, str], int] | None = None,
    owned: Iterable[VipKey] = (),
) -> tuple[Plan, rd.Evaluation]:
    layout = rl.build_layout(cfg)
    table = ra.prepare_actual_map(layout, actual or {})
    ev = rd.evaluate(layout, states, overrides, engine=engine, table=table)
    return rd.make_plan(ev, table, frozenset(owned), engine=engine), ev


def sw(addr: str, weight: int, flush: bool = False, vip: VipKey = WWW) -> SetWeight:
    return SetWeight(*vip, ip(addr), weight, flush)


def all_up(*names: str) -> dict[str, BackendState]:
    return dict.fromkeys(names or "abcd", UP)


# --- tests --------------------------------------------------------------------------------


def test_twins_share_codes() -> None:
    compiled = load_engine("cython")
    assert compiled is not None
    for name in dir(_diff_py):
        if name.isupper() and not name.startswith("_"):
            assert getattr(compiled, name) == getattr(_diff_py, name), name
    assert compiled.engine_name() == "cython" and _diff_py.engine_name() == "python"


def test_fresh_vpp_creates_vip_and_every_backend_in_address_order(
    engine: ModuleType | None,
) -> None:
    bes = backends(a="10.0.0.10", b="10.0.0.9", c="10.0.0.100", d="10.0.0.2")
    plan, _ = run(engine, config([frontend()], bes), all_up())
    net, proto, port = WWW
    assert plan.ops == (
        CreateVip(net, proto, port, Encap.GRE4, 0, False, 1024),
        AddAs(net, proto, port, ip("10.0.0.2"), 0),  # d: backup pool
        AddAs(net, proto, port, ip("10.0.0.9"), 100),
        AddAs(net, proto, port, ip("10.0.0.10"), 100),
        AddAs(net, proto, port, ip("10.0.0.100"), 0),
    )


def test_in_sync_gives_no_ops(engine: ModuleType | None) -> None:
    fe = frontend()
    plan, _ = run(
        engine, config([fe]), all_up(), {WWW: vip_of(fe, {"a": 100, "b": 100, "c": 0, "d": 0})}
    )
    assert plan.ops == () and plan.unmanaged == ()


def test_failover_to_backup_raises_backup_before_dropping_primary(
    engine: ModuleType | None,
) -> None:
    fe = frontend()
    actual = {WWW: vip_of(fe, {"a": 100, "b": 100, "c": 0, "d": 0})}
    plan, ev = run(engine, config([fe]), {"a": DOWN, "b": DOWN, "c": UP, "d": UP}, actual)
    assert plan.ops == (
        sw("10.0.0.3", 100),
        sw("10.0.0.4", 100),
        sw("10.0.0.1", 0, flush=True),
        sw("10.0.0.2", 0, flush=True),
    )
    assert ev.frontend(0).active_pool == "backup"


def test_failback_drains_backup_without_flush(engine: ModuleType | None) -> None:
    fe = frontend()
    actual = {WWW: vip_of(fe, {"a": 0, "b": 0, "c": 100, "d": 100})}
    plan, ev = run(engine, config([fe]), all_up(), actual)
    assert plan.ops == (
        sw("10.0.0.1", 100),
        sw("10.0.0.2", 100),
        sw("10.0.0.3", 0),
        sw("10.0.0.4", 0),
    )
    reasons = [b.reason for b in ev.frontend(0).backends]
    assert reasons == ["active pool primary"] * 2 + ["standby pool backup"] * 2


def test_partial_primary_stays_on_primary(engine: ModuleType | None) -> None:
    fe = frontend()
    actual = {WWW: vip_of(fe, {"a": 100, "b": 100, "c": 0, "d": 0})}
    plan, ev = run(engine, config([fe]), {"a": DOWN, "b": UP, "c": UP, "d": UP}, actual)
    assert plan.ops == (sw("10.0.0.1", 0, flush=True),)
    assert ev.frontend(0).active_pool == "primary"


@pytest.mark.parametrize(
    ("state", "flush_on_down", "flush", "reason"),
    [
        (DOWN, True, True, "down"),
        (DOWN, False, False, "down"),
        (PAUSED, True, False, "paused"),
        (DISABLED, False, True, "disabled"),
        (UNKNOWN, True, False, "unknown"),
    ],
)
def test_drain_or_flush_by_state(
    engine: ModuleType | None,
    state: BackendState,
    flush_on_down: bool,
    flush: bool,
    reason: str,
) -> None:
    fe = frontend(flush_on_down=flush_on_down)
    actual = {WWW: vip_of(fe, {"a": 100, "b": 100, "c": 0, "d": 0})}
    plan, ev = run(engine, config([fe]), {**all_up(), "a": state}, actual)
    assert plan.ops == (sw("10.0.0.1", 0, flush=flush),)
    view = ev.frontend(0).backends[0]
    assert (view.weight, view.flush, view.reason) == (0, flush, reason)


def test_flush_only_rides_on_a_real_change(engine: ModuleType | None) -> None:
    fe = frontend()
    actual = {WWW: vip_of(fe, {"a": 0, "b": 100, "c": 0, "d": 0})}
    plan, _ = run(engine, config([fe]), {**all_up(), "a": DISABLED}, actual)
    assert plan.ops == ()


def test_override_sets_weight_and_reason(engine: ModuleType | None) -> None:
    fe = frontend()
    actual = {WWW: vip_of(fe, {"a": 100, "b": 100, "c": 0, "d": 0})}
    overrides = {("www", "a"): 30, ("www", "b"): 0, ("www", "nobody"): 5, ("other", "a"): 1}
    plan, ev = run(engine, config([fe]), all_up(), actual, overrides)
    assert plan.ops == (sw("10.0.0.1", 30), sw("10.0.0.2", 0))
    reasons = [b.reason for b in ev.frontend(0).backends]
    assert reasons[:2] == ["override 30", "override 0"]


def test_override_zero_on_every_primary_fails_over(engine: ModuleType | None) -> None:
    fe = frontend()
    overrides = {("www", "a"): 0, ("www", "b"): 0}
    _, ev = run(engine, config([fe]), all_up(), None, overrides)
    view = ev.frontend(0)
    assert view.active_pool == "backup"
    assert [b.weight for b in view.backends] == [0, 0, 100, 100]


def test_override_can_revive_a_zero_weight_pool(engine: ModuleType | None) -> None:
    fe = frontend(pools=[("primary", {"a": 0}), ("backup", {"c": 50})])
    _, ev = run(engine, config([fe]), all_up(), None, {("www", "a"): 20})
    assert [(b.name, b.weight) for b in ev.frontend(0).backends] == [("a", 20), ("c", 0)]


def test_all_pools_weight_zero(engine: ModuleType | None) -> None:
    fe = frontend(pools=[("primary", {"a": 0, "b": 0}), ("backup", {"c": 0})])
    plan, ev = run(engine, config([fe]), all_up("a", "b", "c"))
    view = ev.frontend(0)
    assert view.state is FrontendState.DOWN and view.active_pool is None
    assert [(b.weight, b.reason) for b in view.backends] == [(0, "weight 0")] * 3
    assert [op.weight for op in plan.ops if isinstance(op, AddAs)] == [0, 0, 0]


@pytest.mark.parametrize(
    ("states", "expected"),
    [
        ({"a": UP, "b": DOWN, "c": UNKNOWN, "d": UNKNOWN}, FrontendState.UP),
        ({"a": DOWN, "b": PAUSED, "c": DISABLED, "d": DOWN}, FrontendState.DOWN),
        ({"a": DOWN, "b": DOWN, "c": DOWN, "d": UNKNOWN}, FrontendState.UNKNOWN),
        ({}, FrontendState.UNKNOWN),
    ],
)
def test_frontend_state(
    engine: ModuleType | None, states: dict[str, BackendState], expected: FrontendState
) -> None:
    _, ev = run(engine, config([frontend()]), states)
    assert ev.frontend(0).state is expected


def test_backend_removed_from_config_is_deleted_with_flush(engine: ModuleType | None) -> None:
    fe = frontend(pools=[("primary", {"a": 100, "b": 100})])
    actual = {WWW: vip_of(fe, {"a": 100, "b": 100, "c": 0, "d": 100})}
    plan, _ = run(engine, config([fe]), all_up(), actual)
    assert plan.ops == (DeleteAs(*WWW, ip("10.0.0.3"), True), DeleteAs(*WWW, ip("10.0.0.4"), True))


def test_unknown_as_between_known_ones_keeps_address_order(engine: ModuleType | None) -> None:
    fe = frontend(pools=[("primary", {"a": 100, "c": 100})])
    actual = {WWW: vip_of(fe, {"a": 100, "c": 100})}
    actual[WWW].weights[ip("10.0.0.2")] = 5
    actual[WWW].weights[ip("10.0.0.200")] = 5
    actual[WWW].weights[ip("10.0.0.0")] = 5
    plan, _ = run(engine, config([fe]), all_up(), actual)
    assert [op.address for op in plan.ops if isinstance(op, DeleteAs)] == [
        ip("10.0.0.0"),
        ip("10.0.0.2"),
        ip("10.0.0.200"),
    ]


def test_unmanaged_vip_is_reported_not_deleted(engine: ModuleType | None) -> None:
    fe = frontend()
    other: VipKey = (ipaddress.ip_network("198.51.100.0/24"), 17, 53)
    actual = {
        WWW: vip_of(fe, {"a": 100, "b": 100, "c": 0, "d": 0}),
        other: Vip(Attrs(), {ip("10.9.9.9"): 10}),
    }
    plan, _ = run(engine, config([fe]), all_up(), actual)
    assert plan.ops == () and plan.unmanaged == (other,)
    owned_plan, _ = run(engine, config([fe]), all_up(), actual, owned=[other])
    assert owned_plan.ops == (DeleteAs(*other, ip("10.9.9.9"), True), DeleteVip(*other))
    assert owned_plan.unmanaged == ()


def test_frontend_removed_deletes_ases_then_vip(engine: ModuleType | None) -> None:
    fe = frontend()
    actual = {WWW: vip_of(fe, {"a": 100, "b": 0})}
    plan, _ = run(engine, config([]), {}, actual, owned=[WWW])
    assert plan.ops == (
        DeleteAs(*WWW, ip("10.0.0.1"), True),
        DeleteAs(*WWW, ip("10.0.0.2"), True),
        DeleteVip(*WWW),
    )


@pytest.mark.parametrize(
    "change",
    [
        {"encap": ENCAP_CODE[Encap.L3DSR]},
        {"src_ip_sticky": True},
        {"flow_table_length": 2048},
    ],
)
def test_immutable_attribute_change_recreates_vip(
    engine: ModuleType | None, change: dict[str, Any]
) -> None:
    fe = frontend()
    actual = {WWW: vip_of(fe, {"a": 100, "c": 0}, **change)}
    plan, _ = run(engine, config([fe]), all_up(), actual)
    net, proto, port = WWW
    assert plan.ops == (
        DeleteAs(*WWW, ip("10.0.0.1"), True),
        DeleteAs(*WWW, ip("10.0.0.3"), True),
        DeleteVip(*WWW),
        CreateVip(net, proto, port, Encap.GRE4, 0, False, 1024),
        AddAs(*WWW, ip("10.0.0.1"), 100),
        AddAs(*WWW, ip("10.0.0.2"), 100),
        AddAs(*WWW, ip("10.0.0.3"), 0),
        AddAs(*WWW, ip("10.0.0.4"), 0),
    )


def test_dscp_change_recreates_only_for_l3dsr(engine: ModuleType | None) -> None:
    gre = frontend(dscp=10)
    actual = {WWW: vip_of(gre, {"a": 100, "b": 100, "c": 0, "d": 0}, dscp=0)}
    plan, _ = run(engine, config([gre]), all_up(), actual)
    assert plan.ops == ()
    dsr = frontend(encap=Encap.L3DSR, dscp=10)
    actual = {WWW: vip_of(dsr, {"a": 100, "b": 100, "c": 0, "d": 0}, dscp=0)}
    plan, _ = run(engine, config([dsr]), all_up(), actual)
    kinds = [type(op) for op in plan.ops]
    assert kinds == [DeleteAs] * 4 + [DeleteVip, CreateVip] + [AddAs] * 4
    assert plan.ops[5] == CreateVip(*WWW, Encap.L3DSR, 10, False, 1024)


def test_flow_table_length_zero_reads_as_65536(engine: ModuleType | None) -> None:
    fe = frontend(flow_table_length=65536)
    actual = {WWW: vip_of(fe, {"a": 100, "b": 100, "c": 0, "d": 0}, flow_table_length=0)}
    plan, _ = run(engine, config([fe]), all_up(), actual)
    assert plan.ops == ()


def test_vips_sorted_ipv4_first_then_numeric_prefix_protocol_port(
    engine: ModuleType | None,
) -> None:
    pools = [("p", {"a": 100})]
    fes = [
        frontend("v6", "2001:db8::1/128", pools),
        frontend("udp", "192.0.2.10/32", pools, protocol=Protocol.UDP, port=53),
        frontend("tcp443", "192.0.2.10/32", pools, port=443),
        frontend("tcp80", "192.0.2.10/32", pools, port=80),
        frontend("net", "192.0.2.0/24", pools),
        frontend("nine", "192.0.2.9/32", pools),
    ]
    plan, _ = run(engine, config(fes), all_up("a"))
    creates = [
        (str(op.prefix), op.protocol, op.port) for op in plan.ops if isinstance(op, CreateVip)
    ]
    assert creates == [
        ("192.0.2.0/24", 6, 80),
        ("192.0.2.9/32", 6, 80),
        ("192.0.2.10/32", 6, 80),
        ("192.0.2.10/32", 6, 443),
        ("192.0.2.10/32", 17, 53),
        ("2001:db8::1/128", 6, 80),
    ]
    again, _ = run(engine, config(reversed(fes)), all_up("a"))
    assert again == plan


def test_selected_frontends_leave_the_others_alone(engine: ModuleType | None) -> None:
    www, api = frontend(), frontend("api", "192.0.2.2/32")
    api_vip: VipKey = (ipaddress.ip_network("192.0.2.2/32"), 6, 80)
    stray: VipKey = (ipaddress.ip_network("203.0.113.1/32"), 6, 80)
    actual = {api_vip: vip_of(api, {"a": 1}), stray: Vip()}
    layout = rl.build_layout(config([www, api]))
    ev = rd.evaluate(layout, all_up(), engine=engine)
    table = ra.prepare_actual_map(layout, actual)
    plan = rd.make_plan(ev, table, selected=rd.select(layout, {"www"}), engine=engine)
    assert {op.vip for op in plan.ops} == {WWW}
    assert plan.unmanaged == (stray,)


def test_ipv6_backends_sort_after_ipv4(engine: ModuleType | None) -> None:
    bes = backends(a="2001:db8::2", b="10.0.0.2", c="2001:db8::1", d="9.0.0.1")
    plan, _ = run(engine, config([frontend()], bes), all_up())
    adds = [str(op.address) for op in plan.ops if isinstance(op, AddAs)]
    assert adds == ["9.0.0.1", "10.0.0.2", "2001:db8::1", "2001:db8::2"]


def test_backend_in_two_pools_is_one_as_weighted_by_the_active_pool(
    engine: ModuleType | None,
) -> None:
    fe = frontend(pools=[("primary", {"a": 0, "b": 100}), ("backup", {"a": 40, "c": 10})])
    plan, ev = run(engine, config([fe]), {"a": UP, "b": DOWN, "c": UP})
    assert [op.address for op in plan.ops if isinstance(op, AddAs)] == [
        ip("10.0.0.1"),
        ip("10.0.0.2"),
        ip("10.0.0.3"),
    ]
    view = ev.frontend(0)
    assert view.active_pool == "backup"
    assert [(b.name, b.weight, b.reason) for b in view.backends] == [
        ("a", 40, "active pool backup"),
        ("b", 0, "down"),
        ("c", 10, "active pool backup"),
    ]


def test_frontend_without_backends_is_down_with_an_empty_vip(engine: ModuleType | None) -> None:
    fe = frontend(pools=[])
    plan, ev = run(engine, config([fe]), {})
    assert [type(op) for op in plan.ops] == [CreateVip]
    assert ev.frontend(0).state is FrontendState.DOWN and ev.frontend(0).backends == ()
