"""Slow start: the ramp arithmetic on a manual clock, and the reconciler's ramps over the
in-memory lb client (each turn driven by hand, so each assertion is about what it wrote)."""

from __future__ import annotations

import ipaddress
import logging
import queue
from typing import Any

import pytest

from maglev.clock import ManualClock
from maglev.config import load_text
from maglev.model import ProbeResult, ProbeTarget, Reason, SlowStart
from maglev.reconcile.reconciler import Reconciler
from maglev.reconcile.slowstart import permille, position, ramp_weight, step_time, step_weights
from maglev.vpp.ops import AddAs, SetWeight
from tests.reconcile.test_reconciler import apply_config
from tests.reconcile.test_vantage_reconciler import BatchLb
from tests.rigs import Streams

# --- the arithmetic ----------------------------------------------------------------------


def test_four_steps_are_quarters_ending_at_the_weight() -> None:
    r = SlowStart(30.0, 4)
    assert step_weights(100, r) == [25, 50, 75, 100]
    assert step_weights(7, r) == [1, 3, 5, 7]
    assert step_weights(1, r) == [1, 1, 1, 1]
    assert step_weights(0, r) == [0, 0, 0, 0]
    assert [permille(k, 3) for k in (1, 2, 3)] == [333, 666, 1000]
    assert step_weights(100, SlowStart(1.0, 3)) == [33, 66, 100]


@pytest.mark.parametrize("steps", [2, 3, 4, 7, 10, 100])
@pytest.mark.parametrize("weight", [1, 2, 3, 50, 99, 100, 255])
def test_steps_are_monotone_at_least_one_and_end_exactly(steps: int, weight: int) -> None:
    ws = step_weights(weight, SlowStart(60.0, steps))
    assert ws == sorted(ws) and min(ws) >= 1 and ws[-1] == weight and len(ws) == steps


def test_step_times_on_a_manual_clock() -> None:
    clock = ManualClock()
    start = clock.monotonic()
    r = SlowStart(30.0, 4)
    assert [step_time(start, r, k) for k in (1, 2, 3, 4)] == [
        start, start + 10.0, start + 20.0, start + 30.0,
    ]  # fmt: skip
    seen = []
    for _ in range(31):
        seen.append(position(start, r, clock.monotonic()))
        clock.advance(1.0)
    assert seen[0] == (1, start + 10.0)
    assert seen[9] == (1, start + 10.0) and seen[10] == (2, start + 20.0)
    assert seen[19] == (2, start + 20.0) and seen[20] == (3, start + 30.0)
    assert seen[29] == (3, start + 30.0) and seen[30] == (4, None)
    assert position(start, r, start - 5.0) == (1, start + 10.0)
    assert position(start, r, start + 1e9) == (4, None)


@pytest.mark.parametrize("duration", [630.6335818615531, 0.3, 1e-3, 86400.0])
@pytest.mark.parametrize("steps", [2, 3, 13, 14, 100])
def test_full_weight_exactly_at_start_plus_duration(duration: float, steps: int) -> None:
    r = SlowStart(duration, steps)
    assert position(5.0, r, 5.0 + duration) == (steps, None)
    assert step_time(5.0, r, steps) == 5.0 + duration


def test_position_agrees_with_step_time_at_awkward_floats() -> None:
    r = SlowStart(0.3, 7)
    for k in range(1, 8):
        t = step_time(1000.1, r, k)
        assert position(1000.1, r, t)[0] == k
        assert ramp_weight(100, permille(k, 7)) == step_weights(100, r)[k - 1]


# --- the reconciler ----------------------------------------------------------------------

