"""Steady probing costs little past the worker: a turn says whether it changed anything.

Turn by turn on a manual clock over `MemoryLb` (the damping test's rig, rise 1 / fall 1): a turn
of probe results that move no backend is quiet (the thread then lets results settle before it
wakes again); a transition, a command or an empty turn is not. The snapshot of a quiet turn
still shows the latest probe, and keeps the frontend views of the turn before (same objects)
until a pass changes them.
"""

from __future__ import annotations

from maglev.reconcile import events
from tests.reconcile.test_damping_reconciler import Rig


def test_only_turns_of_results_that_change_nothing_are_quiet() -> None:
    r = Rig()
    r.probe("a1", True)
    r.probe("a2", True)
    assert r.rec.turn() is False  # both come up: transitions, the first programming
    assert r.weights() == {"10.0.0.1": 100, "10.0.0.2": 100}
    r.probe("a1", True)
    r.clock.advance(1.0)
    assert r.rec.turn() is True  # up stays up
    r.probe("a1", False)
    r.clock.advance(1.0)
    assert r.rec.turn() is False  # fall 1: down, a pass
    assert r.weights()["10.0.0.1"] == 0
    r.probe("a1", False)
    r.clock.advance(1.0)
    assert r.rec.turn() is True  # down stays down
    assert r.rec.turn() is False  # nothing came: a timer's turn
    r.inbox.put(events.ReadLbState())
    r.probe("a2", True)
    assert r.rec.turn() is False  # a command came with the result


def test_a_quiet_turns_snapshot_shows_the_probe_and_keeps_the_views() -> None:
    r = Rig()
    r.probe("a1", True)
    r.probe("a2", True)
    r.turn()
    before = r.rec.snapshot
    r.probe("a2", False)
    r.clock.advance(0.5)
    r.probe("a1", True)
    r.clock.advance(0.5)
    r.turn()
    after = r.rec.snapshot
    assert after is not before
    probe = after.backends["a1"].last_probe
    assert probe is not None and probe.at == 0.5  # the latest result, not the one before
    assert after.frontends is not before.frontends  # a2 went down: a pass, new views
    r.probe("a1", True)
    r.clock.advance(1.0)
    r.turn()
    quiet = r.rec.snapshot
    assert quiet.frontends is after.frontends and quiet.mass_failure is after.mass_failure
    probe = quiet.backends["a1"].last_probe
    assert probe is not None and probe.at == 1.0
    assert quiet.frontends["www"].name == "www"


def test_results_that_move_nothing_rebuild_no_status_and_copy_none() -> None:
    """A status is rebuilt when its machine moves (state, counter, history); a repeat result
    only lands in the probe log, which the status reads through, so the snapshot after a quiet
    turn shares the statuses of the one before and still shows the newest probe."""
    r = Rig()
    r.probe("a1", True)
    r.probe("a2", True)
    r.turn()
    up = r.rec.snapshot
    st = up.backends["a1"]
    r.clock.advance(0.5)
    r.probe("a1", True)
    r.turn()
    quiet = r.rec.snapshot
    assert quiet is not up and quiet.backends is up.backends
    assert quiet.backends["a1"] is st
    probe = st.last_probe
    assert probe is not None and probe.at == 0.5
    assert [p.at for p in st.recent] == [0.0, 0.5]
    r.clock.advance(0.5)
    r.probe("a1", False)  # fall 1: down, a transition
    r.turn()
    moved = r.rec.snapshot
    assert moved.backends is not quiet.backends
    assert moved.backends["a1"] is not st and moved.backends["a1"].state.value == "down"
    assert moved.backends["a2"] is quiet.backends["a2"]  # untouched: the same status
