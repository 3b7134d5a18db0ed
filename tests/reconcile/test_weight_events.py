"""Each weight change a pass makes is an event naming the rule that made it (issue #13 rule 5).

Turn by turn on a manual clock over `MemoryLb` (the damping test's rig): a backend going down is
`health`, coming back is `pool`, and an unchanged weight is no event (flap damping holding a
passing backend at 0 changes no weight; its return at the reuse time is `pool` again).
"""

from __future__ import annotations

from typing import Any

from tests.reconcile.test_damping_reconciler import Rig


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