TEXT = """
vpp:
  api-socket: /nonexistent/api.sock
  lb: {ip4-src-address: 198.51.100.1, startup-min-delay: 0s, startup-max-delay: 0s,
       counters-interval: 0s}
healthchecks:
  hc: {type: tcp, port: 80, rise: 2, fall: 2}
backends:
  a1: {address: 10.0.0.1, healthcheck: hc}
  a2: {address: 10.0.0.2, healthcheck: hc}
  a3: {address: 10.0.0.3, healthcheck: hc}
  a4: {address: 10.0.0.4, healthcheck: hc}
frontends:
  www:
    address: 192.0.2.80
    protocol: tcp
    port: 80
    encap: gre4
    slow-start: {duration: 30s, steps: 4}
    pools:
      - {name: primary, backends: {a1: {}, a2: {weight: 40}, a3: {}MORE}}
"""
WWW = (ipaddress.ip_network("192.0.2.80/32"), 6, 80)
API = (ipaddress.ip_network("192.0.2.81/32"), 6, 80)
API_FE = """
  api:
    address: 192.0.2.81
    protocol: tcp
    port: 80
    encap: gre4
    slow-start: {duration: 30s}
    pools:
      - {name: only, backends: {a1: {}}}
"""


class Rig:
    def __init__(self, lb: BatchLb | None = None, more: str = "") -> None:
        self.clock = ManualClock()
        self.inbox: queue.Queue[Any] = queue.Queue()
        self.lb = lb or BatchLb()
        self.published: list[dict[str, Any]] = []
        self.rec = Reconciler(
            load_text(TEXT.replace("MORE", more)), self.inbox, self.lb, Streams(),
            publish=self.published.append, clock=self.clock,
        )  # fmt: skip

    def probe(self, name: str, ok: bool) -> None:
        b = self.rec.config.backends[name]
        assert b.healthcheck is not None
        t = ProbeTarget(b.address, b.healthcheck)
        r = Reason.L4OK if ok else Reason.L4CON
        self.inbox.put(ProbeResult(t, ok, r, 0.001, "test", self.clock.monotonic()))

    def turns(self, name: str, ok: bool) -> None:
        for _ in range(2):  # rise and fall are 2
            self.probe(name, ok)
            self.turn(1.0)

    def turn(self, advance: float = 0.0) -> None:
        self.clock.advance(advance)
        self.rec.turn()

    def weights(self, vip: Any = WWW) -> dict[str, int]:
        return {str(a): w for a, w in self.lb.tables[vip].weights.items()}

    def ops(self, since: int) -> list[tuple[str, str, int]]:
        return [
            (type(op).__name__, str(op.address), op.weight)
            for batch in self.lb.batches[since:]
            for op in batch
            if isinstance(op, SetWeight | AddAs)
        ]

    def ramp_events(self) -> list[tuple[str, str, int]]:
        return [
            (e["event"], e["backend"], e["step"])
            for e in self.published
            if e["type"] == "slow_start"
        ]

    def warm(self, *names: str) -> None:
        for name in names or ("a1", "a2", "a3"):
            self.probe(name, True)
        self.turn()


def test_a_recovering_backend_ramps_through_its_steps(caplog: pytest.LogCaptureFixture) -> None:
    r = Rig()
    r.warm()
    assert r.weights() == {"10.0.0.1": 100, "10.0.0.2": 40, "10.0.0.3": 100}  # startup: no ramp
    assert r.ramp_events() == []
    r.turns("a2", False)
    assert r.weights()["10.0.0.2"] == 0
    start = len(r.lb.batches)
    with caplog.at_level(logging.INFO, logger="maglev.reconcile.slowstart"):
        r.turns("a2", True)
        t0 = r.clock.monotonic()
        assert r.weights()["10.0.0.2"] == 10
        assert r.rec._next_deadline() == t0 + 10.0  # it wakes up for the next step
        doc = r.rec.snapshot.slow_start[("www", "a2")]
        assert (doc["step"], doc["steps"], doc["weight"]) == (1, 4, 10)
        assert doc["until"] == pytest.approx(r.clock.wall() + 30.0)
        r.turn(9.9)
        assert r.weights()["10.0.0.2"] == 10  # not yet
        r.turn(0.1)
        assert r.weights()["10.0.0.2"] == 20
        r.turn(10.0)
        assert r.weights()["10.0.0.2"] == 30
        r.turn(10.0)
        assert r.weights()["10.0.0.2"] == 40
    assert r.ops(start) == [
        ("SetWeight", "10.0.0.2", 10),
        ("SetWeight", "10.0.0.2", 20),
        ("SetWeight", "10.0.0.2", 30),
        ("SetWeight", "10.0.0.2", 40),
    ]
    assert r.ramp_events() == [
        ("start", "a2", 1), ("step", "a2", 2), ("step", "a2", 3), ("done", "a2", 4),
    ]  # fmt: skip
    assert "slow start of backend a2 in frontend www: 4 steps over 30s" in caplog.text
    assert "slow start of backend a2 in frontend www done" in caplog.text
    assert r.rec.snapshot.slow_start == {} and r.rec.ramps.next_at() is None
    before = len(r.lb.batches)
    r.turn(100.0)
    assert r.ops(before) == []  # done: nothing more is written


