"""The daemon's real handler (`DaemonApi`) behind the real `ControlServer` on a Unix socket.

A real `Reconciler` runs on its thread over `MemoryLb` (VPP's lb tables in memory), so each
status code comes from where it arises in the daemon: the router (404, 405), `DaemonApi`'s own
checks (404 for unknown names), the reconciler's errors mapped by `DaemonApi._ask` (404, 400,
502), and the `ReconcilerPort` when the reconciler cannot answer (503 queue full, 504 no
answer). Errors the reconciler never produces through these routes (InvalidRequest, a VPP
retval) come from a port that raises the port's real error types.
"""

from __future__ import annotations

import pathlib
import queue
import threading
from collections.abc import Iterator
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
from maglev.errors import InvalidRequest, MaglevError, NotFound, VppApiError, VppError
from maglev.reconcile import events
from maglev.reconcile.port import NoAnswer, Overloaded, ReconcilerPort
from maglev.reconcile.reconciler import Reconciler
from maglev.vpp.memory import MemoryLb
from tests.rigs import NoStreams

pytestmark = pytest.mark.integration

CONFIG = """
vpp:
  api-socket: /nonexistent/api.sock
  lb: {ip4-src-address: 198.51.100.1, startup-min-delay: 0s, startup-max-delay: 0s}
healthchecks:
  hc: {type: tcp, port: 80}
backends:
  a1: {address: 10.0.0.1, healthcheck: hc}
  b1: {address: 10.0.0.2, healthcheck: hc}
frontends:
  www:
    address: 192.0.2.80
    protocol: tcp
    port: 80
    encap: gre4
    pools:
      - {name: primary, backends: {a1: {weight: 100}}}
      - {name: backup, backends: {b1: {weight: 40}}}
"""


class Daemon:
    """A reconciler (running or not) and DaemonApi behind a ControlServer on a Unix socket."""

    def __init__(
        self,
        tmp: pathlib.Path,
        lb: MemoryLb,
        *,
        run: bool = True,
        inbox: queue.Queue[Any] | None = None,
        timeout: float = 30.0,
        port: ReconcilerPort | None = None,
        synced: bool = True,
    ) -> None:
        self.lb = lb
        self.inbox: queue.Queue[Any] = inbox if inbox is not None else queue.Queue()
        self.stopping = threading.Event()
        self.rec = Reconciler(
            load_text(CONFIG), self.inbox, lb, NoStreams(), stopping=self.stopping
        )
        self.port = port or ReconcilerPort(self.inbox, lambda: self.rec.snapshot, timeout)
        info = DaemonInfo("test", 1, 0.0, "/etc/maglev.yaml", False, "/nonexistent", False, None)
        self.api = DaemonApi(self.port, EventBus(), info, lambda why: events.ReloadStatus(ok=True))
        self.path = str(tmp / "ctl.sock")
        self.server = ControlServer(self.api, self.path)
        self.server.start()
        self.thread: threading.Thread | None = None
        self.client = ControlClient(self.path, timeout=10)
        if run:
            self.thread = threading.Thread(target=self.rec.run, name="test-reconciler")
            self.thread.start()
        if run and synced:
            try:  # answered after a full sync: VPP (in memory) is programmed
                assert self.port.ask(events.SyncRequest(), 10) == events.SyncResult(True, True)
            except BaseException:
                self.stop()
                raise

    def error(self, method: str, path: str, body: Any = None) -> str:
        with pytest.raises(ControlError) as e:
            self.client.request(method, path, body)
        return str(e.value)

    def stop(self) -> None:
        self.server.stop()
        self.stopping.set()
        if self.thread is not None:
            self.inbox.put(events.Stop())  # wakes it now, not at its next timeout
            self.thread.join(10)
            assert not self.thread.is_alive()


@pytest.fixture
def daemon(tmp_path: pathlib.Path) -> Iterator[Daemon]:
    d = Daemon(tmp_path, MemoryLb())
    yield d
    d.stop()


def test_reads_and_writes_answer_200(daemon: Daemon) -> None:
    c = daemon.client
    assert c.request("GET", "/v1/status")["vpp"]["connected"] is True
    fe = c.request("GET", "/v1/frontends/www")
    assert (fe["name"], fe["encap"], [b["name"] for b in fe["backends"]]) == (
        "www", "gre4", ["a1", "b1"],
    )  # fmt: skip
    assert c.request("POST", "/v1/backends/a1/pause") == {
        "backend": "a1", "state": "paused", "changed": True,
    }  # fmt: skip
    path = "/v1/frontends/www/pools/primary/backends/a1/weight"
    assert c.request("PUT", path, {"weight": 7})["override"] == 7
    assert c.request("DELETE", path)["override"] is None
    assert c.request("POST", "/v1/sync") == {"ok": True, "connected": True}


@pytest.mark.parametrize(
    ("method", "path", "body", "expected"),
    [
        ("GET", "/v1/frontends/nope", None, "no frontend named 'nope' (HTTP 404)"),
        ("GET", "/v1/backends/nope", None, "no backend named 'nope' (HTTP 404)"),
        ("POST", "/v1/backends/nope/pause", None, "no backend named 'nope' (HTTP 404)"),
        (
            "PUT", "/v1/frontends/nope/pools/primary/backends/a1/weight", {"weight": 1},
            "no frontend named 'nope' (HTTP 404)",
        ),
        (
            "PUT", "/v1/frontends/www/pools/nopool/backends/a1/weight", {"weight": 1},
            "frontend 'www' has no pool named 'nopool' (HTTP 404)",
        ),
        (
            "DELETE", "/v1/frontends/www/pools/primary/backends/b1/weight", None,
            "pool 'primary' of frontend 'www' has no backend 'b1' (HTTP 404)",
        ),
        (
            "PUT", "/v1/frontends/www/pools/primary/backends/a1/weight", {"weight": 101},
            "weight: 101 is not an integer in 0..100 (HTTP 400)",
        ),
    ],
)  # fmt: skip
def test_the_reconcilers_refusals_keep_their_status(
    daemon: Daemon, method: str, path: str, body: Any, expected: str
) -> None:
    assert daemon.error(method, path, body) == expected


