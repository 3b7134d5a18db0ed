"""The vantage guard's state machine on a manual clock: trips, holds, hysteresis, releases.

Pure: real health machines (`BackendHealth`) fed probe results by hand, their transitions noted
by the guard as the reconciler notes them, and the guard evaluated as the reconciler does once
per turn. The guard inside the reconciler is tested in `test_vantage_reconciler`.
"""

from __future__ import annotations

import logging

import pytest

from maglev.clock import ManualClock
from maglev.config import load_text
from maglev.health.state import Phase
from maglev.model import BackendState, Config, HealthCheck, ProbeResult, ProbeTarget, Reason
from maglev.reconcile.backends import carry_health
from maglev.reconcile.vantage import GuardChange, GuardState, VantageGuard

UP, DOWN = BackendState.UP, BackendState.DOWN

BACKENDS = "\n".join(f"  b{i}: {{address: 10.0.0.{i + 1}, healthcheck: hc}}" for i in range(10))

TEXT = f"""
healthchecks:
  hc: {{type: tcp, port: 80, rise: 2, fall: 2}}
  ping: {{type: icmp, rise: 2, fall: 2}}
backends:
{BACKENDS}
health:
  vantage: {{VANTAGE}}
"""


def config(vantage: str) -> Config:
    return load_text(TEXT.replace("{VANTAGE}", vantage))


CANARY = "{canaries: {gw: {address: 10.0.0.254, healthcheck: ping}}, window: 10s}"
FRACTION = "{max-down-fraction: 30%, window: 10s}"


class Rig:
    def __init__(self, vantage: str = CANARY) -> None:
        self.clock = ManualClock()
        self.config = config(vantage)
        self.health, _ = carry_health({}, self.config, self.now)
        self.guard = VantageGuard(self.clock)
        assert self.guard.configure(self.config, self.health, self.now) is None
        self.engine: dict[str, BackendState] = {}  # what the reconciler would give the engine
        for name in self.health:
            self.probe(name, True)
        for c in self.config.health.vantage.canaries if self.config.health.vantage else ():
            self.canary(c.name, True)
        assert self.step() is None

    @property
    def now(self) -> float:
        return self.clock.monotonic()

    def probe(self, name: str, ok: bool, times: int = 1) -> None:
        h = self.health[name]
        assert h.check is not None
        target = ProbeTarget(h.address, h.check.name)
        for _ in range(times):
            r = ProbeResult(target, ok, Reason.L4OK if ok else Reason.L4CON, 0.001, "x", self.now)
            t = h.apply(r, self.now)
            if t is not None:
                self.engine[name] = self.guard.note(t)

    def canary(self, name: str, ok: bool, times: int = 1) -> None:
        h = self.guard.canaries[name]
        assert h.check is not None
        target = ProbeTarget(h.address, h.check.name)
        why = "reply" if ok else "no reply"
        reason = Reason.ICMPOK if ok else Reason.ICMPTOUT
        for _ in range(times):
            self.guard.canary_result(
                ProbeResult(target, ok, reason, 0.001, why, self.now), self.now
            )

    def step(self, advance: float = 0.0) -> GuardChange | None:
        self.clock.advance(advance)
        return self.guard.evaluate(self.now, self.health)


def test_off_unless_configured() -> None:
    cfg = load_text(TEXT.replace("health:\n  vantage: {VANTAGE}\n", ""))
    health, _ = carry_health({}, cfg, 0.0)
    g = VantageGuard(ManualClock())
    assert g.configure(cfg, health, 0.0) is None
    assert not g.on and g.status().state is GuardState.OFF and g.canary_targets == {}
    assert g.evaluate(0.0, health) is None and g.release("me", 0.0) is None
    states = {"b0": DOWN}
    assert g.view(states) is states and g.present("b0", DOWN) is DOWN


