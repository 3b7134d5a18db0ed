"""The startup gate with injected time: min delay, release when known, max delay, reloads."""

from __future__ import annotations

from maglev.config import load_text
from maglev.model import BackendState
from maglev.reconcile.startup import StartupGate

CFG = """
vpp: {{api-socket: embedded, lb: {{ip4-src-address: 198.51.100.1, startup-min-delay: 5s, startup-max-delay: 30s}}}}
healthchecks: {{hc: {{type: tcp, port: 80}}}}
backends: {{a: {{address: 10.0.0.1, healthcheck: hc}}, b: {{address: 10.0.0.2, healthcheck: hc}}}}
frontends:
  one: {{address: 192.0.2.1, protocol: tcp, port: 80, encap: gre4, pools: [{{name: p, backends: {{a: {{}}}}}}]}}
{extra}
"""
TWO = "  two: {address: 192.0.2.2, protocol: tcp, port: 80, encap: gre4, pools: [{name: p, backends: {b: {}}}]}"


def test_gate_sequence() -> None:
    cfg = load_text(CFG.format(extra=TWO))
    states = {"a": BackendState.UNKNOWN, "b": BackendState.UNKNOWN}
    g = StartupGate(100.0)
    states["a"] = BackendState.UP
    assert g.release(cfg, states.__getitem__, 104.9) == []  # before min delay: nothing
    assert g.release(cfg, states.__getitem__, 105.0) == ["one"]  # a known, b not
    assert not g.all_released
    assert g.release(cfg, states.__getitem__, 129.0) == []
    assert g.release(cfg, states.__getitem__, 130.0) == ["two"]  # max delay
    assert g.all_released and g.deadlines(cfg) == []


def test_reload_holds_new_frontend_until_known_or_deadline() -> None:
    one = load_text(CFG.format(extra=""))
    two = load_text(CFG.format(extra=TWO))
    states = {"a": BackendState.UP, "b": BackendState.UNKNOWN}
    g = StartupGate(0.0)
    assert g.release(one, states.__getitem__, 10.0) == ["one"]
    g.reloaded(two, 100.0)
    assert not g.all_released and g.released == {"one"}
    assert 130.0 in g.deadlines(two)
    assert g.release(two, states.__getitem__, 110.0) == []
    states["b"] = BackendState.DOWN  # known (down) is enough
    assert g.release(two, states.__getitem__, 111.0) == ["two"]
    g.reloaded(one, 200.0)  # removed frontends leave the gate
    assert g.released == {"one"} and g.all_released


def test_the_snapshots_copy_of_the_released_set_is_made_again_only_after_a_change() -> None:
    one = load_text(CFG.format(extra=""))
    two = load_text(CFG.format(extra=TWO))
    states = {"a": BackendState.UP, "b": BackendState.UP}
    g = StartupGate(0.0)
    assert g.frozen() == frozenset()
    assert g.release(two, states.__getitem__, 10.0) == ["one", "two"]
    seen = g.frozen()
    assert seen == {"one", "two"} and g.frozen() is seen  # unchanged: the same copy
    assert g.release(two, states.__getitem__, 11.0) == [] and g.frozen() is seen
    g.reloaded(one, 20.0)  # "two" leaves
    assert g.frozen() == {"one"} and seen == {"one", "two"}  # the old copy stays as it was
