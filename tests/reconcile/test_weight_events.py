"""Each weight change a pass makes is an event naming the rule that made it (issue #13 rule 5).

Turn by turn on a manual clock over `MemoryLb` (the damping test's rig): a backend going down is
`health`, coming back is `pool`, and an unchanged weight is no event (flap damping holding a
passing backend at 0 changes no weight; its return at the reuse time is `pool` again), and each
safety rule that moves a weight names itself: panic `mass-failure`, a ramp step `slow-start`, a
suppression in the pass that drained it `damping`, a held drain's new weight `vantage`.
Fail-static keeps a weight where it is, so it is never a weight event (explain names it).
"""

from __future__ import annotations

from typing import Any

from maglev.config import load_text
from maglev.reconcile.events import ReadLbState, WeightOverride
from maglev.reconcile.explain import explain
from maglev.reconcile.reconciler import Reconciler
from tests.reconcile.test_damping_reconciler import CONFIG, Rig
from tests.reconcile.test_slowstart import Rig as SlowRig
from tests.reconcile.test_vantage_reconciler import Rig as VantageRig
from tests.rigs import NoStreams


def weight_events(r: Rig) -> list[dict[str, Any]]:
    out = [e for e in r.published if e["type"] == "weight"]
    r.published.clear()
    return out


def test_weight_events_name_the_rule() -> None:
    r = Rig()
    r.probe("a1", True)
    r.probe("a2", True)
    r.turn()
    weight_events(r)  # the first programming (from no view) is not a change of weight
    r.probe("a1", False)
    r.turn(1.0)
    assert weight_events(r) == [
        {"type": "weight", "frontend": "www", "backend": "a1", "from": 100, "to": 0,
         "rule": "health"},
    ]  # fmt: skip
    r.probe("a2", True)  # no change: no event
    r.turn(1.0)
    assert weight_events(r) == []
    r.probe("a1", True)
    r.turn(1.0)
    assert weight_events(r) == [
        {"type": "weight", "frontend": "www", "backend": "a1", "from": 0, "to": 100,
         "rule": "pool"},
    ]  # fmt: skip
    while not r.damping_events():  # a1 flaps until flap damping holds it out
        r.flap()
    seen = {(e["from"], e["to"], e["rule"]) for e in weight_events(r)}
    assert seen == {(100, 0, "health"), (0, 100, "pool")}
    assert r.weights()["10.0.0.1"] == 0  # passing, held out: no event says otherwise
    r.clock.now = r.rec._next_deadline() + 0.01  # the reuse time
    r.turn()
    assert weight_events(r) == [
        {"type": "weight", "frontend": "www", "backend": "a1", "from": 0, "to": 100,
         "rule": "pool"},
    ]  # fmt: skip


def guard_rig(mode: str) -> Rig:
    """The damping rig without damping, its frontend guarded: `on-mass-failure: mode`, one of its
    two members must be healthy."""
    r = Rig(damping="")
    text = CONFIG.format(damping="").replace(
        "min-healthy: 0", f"min-healthy: 1\n    on-mass-failure: {mode}"
    )
    r.rec = Reconciler(
        load_text(text), r.inbox, r.lb, NoStreams(), publish=r.published.append, clock=r.clock
    )
    return r


def test_panic_names_the_mass_failure_guard() -> None:
    r = guard_rig("panic")
    r.probe("a1", True)
    r.probe("a2", True)
    r.turn()
    weight_events(r)
    r.probe("a1", False)  # 1 of 2 healthy: at the threshold, a1 is drained as ever
    r.turn(1.0)
    assert weight_events(r) == [
        {"type": "weight", "frontend": "www", "backend": "a1", "from": 100, "to": 0,
         "rule": "health"},
    ]  # fmt: skip
    r.probe("a2", False)  # 0 of 2: panic serves both, a1 back at its weight
    r.turn(1.0)
    assert r.weights() == {"10.0.0.1": 100, "10.0.0.2": 100}
    assert weight_events(r) == [
        {"type": "weight", "frontend": "www", "backend": "a1", "from": 0, "to": 100,
         "rule": "mass-failure"},
    ]  # fmt: skip
    r.probe("a2", True)  # the guard is over: a1 drained by health again
    r.turn(1.0)
    assert weight_events(r) == [
        {"type": "weight", "frontend": "www", "backend": "a1", "from": 100, "to": 0,
         "rule": "health"},
    ]  # fmt: skip


