"""The vantage guard inside the reconciler, on the in-memory lb client and a manual clock.

Each turn is driven by hand, so each assertion is about what one turn wrote to "VPP": while the
guard holds, backends going down keep their weight in the applied ops (their transitions are
still published and shown); a release applies the held drains in one pass.
"""

from __future__ import annotations

import ipaddress
import logging
import queue
from collections.abc import Sequence
from typing import Any

import pytest

from maglev.clock import ManualClock
from maglev.config import load_text
from maglev.model import BackendState, ProbeResult, ProbeTarget, Reason
from maglev.reconcile import events
from maglev.reconcile.reconciler import Reconciler
from maglev.reconcile.vantage import GuardState
from maglev.vpp.client import Applied
from maglev.vpp.lb import Actual
from maglev.vpp.memory import MemoryLb
from maglev.vpp.ops import Op, SetWeight
from tests.rigs import Streams

TEXT = """
vpp:
  api-socket: /nonexistent/api.sock
  lb: {ip4-src-address: 198.51.100.1, startup-min-delay: 0s, startup-max-delay: 0s,
       counters-interval: 0s}
healthchecks:
  hc: {type: tcp, port: 80, rise: 2, fall: 2}
  ping: {type: icmp, rise: 2, fall: 2}
backends:
  a1: {address: 10.0.0.1, healthcheck: hc}
  a2: {address: 10.0.0.2, healthcheck: hc}
  a3: {address: 10.0.0.3, healthcheck: hc}
  a4: {address: 10.0.0.4, healthcheck: hc}
  b1: {address: 10.0.0.5, healthcheck: hc}
frontends:
  www:
    address: 192.0.2.80
    protocol: tcp
    port: 80
    encap: gre4
    pools:
      - {name: primary, backends: {a1: {}, a2: {}, a3: {}, a4: {}}}
      - {name: backup, backends: {b1: {weight: 40}}}
health:
  vantage: VANTAGE
"""
CANARY = "{canaries: [{address: 10.0.0.254, healthcheck: ping}], window: 10s}"
WWW = (ipaddress.ip_network("192.0.2.80/32"), 6, 80)
ALL_UP = {"10.0.0.1": 100, "10.0.0.2": 100, "10.0.0.3": 100, "10.0.0.4": 100, "10.0.0.5": 0}
GW = ProbeTarget(ipaddress.ip_address("10.0.0.254"), "ping")


class BatchLb(MemoryLb):
    """Remembers the ops of each `apply` call: one call is one pass's batch."""

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[list[Op]] = []

    def apply(self, ops: Sequence[Op], actual: Actual) -> Applied:
        self.batches.append(list(ops))
        return super().apply(ops, actual)


class Rig:
    def __init__(self, vantage: str = CANARY) -> None:
        self.clock = ManualClock()
        self.inbox: queue.Queue[Any] = queue.Queue()
        self.lb = BatchLb()
        self.streams = Streams()
        self.published: list[dict[str, Any]] = []
        self.rec = Reconciler(
            load_text(TEXT.replace("VANTAGE", vantage)), self.inbox, self.lb, self.streams,
            publish=self.published.append, clock=self.clock,
        )  # fmt: skip

    def probe(self, name: str, ok: bool) -> None:
        if name == "gw":
            t, r = GW, Reason.ICMPOK if ok else Reason.ICMPTOUT
        else:
            b = self.rec.config.backends[name]
            assert b.healthcheck is not None
            t, r = ProbeTarget(b.address, b.healthcheck), Reason.L4OK if ok else Reason.L4CON
        self.inbox.put(ProbeResult(t, ok, r, 0.001, "test", self.clock.monotonic()))

    def turns(self, names: Sequence[str], ok: bool, n: int = 2) -> None:
        """`n` turns (rise and fall are 2), each with one result for each of `names`."""
        for _ in range(n):
            for name in names:
                self.probe(name, ok)
            self.turn(1.0)

    def turn(self, advance: float = 0.0) -> None:
        self.clock.advance(advance)
        self.rec.turn()

    def weights(self) -> dict[str, int]:
        return {str(a): w for a, w in self.lb.tables[WWW].weights.items()}

    def weight_ops(self, since: int) -> list[tuple[str, int]]:
        return [
            (str(op.address), op.weight)
            for batch in self.lb.batches[since:]
            for op in batch
            if isinstance(op, SetWeight)
        ]

    def warm(self, *extra: str) -> None:
        for name in ("a1", "a2", "a3", "a4", "b1", *extra):
            self.probe(name, True)
        self.turn()
        assert self.weights() == ALL_UP


