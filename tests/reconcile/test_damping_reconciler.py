"""Flap damping in the reconciler, turn by turn on a manual clock over `MemoryLb`.

Backend a1 flaps every second (rise 1, fall 1): the third down transition takes its penalty
above `suppress`, and it stays at weight 0 (unflushed) while its checks pass, until the
reconciler's own deadline (the reuse time) brings it back. The operator sees it in the snapshot,
the backend doc, the metrics, an event and the log.
"""

from __future__ import annotations

import ipaddress
import logging
import math
import queue
import time
from typing import Any

import pytest

from maglev.clock import ManualClock
from maglev.config import load_text
from maglev.daemon.docs import damping_doc
from maglev.model import ProbeResult, ProbeTarget, Reason
from maglev.reconcile import events
from maglev.reconcile.reconciler import Reconciler
from maglev.vpp.memory import MemoryLb
from tests.rigs import NoStreams

CONFIG = """
vpp:
  api-socket: /nonexistent/api.sock
  lb: {{ip4-src-address: 198.51.100.1, startup-min-delay: 0s, startup-max-delay: 0s,
       counters-interval: 0s, sync-interval: 1h}}
healthchecks:
  hc: {{type: tcp, port: 80, rise: 1, fall: 1{damping}}}
backends:
  a1: {{address: 10.0.0.1, healthcheck: hc}}
  a2: {{address: 10.0.0.2, healthcheck: hc}}
frontends:
  www:
    address: 192.0.2.80
    protocol: tcp
    port: 80
    encap: gre4
    flush-on-down: true
    min-healthy: 0
    pools: [{{name: primary, backends: {{a1: {{}}, a2: {{}}}}}}]
"""
DAMPING = ", flap-damping: {half-life: 10s, penalty: 1000, suppress: 2000, reuse: 750}"
WWW = (ipaddress.ip_network("192.0.2.80/32"), 6, 80)


class Rig:
    def __init__(self, damping: str = DAMPING) -> None:
        self.clock = ManualClock(0.0)
        self.inbox: queue.Queue[Any] = queue.Queue()
        self.lb = MemoryLb()
        self.published: list[dict[str, Any]] = []
        self.rec = Reconciler(
            load_text(CONFIG.format(damping=damping)), self.inbox, self.lb, NoStreams(),
            publish=self.published.append, clock=self.clock,
        )  # fmt: skip

    def probe(self, name: str, ok: bool) -> None:
        t = ProbeTarget(ipaddress.ip_address(f"10.0.0.{name[-1]}"), "hc")
        r = Reason.L4OK if ok else Reason.L4CON
        self.inbox.put(ProbeResult(t, ok, r, 0.001, "test", self.clock.monotonic()))

    def turn(self, advance: float = 0.0) -> None:
        self.clock.advance(advance)
        self.rec.turn()

    def weights(self) -> dict[str, int]:
        return {str(a): w for a, w in self.lb.tables[WWW].weights.items()}

    def flap(self) -> None:
        """a1 fails, then passes again, a second apart (a2 stays up)."""
        self.probe("a1", False)
        self.probe("a2", True)
        self.turn(1.0)
        self.probe("a1", True)
        self.turn(1.0)

    def damping_events(self) -> list[tuple[str, bool]]:
        return [(e["backend"], e["suppressed"]) for e in self.published if e["type"] == "damping"]


