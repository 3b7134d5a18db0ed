"""The metrics server on a real loopback socket, over a real reconciler on the in-memory lb client.

A scrape reads the published snapshots only (no request to the reconciler, none to VPP), and
scrapes are served side by side: an idle connection holds one connection thread until its read
timeout, never the server.
"""

from __future__ import annotations

import queue
import socket
import threading
import time
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import pytest

from maglev.config import load_text
from maglev.daemon.info import DaemonInfo
from maglev.daemon.metrics import MaglevCollector, MetricsServer
from maglev.health.scheduler import Scheduler
from maglev.reconcile import events
from maglev.reconcile.port import ReconcilerPort
from maglev.reconcile.reconciler import Reconciler
from maglev.vpp.client import Applied, LbRead
from maglev.vpp.lb import Actual, LbConf, VipCounters
from maglev.vpp.memory import MemoryLb
from maglev.vpp.ops import Op
from maglev.vpp.papi import VersionInfo

pytestmark = pytest.mark.integration

TEXT = """
vpp:
  api-socket: /nonexistent/api.sock
  lb: {ip4-src-address: 198.51.100.1, startup-min-delay: 0s, startup-max-delay: 0s,
       counters-interval: 0s}
healthchecks:
  hc: {type: tcp, port: 80}
backends:
  a1: {address: 10.0.0.1, healthcheck: hc}
frontends:
  www:
    address: 192.0.2.80
    protocol: tcp
    port: 80
    encap: gre4
    pools: [{name: primary, backends: {a1: {weight: 100}}}]
"""


class CountingLb(MemoryLb):
    """Counts every call the reconciler makes to "VPP"."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0
        self.lock = threading.Lock()

    def _count(self) -> None:
        with self.lock:
            self.calls += 1

    def connect(self) -> VersionInfo:
        self._count()
        return super().connect()

    def read(self) -> LbRead:
        self._count()
        return super().read()

    def read_counters(self) -> tuple[VipCounters, ...]:
        self._count()
        return super().read_counters()

    def ensure_conf(self, conf: LbConf | None, lb: Any) -> bool:
        self._count()
        return super().ensure_conf(conf, lb)

    def apply(self, ops: Sequence[Op], actual: Actual) -> Applied:
        self._count()
        return super().apply(ops, actual)


class CountingPort(ReconcilerPort):
    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.sent = 0

    def send(self, msg: object, timeout: float = 5.0) -> None:
        self.sent += 1
        super().send(msg, timeout)


@dataclass
class Rig:
    lb: CountingLb
    port: CountingPort
    server: MetricsServer
    rec: Reconciler

    @property
    def url(self) -> str:
        host, port = self.server.address
        return f"http://{host}:{port}/metrics"


def make_rig(**server_kw: Any) -> Iterator[Rig]:
    cfg = load_text(TEXT)
    inbox: queue.Queue[Any] = queue.Queue()
    lb = CountingLb()
    scheduler = Scheduler(inbox, workers=1)
    stopping = threading.Event()
    rec = Reconciler(cfg, inbox, lb, scheduler, stopping=stopping)
    port = CountingPort(inbox, lambda: rec.snapshot, timeout=2.0)
    info = DaemonInfo("test", 1, time.time(), "/x.yaml", False, "/x.sock", False, None)
    collector = MaglevCollector(port, info, lambda: scheduler.snapshot(samples=False))
    server = MetricsServer(collector, "127.0.0.1:0", **server_kw)
    thread = threading.Thread(target=rec.run, name="maglev-reconciler", daemon=True)
    thread.start()
    server.start()
    try:
        deadline = time.monotonic() + 10
        while not (rec.snapshot.vpp_connected and rec.snapshot.last_sync_ok):
            assert time.monotonic() < deadline, "no first sync"
            time.sleep(0.01)
        yield Rig(lb, port, server, rec)
    finally:
        server.stop()
        stopping.set()
        inbox.put(events.Stop())
        thread.join(5)


@pytest.fixture
def rig() -> Iterator[Rig]:
    yield from make_rig(read_timeout=60.0)


def scrape(url: str, timeout: float = 10.0) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as r:
        assert r.status == 200
        return str(r.read().decode())


def test_scrapes_send_no_request_to_the_reconciler_or_vpp() -> None:
    # counters-interval 0s: the reconciler never reads counters on its own, so any read is a
    # scrape's doing; the reconciler thread runs, so a request a scrape sent would be answered.
    for r in make_rig():
        with r.lb.lock:
            calls, counter_reads = r.lb.calls, r.lb.counter_reads
        vpp_calls = r.lb.call_counts()
        sent = r.port.sent
        for _ in range(20):
            text = scrape(r.url)
            assert (
                'maglev_backend_weight_configured{backend="a1",frontend="www",pool="primary"}'
                in text
            )
        with r.lb.lock:
            assert (r.lb.calls, r.lb.counter_reads) == (calls, counter_reads)
        assert r.lb.call_counts() == vpp_calls
        assert r.port.sent == sent == 0


def test_the_probes_path_serves_the_probe_counters_alone(rig: Rig) -> None:
    every = scrape(rig.url)
    probes = scrape(rig.url + "/probes")
    names = {
        line.split("{")[0].split(" ")[0]
        for line in probes.splitlines()
        if line and not line.startswith("#")
    }
    assert "maglev_probe_lateness_seconds_bucket" in names
    assert 'maglev_probe_lateness_seconds_bucket{le="0.1"}' in probes
    assert names <= {
        "maglev_probes_total", "maglev_probes_created",
        *(f"maglev_probe_lateness_seconds{x}" for x in ("_bucket", "_count", "_sum", "_created")),
    }  # fmt: skip
    assert "maglev_backend_up" not in probes
    # /metrics has the same families, once each (the split does not duplicate them)
    assert every.count("# TYPE maglev_probe_lateness_seconds histogram") == 1
    assert "# TYPE maglev_probes" in every and "maglev_backend_up" in every


def test_an_idle_connection_does_not_block_other_scrapes(rig: Rig) -> None:
    host, port = rig.server.address
    with socket.create_connection((host, port), timeout=5) as idle:
        idle.sendall(b"GET /metr")  # a request started and never finished
        # the scrape's own 10 s timeout is the deadline, far below the server's 60 s read timeout
        text = scrape(rig.url, timeout=10.0)
        assert "maglev_backend_up" in text


def test_an_idle_connection_is_closed_after_the_read_timeout() -> None:
    for r in make_rig(read_timeout=0.3):
        host, port = r.server.address
        # the socket's 30 s timeout is the deadline (recv raises then); the server's is 0.3 s
        with socket.create_connection((host, port), timeout=30) as idle:
            assert idle.recv(100) == b""  # the server hung up
        assert "maglev_backend_up" in scrape(r.url)


def test_connections_beyond_the_cap_get_503_and_slots_come_back() -> None:
    for r in make_rig(read_timeout=60.0, max_connections=2):
        host, port = r.server.address
        idle = [socket.create_connection((host, port), timeout=5) for _ in range(2)]
        try:
            # accepted in order: both idle ones hold a slot before the third is accepted
            with socket.create_connection((host, port), timeout=5) as third:
                third.sendall(b"GET /metrics HTTP/1.0\r\n\r\n")
                assert third.recv(100).startswith(b"HTTP/1.0 503")
        finally:
            for s in idle:
                s.close()
        deadline = time.monotonic() + 10
        while True:  # the closed connections' threads end and give their slots back
            try:
                assert "maglev_backend_up" in scrape(r.url, timeout=5)
                break
            except (OSError, AssertionError):
                assert time.monotonic() < deadline
                time.sleep(0.05)