def test_drains_held_while_a_canary_is_down_apply_in_one_pass_when_it_recovers(
    caplog: pytest.LogCaptureFixture,
) -> None:
    r = Rig()
    r.warm("gw")
    assert r.streams.targets[GW].name == "ping"  # the canary is probed by the same scheduler
    assert r.rec.snapshot.vantage.state is GuardState.ARMED
    with caplog.at_level(logging.ERROR):
        r.turns(["gw"], False)
    assert "vantage guard tripped: canary canaries[0] (10.0.0.254, healthcheck ping) is down" in (
        caplog.text
    )
    assert r.rec.snapshot.vantage.state is GuardState.HOLDING
    start = len(r.lb.batches)
    r.turns(["a1", "a2", "a3"], False)
    # Recorded, published and shown as they are...
    snap = r.rec.snapshot
    assert {n: snap.backends[n].state for n in ("a1", "a2", "a3")} == dict.fromkeys(
        ("a1", "a2", "a3"), BackendState.DOWN
    )
    downs = [e["backend"] for e in r.published if e["type"] == "backend" and e["to"] == "down"]
    assert downs == ["a1", "a2", "a3"]
    assert snap.vantage.held == {"a1", "a2", "a3"}
    # ... but nothing was drained: no weight went out, VPP is as it was.
    assert r.weight_ops(start) == [] and r.weights() == ALL_UP
    view = {b.name: (b.weight, b.reason) for b in snap.frontends["www"].backends}
    assert view["a1"] == (100, "active pool primary")
    # Going up is applied (here: nothing to write, they were never drained).
    r.turns(["a2", "a3"], True)
    assert r.rec.snapshot.vantage.held == {"a1"} and r.weight_ops(start) == []
    # The canary recovers (rise 2): released, and the one drain still pending goes out in one
    # pass, with its flush (flush-on-down), in the turn of the release.
    r.probe("gw", True)
    r.turn(1.0)
    assert r.rec.snapshot.vantage.state is GuardState.HOLDING
    passes, start = r.rec.tally.passes, len(r.lb.batches)
    with caplog.at_level(logging.INFO):
        r.probe("gw", True)
        r.turn(1.0)
    assert (
        "vantage guard released as the vantage recovered (no canary down): applying the held"
        in (caplog.text)
    )
    assert r.rec.tally.passes == passes + 1 and len(r.lb.batches) == start + 1
    (op,) = r.lb.batches[-1]
    assert isinstance(op, SetWeight) and (str(op.address), op.weight, op.flush) == (
        "10.0.0.1", 0, True,
    )  # fmt: skip
    assert r.weights() == ALL_UP | {"10.0.0.1": 0}
    vantage = [(e["state"], e.get("held_backends", e.get("applied_drains"))) for e in r.published
               if e["type"] == "vantage"]  # fmt: skip
    assert vantage == [("holding", 0), ("armed", 1)]


def test_operator_release_applies_the_held_drains_in_one_pass() -> None:
    r = Rig()
    r.warm("gw")
    r.turns(["gw"], False)
    r.turns(["a1", "a2"], False)
    assert r.weights() == ALL_UP
    start = len(r.lb.batches)
    msg = events.ReleaseGuard("operator (test)")
    r.inbox.put(msg)
    r.turn()
    assert msg.reply.result(0) == events.GuardReleaseResult(True, "armed", 2)
    assert len(r.lb.batches) == start + 1
    assert sorted(r.weight_ops(start)) == [("10.0.0.1", 0), ("10.0.0.2", 0)]
    st = r.rec.snapshot.vantage
    assert (st.state, st.why, st.held) == (GuardState.ARMED, "released by operator (test)", set())
    # The canary is still down, but the operator overrode it: the next drain goes out (a1 is
    # back first, so that half of the pool stays up: the frontend's own mass-failure guard).
    r.turns(["a1"], True)
    r.turns(["a3"], False)
    assert r.weights()["10.0.0.3"] == 0 and r.rec.snapshot.vantage.state is GuardState.ARMED
    again = events.ReleaseGuard("operator (test)")
    r.inbox.put(again)
    r.turn()
    assert again.reply.result(0) == events.GuardReleaseResult(False, "armed", 0)


def test_fraction_trip_rewinds_the_drains_that_made_it() -> None:
    r = Rig("{max-down-fraction: 50%, window: 10s}")  # 5 backends: 3 within 10 s trip it
    r.warm()
    r.turns(["a1"], False)
    r.turns(["a2"], False)
    assert r.weights() == ALL_UP | {"10.0.0.1": 0, "10.0.0.2": 0}  # 2 of 5: not more than half
    r.turns(["a3"], False)
    # The third within the window trips it, before its own drain is written; the two drained
    # before are rewound: they went down as part of the same event.
    st = r.rec.snapshot.vantage
    assert st.state is GuardState.HOLDING and st.held == {"a1", "a2", "a3"}
    assert st.why == "3 of 5 backends went down within 10s (more than max-down-fraction 50%)"
    assert r.weights() == ALL_UP
    # Two come back: 1 of 5 held is at most half of 50%: released, the last drain goes out.
    r.turns(["a1", "a2"], True)
    assert r.rec.snapshot.vantage.state is GuardState.ARMED
    assert r.weights() == ALL_UP | {"10.0.0.3": 0}


def test_preview_and_a_reload_see_the_held_state() -> None:
    r = Rig()
    r.warm("gw")
    r.turns(["gw"], False)
    r.turns(["a1"], False)
    # A reload that keeps the guard keeps the hold: the new layout is built with a1 held.
    cfg = load_text(TEXT.replace("VANTAGE", CANARY.replace("10s", "20s")))
    msg = events.ApplyConfig(cfg, "test", at=0.0, started=0.0, load_seconds=0.0)
    r.inbox.put(msg)
    r.turn()
    assert msg.reply.result(0).ok and r.rec.snapshot.vantage.held == {"a1"}
    assert r.weights() == ALL_UP
    assert r.rec.preview(cfg).lines == ()  # the same config, the held state: nothing to do
    # Without health.vantage, the hold ends with the reload: a1's drain goes out.
    off = load_text(TEXT.replace("health:\n  vantage: VANTAGE\n", ""))
    r.inbox.put(events.ApplyConfig(off, "test", at=0.0, started=0.0, load_seconds=0.0))
    r.turn()
    assert r.rec.snapshot.vantage.state is GuardState.OFF
    assert r.weights() == ALL_UP | {"10.0.0.1": 0}
    assert GW not in r.streams.targets
