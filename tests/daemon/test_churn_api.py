"""The churn preview as operators reach it: `POST /v1/config/check`, the `?dry-run=1` operator
writes and their 4xx, `maglevc … --dry-run`, the INFO line of an applied plan and the
`maglev_frontend_buckets_moved_total` metric. A real `Reconciler` on its thread over `MemoryLb`,
behind the real `DaemonApi` and `ControlServer` on a Unix socket."""

from __future__ import annotations

import ipaddress
import logging
import pathlib
import queue
import threading
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from click.testing import CliRunner

from maglev.cli.client import ControlClient, ControlError
from maglev.cli.maglevc import cli
from maglev.config import load_text
from maglev.daemon.api import DaemonApi
from maglev.daemon.bus import EventBus
from maglev.daemon.control import ControlServer
from maglev.daemon.info import DaemonInfo
from maglev.daemon.metrics import MaglevCollector
from maglev.reconcile import events
from maglev.reconcile.port import ReconcilerPort
from maglev.reconcile.reconciler import Reconciler
from maglev.vpp.memory import MemoryLb
from tests.rigs import NoStreams

pytestmark = pytest.mark.integration

CONFIG = """
vpp:
  api-socket: /nonexistent/api.sock
  lb: {{ip4-src-address: 198.51.100.1, startup-min-delay: 0s, startup-max-delay: 0s}}
backends:
  web1: {{address: 10.0.0.1}}
  web2: {{address: 10.0.0.2}}
  web3: {{address: 10.0.0.3}}
frontends:
  www:
    address: 192.0.2.80
    protocol: tcp
    port: 80
    encap: gre4
    flow-table-length: 1024
    pools:
      - {{name: primary, backends: {{web1: {{weight: 100}}, web2: {{weight: {w2}}}}}}}
      - {{name: backup, backends: {{web3: {{weight: 100}}}}}}
"""
WWW = "192.0.2.80/32"


class Daemon:
    def __init__(self, tmp: pathlib.Path) -> None:
        self.lb = MemoryLb()
        self.inbox: queue.Queue[Any] = queue.Queue()
        self.stopping = threading.Event()
        self.rec = Reconciler(
            load_text(CONFIG.format(w2=100)), self.inbox, self.lb, NoStreams(),
            stopping=self.stopping,
        )  # fmt: skip
        self.port = ReconcilerPort(self.inbox, lambda: self.rec.snapshot, 30.0)
        info = DaemonInfo("test", 1, 0.0, "/etc/maglev.yaml", False, "/nonexistent", False, None)
        self.api = DaemonApi(self.port, EventBus(), info, lambda why: events.ReloadStatus(ok=True))
        self.path = str(tmp / "ctl.sock")
        self.server = ControlServer(self.api, self.path)
        self.server.start()
        self.client = ControlClient(self.path, timeout=10)
        self.thread = threading.Thread(target=self.rec.run, name="test-reconciler")
        self.thread.start()
        # Answered after the startup gate's release and the full sync that programs it.
        assert self.port.ask(events.SyncRequest(), 10) == events.SyncResult(True, True)

    def weights(self) -> dict[str, int]:
        st = self.lb.read().state
        return {str(a.address): a.weight for a in st.ases if str(a.vip[0]) == WWW}

    def error(self, method: str, path: str, body: Any = None) -> str:
        with pytest.raises(ControlError) as e:
            self.client.request(method, path, body)
        return str(e.value)

    def maglevc(self, *args: str) -> Any:
        return CliRunner().invoke(cli, ["--socket", self.path, *args])

    def stop(self) -> None:
        self.server.stop()
        self.stopping.set()
        self.inbox.put(events.Stop())
        self.thread.join(10)
        assert not self.thread.is_alive()


@pytest.fixture
def daemon(tmp_path: pathlib.Path) -> Iterator[Daemon]:
    d = Daemon(tmp_path)
    yield d
    d.stop()


