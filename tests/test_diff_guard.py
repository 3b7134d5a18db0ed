"""The mass-failure guard, on both twins: fail-static, panic and drain, and their edge cases.

The frontend `www` (192.0.2.1 tcp:80) of `tests.test_diff`, mostly with one pool of four
backends a..d (10.0.0.1..4, weight 100); VPP's table is given per case.
"""

from __future__ import annotations

import ipaddress
from types import ModuleType

import pytest

from maglev import _diff_py
from maglev.model import (
    BackendState,
    Encap,
    Frontend,
    MassFailure,
    MinHealthy,
    Pool,
    PoolMember,
    Protocol,
)
from maglev.reconcile import actual as ra
from maglev.reconcile import desired as rl
from maglev.reconcile import plan as rd
from maglev.vpp.ops import AddAs, CreateVip, SetWeight
from tests.test_diff import (
    WWW,
    all_up,
    backends,
    config,
    frontend,
    ip,
    load_engine,
    run,
    sw,
    vip_of,
)

UP, DOWN, UNKNOWN = BackendState.UP, BackendState.DOWN, BackendState.UNKNOWN
PAUSED, DISABLED = BackendState.PAUSED, BackendState.DISABLED
FAIL_STATIC, PANIC, DRAIN = MassFailure.FAIL_STATIC, MassFailure.PANIC, MassFailure.DRAIN
HELD, PANICKED = "held: mass-failure guard (fail-static)", "panic: mass-failure guard"
FOUR = [("primary", {"a": 100, "b": 100, "c": 100, "d": 100})]
ALL_100 = {"a": 100, "b": 100, "c": 100, "d": 100}


@pytest.fixture(params=["python", "cython", "selected"])
def engine(request: pytest.FixtureRequest) -> ModuleType | None:
    return load_engine(request.param)


def four(**kw: object) -> Frontend:
    return frontend("www", "192.0.2.1/32", FOUR, **kw)


def states(**by: BackendState) -> dict[str, BackendState]:
    return {**all_up(), **by}


def rows(ev: rd.Evaluation) -> list[tuple[str, int, bool, str]]:
    return [(b.name, b.weight, b.flush, b.reason) for b in ev.frontend(0).backends]


def guard(ev: rd.Evaluation) -> tuple[object, ...]:
    g = ev.frontend(0).guard
    assert g is not None
    return (g.active, g.mode, g.pool, g.healthy, g.members, g.threshold)


def test_fail_static_keeps_the_first_members_in_address_order(engine: ModuleType | None) -> None:
    fe = four()
    plan, ev = run(engine, config([fe]), states(a=DOWN, b=DOWN, c=DOWN, d=DOWN),
                   {WWW: vip_of(fe, ALL_100)})  # fmt: skip
    # Two of four (50%) keep their weight in VPP, unflushed; health drains the others as ever.
    assert plan.ops == (sw("10.0.0.3", 0, flush=True), sw("10.0.0.4", 0, flush=True))
    assert rows(ev) == [
        ("a", 100, False, HELD),
        ("b", 100, False, HELD),
        ("c", 0, True, "down"),
        ("d", 0, True, "down"),
    ]
    assert guard(ev) == (True, FAIL_STATIC, "primary", 0, 4, 2)
    assert ev.guarded_backends(0) == ("a", "b")


def test_fail_static_order_is_the_address_order_not_the_config_order(
    engine: ModuleType | None,
) -> None:
    fe = frontend(pools=[("primary", {"d": 100, "c": 100, "b": 100, "a": 100})])
    _, ev = run(engine, config([fe]), states(a=DOWN, b=DOWN, c=DOWN, d=DOWN),
                {WWW: vip_of(fe, ALL_100)})  # fmt: skip
    assert ev.guarded_backends(0) == ("a", "b")


def test_fail_static_counts_the_healthy_ones_first(engine: ModuleType | None) -> None:
    fe = four()
    plan, ev = run(engine, config([fe]), states(a=DOWN, b=DOWN, d=DOWN),
                   {WWW: vip_of(fe, ALL_100)})  # fmt: skip
    assert plan.ops == (sw("10.0.0.2", 0, flush=True), sw("10.0.0.4", 0, flush=True))
    assert [r[3] for r in rows(ev)] == [HELD, "down", "active pool primary", "down"]
    assert guard(ev) == (True, FAIL_STATIC, "primary", 1, 4, 2)


def test_fail_static_keeps_the_weight_vpp_has_and_unknown_counts_as_missing(
    engine: ModuleType | None,
) -> None:
    fe = four()
    actual = {WWW: vip_of(fe, {"a": 30, "b": 100, "c": 100, "d": 100})}
    plan, ev = run(engine, config([fe]), states(a=UNKNOWN, b=DOWN, c=DOWN, d=DOWN), actual)
    assert [r[1:] for r in rows(ev)[:2]] == [(30, False, HELD), (100, False, HELD)]
    assert plan.ops == (sw("10.0.0.3", 0, flush=True), sw("10.0.0.4", 0, flush=True))


