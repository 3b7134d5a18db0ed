"""A backend suppressed by flap damping, on both twins: weight 0, never flushed, reason
`suppressed`, and missing (not healthy) for the mass-failure guard.

The frontend `www` (192.0.2.1 tcp:80) of `tests.test_diff`; VPP's table is given per case.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from types import ModuleType

import pytest

from maglev import diff
from maglev.model import BackendState, Config, MassFailure, MinHealthy
from maglev.reconcile import actual as ra
from maglev.reconcile import desired as rl
from maglev.reconcile import plan as rd
from maglev.vpp.lb import ActualVip, VipKey
from maglev.vpp.ops import Plan
from tests.test_diff import WWW, all_up, config, frontend, load_engine, sw, vip_of

UP, DOWN = BackendState.UP, BackendState.DOWN
SUPPRESSED = "suppressed: flap damping"
HELD, PANICKED = "held: mass-failure guard (fail-static)", "panic: mass-failure guard"
FOUR = [("primary", {"a": 100, "b": 100, "c": 100, "d": 100})]
ALL_100 = {"a": 100, "b": 100, "c": 100, "d": 100}


@pytest.fixture(params=["python", "cython", "selected"])
def engine(request: pytest.FixtureRequest) -> ModuleType | None:
    return load_engine(request.param)


def run(
    engine: ModuleType | None,
    cfg: Config,
    states: Mapping[str, BackendState],
    suppressed: Collection[str],
    actual: Mapping[VipKey, ActualVip] | None = None,
) -> tuple[Plan, rd.Evaluation]:
    layout = rl.build_layout(cfg)
    table = ra.prepare_actual_map(layout, actual or {})
    ev = rd.evaluate(layout, states, engine=engine, table=table, suppressed=suppressed)
    return rd.make_plan(ev, table, frozenset(), engine=engine), ev


def rows(ev: rd.Evaluation) -> list[tuple[str, int, bool, str]]:
    return [(b.name, b.weight, b.flush, b.reason) for b in ev.frontend(0).backends]


def test_encoding_suppresses_only_an_up_enabled_backend() -> None:
    fe = frontend("www", "192.0.2.1/32", FOUR)
    layout = rl.build_layout(config([fe]))
    codes = rl.encode_states(layout, {"a": UP, "b": DOWN, "c": UP, "d": UP}, {"a", "b"})
    assert list(codes) == [diff.ST_SUPPRESSED, diff.ST_DOWN, diff.ST_UP, diff.ST_UP]
    live = rl.EncodedStates(layout, all_up(), set())
    assert isinstance(live.suppressed, set)
    live.suppressed.add("c")  # read through: the reconciler's damping owns the set
    live.update("c", UP)
    assert live.codes[2] == diff.ST_SUPPRESSED


def test_suppressed_goes_to_weight_zero_unflushed(engine: ModuleType | None) -> None:
    fe = frontend("www", "192.0.2.1/32", FOUR, flush_on_down=True)
    plan, ev = run(engine, config([fe]), all_up(), {"b"}, {WWW: vip_of(fe, ALL_100)})
    assert plan.ops == (sw("10.0.0.2", 0, flush=False),)
    assert rows(ev) == [
        ("a", 100, False, "active pool primary"),
        ("b", 0, False, SUPPRESSED),
        ("c", 100, False, "active pool primary"),
        ("d", 100, False, "active pool primary"),
    ]


def test_a_down_backend_is_down_whether_suppressed_or_not(engine: ModuleType | None) -> None:
    fe = frontend("www", "192.0.2.1/32", FOUR, flush_on_down=True)
    plan, ev = run(engine, config([fe]), {**all_up(), "b": DOWN}, {"b"},
                   {WWW: vip_of(fe, ALL_100)})  # fmt: skip
    assert plan.ops == (sw("10.0.0.2", 0, flush=True),)
    assert rows(ev)[1] == ("b", 0, True, "down")


def test_suppressed_members_do_not_make_a_pool_active(engine: ModuleType | None) -> None:
    fe = frontend("www", "192.0.2.1/32", [("primary", {"a": 100}), ("backup", {"c": 100})],
                  min_healthy=MinHealthy(0, False))  # fmt: skip
    _, ev = run(engine, config([fe]), all_up("a", "c"), {"a"})
    view = ev.frontend(0)
    assert view.active_pool == "backup"
    assert rows(ev) == [("a", 0, False, SUPPRESSED), ("c", 100, False, "active pool backup")]


def test_suppressed_counts_as_missing_for_fail_static(engine: ModuleType | None) -> None:
    # Three of four suppressed: 1 healthy < 50% of 4; fail-static keeps the first missing one
    # (a) at its weight in VPP; the others stay out, unflushed.
    fe = frontend("www", "192.0.2.1/32", FOUR, on_mass_failure=MassFailure.FAIL_STATIC)
    plan, ev = run(engine, config([fe]), all_up(), {"a", "b", "c"}, {WWW: vip_of(fe, ALL_100)})
    g = ev.frontend(0).guard
    assert g is not None and g.active and (g.healthy, g.members, g.threshold) == (1, 4, 2)
    assert rows(ev) == [
        ("a", 100, False, HELD),
        ("b", 0, False, SUPPRESSED),
        ("c", 0, False, SUPPRESSED),
        ("d", 100, False, "active pool primary"),
    ]
    assert plan.ops == (sw("10.0.0.2", 0), sw("10.0.0.3", 0))


def test_suppressed_is_served_in_panic(engine: ModuleType | None) -> None:
    fe = frontend("www", "192.0.2.1/32", FOUR, on_mass_failure=MassFailure.PANIC)
    _, ev = run(engine, config([fe]), {**all_up(), "d": DOWN}, {"a", "b", "c"},
                {WWW: vip_of(fe, ALL_100)})  # fmt: skip
    assert [r[1:] for r in rows(ev)] == [(100, False, PANICKED)] * 4


def test_drain_mode_leaves_suppressed_out(engine: ModuleType | None) -> None:
    fe = frontend("www", "192.0.2.1/32", FOUR, on_mass_failure=MassFailure.DRAIN)
    _, ev = run(engine, config([fe]), all_up(), {"a", "b", "c", "d"}, {WWW: vip_of(fe, ALL_100)})
    assert [r[1:] for r in rows(ev)] == [(0, False, SUPPRESSED)] * 4
    assert ev.frontend(0).state.value == "down"
