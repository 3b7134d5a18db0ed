"""The vantage guard as operators see it: status JSON, backend and frontend docs, metrics, events
and `maglevc guard release`, through the real control server on a Unix socket.

A real `Reconciler` runs on its thread over `MemoryLb`; probe results are put on its queue as the
check workers would, and each step waits (with a generous deadline) for the snapshot to show it.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import pathlib
import queue
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from click.testing import CliRunner

from maglev.cli.maglevc import cli
from maglev.config import load_text
from maglev.daemon.api import DaemonApi
from maglev.daemon.bus import EventBus
from maglev.daemon.control import ControlServer
from maglev.daemon.info import DaemonInfo
from maglev.daemon.metrics import MaglevCollector
from maglev.health.scheduler import CheckerStats
from maglev.model import BackendState, ProbeResult, ProbeTarget, Reason
from maglev.reconcile import events
from maglev.reconcile.port import ReconcilerPort
from maglev.reconcile.reconciler import Reconciler
from maglev.reconcile.snapshot import Snapshot
from maglev.reconcile.vantage import GuardState
from maglev.vpp.memory import MemoryLb
from tests.rigs import NoStreams

pytestmark = pytest.mark.integration

CONFIG = """
vpp:
  api-socket: /nonexistent/api.sock
  lb: {ip4-src-address: 198.51.100.1, startup-min-delay: 0s, startup-max-delay: 0s,
       counters-interval: 0s}
healthchecks:
  hc: {type: tcp, port: 80, rise: 1, fall: 1}
  ping: {type: icmp, rise: 1, fall: 1}
backends:
  a1: {address: 10.0.0.1, healthcheck: hc}
  a2: {address: 10.0.0.2, healthcheck: hc}
frontends:
  www:
    address: 192.0.2.80
    protocol: tcp
    port: 80
    encap: gre4
    pools: [{name: primary, backends: {a1: {}, a2: {}}}]
health:
  vantage: {canaries: {gw: {address: 10.0.0.254, healthcheck: ping}}}
