"""The disruption budget in the reconciler, on a manual clock and an in-memory VPP: steps go
out only as `churn-interval` elapses; a reload, a drain and an override mid-sequence."""

from __future__ import annotations

import ipaddress
import logging
import queue
from typing import Any

import pytest

from maglev.clock import ManualClock
from maglev.config import load_text
from maglev.model import ProbeResult, ProbeTarget, Reason
from maglev.reconcile import events
from maglev.reconcile.explain import explain
from maglev.reconcile.reconciler import Reconciler
from maglev.table import churn, ip46
from tests.reconcile.test_reconciler import apply_config
from tests.reconcile.test_vantage_reconciler import BatchLb
from tests.rigs import Streams

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
    flow-table-length: 1024
    max-churn: 5%
    churn-interval: 30s
    pools:
      - {name: primary, backends: {a1: {weight: W1}, a2: {}, a3: {}, a4: {}}}
"""
WWW = (ipaddress.ip_network("192.0.2.80/32"), 6, 80)
LIMIT = 51  # 5% of 1024 buckets


def text(w1: int = 100) -> str:
    return TEXT.replace("W1", str(w1))


class Rig:
    def __init__(self, config: str | None = None) -> None:
        self.clock = ManualClock()
        self.inbox: queue.Queue[Any] = queue.Queue()
        self.lb = BatchLb()
        self.published: list[dict[str, Any]] = []
        self.rec = Reconciler(
            load_text(config or text()), self.inbox, self.lb, Streams(),
            publish=self.published.append, clock=self.clock,
        )  # fmt: skip
        for name in self.rec.config.backends:
            self.probe(name, True)
        self.turn()

    def probe(self, name: str, ok: bool) -> None:
        b = self.rec.config.backends[name]
        assert b.healthcheck is not None
        t = ProbeTarget(b.address, b.healthcheck)
        r = Reason.L4OK if ok else Reason.L4CON
        self.inbox.put(ProbeResult(t, ok, r, 0.001, "test", self.clock.monotonic()))

    def turn(self, advance: float = 0.0) -> None:
        self.clock.advance(advance)
        self.rec.turn()

    def reload(self, w1: int) -> None:
        self.inbox.put(apply_config(load_text(text(w1))))
        self.turn()

    def weights(self) -> dict[str, int]:
        return {str(a): w for a, w in self.lb.tables[WWW].weights.items()}

    def table(self) -> list[tuple[bytes, int]]:
        return [(ip46(a), w) for a, w in self.lb.tables[WWW].weights.items()]

    def settle(self) -> int:
        """Turn every interval until no budgeted change is in progress; the turns it took."""
        for n in range(1, 100):
            self.turn(30.0)
            if "www" not in self.rec.snapshot.budget:
                return n
        raise AssertionError("the sequence does not end")

    def steps(self) -> list[tuple[str, int, int]]:
        return [
            (e["event"], e["step"], e["steps"]) for e in self.published if e["type"] == "budget"
        ]


def test_a_reweight_is_stepped_as_the_interval_elapses(caplog: pytest.LogCaptureFixture) -> None:
    r = Rig()
    assert r.weights()["10.0.0.1"] == 100  # the first programming is never held
    assert r.steps() == []
    seen = [r.weights()]
    with caplog.at_level(logging.INFO, logger="maglev.reconcile.budget"):
        before = r.table()
        r.reload(10)
        assert churn(before, r.table(), 1024).moved <= LIMIT
        doc = r.rec.snapshot.budget["www"]
        assert doc["step"] == 1 and doc["progress"] == "1/8+"  # planned eight at a time
        assert doc["target"]["a1"] == 10 and 10 < doc["weights"]["a1"] < 100
        assert r.rec._next_deadline() == r.clock.monotonic() + 30.0  # wakes up for the step
        seen.append(r.weights())
        while "www" in r.rec.snapshot.budget:
            r.turn(29.9)
            assert r.weights() == seen[-1]  # not yet
            before = r.table()
            r.turn(0.1)
            assert churn(before, r.table(), 1024).moved <= LIMIT
            seen.append(r.weights())
            assert seen[-1] != seen[-2]
    assert r.weights()["10.0.0.1"] == 10  # exactly the target
    n = len(seen) - 1
    assert n > 8
    assert [a["10.0.0.1"] for a in seen] == sorted((a["10.0.0.1"] for a in seen), reverse=True)
    # Planned eight at a time: the count is known once the plan reaches the target.
    assert r.steps() == [("start", 1, None)] + [("step", k, None) for k in range(2, n)] + [
        ("done", n, n)
    ]
    assert "www: change held by max-churn 5%: step 1/8+, " in caplog.text
    assert "www: change held by max-churn 5%: step 9/16+, " in caplog.text
    assert "% of buckets" in caplog.text
    assert f"www: budgeted change done: step {n}/{n}" in caplog.text
    r.turn(60.0)
    assert r.weights()["10.0.0.1"] == 10


def test_explain_shows_the_budget_step() -> None:
    r = Rig()
    r.reload(10)
    (e,) = explain(r.rec.snapshot, "www", "a1")
    budget = [s for s in e.steps if s.rule == "budget"]
    doc = r.rec.snapshot.budget["www"]
    w = doc["weights"]["a1"]
    assert budget[0].detail == f"weight {w} of target 10, step 1/8+"
    assert e.rule == "budget" and e.weight == w and e.consistent


def test_a_reload_that_keeps_the_target_keeps_the_sequence() -> None:
    r = Rig()
    r.reload(10)
    r.turn(30.0)
    assert r.rec.snapshot.budget["www"]["step"] == 2
    mid = r.weights()
    r.reload(10)  # same target: the sequence goes on where it was
    assert r.weights() == mid
    assert r.rec.snapshot.budget["www"]["step"] == 2
    r.turn(30.0)
    assert r.rec.snapshot.budget["www"]["step"] == 3
    r.settle()
    assert r.weights()["10.0.0.1"] == 10


def test_a_reload_with_a_new_target_replans_from_where_vpp_is() -> None:
    r = Rig()
    r.reload(10)
    mid = r.weights()
    r.reload(60)  # a newer change: re-planned from VPP, at the old pace
    doc = r.rec.snapshot.budget["www"]
    assert (doc["step"], doc["target"]["a1"]) == (0, 60)
    assert r.weights() == mid  # the next step waits for the interval
    assert ("replanned", 0, None) in r.steps()
    r.turn(29.0)
    assert r.weights() == mid
    r.turn(1.0)
    assert r.rec.snapshot.budget["www"]["step"] == 1
    r.settle()
    assert r.weights()["10.0.0.1"] == 60


def test_a_drain_mid_sequence_goes_through_at_once() -> None:
    r = Rig()
    r.reload(10)
    assert r.rec.snapshot.budget["www"]["step"] == 1
    r.probe("a2", False)
    r.turn(1.0)
    r.probe("a2", False)
    r.turn(1.0)  # fall 2: a2 is down, well before the next step is due
    assert r.weights()["10.0.0.2"] == 0
    assert r.rec.snapshot.budget["www"]["target"]["a2"] == 0  # re-planned from there
    r.settle()
    assert r.weights() == {"10.0.0.1": 10, "10.0.0.2": 0, "10.0.0.3": 100, "10.0.0.4": 100}


def test_an_override_mid_sequence_replans() -> None:
    r = Rig()
    r.reload(10)
    mid = r.weights()["10.0.0.1"]
    r.inbox.put(events.WeightOverride("www", "primary", "a1", 100))
    r.turn()
    # Back toward 100 from where VPP is: a small move, within the budget, at once or stepped.
    assert r.weights()["10.0.0.1"] >= mid
    if "www" in r.rec.snapshot.budget:
        r.settle()
    assert r.weights()["10.0.0.1"] == 100
    assert "www" not in r.rec.snapshot.budget


def test_a_pause_goes_through_at_once_and_the_resume_is_stepped() -> None:
    r = Rig()
    r.inbox.put(events.BackendAction("a2", "pause"))
    r.turn()
    assert r.weights()["10.0.0.2"] == 0  # an operator's drain is never held
    assert "www" not in r.rec.snapshot.budget
    r.inbox.put(events.BackendAction("a2", "resume"))
    r.turn()
    r.probe("a2", True)  # resumed, it is probed again before it serves
    r.turn()
    assert 0 < r.weights()["10.0.0.2"] < 100  # a quarter of the table at once: held
    assert r.rec.snapshot.budget["www"]["target"]["a2"] == 100
    r.settle()
    assert r.weights()["10.0.0.2"] == 100


def test_an_indivisible_step_is_taken_alone_and_said(caplog: pytest.LogCaptureFixture) -> None:
    # Two backends of weight 1: the third joining at weight 1 takes about a third of the table;
    # no integer step is smaller, so it goes out alone, over the 5% budget, and says so.
    small = TEXT.replace(
        "a1: {weight: W1}, a2: {}, a3: {}, a4: {}",
        "a1: {weight: 1}, a2: {weight: 1}, a3: {weight: W3}",
    )
    assert "W3" in small
    r = Rig(small.replace("W3", "0"))
    with caplog.at_level(logging.WARNING, logger="maglev.reconcile.budget"):
        r.inbox.put(apply_config(load_text(small.replace("W3", "1"))))
        r.turn()
    assert "one weight unit on one backend is the smallest step there is" in caplog.text
    assert r.weights()["10.0.0.3"] == 1
    ev = [e for e in r.published if e["type"] == "budget"]
    assert ev and ev[-1]["indivisible"] and ev[-1]["event"] == "done"


def test_a_held_change_right_after_a_sequence_keeps_its_pace() -> None:
    r = Rig()
    r.reload(60)
    r.settle()  # the last step went out just now
    assert r.weights()["10.0.0.1"] == 60
    r.reload(100)  # over the budget again: its first step waits for the interval
    doc = r.rec.snapshot.budget["www"]
    assert (doc["step"], doc["target"]["a1"]) == (0, 100)
    assert r.weights()["10.0.0.1"] == 60
    r.turn(29.0)
    assert r.weights()["10.0.0.1"] == 60
    r.turn(1.0)
    assert 60 < r.weights()["10.0.0.1"] < 100
    r.settle()
    assert r.weights()["10.0.0.1"] == 100
    r.turn(60.0)
    r.reload(60)  # long after: step 1 at once
    assert r.rec.snapshot.budget["www"]["step"] == 1