def test_fail_static_never_raises_a_weight_vpp_does_not_have(engine: ModuleType | None) -> None:
    fe = four()
    down = states(a=DOWN, b=DOWN, c=DOWN, d=DOWN)
    # Drained ones stay drained: the guard keeps what still serves.
    plan, ev = run(engine, config([fe]), down, {WWW: vip_of(fe, {"a": 0, "b": 0, "c": 100})})
    assert plan.ops == (AddAs(*WWW, ip("10.0.0.4"), 0),)  # d: not in VPP, added drained
    assert ev.guarded_backends(0) == ("c",)
    # A VIP VPP does not have yet: nothing to keep; the guard still says it is active.
    plan, ev = run(engine, config([fe]), down)
    assert isinstance(plan.ops[0], CreateVip)
    assert [op.weight for op in plan.ops if isinstance(op, AddAs)] == [0, 0, 0, 0]
    assert guard(ev) == (True, FAIL_STATIC, "primary", 0, 4, 2)


def test_fail_static_drains_down_to_the_threshold_and_back(engine: ModuleType | None) -> None:
    """Backends die one by one, then come back: VPP's table after each pass."""
    fe = four()
    cfg = config([fe])
    vpp = dict(ALL_100)
    st = all_up()
    addr = {ip(f"10.0.0.{i}"): n for i, n in enumerate("abcd", start=1)}

    def step(name: str, state: BackendState) -> dict[str, int]:
        st[name] = state
        plan, _ = run(engine, cfg, st, {WWW: vip_of(fe, vpp)})
        for op in plan.ops:
            assert isinstance(op, SetWeight)
            vpp[addr[op.address]] = op.weight
        return {n: w for n, w in vpp.items() if w}

    assert step("a", DOWN) == {"b": 100, "c": 100, "d": 100}  # 3 of 4: as ever
    assert step("b", DOWN) == {"c": 100, "d": 100}  # 2 of 4: the threshold, as ever
    assert step("c", DOWN) == {"c": 100, "d": 100}  # 1 of 4: c is kept
    assert step("d", DOWN) == {"c": 100, "d": 100}  # 0 of 4: c and d are kept
    assert step("a", UP) == {"a": 100, "c": 100}  # 1 of 4: c is still kept, d drains
    assert step("b", UP) == {"a": 100, "b": 100}  # 2 of 4: the guard lets go


def test_panic_serves_every_member_at_its_weight(engine: ModuleType | None) -> None:
    fe = four(on_mass_failure=PANIC)
    plan, ev = run(engine, config([fe]), states(a=DOWN, b=DOWN, c=PAUSED, d=UNKNOWN),
                   {WWW: vip_of(fe, ALL_100)}, {("www", "b"): 30})  # fmt: skip
    assert plan.ops == (sw("10.0.0.2", 30), sw("10.0.0.3", 0))
    assert rows(ev) == [
        ("a", 100, False, PANICKED),
        ("b", 30, False, PANICKED),
        ("c", 0, False, "paused"),  # an operator's pause is honoured
        ("d", 100, False, PANICKED),
    ]
    assert guard(ev) == (True, PANIC, "primary", 0, 4, 2)
    plan, _ = run(engine, config([fe]), states(a=DOWN, b=DOWN, c=DOWN, d=DOWN))
    assert [op.weight for op in plan.ops if isinstance(op, AddAs)] == [100, 100, 100, 100]


@pytest.mark.parametrize(
    "fe", [four(on_mass_failure=DRAIN), four(min_healthy=MinHealthy(0)),
           four(min_healthy=MinHealthy(0, percent=False), on_mass_failure=PANIC)],
)  # fmt: skip
def test_drain_and_min_healthy_zero_are_todays_behaviour(
    engine: ModuleType | None, fe: Frontend
) -> None:
    plan, ev = run(engine, config([fe]), states(a=DOWN, b=DOWN, c=DOWN, d=UNKNOWN),
                   {WWW: vip_of(fe, ALL_100)})  # fmt: skip
    assert plan.ops == (
        sw("10.0.0.1", 0, flush=True),
        sw("10.0.0.2", 0, flush=True),
        sw("10.0.0.3", 0, flush=True),
        sw("10.0.0.4", 0, flush=False),  # unknown: drained, not flushed
    )
    g = ev.frontend(0).guard
    assert g is not None and not g.active and ev.guarded_backends(0) == ()
    assert g.threshold == fe.min_healthy.threshold(4)


@pytest.mark.parametrize(
    ("pool", "min_healthy", "threshold", "held"),
    [
        ("abcd", MinHealthy(3, percent=False), 3, ("a", "b")),
        ("abcd", MinHealthy(10, percent=False), 4, ("a", "b", "c")),  # capped at the members
        ("abcd", MinHealthy(1, percent=False), 1, ()),
        ("abcd", MinHealthy(7500), 3, ("a", "b")),
        ("abcd", MinHealthy(2500), 1, ()),
        ("abc", MinHealthy(3333), 1, ()),  # 33.33% of 3 = 0.9999: rounded up to 1
        ("abc", MinHealthy(3334), 2, ("a",)),  # 34% of 3 = 1.0002: rounded up to 2
        ("abc", MinHealthy(10000), 3, ("a", "b")),
    ],
)
def test_count_or_percentage(
    engine: ModuleType | None,
    pool: str,
    min_healthy: MinHealthy,
    threshold: int,
    held: tuple[str, ...],
) -> None:
    fe = frontend(pools=[("primary", dict.fromkeys(pool, 100))], min_healthy=min_healthy)
    st = {n: DOWN for n in pool[:-1]} | {pool[-1]: UP}  # the last one up
    _, ev = run(engine, config([fe]), st, {WWW: vip_of(fe, ALL_100)})
    g = ev.frontend(0).guard
    assert g is not None and (g.healthy, g.members, g.threshold) == (1, len(pool), threshold)
    assert min_healthy.threshold(len(pool)) == threshold
    assert g.active is bool(held) and ev.guarded_backends(0) == held


