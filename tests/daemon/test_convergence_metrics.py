"""The convergence histograms in a real scrape: `/metrics` on a loopback socket, over a
reconciler driven on a manual clock, parses with prometheus_client's own parser."""

from __future__ import annotations

import queue
import time
import urllib.request
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from maglev.cli.tables import status_text
from maglev.daemon.convergence import convergence_doc
from maglev.daemon.info import DaemonInfo
from maglev.daemon.metrics import MaglevCollector, MetricsServer
from maglev.health.scheduler import Scheduler
from maglev.reconcile.port import ReconcilerPort
from maglev.reconcile.snapshot import CONVERGENCE_BUCKETS, CONVERGENCE_STAGES
from tests.reconcile.test_convergence_reconciler import Rig

pytestmark = pytest.mark.integration


def scrape(rig: Rig) -> str:
    port = ReconcilerPort(rig.inbox, lambda: rig.rec.snapshot, timeout=2.0)
    info = DaemonInfo("test", 1, time.time(), "/x.yaml", False, "/x.sock", False, None)
    checks = Scheduler(queue.Queue(), workers=1)
    collector = MaglevCollector(port, info, lambda: checks.snapshot(samples=False))
    server = MetricsServer(collector, "127.0.0.1:0", read_timeout=10.0)
    server.start()
    try:
        host, p = server.address
        with urllib.request.urlopen(f"http://{host}:{p}/metrics", timeout=10.0) as r:
            assert r.status == 200
            return str(r.read().decode())
    finally:
        server.stop()


def test_metrics_parse_and_carry_the_convergence_histograms() -> None:
    rig = Rig()
    for name in ("a1", "a2", "b1"):
        rig.probe(name, True)
    rig.turn()
    for name in ("a1", "b1"):  # a1 is written; b1 (backup, weight 0) is not
        for _ in range(3):
            rig.clock.advance(1.0)
            rig.probe(name, False)
            rig.turn()

    families = {f.name: f for f in text_string_to_metric_families(scrape(rig))}
    hist = families["maglev_convergence_seconds"]
    assert hist.type == "histogram" and "detect" in hist.documentation
    count: dict[str, float] = {}
    buckets: dict[str, list[str]] = {}
    for s in hist.samples:
        stage = s.labels["stage"]
        if s.name.endswith("_count"):
            count[stage] = s.value
        elif s.name.endswith("_bucket"):
            buckets.setdefault(stage, []).append(s.labels["le"])
    assert count == {"queue": 2.0, "detect": 2.0, "write": 1.0, "total": 1.0}
    assert set(buckets) == set(CONVERGENCE_STAGES)
    assert len(buckets["total"]) == len(CONVERGENCE_BUCKETS) + 1  # and +Inf

    outcomes = families["maglev_convergence_transitions"]
    assert outcomes.type == "counter"
    by: dict[str, Any] = {
        s.labels["outcome"]: s.value for s in outcomes.samples if s.name.endswith("_total")
    }
    assert by == {"written": 1.0, "unwritten": 1.0, "dropped": 0.0}
    pending = families["maglev_convergence_pending"]
    assert pending.type == "gauge" and pending.samples[0].value == 0.0


def test_the_status_shows_the_last_convergences_stage_by_stage() -> None:
    rig = Rig()
    for name in ("a1", "a2", "b1"):
        rig.probe(name, True)
    rig.turn()
    for name in ("a1", "b1"):
        for _ in range(3):
            rig.clock.advance(1.0)
            rig.probe(name, False)
            rig.turn(queued=0.25)
            rig.clock.advance(-0.25)
    doc = convergence_doc(rig.rec.snapshot.convergence)
    assert {k: doc[k] for k in ("written", "unwritten", "dropped", "pending")} == {
        "written": 1, "unwritten": 1, "dropped": 0, "pending": 0,
    }  # fmt: skip
    a1, b1 = doc["recent"]
    assert (a1["backend"], a1["from"], a1["to"]) == ("a1", "up", "down")
    assert (a1["queue_ms"], a1["detect_ms"], a1["write_ms"], a1["total_ms"]) == (
        250.0, 2250.0, 4.0, 2254.0,
    )  # fmt: skip
    assert b1["backend"] == "b1" and b1["write_ms"] is None and b1["total_ms"] is None

    lines = status_text({"convergence": doc}).splitlines()
    assert lines[-2:] == [
        "converged  backend a1 up -> down: queue 250.0 ms, detect 2250.0 ms, write 4.0 ms,"
        " total 2254.0 ms",
        "converged  backend b1 up -> down: queue 250.0 ms, detect 2250.0 ms, no VPP write"
        " (unwritten)",
    ]
    assert "recent" not in "\n".join(lines[:-2])
