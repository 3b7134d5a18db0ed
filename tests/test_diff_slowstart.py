"""Slow start in the engine, on both twins: the cap, its reason, and its ramp over time.

The frontend `www` of `tests.test_diff` (primary a, b; backup c, d; weight 100 unless given).
"""

from __future__ import annotations

from types import ModuleType

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from maglev import _diff_py, diff
from maglev.model import BackendState, MassFailure, MinHealthy, SlowStart
from maglev.reconcile import actual as ra
from maglev.reconcile import desired as rl
from maglev.reconcile import plan as rd
from maglev.reconcile.slowstart import permille, position, step_weights
from tests.test_diff import (
    WWW,
    all_up,
    config,
    frontend,
    load_engine,
    run,
    sw,
    vip_of,
)

UP, DOWN = BackendState.UP, BackendState.DOWN


@pytest.fixture(params=["python", "cython", "selected"])
def engine(request: pytest.FixtureRequest) -> ModuleType | None:
    return load_engine(request.param)


def _weights(
    engine: ModuleType | None, ramps: dict[tuple[str, str], int], **kw: object
) -> list[tuple[str, int, str]]:
    cfg = config([frontend(pools=(("primary", {"a": 100, "b": 7}), ("backup", {"c": 50})), **kw)])
    ev = rd.evaluate(rl.build_layout(cfg), all_up("a", "b", "c"), engine=engine, ramps=ramps)
    return [(v.name, v.weight, v.reason) for v in ev.frontend(0).backends]


def test_the_cap_is_max_one_of_the_share_and_says_so(engine: ModuleType | None) -> None:
    got = _weights(engine, {("www", "a"): 250, ("www", "b"): 100, ("www", "c"): 500})
    assert got == [
        ("a", 25, "slow start: active pool primary"),
        ("b", 1, "slow start: active pool primary"),  # 7 * 10% = 0.7: never below 1
        ("c", 0, "standby pool backup"),  # not in the active pool: no weight to cap
    ]


def test_no_ramp_is_the_full_weight(engine: ModuleType | None) -> None:
    got = _weights(engine, {("www", "a"): diff.PERMILLE})
    assert got[0] == ("a", 100, "active pool primary")
    assert _weights(engine, {}) == _weights(engine, {("www", "zz"): 10})  # unknown key ignored


def test_override_is_ramped_and_zero_stays_zero(engine: ModuleType | None) -> None:
    cfg = config([frontend()])
    layout = rl.build_layout(cfg)
    ramps = {("www", "a"): 500, ("www", "b"): 500}
    ov = {("www", "a"): 30, ("www", "b"): 0}
    ev = rd.evaluate(layout, all_up(), ov, engine=engine, ramps=ramps)
    bs = {v.name: (v.weight, v.reason) for v in ev.frontend(0).backends}
    assert bs["a"] == (15, "slow start: active pool primary")
    assert bs["b"] == (0, "override 0")


def test_a_ramping_backend_is_healthy_for_the_mass_failure_guard(
    engine: ModuleType | None,
) -> None:
    # Two of four up, one of them ramping: 2 >= 50% of 4, so the guard does not act.
    fe = frontend(
        pools=(("primary", {"a": 100, "b": 100, "c": 100, "d": 100}),),
        min_healthy=MinHealthy(5000, True),
        on_mass_failure=MassFailure.FAIL_STATIC,
    )
    cfg = config([fe])
    actual = {WWW: vip_of(fe, {"a": 100, "b": 0, "c": 100, "d": 100})}
    layout = rl.build_layout(cfg)
    table = ra.prepare_actual_map(layout, actual)
    states = {"a": UP, "b": UP, "c": DOWN, "d": DOWN}
    ev = rd.evaluate(layout, states, engine=engine, table=table, ramps={("www", "b"): 250})
    assert ev.guard(0).healthy == 2 and not ev.guard(0).active
    plan = rd.make_plan(ev, table, engine=engine)
    assert sw("10.0.0.2", 25) in plan.ops  # the ramp's first step goes out as an increase
    assert sw("10.0.0.3", 0, True) in plan.ops


def test_ramp_ops_are_set_weights(engine: ModuleType | None) -> None:
    fe = frontend()
    actual = {WWW: vip_of(fe, {"a": 100, "b": 0, "c": 0, "d": 0})}
    plan, _ = run(engine, config([fe]), all_up(), actual)
    assert sw("10.0.0.2", 100) in plan.ops


_W = st.integers(0, 1000)
_STEPS = st.integers(2, 20)
_DURATION = st.floats(0.01, 1000.0)
_TIMES = st.lists(st.floats(0.0, 2000.0), min_size=1, max_size=12)


@settings(max_examples=150, deadline=None)
@given(_W, _STEPS, _DURATION, _TIMES, st.booleans())
def test_ramp_weights_are_monotone_over_time_and_end_at_the_weight(
    w: int, steps: int, duration: float, times: list[float], override: bool
) -> None:
    cfg = config([frontend(pools=(("primary", {"a": min(w, 100), "b": 100}),))])
    layout = rl.build_layout(cfg)
    ramp = SlowStart(duration, steps)
    full = w if override else min(w, 100)
    ov = {("www", "a"): w} if override else {}
    for twin in (_diff_py, load_engine("cython")):
        seen = []
        for t in sorted([*times, duration]):
            step, _ = position(0.0, ramp, t)
            ev = rd.evaluate(
                layout, all_up("a", "b"), ov, engine=twin,
                ramps={("www", "a"): permille(step, steps)},
            )  # fmt: skip
            seen.append(ev.desired.slot_weight[0])
        assert seen == sorted(seen)
        assert seen[-1] == full
        assert all(x >= 1 for x in seen) or full == 0
        assert set(seen) <= set(step_weights(full, ramp))
