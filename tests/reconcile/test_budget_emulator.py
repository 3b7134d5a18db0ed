"""The disruption budget wired for real: the reconciler thread on the system clock, vpp-papi and
the VPP emulator over its Unix socket. A reload's reweight converges in steps on the
reconciler's own wake-ups; the emulator's table is read (over a second vpp-papi connection,
`show lb vip ... buckets`) throughout, and every step's measured bucket moves stay within the
budget. Waits are on events with generous deadlines; nothing asserts how long anything took."""

from __future__ import annotations

import itertools
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
from tests.reconcile.test_reconciler import apply_config
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
  a3: {{address: 10.0.0.3, healthcheck: hc}}
  a4: {{address: 10.0.0.4, healthcheck: hc}}
frontends:
  www:
    address: 192.0.2.80
    protocol: tcp
    port: 80
    encap: gre4
    flow-table-length: 256
    max-churn: 10%
    churn-interval: 400ms
    pools:
      - {{name: primary, backends: {{a1: {{weight: {w1}}}, a2: {{}}, a3: {{}}, a4: {{}}}}}}
"""
SHOW = "show lb vip 192.0.2.80/32 protocol tcp port 80 buckets"
LIMIT = 25  # 10% of 256 buckets
DEADLINE = 30.0


def test_a_budgeted_reweight_converges_in_steps_within_the_budget(
    tmp_path: pathlib.Path,
) -> None:
    emu = Emulator(str(tmp_path / "api.sock"))
    emu.start()
    defs = apidefs.generate(tmp_path / "defs")
    conn = VppConnection(emu.socket_path, defs, read_timeout=3)
    reader = VppConnection(emu.socket_path, defs, name="reader", read_timeout=3)
    bus: queue.Queue[dict[str, Any]] = queue.Queue()
    synced = threading.Event()
    config = load_text(CONFIG.format(sock=emu.socket_path, w1=100))
    inbox: queue.Queue[Any] = queue.Queue()
    rec = Reconciler(
        config, inbox, PapiLb(conn), Streams(), publish=bus.put, on_first_sync=synced.set
    )
    thread = threading.Thread(target=rec.run, name="maglev-reconciler", daemon=True)
    tables: list[list[str]] = []

    def table() -> list[str]:
        return [line.split(": ", 1)[1] for line in reader.cli(SHOW).splitlines()]

    def seen() -> None:
        t = table()
        if not tables or tables[-1] != t:
            tables.append(t)

    thread.start()
    try:
        for name in ("a1", "a2", "a3", "a4"):
            b = config.backends[name]
            assert b.healthcheck is not None
            t = ProbeTarget(b.address, b.healthcheck)
            inbox.put(ProbeResult(t, True, Reason.L4OK, 0.001, "t", 0.0))
        assert synced.wait(DEADLINE)
        reader.connect()
        seen()
        assert set(tables[0]) == {"10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4"}
        inbox.put(apply_config(load_text(CONFIG.format(sock=emu.socket_path, w1=10))))
        steps = None
        end = time.monotonic() + DEADLINE
        while time.monotonic() < end:
            seen()
            try:
                e = bus.get(timeout=0.02)
            except queue.Empty:
                continue
            if e["type"] == "budget":
                assert not e["indivisible"]
                if e["event"] == "done":
                    steps = e["steps"]
                    break
        assert steps is not None and steps > 1, "no budgeted change seen to its end"
        end = time.monotonic() + DEADLINE
        while time.monotonic() < end and rec.snapshot.budget:
            time.sleep(0.02)
        for _ in range(10):  # the last step's write follows its event
            seen()
            time.sleep(0.05)
        assert len(tables) == steps + 1, [len(tables), steps]
        for before, after in itertools.pairwise(tables):
            moved = sum(a != b for a, b in zip(before, after, strict=True))
            assert 0 < moved <= LIMIT, moved
        final = {a: tables[-1].count(a) for a in set(tables[-1])}
        assert final["10.0.0.1"] < final["10.0.0.2"] / 5  # weight 10 of 100: near the target
        assert "10.0.0.1 weight:10 " in reader.cli("show lb vips verbose")  # the target
    finally:
        rec.stopping.set()
        thread.join(DEADLINE)
        reader.disconnect()
        conn.disconnect()
        emu.stop()
