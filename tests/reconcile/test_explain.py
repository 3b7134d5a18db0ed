"""`maglev.reconcile.explain`: every weight's chain of rules, over reconcilers in each situation.

The property every test checks (`check`): for every frontend and backend, the explanation ends
at the engine's weight, and its steps reach that weight on their own (`consistent`).
"""

from __future__ import annotations

from maglev.reconcile import events
from maglev.reconcile.explain import Explanation, explain, rule_of
from maglev.reconcile.snapshot import Snapshot
from tests.reconcile import test_damping_reconciler as damping
from tests.reconcile import test_slowstart as slowstart
from tests.reconcile import test_vantage_reconciler as vantage


def check(snap: Snapshot) -> dict[tuple[str, str], Explanation]:
    """Every explanation of the snapshot, asserted to end at the engine's weight."""
    out = {}
    for fe, view in snap.frontends.items():
        weights = {b.name: b.weight for b in view.backends}
        for e in explain(snap, fe):
            assert e.consistent, e
            assert e.steps[-1].rule == "effective"
            assert e.steps[-1].weight == e.weight == weights[e.backend], e
            assert e.steps[-2].weight == e.weight, e  # the rules alone reach it
            out[(fe, e.backend)] = e
    return out


def rules(e: Explanation) -> list[str]:
    return [s.rule for s in e.steps]


def test_active_standby_override_pause_and_slow_start() -> None:
    r = slowstart.Rig()
    r.warm()
    ex = check(r.rec.snapshot)
    a1 = ex[("www", "a1")]
    assert (a1.weight, a1.rule) == (100, "pool")
    assert rules(a1) == ["configured", "pool", "health", "effective"]
    assert "active pool primary" in a1.steps[1].detail and "last probe ok" in a1.steps[2].detail
    r.turns("a1", False)
    r.turns("a1", True)  # back: slow start, step 1 of 4
    ex = check(r.rec.snapshot)
    a1 = ex[("www", "a1")]
    assert (a1.weight, a1.rule) == (25, "slow-start")
    assert "step 1 of 4" in a1.steps[-2].detail
    assert "up->down" in a1.steps[2].detail and "down->up" in a1.steps[2].detail
    r.turn(30.0)
    r.inbox.put(events.WeightOverride("www", "primary", "a2", 7))
    r.inbox.put(events.BackendAction("a3", "pause"))
    r.turn()
    ex = check(r.rec.snapshot)
    a2, a3 = ex[("www", "a2")], ex[("www", "a3")]
    assert (a2.weight, a2.rule) == (7, "override") and a2.steps[0].weight == 40
    assert (a3.weight, a3.rule) == (0, "operator") and "paused" in a3.steps[-2].detail


def test_standby_pool_and_down() -> None:
    r = slowstart.Rig(more="}}\n      - {name: backup, backends: {a4: {}")
    r.warm("a1", "a2", "a3", "a4")
    ex = check(r.rec.snapshot)
    a4 = ex[("www", "a4")]
    assert (a4.weight, a4.rule) == (0, "pool") and "standby" in a4.steps[1].detail
    r.turns("a2", False)
    a2 = check(r.rec.snapshot)[("www", "a2")]
    assert (a2.weight, a2.rule) == (0, "health") and "failed (L4CON" in a2.steps[2].detail
    assert (len(explain(r.rec.snapshot, "www", "a2")), explain(r.rec.snapshot, "www", "a2")[0]) == (
        1,
        a2,
    )


def test_mass_failure_guard_holds() -> None:
    r = slowstart.Rig()
    r.warm()
    for _ in range(2):
        for n in ("a1", "a2", "a3"):
            r.probe(n, False)
        r.turn(1.0)
    snap = r.rec.snapshot
    assert "www" in snap.mass_failure
    ex = check(snap)
    held = [e for e in ex.values() if e.rule == "mass-failure"]
    assert held and all("held at its weight in VPP" in e.steps[-2].detail for e in held)
    assert any(e.rule == "health" and e.steps[-2].rule == "mass-failure" for e in ex.values())


def test_flap_damping_suppresses() -> None:
    r = damping.Rig()
    r.probe("a1", True)
    r.probe("a2", True)
    r.turn()
    for _ in range(3):
        r.flap()
    ex = check(r.rec.snapshot)
    a1, a2 = ex[("www", "a1")], ex[("www", "a2")]
    assert (a1.weight, a1.rule) == (0, "damping") and "suppressed: penalty" in a1.steps[-2].detail
    assert a2.weight == 100


def test_vantage_guard_holds_drains() -> None:
    r = vantage.Rig()
    r.warm("gw")
    r.turns(["gw"], False)
    r.turns(["a1", "a2", "a3"], False)
    ex = check(r.rec.snapshot)
    a1 = ex[("www", "a1")]
    assert (a1.weight, a1.rule) == (100, "vantage")
    assert [s.rule for s in a1.steps[2:4]] == ["health", "vantage"]
    assert a1.steps[2].weight == 0 and a1.steps[3].weight == 100


def test_rule_of_every_reason_code() -> None:
    from maglev import diff

    codes = [getattr(diff, n) for n in dir(diff) if n.startswith("R_")]
    assert all(rule_of(c) != "unknown" for c in codes)
