"""Slow start wired for real: the reconciler thread on the system clock, vpp-papi and the VPP
emulator over its Unix socket. A backend recovers and ramps through its steps on the
reconciler's own wake-ups; the test waits on the published events with generous deadlines and
asserts the weights the emulator was sent, never how long anything took."""

from __future__ import annotations

import pathlib
import queue
import threading
import time
from typing import Any

import pytest

from maglev.config import load_text
from maglev.model import ProbeResult, ProbeTarget, Reason
from maglev.reconcile.reconciler import Reconciler
from maglev.vpp import apidefs
from maglev.vpp.client import PapiLb
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


def test_a_recovering_backend_ramps_on_the_reconcilers_wakeups(tmp_path: pathlib.Path) -> None:
    emu = Emulator(str(tmp_path / "api.sock"))
    emu.start()
    conn = VppConnection(emu.socket_path, apidefs.generate(tmp_path / "defs"), read_timeout=3)
    bus: queue.Queue[dict[str, Any]] = queue.Queue()
    synced = threading.Event()
    config = load_text(CONFIG.format(sock=emu.socket_path))
    inbox: queue.Queue[Any] = queue.Queue()
    rec = Reconciler(
        config, inbox, PapiLb(conn), Streams(), publish=bus.put, on_first_sync=synced.set
    )
    thread = threading.Thread(target=rec.run, name="maglev-reconciler", daemon=True)

    def probe(name: str, ok: bool) -> None:
        b = config.backends[name]
        assert b.healthcheck is not None
        t = ProbeTarget(b.address, b.healthcheck)
        inbox.put(ProbeResult(t, ok, Reason.L4OK if ok else Reason.L4CON, 0.001, "t", 0.0))

    def wait_for(pred: Any) -> dict[str, Any]:
        end = time.monotonic() + DEADLINE
        while time.monotonic() < end:
            try:
                e = bus.get(timeout=max(0.0, end - time.monotonic()))
            except queue.Empty:
                break
            if pred(e):
                return e
        raise AssertionError("event not seen before the deadline")

    thread.start()
    try:
        probe("a1", True)
        probe("a2", True)
        assert synced.wait(DEADLINE)
        probe("a2", False)
        wait_for(lambda e: e.get("backend") == "a2" and e.get("to") == "down")
        probe("a2", True)
        wait_for(lambda e: e["type"] == "slow_start" and e["event"] == "start")
        done = wait_for(lambda e: e["type"] == "slow_start" and e["event"] == "done")
        assert (done["frontend"], done["backend"], done["step"]) == ("www", "a2", 3)
        # The last set-weight may still be on its way: the done event precedes the write.
        end = time.monotonic() + DEADLINE
        while time.monotonic() < end:
            sent = [o["weight"] for o in ops(emu, "lb_as_set_weight")]
            if sent[-1:] == [100]:
                break
            time.sleep(0.05)
        assert sent == [0, 33, 66, 100]
        assert rec.snapshot.slow_start == {}
    finally:
        rec.stopping.set()
        thread.join(DEADLINE)
        conn.disconnect()
        emu.stop()
