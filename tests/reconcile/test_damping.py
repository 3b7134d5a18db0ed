"""Flap damping's arithmetic and its per-backend state, on a manual clock.

Defaults throughout unless a case says otherwise: penalty 1000, half-life 30s, suppress 2000,
reuse 750, max-suppress 10m.
"""

from __future__ import annotations

import math

import pytest

from maglev.clock import ManualClock
from maglev.config import load_text
from maglev.health.state import Transition
from maglev.model import BackendState, Config, FlapDamping
from maglev.reconcile.damping import Damped, Damping, decayed, flap, reuse_at, settle

UP, DOWN, UNKNOWN = BackendState.UP, BackendState.DOWN, BackendState.UNKNOWN
S = FlapDamping()


def test_the_penalty_halves_every_half_life() -> None:
    d = flap(None, S, 100.0)
    assert d == Damped(1000.0, 100.0, None)
    assert decayed(d, S, 100.0) == 1000.0
    assert decayed(d, S, 130.0) == pytest.approx(500.0)
    assert decayed(d, S, 160.0) == pytest.approx(250.0)
    assert decayed(d, S, 115.0) == pytest.approx(1000.0 / math.sqrt(2))
    assert decayed(d, S, 90.0) == 1000.0  # never grows back


def test_suppressed_on_the_flap_that_takes_it_above_suppress() -> None:
    d = flap(None, S, 0.0)
    d = flap(d, S, 1.0)  # 1000 * 2^(-1/30) + 1000 = 1977.2: not yet
    assert d.since is None and d.value == pytest.approx(1000 * 2 ** (-1 / 30) + 1000)
    d = flap(d, S, 2.0)
    assert d.since == 2.0 and d.value == pytest.approx(1977.2 * 2 ** (-1 / 30) + 1000, abs=0.1)
    assert flap(d, S, 3.0).since == 2.0  # a suppression keeps its start


def test_reuse_time_is_when_the_penalty_falls_below_reuse() -> None:
    d = Damped(3000.0, 10.0, 10.0)  # 3000 -> 750 is two half-lives
    assert reuse_at(d, S) == pytest.approx(70.0)
    assert settle(d, S, 69.9).since == 10.0
    back = settle(d, S, 70.0)
    assert back.since is None and back.value == pytest.approx(750.0)
    assert reuse_at(back, S) is None


def test_max_suppress_caps_one_suppression() -> None:
    s = FlapDamping(max_suppress=60.0)
    d = Damped(750.0 * 2**10, 0.0, 0.0)  # ten half-lives (300s) to reuse
    assert reuse_at(d, s) == 60.0
    back = settle(d, s, 60.0)
    assert back.since is None and back.value == pytest.approx(750.0 * 2**8)
    assert flap(back, s, 61.0).since == 61.0  # still above suppress: one flap suppresses again


def down(name: str, at: float) -> Transition:
    return Transition(name, at, UP, DOWN, None, "")


CONFIG = """
vpp: {{api-socket: /nonexistent, lb: {{ip4-src-address: 198.51.100.1}}}}
healthchecks:
  hc: {{type: tcp, port: 80{damping}}}
  other: {{type: tcp, port: 81, flap-damping: {{}}}}
backends:
  a: {{address: 10.0.0.1, healthcheck: {check}}}
  b: {{address: 10.0.0.2, healthcheck: hc}}
frontends:
  www: {{address: 192.0.2.1, protocol: tcp, port: 80, encap: gre4,
         pools: [{{name: p, backends: {{a: {{}}, b: {{}}}}}}]}}
"""


def cfg(damping: str = ", flap-damping: {}", check: str = "hc") -> Config:
    return load_text(CONFIG.format(damping=damping, check=check))


def test_damping_suppresses_after_three_quick_flaps_and_wakes_up_to_reuse() -> None:
    clock = ManualClock(0.0)
    dmp = Damping()
    assert dmp.configure(cfg(), clock.now) == []
    changes = []
    for _ in range(3):
        clock.advance(1.0)
        changes.append(dmp.note(down("a", clock.now)))
        assert dmp.note(Transition("a", clock.now, DOWN, UP, None, "")) is None  # not a flap
    assert changes[:2] == [None, None]
    c = changes[2]
    assert c is not None and c.suppressed and c.backend == "a"
    assert dmp.suppressed == {"a"}
    # Penalty at the third flap: 1000 + 1000 * 2^(-1/30) + 1000 * 2^(-2/30).
    p = 1000 * (1 + 2 ** (-1 / 30) + 2 ** (-2 / 30))
    assert c.penalty == pytest.approx(p)
    due = 3.0 + 30 * math.log2(p / 750)
    assert c.until == pytest.approx(due) and dmp.deadline() == pytest.approx(due)
    assert dmp.expire(due - 0.01) == []
    assert dmp.status(clock.now, 5000.0)["a"].suppressed
    back = dmp.expire(due)
    assert [(x.backend, x.suppressed) for x in back] == [("a", False)]
    assert back[0].penalty == pytest.approx(750.0)
    assert dmp.suppressed == set() and dmp.deadline() is None
    st = dmp.status(due, 5000.0)["a"]
    assert (st.suppressed, st.until) == (False, None) and st.penalty == pytest.approx(750.0)
    assert dmp.expire(due + 30 * (math.log2(750) + 1), force=True) == []
    assert "a" not in dmp.entries  # decayed below 1: forgotten


def test_unknown_to_down_and_undamped_checks_are_not_flaps() -> None:
    dmp = Damping()
    dmp.configure(cfg(damping=""), 0.0)
    for i in range(5):
        assert dmp.note(down("a", float(i))) is None
    assert dmp.entries == {}
    dmp.configure(cfg(), 10.0)
    assert dmp.note(Transition("a", 11.0, UNKNOWN, DOWN, None, "")) is None
    assert dmp.entries == {}


def test_a_reload_keeps_the_penalty_of_backends_keeping_their_healthcheck() -> None:
    dmp = Damping()
    dmp.configure(cfg(), 0.0)
    for t in (1.0, 2.0, 3.0):
        dmp.note(down("a", t))
        dmp.note(down("b", t))
    assert dmp.suppressed == {"a", "b"}
    before = dmp.entries["b"]
    # a moves to another healthcheck (its penalty and suppression go: it returns); b keeps.
    changes = dmp.configure(cfg(check="other"), 4.0)
    assert [(c.backend, c.suppressed) for c in changes] == [("a", False)]
    assert dmp.entries == {"b": before} and dmp.suppressed == {"b"}
    # Damping removed from b's healthcheck: b returns too.
    changes = dmp.configure(cfg(damping="", check="other"), 5.0)
    assert [(c.backend, c.suppressed) for c in changes] == [("b", False)]
    assert dmp.entries == {} and dmp.suppressed == set()


def test_a_reload_with_a_lower_suppress_level_ends_no_suppression_early() -> None:
    dmp = Damping()
    dmp.configure(cfg(), 0.0)
    for t in (1.0, 2.0, 3.0):
        dmp.note(down("a", t))
    # A shorter half-life: the reuse time comes sooner, and a forced pass finds it passed.
    changes = dmp.configure(cfg(damping=", flap-damping: {half-life: 1s, max-suppress: 1s}"), 9.0)
    assert [(c.backend, c.suppressed) for c in changes] == [("a", False)]