def test_config_check_replies_with_the_churn(daemon: Daemon, tmp_path: pathlib.Path) -> None:
    r = daemon.client.request("POST", "/v1/config/check", {"config": CONFIG.format(w2=0)})
    assert r["valid"] is True and r["plan"]
    assert r["churn_summary"] == "churn: 1 frontend, 512 of 1024 buckets move (50.0%)"
    (doc,) = r["churn"]
    assert {k: doc[k] for k in ("frontend", "change", "buckets", "moved", "share")} == {
        "frontend": "www", "change": "update", "buckets": 1024, "moved": 512, "share": 0.5,
    }  # fmt: skip
    assert doc["backends"] == [
        {"name": "web1", "gained": 512, "lost": 0},
        {"name": "web2", "gained": 0, "lost": 512},
    ]
    assert doc["capacity"] == {"before": 100.0, "after": 50.0}
    assert doc["text"] == (
        "www: 50.0% of buckets move (512/1024); web1 +512, web2 -512; capacity 100% -> 50%"
    )
    path = tmp_path / "candidate.yaml"
    path.write_text(CONFIG.format(w2=0))
    out = daemon.maglevc("config", "check", str(path))
    assert out.exit_code == 0, out.output
    assert "churn: 1 frontend, 512 of 1024 buckets move (50.0%)" in out.output
    assert f"  {doc['text']}" in out.output.splitlines()
    unchanged = daemon.client.request("POST", "/v1/config/check", {"config": CONFIG.format(w2=100)})
    assert unchanged["churn"] == [] and unchanged["churn_summary"].endswith("buckets move")


def test_dry_runs_change_nothing_and_show_the_plan(daemon: Daemon) -> None:
    c = daemon.client
    before = daemon.weights()
    r = c.request("POST", "/v1/backends/web2/pause?dry-run=1")
    assert {k: r[k] for k in ("backend", "state", "changed", "dry_run")} == {
        "backend": "web2", "state": "paused", "changed": True, "dry_run": True,
    }  # fmt: skip
    assert r["plan"] == [f"set weight {WWW} tcp:80 10.0.0.2 weight 0"]
    assert r["churn"][0]["moved"] == 512
    path = "/v1/frontends/www/pools/primary/backends/web1/weight"
    r = c.request("PUT", path + "?dry-run=true", {"weight": 50})
    assert (r["override"], r["dry_run"], r["churn"][0]["capacity"]) == (
        50, True, {"before": 100.0, "after": 75.0},
    )  # fmt: skip
    r = c.request("DELETE", path + "?dry-run=1")
    assert (r["override"], r["plan"], r["churn"]) == (None, [], [])
    assert c.request("GET", "/v1/backends/web2")["state"] == "up"
    assert c.request("GET", "/v1/frontends/www")["backends"][0]["override"] is None
    assert daemon.weights() == before
    # ?dry-run=0 is the real thing.
    assert c.request("POST", "/v1/backends/web2/pause?dry-run=0")["state"] == "paused"
    assert daemon.weights()["10.0.0.2"] == 0


@pytest.mark.parametrize(
    ("method", "path", "body", "expected"),
    [
        (
            "POST", "/v1/backends/web1/pause?dry-run=maybe", None,
            "dry-run: 'maybe' is not one of 1, true, yes, 0, false, no (HTTP 400)",
        ),
        ("POST", "/v1/sync?dry-run=1", None, "dry-run: not supported by POST /v1/sync (HTTP 400)"),
        (
            "POST", "/v1/config/check?dry-run=1", {"config": ""},
            "dry-run: not supported by POST /v1/config/check (HTTP 400)",
        ),
        ("POST", "/v1/backends/nope/pause?dry-run=1", None, "no backend named 'nope' (HTTP 404)"),
        (
            "PUT", "/v1/frontends/www/pools/primary/backends/web1/weight?dry-run=1",
            {"weight": 101}, "weight: 101 is not an integer in 0..100 (HTTP 400)",
        ),
        (
            "PUT", "/v1/frontends/www/pools/primary/backends/web3/weight?dry-run=1",
            {"weight": 1}, "pool 'primary' of frontend 'www' has no backend 'web3' (HTTP 404)",
        ),
    ],
)  # fmt: skip
def test_bad_dry_runs_are_4xx(
    daemon: Daemon, method: str, path: str, body: Any, expected: str
) -> None:
    ops = daemon.rec.snapshot.counters.ops_ok
    assert daemon.error(method, path, body) == expected
    assert daemon.port.ask(events.SyncRequest(), 10).ok
    assert daemon.rec.snapshot.counters.ops_ok == ops  # nothing was written


