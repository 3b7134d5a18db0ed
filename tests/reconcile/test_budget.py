"""The disruption budget's steps, measured on the Maglev table: within the budget (but for the
indivisible single-unit step, flagged), ending at the target, deterministic; and a drain is never
delayed by a budget in progress, on both twins."""

from __future__ import annotations

import ipaddress
from types import ModuleType

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from maglev import diff
from maglev.model import BackendState, IPAddress
from maglev.reconcile import actual as ra
from maglev.reconcile import desired as rl
from maglev.reconcile import plan as rd
from maglev.reconcile.budget import limit_of, plan_steps
from maglev.table import churn, ip46
from tests.test_diff import WWW, all_up, config, frontend, load_engine, vip_of

ADDRS: list[IPAddress] = [ipaddress.ip_address(f"10.0.0.{i}") for i in range(1, 7)]
ADDRS.append(ipaddress.ip_address("2001:db8::1"))


def _moved(addrs: list[IPAddress], a: tuple[int, ...], b: tuple[int, ...], m: int) -> int:
    keys = [ip46(x) for x in addrs]
    return churn(zip(keys, a, strict=True), zip(keys, b, strict=True), m).moved


@st.composite
def changes(
    draw: st.DrawFn,
) -> tuple[list[IPAddress], tuple[int, ...], tuple[int, ...], int, float]:
    n = draw(st.integers(1, 5))
    addrs = draw(st.permutations(ADDRS))[:n]
    weight = st.sampled_from([0, 1, 2, 5, 20, 50, 100])
    start = tuple(draw(st.lists(weight, min_size=n, max_size=n)))
    target = tuple(draw(st.lists(weight, min_size=n, max_size=n)))
    m = draw(st.sampled_from([64, 256]))
    share = draw(st.sampled_from([0.02, 0.1, 0.25, 0.5]))
    return addrs, start, target, m, share


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(changes())
def test_steps_stay_within_the_budget_and_end_at_the_target(
    change: tuple[list[IPAddress], tuple[int, ...], tuple[int, ...], int, float],
) -> None:
    addrs, start, target, m, share = change
    steps = plan_steps(addrs, start, target, m, share)
    assert steps.weights[0] == start
    assert steps.weights[-1] == target
    limit = limit_of(share, m)
    for k in range(1, len(steps.weights)):
        a, b = steps.weights[k - 1], steps.weights[k]
        moved = _moved(addrs, a, b, m)
        assert moved == steps.moved[k]  # what the log and the events say is what moves
        if steps.indivisible[k]:
            # The indivisible case: one weight unit on one backend is the smallest step there
            # is, and it alone moves more than the budget; it is taken alone.
            assert moved > limit
            assert sum(abs(x - y) for x, y in zip(a, b, strict=True)) == 1
        else:
            assert moved <= limit
        # Every step heads for the target: no weight overshoots or turns back.
        for x, y, t in zip(a, b, target, strict=True):
            assert min(x, t) <= y <= max(x, t)
    # Determinism: the same inputs give the same steps (every node plans alike).
    assert plan_steps(addrs, start, target, m, share) == steps


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(changes(), st.integers(1, 3))
def test_planning_in_pieces_gives_the_same_steps(
    change: tuple[list[IPAddress], tuple[int, ...], tuple[int, ...], int, float], most: int
) -> None:
    addrs, start, target, m, share = change
    whole = plan_steps(addrs, start, target, m, share)
    pieces = plan_steps(addrs, start, target, m, share, most)
    while not pieces.complete:
        assert pieces.count % most == 0
        pieces = pieces.then(plan_steps(addrs, pieces.weights[-1], target, m, share, most))
    assert pieces == whole


def test_a_reweight_over_the_budget_takes_several_steps() -> None:
    addrs = ADDRS[:4]
    steps = plan_steps(addrs, (100, 100, 100, 100), (20, 100, 100, 100), 1024, 0.05)
    assert steps.count > 1
    assert not any(steps.indivisible)
    assert all(0 < n <= 51 for n in steps.moved[1:])  # 5% of 1024 = 51 buckets


