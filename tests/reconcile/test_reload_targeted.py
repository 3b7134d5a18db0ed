"""A reload does work in proportion to what it changes: a targeted pass for the frontends it
touches (added, changed, or with a changed backend or healthcheck) and the VIPs it removes, not a
full sync; a change to the `vpp` section still gets one. Against the emulator, turn by turn."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from maglev.reconcile.reconciler import Reconciler
from maglev.vppsim import Emulator
from tests.reconcile.test_reconciler import BASE, Harness, apply_config, cfg, warm

pytestmark = pytest.mark.integration


@pytest.fixture
def make(emu: Emulator, files: list[str]) -> Iterator[Callable[[], Harness]]:
    made: list[Harness] = []

    def f() -> Harness:
        h = Harness(emu, files, cfg(emu))
        made.append(h)
        return h

    yield f
    for h in made:
        h.close()


def reload(h: Harness, text: str) -> set[str]:
    """Apply `text` (a BASE variant); the frontends the reload's pass planned."""
    planned: list[set[str]] = []
    original = Reconciler.plan_for

    def spy(self: Reconciler, names: set[str], full: bool, now: float | None = None):  # type: ignore[no-untyped-def]
        planned.append(set(names) | ({"<full>"} if full else set()))
        return original(self, names, full, now)

    msg = apply_config(cfg(h.emu, text=text))
    h.inbox.put(msg)
    Reconciler.plan_for = spy  # type: ignore[method-assign]
    try:
        h.turn()
    finally:
        Reconciler.plan_for = original  # type: ignore[method-assign]
    assert msg.reply.result(1).ok
    return set().union(*planned) if planned else set()


def test_changed_frontend_only(make: Callable[[], Harness]) -> None:
    h = make()
    warm(h)
    syncs, writes = h.rec.tally.full_syncs, h.emu.write_count
    planned = reload(h, BASE.replace("{{s1: {{weight: 10}}}}", "{{s1: {{weight: 20}}}}"))
    assert planned == {"static"}  # no full sync, www not planned
    assert h.rec.tally.full_syncs == syncs
    assert h.emu.write_count == writes + 1
    assert h.weights("192.0.2.81/32") == {"10.0.0.4": 20}
    assert h.weights() == {"10.0.0.1": 100, "10.0.0.2": 50, "10.0.0.3": 0}


def test_backend_and_healthcheck_changes_reach_their_frontends(make: Callable[[], Harness]) -> None:
    h = make()
    warm(h)
    syncs = h.rec.tally.full_syncs
    # A backend's address: the frontend using it (only www) gets the pass.
    moved = BASE.replace("a2: {{address: 10.0.0.2,", "a2: {{address: 10.0.0.9,")
    assert reload(h, moved) == {"www"}
    assert set(h.weights()) == {"10.0.0.1", "10.0.0.9", "10.0.0.3"}
    # The healthcheck's definition: every frontend with a backend it checks (www again).
    slower = moved.replace("rise: 2, fall: 2", "rise: 3, fall: 2")
    assert reload(h, slower) == {"www"}
    assert h.rec.tally.full_syncs == syncs


def test_added_and_removed_frontends(make: Callable[[], Harness]) -> None:
    h = make()
    warm(h)
    syncs = h.rec.tally.full_syncs
    without = BASE[: BASE.index("  static:")]
    assert reload(h, without) == set()  # nothing to plan but the removed VIP, deleted
    assert list(h.vpp()) == [("192.0.2.80/32", 6, 80)]
    assert not h.rec.removed_vips and not h.rec.removals_due
    # Back again: its backend needs no probe, so the startup gate releases it at once and
    # the same turn's pass programs it.
    assert reload(h, BASE) == {"static"}
    assert h.weights("192.0.2.81/32") == {"10.0.0.4": 10}
    assert h.rec.tally.full_syncs == syncs
    assert h.rec.snapshot.frontends["static"].state.value == "up"


def test_vpp_settings_change_gets_a_full_sync(make: Callable[[], Harness]) -> None:
    h = make()
    warm(h)
    syncs = h.rec.tally.full_syncs
    planned = reload(h, BASE.replace("sync-interval: 30s", "sync-interval: 20s"))
    assert "<full>" in planned and planned >= {"www", "static"}
    assert h.rec.tally.full_syncs == syncs + 1


def test_new_frontend_held_then_released_by_a_pass(make: Callable[[], Harness]) -> None:
    h = make()
    warm(h)
    syncs = h.rec.tally.full_syncs
    text = BASE.replace(
        "  s1: {{address: 10.0.0.4}}\n",
        "  s1: {{address: 10.0.0.4}}\n  c1: {{address: 10.0.0.5, healthcheck: hc}}\n",
    ) + (
        "  extra:\n    address: 192.0.2.82\n    protocol: tcp\n    port: 443\n    encap: gre4\n"
        "    pools:\n      - {{name: only, backends: {{c1: {{}}}}}}\n"
    )
    assert reload(h, text) == set()  # c1 not probed yet: the startup gate holds it
    assert ("192.0.2.82/32", 6, 443) not in h.vpp()
    h.probe("c1", True)
    h.turn()
    assert ("192.0.2.82/32", 6, 443) in h.vpp()
    assert h.rec.tally.full_syncs == syncs  # released into a pass, not a full sync