def test_maglevc_dry_runs(daemon: Daemon) -> None:
    out = daemon.maglevc("set", "backend", "web1", "pause", "--dry-run")
    assert out.exit_code == 0, out.output
    lines = out.output.splitlines()
    assert lines[0] == "dry run: pause web1 -> paused; plan: 1 ops (set_weight 1)"
    assert lines[1] == f"  set weight {WWW} tcp:80 10.0.0.1 weight 0"
    assert lines[2] == "churn: 1 frontend, 512 of 1024 buckets move (50.0%)"
    assert lines[3].startswith("  www: 50.0% of buckets move (512/1024); web2 +512, web1 -512")
    out = daemon.maglevc(
        "--json", "set", "frontend", "www", "pool", "primary", "backend", "web1", "weight", "0",
        "--dry-run",
    )  # fmt: skip
    assert out.exit_code == 0, out.output
    assert '"dry_run": true' in out.output and '"moved": 512' in out.output
    assert daemon.weights() == {"10.0.0.1": 100, "10.0.0.2": 100, "10.0.0.3": 0}


def _moved_metric(daemon: Daemon) -> dict[str, float]:
    port: Any = SimpleNamespace(snapshot=daemon.rec.snapshot, queue_depth=lambda: 0)
    info = SimpleNamespace(vpp_socket="x")
    collector = MaglevCollector(port, info, lambda: SimpleNamespace(  # type: ignore[arg-type]
        probes={}, lateness_buckets=[], lateness_count=0, lateness_sum=0.0, dropped_results=0,
        streams=0,
    ))  # fmt: skip
    for family in collector.collect():
        if family.name == "maglev_frontend_buckets_moved":
            return {
                s.labels["frontend"]: s.value for s in family.samples if s.name.endswith("_total")
            }
    raise AssertionError("no maglev_frontend_buckets_moved")


def test_an_applied_plan_logs_its_churn_and_counts_it(
    daemon: Daemon, caplog: pytest.LogCaptureFixture
) -> None:
    first = _moved_metric(daemon)
    assert first == {"www": 1024.0}  # the first sync filled the table
    with caplog.at_level(logging.INFO, logger="maglev.reconcile.churn"):
        daemon.client.request("POST", "/v1/backends/web2/pause")
        assert daemon.port.ask(events.SyncRequest(), 10).ok
    lines = [r.getMessage() for r in caplog.records if r.name == "maglev.reconcile.churn"]
    assert lines == ["www: 50.0% of buckets move; web1 +512, web2 -512"]
    assert _moved_metric(daemon) == {"www": 1536.0}
    assert ipaddress.ip_address("10.0.0.2") not in {
        a.address for a in daemon.lb.read().state.ases if a.weight
    }


def test_maglevd_dry_run_logs_the_churn_and_writes_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    lb = MemoryLb()
    rec = Reconciler(load_text(CONFIG.format(w2=100)), queue.Queue(), lb, NoStreams(), dry_run=True)
    with caplog.at_level(logging.INFO, logger="maglev.reconcile.churn"):
        rec.turn()  # the first full sync: the whole frontend would be created
    lines = [r.getMessage() for r in caplog.records if r.name == "maglev.reconcile.churn"]
    assert lines == ["dry run: www (new): 100.0% of buckets move; web1 +512, web2 +512"]
    assert lb.read().state.vips == ()
    assert rec.snapshot.counters.buckets_moved == {}  # nothing really moved