def test_a_bad_event_filter_is_400(daemon: Daemon) -> None:
    with pytest.raises(ControlError) as e:
        next(iter(daemon.client.events({"level": "loud"})))
    assert str(e.value).startswith("level: 'loud' is not one of debug, ")
    assert str(e.value).endswith("(HTTP 400)")


def test_vpp_unreachable_is_502(tmp_path: pathlib.Path) -> None:
    lb = MemoryLb()
    lb.reachable = False
    d = Daemon(tmp_path, lb, synced=False)
    try:
        assert d.error("GET", "/v1/vpp/lb/state") == "VPP: not connected to VPP (HTTP 502)"
        assert d.error("GET", "/v1/vpp/lb/counters") == "VPP: not connected to VPP (HTTP 502)"
        assert d.client.request("POST", "/v1/sync") == {"ok": False, "connected": False}
    finally:
        d.stop()


def test_a_full_reconciler_queue_is_503(tmp_path: pathlib.Path) -> None:
    inbox: queue.Queue[Any] = queue.Queue(maxsize=1)
    inbox.put(events.SyncRequest())  # nobody drains it: the reconciler does not run
    d = Daemon(tmp_path, MemoryLb(), run=False, inbox=inbox, timeout=0.05)
    try:
        expected = "the reconciler is overloaded (queue full); try again (HTTP 503)"
        assert d.error("POST", "/v1/sync") == expected
        assert d.error("POST", "/v1/backends/a1/pause") == expected
    finally:
        d.stop()


def test_a_reconciler_that_does_not_answer_is_504(tmp_path: pathlib.Path) -> None:
    d = Daemon(tmp_path, MemoryLb(), run=False, timeout=0.05)
    try:
        expected = "the reconciler did not answer in time (HTTP 504)"
        assert d.error("POST", "/v1/sync") == expected
        assert d.error("GET", "/v1/vpp/lb/state") == expected
    finally:
        d.stop()


class RaisingPort(ReconcilerPort):
    """A real (idle) reconciler's snapshot, but every request fails with the given error."""

    def __init__(self, error: Exception) -> None:
        rec = Reconciler(load_text(CONFIG), queue.Queue(), MemoryLb(), NoStreams())
        super().__init__(queue.Queue(), lambda: rec.snapshot)
        self.error = error

    def ask(self, msg: Any, timeout: float | None = None) -> Any:
        raise self.error


@pytest.mark.parametrize(
    ("error", "status", "message"),
    [
        (InvalidRequest("action: 'explode' is not one of pause"), 400, "action: 'explode' is not one of pause"),
        (NotFound("no backend named 'x'"), 404, "no backend named 'x'"),
        (VppError("connection lost"), 502, "VPP: connection lost"),
        (VppApiError("lb_as_set_weight", -6), 502, "retval -6 (NO_SUCH_ENTRY)"),
        (Overloaded("the reconciler is overloaded (queue full); try again"), 503, "overloaded"),
        (NoAnswer("the reconciler did not answer in time"), 504, "did not answer"),
    ],
)  # fmt: skip
def test_port_errors_map_to_status_codes(
    tmp_path: pathlib.Path, error: Exception, status: int, message: str
) -> None:
    d = Daemon(tmp_path, MemoryLb(), run=False, port=RaisingPort(error))
    try:
        got = d.error("POST", "/v1/backends/a1/pause")
        assert got.endswith(f"(HTTP {status})") and message in got, got
    finally:
        d.stop()


def test_a_bug_reply_from_the_reconciler_is_one_500(
    tmp_path: pathlib.Path, caplog: pytest.LogCaptureFixture
) -> None:
    bug = MaglevError("internal error: KeyError('a bug')")  # the reconciler's reply to a bug
    d = Daemon(tmp_path, MemoryLb(), run=False, port=RaisingPort(bug))
    try:
        with caplog.at_level("ERROR", logger="maglev.daemon"):
            assert d.error("GET", "/v1/vpp/lb/state") == "internal error: MaglevError (HTTP 500)"
    finally:
        d.stop()
    tracebacks = [r for r in caplog.records if r.exc_info]
    assert len(tracebacks) == 1, caplog.text


def test_vpp_lb_state_names_the_encap(daemon: Daemon) -> None:
    state = daemon.client.request("GET", "/v1/vpp/lb/state")
    assert [(v["prefix"], v["encap"]) for v in state["vips"]] == [("192.0.2.80/32", "gre4")]
    r = CliRunner().invoke(cli, ["--socket", daemon.path, "show", "vpp", "lb", "state"])
    assert r.exit_code == 0, r.output
    rows = [line.split() for line in r.output.splitlines()]
    assert rows[0][:2] == ["VIP", "ENCAP"]
    vip_rows = [row for row in rows[1:] if row and row[0] == "192.0.2.80/32"]
    assert vip_rows and all(row[2] == "gre4" for row in vip_rows), r.output