def test_a_failure_mid_ramp_drops_it_and_a_recovery_ramps_again() -> None:
    r = Rig()
    r.warm()
    r.turns("a1", False)
    r.turns("a1", True)
    r.turn(10.0)
    assert r.weights()["10.0.0.1"] == 50
    start = len(r.lb.batches)
    r.turns("a1", False)
    assert r.weights()["10.0.0.1"] == 0
    assert r.rec.snapshot.slow_start == {}
    r.turns("a1", True)
    assert r.weights()["10.0.0.1"] == 25
    assert r.ops(start) == [("SetWeight", "10.0.0.1", 0), ("SetWeight", "10.0.0.1", 25)]
    assert [e for e in r.ramp_events() if e[0] != "step"] == [
        ("start", "a1", 1), ("interrupted", "a1", 2), ("start", "a1", 1),
    ]  # fmt: skip


def test_a_restart_with_the_backend_already_in_vpp_writes_nothing() -> None:
    first = Rig()
    first.warm()
    first.turns("a2", False)
    first.turns("a2", True)  # ramping when maglevd stops...
    first.turn(30.0)
    assert first.weights()["10.0.0.2"] == 40
    lb = first.lb
    lb.disconnect()
    applied = len(lb.applied)
    second = Rig(lb)  # ...a new maglevd against the same VPP, backends up
    second.warm()
    second.turn(60.0)  # and a periodic full sync
    assert len(lb.applied) == applied
    assert second.ramp_events() == []


def test_a_reload_ramps_added_members_not_a_new_frontend() -> None:
    r = Rig()
    r.warm()
    start = len(r.lb.batches)
    bigger = load_text(TEXT.replace("MORE", ", a4: {}") + API_FE)
    r.inbox.put(apply_config(bigger))
    r.turn()
    assert r.weights(API) == {"10.0.0.1": 100}  # a frontend's first programming: no ramp
    assert "10.0.0.4" in r.weights() and r.weights()["10.0.0.4"] == 0  # a4 not up yet
    r.turns("a4", True)
    assert r.weights()["10.0.0.4"] == 25
    r.turn(30.0)
    assert r.weights()["10.0.0.4"] == 100
    assert [o for o in r.ops(start) if o[1] == "10.0.0.4"] == [
        ("AddAs", "10.0.0.4", 0),
        ("SetWeight", "10.0.0.4", 25),
        ("SetWeight", "10.0.0.4", 100),
    ]


def test_off_unless_configured() -> None:
    r = Rig()
    plain = load_text(
        TEXT.replace("MORE", "").replace("    slow-start: {duration: 30s, steps: 4}\n", "")
    )
    r.inbox.put(apply_config(plain))
    r.warm()
    r.turns("a1", False)
    r.turns("a1", True)
    assert r.weights()["10.0.0.1"] == 100
    assert r.ramp_events() == []