def test_fail_static_holds_without_a_weight_event_and_explain_names_it() -> None:
    # Fail-static keeps a missing member at the weight VPP has: its weight never changes, so it
    # is never a weight event; the drained ones are `health`, and the held one's rule (the
    # snapshot's, which `explain` reads) is the guard.
    r = guard_rig("fail-static")
    r.probe("a1", True)
    r.probe("a2", True)
    r.turn()
    weight_events(r)
    r.probe("a1", False)
    r.probe("a2", False)  # both at once: a1 (first in slot order) kept, a2 drained
    r.turn(1.0)
    assert r.weights() == {"10.0.0.1": 100, "10.0.0.2": 0}
    assert weight_events(r) == [
        {"type": "weight", "frontend": "www", "backend": "a2", "from": 100, "to": 0,
         "rule": "health"},
    ]  # fmt: skip
    (a1,) = explain(r.rec.snapshot, "www", "a1")
    assert (a1.weight, a1.rule, a1.consistent) == (100, "mass-failure", True)
    r.probe("a2", True)  # a2 back, the guard over: a1 drained, a2 served
    r.turn(1.0)
    assert sorted((e["backend"], e["from"], e["to"], e["rule"]) for e in weight_events(r)) == [
        ("a1", 100, 0, "health"), ("a2", 0, 100, "pool"),
    ]  # fmt: skip


def test_slow_start_steps_name_the_ramp() -> None:
    r = SlowRig()
    r.warm()
    r.turns("a2", False)
    r.published.clear()
    r.turns("a2", True)
    for _ in range(3):
        r.turn(10.0)
    assert r.weights()["10.0.0.2"] == 40
    assert [
        (e["backend"], e["from"], e["to"], e["rule"]) for e in r.published if e["type"] == "weight"
    ] == [
        ("a2", 0, 10, "slow-start"), ("a2", 10, 20, "slow-start"), ("a2", 20, 30, "slow-start"),
        ("a2", 30, 40, "pool"),  # the last step is the full weight: the pool's
    ]  # fmt: skip


def test_flap_damping_suppression_names_damping() -> None:
    # A suppression usually lands on a down transition (that pass's drain is `health`, and the
    # passing probes after it change no weight). When the third failure and the next pass reach
    # the reconciler in one turn (kept apart by a request between them, so they are not
    # coalesced), a1 goes from serving straight to held out: `damping`.
    r = Rig()
    r.probe("a1", True)
    r.probe("a2", True)
    r.turn()
    r.flap()
    r.flap()
    weight_events(r)
    assert r.damping_events() == [] and r.weights()["10.0.0.1"] == 100
    r.probe("a1", False)
    r.inbox.put(ReadLbState())
    r.probe("a1", True)
    r.turn(1.0)
    assert r.damping_events() == [("a1", True)]
    assert weight_events(r) == [
        {"type": "weight", "frontend": "www", "backend": "a1", "from": 100, "to": 0,
         "rule": "damping"},
    ]  # fmt: skip


def test_a_weight_change_of_a_held_drain_names_the_vantage_guard() -> None:
    r = VantageRig()
    r.warm("gw")
    r.turns(["gw"], False)  # the canary is down: the guard holds health-driven drains
    r.turns(["a1"], False)
    assert r.rec.snapshot.vantage.held == {"a1"} and r.weights()["10.0.0.1"] == 100
    r.published.clear()
    r.inbox.put(WeightOverride("www", "primary", "a1", 50))
    r.turn()
    assert r.weights()["10.0.0.1"] == 50
    assert [e for e in r.published if e["type"] == "weight"] == [
        {"type": "weight", "frontend": "www", "backend": "a1", "from": 100, "to": 50,
         "rule": "vantage"},
    ]  # fmt: skip
