"""The mass-failure guard on random worlds (`tests.test_diff_property`), on both twins.

An oracle written from the rule's text (not from the engine) finds each frontend's serving pool,
its members, healthy members and threshold; then:
- fail-static: health alone keeps min(threshold, healthy + members VPP still serves) serving;
- a backend that is not up ends at weight 0 unless the guard keeps it, and its reason says so;
- the guard changes only what it marks: every other weight, flush and reason is what `drain`
  (today's behaviour) gives;
- what the operator reads names the guard for every slot it keeps, and only for those: the rule
  (`explain.rule_of`, which weight events and `explain` use) and the backend's reason text.
"""

from __future__ import annotations

import dataclasses
from array import array
from typing import Any

from hypothesis import HealthCheck, given, settings

from maglev import _diff_py, diff
from maglev.model import Config, Frontend, MassFailure
from maglev.reconcile import actual as ra
from maglev.reconcile import desired as rl
from maglev.reconcile.explain import rule_of
from maglev.reconcile.plan import Evaluation
from tests.test_diff import load_engine
from tests.test_diff_property import worlds

NOT_UP = (diff.ST_DOWN, diff.ST_UNKNOWN)
KEPT = (diff.R_HELD, diff.R_PANIC)


def _run(engine: Any, config: Config, w: dict[str, Any], overrides: Any) -> tuple[Any, ...]:
    layout = rl.build_layout(config)
    table = ra.prepare_actual_map(layout, w["actual"])
    current = engine.current_weights(layout.topology, table.actual)
    codes = rl.encode_states(layout, w["states"])
    ovs = rl.encode_overrides(layout, overrides)
    return (
        layout,
        codes,
        current,
        diff.Desired._make(
            engine.compute_desired(layout.topology, codes, ovs, current, layout.no_ramp)
        ),
    )


def _oracle(
    layout: rl.Layout, f: int, codes: array[int], current: array[int]
) -> tuple[int, int, int, int, list[int]]:
    """(serving pool, healthy, members, threshold, member slots) by the rule's words."""
    fe: Frontend = layout.frontends[f]
    slot = {n: layout.slot_index[(fe.name, n)] for n in fe.backend_names()}
    code = {n: codes[layout.topology.slot_backend[s]] for n, s in slot.items()}
    serving = next(
        (i for i, p in enumerate(fe.pools)
         if any(code[m.backend] == diff.ST_UP and m.weight > 0 for m in p.members)),
        None,
    )  # fmt: skip
    if serving is None:
        serving = next(
            (i for i, p in enumerate(fe.pools) if any(current[slot[m.backend]] > 0
                                                      for m in p.members)),
            0 if fe.pools else -1,
        )  # fmt: skip
    if serving < 0:
        return -1, 0, 0, 0, []
    first: dict[str, int] = {}
    for m in fe.pools[serving].members:
        first.setdefault(m.backend, m.weight)
    members = [n for n, weight in first.items() if weight > 0]
    healthy = sum(code[n] == diff.ST_UP for n in members)
    threshold = fe.min_healthy.threshold(len(members))
    return serving, healthy, len(members), threshold, [slot[n] for n in members]


def _drain(config: Config) -> Config:
    fes = {
        n: dataclasses.replace(fe, on_mass_failure=MassFailure.DRAIN)
        for n, fe in config.frontends.items()
    }
    return dataclasses.replace(config, frontends=fes)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(worlds())
def test_the_guard_keeps_min_healthy_serving_and_says_so(w: dict[str, Any]) -> None:
    for engine in (_diff_py, load_engine("cython")):
        # Health alone: no operator overrides.
        layout, codes, current, d = _run(engine, w["config"], w, {})
        for f, fe in enumerate(layout.frontends):
            sp, healthy, members, threshold, slots = _oracle(layout, f, codes, current)
            assert tuple(d.fe_guard_counts[4 * f : 4 * f + 4]) == (sp, healthy, members, threshold)
            under = healthy < threshold and fe.on_mass_failure is not MassFailure.DRAIN
            assert bool(d.fe_guard[f]) is under
            serving = sum(d.slot_weight[s] > 0 for s in slots)
            if under and fe.on_mass_failure is MassFailure.FAIL_STATIC:
                assert d.fe_guard[f] == diff.GUARD_HOLD
                serves = [s for s in slots if codes[layout.topology.slot_backend[s]] in NOT_UP
                          and current[s] > 0]  # fmt: skip
                assert serving == min(threshold, healthy + len(serves))
            elif under:  # panic: every member that is not paused or disabled serves
                assert d.fe_guard[f] == diff.GUARD_PANIC
                live = (diff.ST_UP, *NOT_UP)
                assert serving == sum(codes[layout.topology.slot_backend[s]] in live for s in slots)
            else:
                assert serving >= healthy  # no kept weight: health decides alone


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(worlds())
def test_a_backend_not_up_drains_unless_the_guard_keeps_it(w: dict[str, Any]) -> None:
    for engine in (_diff_py, load_engine("cython")):
        layout, codes, current, d = _run(engine, w["config"], w, w["overrides"])
        _, _, _, drained = _run(engine, _drain(w["config"]), w, w["overrides"])
        top = layout.topology
        evaluation = Evaluation(layout, d)
        for f, fe in enumerate(layout.frontends):
            assert (d.fe_state[f], d.fe_active[f]) == (drained.fe_state[f], drained.fe_active[f])
            views = evaluation.frontend(f).backends
            for s in range(top.fe_slot_start[f], top.fe_slot_start[f + 1]):
                st, r = codes[top.slot_backend[s]], d.slot_reason[s]
                bv = views[s - top.fe_slot_start[f]]
                assert (bv.name, bv.code) == (layout.slot_backend_name[s], r)
                if r in KEPT:  # the guard's rule, even where the vantage guard holds a drain
                    assert rule_of(r) == rule_of(r, vantage_held=True) == "mass-failure"
                    assert "mass-failure guard" in bv.reason, bv
                else:
                    assert rule_of(r) != "mass-failure" and "mass-failure" not in bv.reason, bv
                if r == diff.R_HELD:
                    assert d.fe_guard[f] == diff.GUARD_HOLD and st in NOT_UP
                    assert fe.on_mass_failure is MassFailure.FAIL_STATIC
                    assert d.slot_weight[s] == current[s] > 0 and not d.slot_flush[s]
                elif r == diff.R_PANIC:
                    assert d.fe_guard[f] == diff.GUARD_PANIC and st in NOT_UP
                    assert fe.on_mass_failure is MassFailure.PANIC and not d.slot_flush[s]
                else:
                    # Not kept: exactly what drain (today's behaviour) gives.
                    assert (d.slot_weight[s], d.slot_flush[s], r) == (
                        drained.slot_weight[s], drained.slot_flush[s], drained.slot_reason[s],
                    )  # fmt: skip
                    if st != diff.ST_UP:
                        assert d.slot_weight[s] == 0
                if d.fe_guard[f] == diff.GUARD_NONE:
                    assert r not in KEPT
            assert drained.fe_guard[f] == diff.GUARD_NONE