def test_trips_when_a_canary_is_down(caplog: pytest.LogCaptureFixture) -> None:
    r = Rig()
    assert r.guard.status().state is GuardState.ARMED
    r.canary("gw", False)  # fall 2: one failure is not down yet
    assert r.step() is None
    r.canary("gw", False)
    with caplog.at_level(logging.ERROR):
        change = r.step(1.0)
    assert change is not None and change.state is GuardState.HOLDING and change.backends == ()
    assert change.why == "canary gw (10.0.0.254, healthcheck ping) is down: no reply"
    assert "vantage guard tripped: canary gw" in caplog.text
    assert change.event() == {
        "type": "vantage", "state": "holding", "why": change.why, "held_backends": 0,
    }  # fmt: skip
    # Backends going down now are recorded, but the engine keeps seeing them up.
    r.probe("b0", False, 2)
    r.probe("b1", False, 2)
    assert r.health["b0"].state is DOWN and r.engine["b0"] is UP and r.engine["b1"] is UP
    assert r.guard.held == {"b0", "b1"} and r.guard.present("b0", DOWN) is UP
    st = r.guard.status()
    assert (st.state, st.held, st.trips) == (GuardState.HOLDING, frozenset({"b0", "b1"}), 1)
    assert st.since == r.clock.wall() and st.canaries == (("gw", DOWN),)
    assert dict(r.guard.view({"b0": DOWN, "b2": UP, "b9": DOWN})) == {
        "b0": UP, "b2": UP, "b9": DOWN,
    }  # fmt: skip
    # Going up is applied at once (and is no longer held).
    r.probe("b1", True, 2)
    assert r.engine["b1"] is UP and r.guard.held == {"b0"}
    assert r.step() is None  # the canary is still down


def test_trip_rewinds_the_drains_within_the_window_only() -> None:
    r = Rig()
    r.probe("b0", False, 2)  # at 1000: will be outside the window
    r.step(15.0)
    r.probe("b1", False, 2)  # at 1015
    r.probe("b2", False, 2)
    r.probe("b2", True, 2)  # up again: nothing to hold
    assert r.engine == {n: UP for n in r.health} | {"b0": DOWN, "b1": DOWN}
    r.canary("gw", False, 2)
    change = r.step(9.0)  # 1024: b1 went down 9 s ago, b0 24 s ago
    assert change is not None and change.backends == ("b1",)
    assert r.guard.held == {"b1"} and r.guard.present("b0", DOWN) is DOWN


def test_fraction_trips_within_the_window_but_not_outside_it() -> None:
    r = Rig(FRACTION)  # 10 backends: more than 3 going down within 10 s
    for i in range(4):  # one every 4 s: never more than 3 within 10 s
        r.probe(f"b{i}", False, 2)
        assert r.step(4.0 if i < 3 else 0.0) is None
    assert r.guard.status().state is GuardState.ARMED
    r.probe("b4", False, 2)  # b1 leaves the window: b2, b3 and b4 within it, 3, not more
    assert r.step(2.0) is None
    r.probe("b5", False, 2)
    change = r.step()
    assert change is not None and change.state is GuardState.HOLDING
    assert change.why == "4 of 10 backends went down within 10s (more than max-down-fraction 30%)"
    # Those four are rewound; b0 and b1 (outside the window) stay drained.
    assert change.backends == ("b2", "b3", "b4", "b5")


def test_paused_backends_do_not_count() -> None:
    r = Rig("{max-down-fraction: 50%}")
    for name in ("b5", "b6", "b7", "b8"):
        t = r.health[name].pause(r.now)
        assert t is not None
        r.guard.note(t)
    r.probe("b0", False, 2)
    r.probe("b1", False, 2)
    r.probe("b2", False, 2)  # 3 of the 6 that can go down: not more than half
    assert r.step() is None
    r.probe("b3", False, 2)
    change = r.step()
    assert change is not None and change.why.startswith("4 of 6 backends")