@pytest.mark.parametrize("mode", [FAIL_STATIC, PANIC])
def test_paused_and_disabled_count_against_and_stay_out(
    engine: ModuleType | None, mode: MassFailure
) -> None:
    fe = four(on_mass_failure=mode)
    plan, ev = run(engine, config([fe]), states(a=DISABLED, b=PAUSED, d=DOWN),
                   {WWW: vip_of(fe, ALL_100)})  # fmt: skip
    # 1 healthy of 4 members: d serves on, a and b go as their operator asked.
    assert plan.ops == (sw("10.0.0.1", 0, flush=True), sw("10.0.0.2", 0))
    assert [r[1] for r in rows(ev)] == [0, 0, 100, 100]
    assert guard(ev) == (True, mode, "primary", 1, 4, 2)
    assert ev.guarded_backends(0) == ("d",)


def test_pool_failover_is_untouched(engine: ModuleType | None) -> None:
    fe = frontend()  # primary a, b; backup c, d
    actual = {WWW: vip_of(fe, {"a": 100, "b": 100, "c": 0, "d": 0})}
    st = states(a=DOWN, b=DOWN)
    plan, ev = run(engine, config([fe]), st, actual)
    drained, _ = run(engine, config([frontend(on_mass_failure=DRAIN)]), st, actual)
    assert (
        plan.ops
        == drained.ops
        == (
            sw("10.0.0.3", 100),
            sw("10.0.0.4", 100),
            sw("10.0.0.1", 0, flush=True),
            sw("10.0.0.2", 0, flush=True),
        )
    )
    assert guard(ev) == (False, FAIL_STATIC, "backup", 2, 2, 1)


def test_with_no_pool_up_the_guard_judges_the_pool_vpp_serves_from(
    engine: ModuleType | None,
) -> None:
    fe = frontend()
    down = states(a=DOWN, b=DOWN, c=DOWN, d=DOWN)
    plan, ev = run(engine, config([fe]), down, {WWW: vip_of(fe, {"a": 0, "b": 0, "c": 100,
                                                               "d": 100})})  # fmt: skip
    assert plan.ops == (sw("10.0.0.4", 0, flush=True),)
    assert guard(ev) == (True, FAIL_STATIC, "backup", 0, 2, 1)
    assert ev.frontend(0).state.value == "down" and ev.frontend(0).active_pool is None
    _, ev = run(engine, config([fe]), down)  # VPP has nothing: the first pool
    assert guard(ev) == (True, FAIL_STATIC, "primary", 0, 2, 1)


def test_a_backend_in_two_pools_and_twice_in_one(engine: ModuleType | None) -> None:
    # Validation refuses both, but the model can hold them: the engine must still be sound.
    pools = (
        Pool("primary", (PoolMember("a", 0), PoolMember("b", 100), PoolMember("a", 100))),
        Pool("backup", (PoolMember("b", 100), PoolMember("c", 100))),
    )
    fe = Frontend("www", ipaddress.ip_network("192.0.2.1/32"), Protocol.TCP, 80, Encap.GRE4, pools)
    bes = backends(a="10.0.0.1", b="10.0.0.2", c="10.0.0.3", d="10.0.0.4")
    down = states(a=DOWN, b=DOWN, c=DOWN)
    actual = {WWW: vip_of(fe, {"a": 0, "b": 100, "c": 100})}
    plan, ev = run(engine, config([fe], bes), down, actual)
    # primary serves (b has weight in VPP); a's first entry has weight 0: not a member.
    assert guard(ev) == (True, FAIL_STATIC, "primary", 0, 1, 1)
    assert ev.guarded_backends(0) == ("b",)
    assert plan.ops == (sw("10.0.0.3", 0, flush=True),)


def test_current_weights_reads_vpp_per_slot() -> None:
    fe = four()
    layout = rl.build_layout(config([fe]))
    vip = vip_of(fe, {"a": 30, "c": 0})
    vip.weights[ip("10.0.0.200")] = 5  # an AS the config does not know
    other = (ipaddress.ip_network("192.0.2.0/24"), 6, 80)
    table = ra.prepare_actual_map(layout, {WWW: vip, other: vip_of(fe, {"b": 9})})
    for e in (_diff_py, load_engine("cython")):
        assert e is not None
        assert list(e.current_weights(layout.topology, table.actual)) == [30, -1, 0, -1]
