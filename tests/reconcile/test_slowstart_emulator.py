"""Slow start wired for real: the reconciler thread on the system clock, vpp-papi and the VPP
emulator over its Unix socket. A backend recovers and ramps through its steps on the
reconciler's own wake-ups; the test waits on the published events with generous deadlines and
asserts the weights the emulator was sent, never how long anything took. A fresh reconciler on
the same emulator afterwards (a maglevd restart) syncs, takes the probes and writes nothing."""

from __future__ import annotations

import pathlib
import queue
import threading
import time
from typing import Any

import pytest

from maglev.config import load_text
from maglev.model import BackendState, ProbeResult, ProbeTarget, Reason
from maglev.reconcile.events import SyncRequest
from maglev.reconcile.reconciler import Reconciler
from maglev.vpp import apidefs
from maglev.vpp.client import PapiLb
from maglev.vpp.dumper import read_lb_state
from maglev.vpp.papi import VppConnection
from maglev.vppsim import Emulator
from tests.reconcile.test_reconciler import ops
from tests.rigs import Streams

pytestmark = pytest.mark.integration

CONFIG = """
vpp:
  api-socket: {sock}
  lb: {{ip4-src-address: 198.51.100.1, startup-min-delay: 0s, startup-max-delay: 0s,
        counters-interval: 0s}}
healthchecks:
  hc: {{type: tcp, port: 80, rise: 1, fall: 1}}
backends:
  a1: {{address: 10.0.0.1, healthcheck: hc}}
  a2: {{address: 10.0.0.2, healthcheck: hc}}
frontends:
  www:
    address: 192.0.2.80
    protocol: tcp
    port: 80
    encap: gre4
    min-healthy: 0
    slow-start: {{duration: 600ms, steps: 3}}
    pools:
      - {{name: primary, backends: {{a1: {{}}, a2: {{}}}}}}
"""
DEADLINE = 30.0


class Live:
    """A reconciler thread on the system clock, vpp-papi over the emulator's socket; the probes
    given to `start` are queued before it runs (as a maglevd's first probes are)."""

    def __init__(self, emu: Emulator, defs: list[str]) -> None:
        self.conn = VppConnection(emu.socket_path, defs, read_timeout=3)
        self.bus: queue.Queue[dict[str, Any]] = queue.Queue()
        self.synced = threading.Event()
        self.config = load_text(CONFIG.format(sock=emu.socket_path))
        self.inbox: queue.Queue[Any] = queue.Queue()
        self.rec = Reconciler(
            self.config, self.inbox, PapiLb(self.conn), Streams(), publish=self.bus.put,
            on_first_sync=self.synced.set,
        )  # fmt: skip
        self.thread = threading.Thread(target=self.rec.run, name="maglev-reconciler", daemon=True)

    def start(self, *up: str) -> None:
        for name in up:
            self.probe(name, True)
        self.thread.start()
        assert self.synced.wait(DEADLINE)

    def probe(self, name: str, ok: bool) -> None:
        b = self.config.backends[name]
        assert b.healthcheck is not None
        t = ProbeTarget(b.address, b.healthcheck)
        self.inbox.put(ProbeResult(t, ok, Reason.L4OK if ok else Reason.L4CON, 0.001, "t", 0.0))

    def wait_for(self, pred: Any) -> dict[str, Any]:
        end = time.monotonic() + DEADLINE
        while time.monotonic() < end:
            try:
                e = self.bus.get(timeout=max(0.0, end - time.monotonic()))
            except queue.Empty:
                break
            if pred(e):
                return e
        raise AssertionError("event not seen before the deadline")

    def stop(self) -> None:
        self.rec.stopping.set()
        self.thread.join(DEADLINE)
        self.conn.disconnect()


def ramp(emu: Emulator, live: Live) -> None:
    """a1 and a2 up; a2 fails, recovers and ramps to its full weight in the emulator."""
    live.start("a1", "a2")
    live.probe("a2", False)
    live.wait_for(lambda e: e.get("backend") == "a2" and e.get("to") == "down")
    live.probe("a2", True)
    live.wait_for(lambda e: e["type"] == "slow_start" and e["event"] == "start")
    done = live.wait_for(lambda e: e["type"] == "slow_start" and e["event"] == "done")
    assert (done["frontend"], done["backend"], done["step"]) == ("www", "a2", 3)
    # The last set-weight may still be on its way: the done event precedes the write.
    end = time.monotonic() + DEADLINE
    while time.monotonic() < end:
        sent = [o["weight"] for o in ops(emu, "lb_as_set_weight")]
        if sent[-1:] == [100]:
            break
        time.sleep(0.05)
    assert sent == [0, 33, 66, 100]
    # ...and the turn's snapshot is published after its write: wait for it too.
    end = time.monotonic() + DEADLINE
    while live.rec.snapshot.slow_start and time.monotonic() < end:
        time.sleep(0.05)
    assert live.rec.snapshot.slow_start == {}


def test_a_recovering_backend_ramps_on_the_reconcilers_wakeups(
    emu: Emulator, tmp_path: pathlib.Path
) -> None:
    live = Live(emu, apidefs.generate(tmp_path / "defs"))
    try:
        ramp(emu, live)
    finally:
        live.stop()


def test_a_restart_after_the_ramp_writes_nothing(emu: Emulator, tmp_path: pathlib.Path) -> None:
    defs = apidefs.generate(tmp_path / "defs")
    first = Live(emu, defs)
    try:
        ramp(emu, first)
    finally:
        first.stop()
    before = len(emu.operations())
    assert before > 0
    weights = vpp_weights(emu, defs)
    assert weights == {"10.0.0.1": 100, "10.0.0.2": 100}
    # A fresh reconciler on the same VPP, as a maglevd restart starts one: it syncs (a full
    # dump and diff), takes both backends' passing probes, and a full sync on request...
    second = Live(emu, defs)
    try:
        second.start("a1", "a2")
        end = time.monotonic() + DEADLINE
        while time.monotonic() < end:
            snap = second.rec.snapshot
            if all(snap.backends[n].state is BackendState.UP for n in ("a1", "a2")):
                break
            time.sleep(0.05)
        assert all(second.rec.snapshot.backends[n].state is BackendState.UP for n in ("a1", "a2"))
        sync = SyncRequest()
        second.inbox.put(sync)
        sync.reply.result(DEADLINE)
        # ...and sends VPP no write: no ramp (a2 is already serving at its full weight).
        assert emu.operations()[before:] == []
        assert second.rec.tally.ops_ok == second.rec.tally.ops_failed == 0
        assert second.rec.snapshot.slow_start == {}
        assert vpp_weights(emu, defs) == weights
        view = {b.name: b.weight for b in second.rec.snapshot.frontends["www"].backends}
        assert view == {"a1": 100, "a2": 100}
    finally:
        second.stop()


def vpp_weights(emu: Emulator, defs: list[str]) -> dict[str, int]:
    """The emulator's AS weights, read with a dump (not a write) over its socket."""
    conn = VppConnection(emu.socket_path, defs, read_timeout=3)
    conn.connect()
    try:
        return {str(a.address): a.weight for a in read_lb_state(conn).ases}
    finally:
        conn.disconnect()