def test_release_needs_the_held_fraction_under_half_of_the_threshold() -> None:
    r = Rig(FRACTION)
    for i in range(4):
        r.probe(f"b{i}", False, 2)
    assert r.step() is not None
    # 10 backends at 30%: released once at most 1.5 of them (so 1) are still held.
    r.probe("b0", True, 2)
    r.probe("b1", True, 2)
    assert r.step(30.0) is None  # two still held, long after the window: still holding
    assert r.guard.held == {"b2", "b3"}
    r.probe("b2", True, 1)  # rise 2: not up yet
    assert r.step() is None
    r.probe("b2", True, 1)
    change = r.step()
    assert change is not None and change.state is GuardState.ARMED
    assert change.backends == ("b3",)  # the one still down: its drain applies now
    assert change.why == "released as the vantage recovered (1 of 10 backends still down)"
    assert change.event()["applied_drains"] == 1
    assert r.guard.held == set() and r.guard.present("b3", DOWN) is DOWN
    # The drains counted before the release are forgotten: three fresh ones do not trip it.
    for i in (4, 5, 6):
        r.probe(f"b{i}", False, 2)
    assert r.step() is None and r.guard.status().state is GuardState.ARMED


def test_canary_release_waits_for_its_rise() -> None:
    r = Rig()
    r.canary("gw", False, 2)
    assert r.step() is not None
    r.probe("b0", False, 2)
    r.canary("gw", True)  # rise 2
    assert r.step() is None and r.guard.status().state is GuardState.HOLDING
    r.canary("gw", True)
    change = r.step()
    assert change is not None and change.state is GuardState.ARMED and change.backends == ("b0",)


def test_manual_release_then_trip_again(caplog: pytest.LogCaptureFixture) -> None:
    r = Rig()
    assert r.guard.release("operator (test)", r.now) is None  # not holding: nothing to do
    r.canary("gw", False, 2)
    assert r.step() is not None
    r.probe("b0", False, 2)
    with caplog.at_level(logging.INFO):
        change = r.guard.release("operator (uid 0 gid 0 pid 1)", r.now)
    assert change is not None and change.backends == ("b0",)
    assert change.why == "released by operator (uid 0 gid 0 pid 1)"
    assert "vantage guard released by operator (uid 0 gid 0 pid 1): applying the held drains" in (
        caplog.text
    )
    st = r.guard.status()
    assert (st.state, st.why, st.held) == (GuardState.ARMED, change.why, frozenset())
    # The canary is still down: that is what the operator overrode, so no trip on it...
    r.probe("b1", False, 2)
    assert r.step(1.0) is None and r.engine["b1"] is DOWN
    # ... until it has been up and goes down again.
    r.canary("gw", True, 2)
    assert r.step() is None
    r.canary("gw", False, 2)
    change = r.step(1.0)
    assert change is not None and change.state is GuardState.HOLDING
    assert change.backends == ("b1",)  # down 2 s ago: within the window
    assert r.guard.status().trips == 2


def test_reload_keeps_the_hold_and_removing_the_guard_releases_it() -> None:
    r = Rig()
    r.canary("gw", False, 2)
    assert r.step() is not None
    r.probe("b0", False, 2)
    # A reload that keeps the canary keeps its health (still down) and the held drains.
    again = config(CANARY.replace("window: 10s", "window: 20s"))
    health, _ = carry_health(r.health, again, r.now)
    assert r.guard.configure(again, health, r.now) is None
    assert r.guard.canaries["gw"].state is DOWN and r.guard.held == {"b0"}
    assert r.step() is None and r.guard.status().state is GuardState.HOLDING
    # A reload without health.vantage releases it: the held drains apply.
    off = load_text(TEXT.replace("health:\n  vantage: {VANTAGE}\n", ""))
    health, _ = carry_health(health, off, r.now)
    change = r.guard.configure(off, health, r.now)
    assert change is not None and change.backends == ("b0",)
    assert change.why == "released by a reload (health.vantage removed)"
    assert not r.guard.on and r.guard.status().state is GuardState.OFF


def test_canary_probe_streams_join_the_backends() -> None:
    r = Rig()
    targets: dict[ProbeTarget, HealthCheck] = {}
    phases: dict[ProbeTarget, Phase] = {}
    r.guard.add_streams(targets, phases)
    (target,) = targets
    assert (str(target.address), target.healthcheck) == ("10.0.0.254", "ping")
    assert r.guard.canary_targets == {target: ("gw",)}
    assert [p.value for p in r.guard.canary_phases(target)] == ["up"]
