"""Convergence through the reconciler, on a manual clock and an in-memory VPP whose replies
take a known time: a failing primary backend is measured through every stage; a backup-pool
backend whose weight stays 0 is counted as unwritten; discovery at start is not measured."""

from __future__ import annotations

import queue
from collections.abc import Sequence
from typing import Any

from maglev.clock import ManualClock
from maglev.config import load_text
from maglev.errors import VppError
from maglev.model import ProbeResult, ProbeTarget, Reason
from maglev.reconcile.reconciler import Reconciler
from maglev.reconcile.snapshot import ConvergenceStats, Histogram
from maglev.vpp.client import Applied
from maglev.vpp.lb import Actual
from maglev.vpp.memory import MemoryLb
from maglev.vpp.ops import Op
from tests.rigs import Streams

TEXT = """
vpp:
  api-socket: /nonexistent/api.sock
  lb: {ip4-src-address: 198.51.100.1, startup-min-delay: 0s, startup-max-delay: 0s,
       counters-interval: 0s}
healthchecks:
  hc: {type: tcp, port: 80, interval: 1s, rise: 2, fall: 3}
backends:
  a1: {address: 10.0.0.1, healthcheck: hc}
  a2: {address: 10.0.0.2, healthcheck: hc}
  b1: {address: 10.0.0.3, healthcheck: hc}
frontends:
  www:
    address: 192.0.2.80
    protocol: tcp
    port: 80
    encap: gre4
    pools:
      - {name: primary, backends: {a1: {weight: 100}, a2: {weight: 100}}}
      - {name: backup, backends: {b1: {}}}
"""
REPLY = 0.004  # how long "VPP" takes to answer a batch


class SlowLb(MemoryLb):
    """Answers each batch REPLY seconds after it was sent, on the test's clock."""

    def __init__(self, clock: ManualClock) -> None:
        super().__init__()
        self.clock = clock

    def apply(self, ops: Sequence[Op], actual: Actual) -> Applied:
        self.clock.advance(REPLY)
        return super().apply(ops, actual)


class Rig:
    def __init__(self) -> None:
        self.clock = ManualClock()
        self.inbox: queue.Queue[Any] = queue.Queue()
        self.lb = SlowLb(self.clock)
        self.rec = Reconciler(load_text(TEXT), self.inbox, self.lb, Streams(), clock=self.clock)

    def probe(self, name: str, ok: bool) -> None:
        b = self.rec.config.backends[name]
        assert b.healthcheck is not None
        t = ProbeTarget(b.address, b.healthcheck)
        r = Reason.L4OK if ok else Reason.L4CON
        self.inbox.put(ProbeResult(t, ok, r, 0.001, "test", self.clock.monotonic()))

    def turn(self, queued: float = 0.0) -> None:
        """A turn that takes the queued results `queued` seconds after they finished."""
        self.clock.advance(queued)
        self.rec.turn()

    @property
    def stats(self) -> ConvergenceStats:
        return self.rec.snapshot.convergence

    def stage(self, name: str) -> Histogram:
        return dict(self.stats.stages)[name]


def counts(rig: Rig) -> dict[str, int]:
    return {name: h.count for name, h in rig.stats.stages}


def test_a_failing_backend_is_measured_through_every_stage() -> None:
    rig = Rig()
    for name in ("a1", "a2", "b1"):
        rig.probe(name, True)
    rig.turn()
    assert counts(rig) == dict.fromkeys(("queue", "detect", "write", "total"), 0)  # discovery

    onset = rig.clock.now + 1.0  # the first failure finishes then
    for _ in range(3):  # fall: 3, one interval apart
        rig.clock.advance(1.0)
        rig.probe("a1", False)
        rig.turn(queued=0.25)
        replied = rig.clock.now  # the turn's write advanced the clock by REPLY
        rig.clock.advance(-0.25)  # the next probe is due an interval after this one finished
    assert rig.rec.health["a1"].state.value == "down"
    assert counts(rig) == {"queue": 1, "detect": 1, "write": 1, "total": 1}
    s = rig.stats
    assert (s.written, s.unwritten, s.pending) == (1, 0, 0)
    assert abs(rig.stage("queue").total - 0.25) < 1e-9
    assert abs(rig.stage("detect").total - 2.25) < 1e-9  # (fall - 1) x interval + the queue
    assert abs(rig.stage("write").total - REPLY) < 1e-9
    (last,) = s.recent
    assert last.backend == "a1" and last.total is not None
    assert abs(last.total - (replied - onset)) < 1e-9  # onset -> the batch's replies


def test_a_backup_backend_whose_weight_stays_zero_is_unwritten() -> None:
    rig = Rig()
    for name in ("a1", "a2", "b1"):
        rig.probe(name, True)
    rig.turn()
    for _ in range(3):
        rig.clock.advance(1.0)
        rig.probe("b1", False)
        rig.turn()
    assert rig.rec.health["b1"].state.value == "down"
    s = rig.stats
    assert (s.written, s.unwritten, s.pending) == (0, 1, 0)
    assert counts(rig) == {"queue": 1, "detect": 1, "write": 0, "total": 0}

    for _ in range(2):  # and back (rise 2): still not needed, still 0
        rig.clock.advance(1.0)
        rig.probe("b1", True)
        rig.turn()
    assert rig.stats.unwritten == 2


def test_a_dry_run_measures_nothing() -> None:
    clock = ManualClock()
    inbox: queue.Queue[Any] = queue.Queue()
    rec = Reconciler(load_text(TEXT), inbox, SlowLb(clock), Streams(), clock=clock, dry_run=True)
    b = rec.config.backends["a1"]
    assert b.healthcheck is not None
    target = ProbeTarget(b.address, b.healthcheck)
    for ok in (True, False, False, False):
        clock.advance(1.0)
        inbox.put(ProbeResult(target, ok, Reason.L4OK, 0.001, "", clock.now))
        rec.turn()
    assert rec.health["a1"].state.value == "down"
    assert rec.snapshot.convergence.pending == 0 and rec.snapshot.convergence.written == 0


class FlakyLb(SlowLb):
    """Fails the batch after `fail()`; the connection is lost with it."""

    def __init__(self, clock: ManualClock) -> None:
        super().__init__(clock)
        self.failing = False

    def apply(self, ops: Sequence[Op], actual: Actual) -> Applied:
        if self.failing:
            self.failing = False
            raise VppError("connection reset")
        return super().apply(ops, actual)


def test_a_failed_write_is_measured_to_the_reply_of_its_retry() -> None:
    rig = Rig()
    flaky = FlakyLb(rig.clock)
    rig.lb = flaky
    rig.rec = Reconciler(load_text(TEXT), rig.inbox, flaky, Streams(), clock=rig.clock)
    for name in ("a1", "a2", "b1"):
        rig.probe(name, True)
    rig.turn()
    flaky.failing = True
    for _ in range(3):
        rig.clock.advance(1.0)
        rig.probe("a1", False)
        rig.turn()
    fell_at = rig.clock.now
    assert rig.stats.pending == 1 and rig.stats.written == 0
    for _ in range(30):  # until the link is back and a full sync has written
        rig.clock.advance(1.0)
        rig.turn()
        if rig.stats.written:
            break
    s = rig.stats
    assert (s.written, s.unwritten, s.pending) == (1, 0, 0)
    (last,) = s.recent
    assert last.write is not None and last.write > 1.0  # the outage is part of it
    assert abs(last.write - (rig.clock.now - fell_at)) < 1e-9