def test_a_flapping_backend_is_suppressed_then_reused(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="maglev.reconcile.damping")
    r = Rig()
    r.probe("a1", True)
    r.probe("a2", True)
    r.turn()
    assert r.weights() == {"10.0.0.1": 100, "10.0.0.2": 100}
    r.flap()
    r.flap()
    assert r.weights() == {"10.0.0.1": 100, "10.0.0.2": 100}  # two flaps: 1000 + 870.6 < 2000
    assert r.damping_events() == []
    r.flap()  # the third down transition, at t=5: 1000 * (1 + 2^-0.2 + 2^-0.4) = 2628
    assert r.damping_events() == [("a1", True)]
    assert r.rec.snapshot.backends["a1"].state.value == "up"
    assert r.weights() == {"10.0.0.1": 0, "10.0.0.2": 100}  # passing, held out
    warn = [x for x in caplog.records if x.levelno == logging.WARNING]
    assert len(warn) == 1 and "a1: suppressed by flap damping (penalty 2628" in warn[0].message
    (ev,) = [e for e in r.published if e["type"] == "damping"]
    assert ev == {
        "type": "damping", "backend": "a1", "suppressed": True, "penalty": 2628.4,
        "until": pytest.approx(1_700_000_005 + 10 * math.log2(2628.4 / 750), abs=0.01),
    }  # fmt: skip
    view = r.rec.snapshot.frontends["www"]
    a1 = next(b for b in view.backends if b.name == "a1")
    assert (a1.weight, a1.reason) == (0, "suppressed: flap damping")
    # Passing checks do not bring it back; its doc says so.
    for _ in range(3):
        r.probe("a1", True)
        r.turn(1.0)
    assert r.weights()["10.0.0.1"] == 0
    doc = damping_doc(r.rec.snapshot, "a1")
    assert doc is not None and doc["suppressed"] and doc["until"] is not None
    assert 750 < doc["penalty"] < 2628
    # The reconciler wakes up at the reuse time (no probe needed): 5 + 10 * log2(2628 / 750).
    p = 1000 * (1 + 2**-0.2 + 2**-0.4)
    due = 5.0 + 10 * math.log2(p / 750)
    assert r.rec._next_deadline() == pytest.approx(due)
    r.clock.now = due - 0.01
    r.turn()
    assert r.weights()["10.0.0.1"] == 0
    r.clock.now = due
    r.turn()
    assert r.weights() == {"10.0.0.1": 100, "10.0.0.2": 100}
    assert r.damping_events() == [("a1", True), ("a1", False)]
    assert any(
        x.levelno == logging.INFO and "a1: flap damping reuses it (penalty 750)" in x.message
        for x in caplog.records
    )
    doc = damping_doc(r.rec.snapshot, "a1")
    assert doc is not None and not doc["suppressed"] and doc["until"] is None


def test_suppressed_is_never_flushed_and_a_reload_keeps_the_penalty() -> None:
    r = Rig()
    r.probe("a1", True)
    r.probe("a2", True)
    r.turn()
    for _ in range(3):
        r.flap()
    assert r.rec.damping.suppressed == {"a1"}
    before = r.rec.damping.entries["a1"]
    # A reload that changes something else (a2's weight) keeps a1's penalty and suppression.
    text = CONFIG.format(damping=DAMPING).replace("a2: {}", "a2: {weight: 50}")
    msg = events.ApplyConfig(load_text(text), "test", time.time(), time.perf_counter(), 0.0)
    r.inbox.put(msg)
    r.turn()
    assert msg.reply.result(5).ok
    assert r.rec.damping.entries["a1"] == before and r.rec.damping.suppressed == {"a1"}
    assert r.weights() == {"10.0.0.1": 0, "10.0.0.2": 50}
    # A reload that turns damping off returns it at once.
    msg = events.ApplyConfig(load_text(CONFIG.format(damping="")), "test", time.time(),
                             time.perf_counter(), 0.0)  # fmt: skip
    r.inbox.put(msg)
    r.turn()
    assert msg.reply.result(5).ok
    assert r.rec.damping.suppressed == set()
    assert r.weights() == {"10.0.0.1": 100, "10.0.0.2": 100}


def test_without_damping_flaps_are_just_transitions() -> None:
    r = Rig(damping="")
    r.probe("a1", True)
    r.probe("a2", True)
    r.turn()
    for _ in range(5):
        r.flap()
    assert r.weights() == {"10.0.0.1": 100, "10.0.0.2": 100}
    assert r.damping_events() == [] and r.rec.snapshot.damping == {}
    assert damping_doc(r.rec.snapshot, "a1") is None