def test_the_indivisible_step_is_taken_alone_and_flagged() -> None:
    # Two backends of weight 1: a third one joining at weight 1 takes about a third of the
    # table, whatever the budget; no integer step is smaller.
    addrs = ADDRS[:3]
    steps = plan_steps(addrs, (1, 1, 0), (1, 1, 1), 256, 0.02)
    assert steps.count == 1 and steps.indivisible == (False, True)
    assert steps.moved[1] > limit_of(0.02, 256)


def test_within_the_budget_is_one_step() -> None:
    steps = plan_steps(ADDRS[:4], (100, 100, 100, 100), (99, 100, 100, 100), 1024, 0.1)
    assert steps.count == 1 and steps.weights[-1] == (99, 100, 100, 100)


# --- the engine's rule on both twins --------------------------------------------------------


@pytest.fixture(params=["python", "cython", "selected"])
def engine(request: pytest.FixtureRequest) -> ModuleType | None:
    return load_engine(request.param)


def _views(
    engine: ModuleType | None,
    states: dict[str, BackendState],
    budget: dict[tuple[str, str], int],
    vpp: dict[str, int],
) -> dict[str, tuple[int, str]]:
    fe = frontend(pools=(("primary", {"a": 100, "b": 50}), ("backup", {"c": 50})))
    layout = rl.build_layout(config([fe]))
    table = ra.prepare_actual_map(layout, {WWW: vip_of(fe, vpp)})
    ev = rd.evaluate(layout, states, engine=engine, table=table, budget=budget)
    return {v.name: (v.weight, v.reason) for v in ev.frontend(0).backends}


def test_a_step_holds_an_up_backend_between_vpp_and_its_weight(engine: ModuleType | None) -> None:
    vpp = {"a": 20, "b": 50, "c": 0}
    got = _views(engine, all_up("a", "b", "c"), {("www", "a"): 60}, vpp)
    assert got["a"] == (60, "budget: held by max-churn")
    assert got["b"] == (50, "active pool primary")
    # A stale step beyond the weight or behind VPP is clamped: the budget never invents one.
    assert _views(engine, all_up("a", "b", "c"), {("www", "a"): 150}, vpp)["a"][0] == 100
    assert _views(engine, all_up("a", "b", "c"), {("www", "a"): 5}, vpp)["a"][0] == 20


def test_a_drain_is_never_delayed_by_a_step(engine: ModuleType | None) -> None:
    vpp = {"a": 20, "b": 50, "c": 0}
    states = all_up("a", "b", "c") | {"a": BackendState.DOWN, "b": BackendState.PAUSED}
    budget = {("www", "a"): 60, ("www", "b"): 50}
    got = _views(engine, states, budget, vpp)
    assert got["a"] == (0, "down")
    assert got["b"] == (0, "paused")


_STATE = st.sampled_from([BackendState.UP, BackendState.DOWN, BackendState.PAUSED])


@settings(max_examples=40, deadline=None)
@given(
    st.dictionaries(st.sampled_from("abc"), _STATE),
    st.dictionaries(st.sampled_from("abc"), st.integers(0, 100)),
    st.dictionaries(st.sampled_from("abc"), st.integers(0, 100)),
)
def test_no_drain_is_delayed_on_random_steps(
    states: dict[str, BackendState], steps: dict[str, int], vpp: dict[str, int]
) -> None:
    full = all_up("a", "b", "c") | states
    budget = {("www", n): w for n, w in steps.items()}
    free = _views(load_engine("python"), full, {}, vpp)
    for twin in ("python", "cython"):
        got = _views(load_engine(twin), full, budget, vpp)
        for name, state in full.items():
            if state is not BackendState.UP:
                # Whatever the budget says, a backend that is not up gets what it would get
                # without one (0 when drained; the mass-failure guard may still hold it).
                assert got[name] == free[name], (name, state, got)
        assert got == _views(load_engine("python"), full, budget, vpp)  # the twins agree


def test_no_budget_is_no_change(engine: ModuleType | None) -> None:
    vpp = {"a": 20, "b": 50, "c": 0}
    assert _views(engine, all_up("a", "b", "c"), {}, vpp) == _views(
        engine, all_up("a", "b", "c"), {("www", "zz"): 3}, vpp
    )
    assert diff.R_BUDGET not in {r for _, r in _views(engine, all_up(), {}, vpp).values()}