"""
WWW = (ipaddress.ip_network("192.0.2.80/32"), 6, 80)


def wait_for(what: str, cond: Callable[[], Any], deadline: float = 20.0) -> Any:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        got = cond()
        if got:
            return got
        threading.Event().wait(0.01)
    raise AssertionError(f"timed out waiting for {what}")


class Rig:
    def __init__(self, tmp: pathlib.Path) -> None:
        self.inbox: queue.Queue[Any] = queue.Queue()
        self.stopping = threading.Event()
        self.lb = MemoryLb()
        self.bus = EventBus()
        self.rec = Reconciler(
            load_text(CONFIG), self.inbox, self.lb, NoStreams(), publish=self.bus.publish,
            stopping=self.stopping,
        )  # fmt: skip
        self.port = ReconcilerPort(self.inbox, lambda: self.rec.snapshot)
        info = DaemonInfo("test", 1, 0.0, "/etc/maglev.yaml", False, "/nonexistent", False, None)
        self.api = DaemonApi(self.port, self.bus, info, lambda why: events.ReloadStatus(ok=True))
        self.collector = MaglevCollector(
            self.port, info, lambda: CheckerStats({}, 0, 0, 0, (), 0, 0.0, ())
        )
        self.path = str(tmp / "ctl.sock")
        self.server = ControlServer(self.api, self.path)
        self.server.start()
        self.thread = threading.Thread(target=self.rec.run, name="test-reconciler")
        self.thread.start()

    @property
    def snap(self) -> Snapshot:
        return self.rec.snapshot

    def probe(self, address: str, check: str, ok: bool) -> None:
        t = ProbeTarget(ipaddress.ip_address(address), check)
        r = Reason.L4OK if ok else Reason.L4CON
        self.inbox.put(ProbeResult(t, ok, r, 0.001, "test", time.monotonic()))

    def weights(self) -> dict[str, int]:
        vip = self.lb.tables.get(WWW)
        return {} if vip is None else {str(a): w for a, w in vip.weights.items()}

    def maglevc(self, *args: str) -> str:
        r = CliRunner().invoke(cli, ["--socket", self.path, *args])
        assert r.exit_code == 0, r.output
        return r.output

    def metrics(self) -> dict[str, float]:
        return {
            s.name + (json.dumps(s.labels) if s.labels else ""): s.value
            for fam in self.collector.collect()
            if fam.name.startswith("maglev_vantage")
            for s in fam.samples
        }

    def stop(self) -> None:
        self.server.stop()
        self.stopping.set()
        self.inbox.put(events.Stop())
        self.thread.join(10)
        assert not self.thread.is_alive()


@pytest.fixture
def rig(tmp_path: pathlib.Path) -> Iterator[Rig]:
    r = Rig(tmp_path)
    yield r
    r.stop()


def test_the_guard_end_to_end_over_the_control_api(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    q, unsubscribe = rig.bus.subscribe({"type": "vantage"})
    try:
        for a in ("10.0.0.1", "10.0.0.2"):
            rig.probe(a, "hc", True)
        rig.probe("10.0.0.254", "ping", True)
        wait_for("programmed", lambda: rig.weights() == {"10.0.0.1": 100, "10.0.0.2": 100})
        doc = rig.api.status()["vantage"]
        assert doc == {
            "state": "armed", "since": doc["since"], "why": None, "held_backends": 0,
            "canaries": {"gw": "up"}, "trips": 0,
        }  # fmt: skip
        assert rig.metrics() == {
            "maglev_vantage_guard_active": 0.0, "maglev_vantage_held_backends": 0.0,
            "maglev_vantage_trips_total": 0.0, 'maglev_vantage_canary_up{"canary": "gw"}': 1.0,
        }  # fmt: skip

        rig.probe("10.0.0.254", "ping", False)
        wait_for("trip", lambda: rig.snap.vantage.state is GuardState.HOLDING)
        rig.probe("10.0.0.1", "hc", False)
        wait_for("a1 down", lambda: rig.snap.vantage.held == {"a1"})
        assert rig.weights() == {"10.0.0.1": 100, "10.0.0.2": 100}  # frozen

        doc = rig.api.status()["vantage"]
        assert (doc["state"], doc["held_backends"], doc["canaries"], doc["trips"]) == (
            "holding", 1, {"gw": "down"}, 1,
        )  # fmt: skip
        assert doc["why"] == "canary gw (10.0.0.254, healthcheck ping) is down: test"
        assert doc["since"].endswith("Z")
        b = rig.api.backend("a1")
        assert (b["state"], b["drain_held_by"]) == ("down", "vantage guard")
        assert rig.api.backend("a2")["drain_held_by"] is None
        rows = {r["name"]: r for r in rig.api.frontend("www")["backends"]}
        assert (rows["a1"]["state"], rows["a1"]["effective_weight"], rows["a1"]["reason"]) == (
            "down", 100, "active pool primary (down: drain held by the vantage guard)",
        )  # fmt: skip
        m = rig.metrics()
        assert (m["maglev_vantage_guard_active"], m["maglev_vantage_held_backends"]) == (1.0, 1.0)
        assert m['maglev_vantage_canary_up{"canary": "gw"}'] == 0.0

        # The status line, as maglevc shows it.
        text = rig.maglevc("show", "status")
        assert "vantage:" in text and "state          holding" in text, text
        assert json.loads(rig.maglevc("--json", "show", "status"))["vantage"]["held_backends"] == 1

        with caplog.at_level(logging.INFO, logger="maglev.reconcile.vantage"):
            out = rig.maglevc("guard", "release")
        assert out.strip() == "vantage guard released: 1 held drain(s) applied"
        wait_for("a1 drained", lambda: rig.weights() == {"10.0.0.1": 0, "10.0.0.2": 100})
        released = [r.getMessage() for r in caplog.records if "released by" in r.getMessage()]
        assert len(released) == 1 and "released by operator (uid " in released[0], released
        # VPP (in memory) has the weights before the turn that wrote them publishes its snapshot.
        wait_for("guard armed", lambda: rig.snap.vantage.state is GuardState.ARMED)
        assert rig.api.backend("a1")["drain_held_by"] is None
        out = rig.maglevc("guard", "release")
        assert out.strip() == "vantage guard not holding (state armed): nothing to release"
        assert json.loads(rig.maglevc("--json", "guard", "release")) == {
            "released": False, "state": "armed", "drains_applied": 0,
        }  # fmt: skip

        got = [q.get(timeout=10) for _ in range(2)]
        assert [(e["type"], e["state"]) for e in got] == [
            ("vantage", "holding"),
            ("vantage", "armed"),
        ]
        assert got[0]["held_backends"] == 0 and got[1]["applied_drains"] == 1
        assert got[1]["why"].startswith("released by operator (uid ")
        assert rig.snap.backends["a1"].state is BackendState.DOWN
    finally:
        unsubscribe()
