"""The reconciler's typed requests, reload status and counter timer, on the in-memory lb client.

Pure: the reconciler runs turn by turn on a manual clock against `MemoryLb` (no socket), so each
assertion is about exactly one turn. The same reconciler against the emulator over vpp-papi is
tested in `test_reconciler`.
"""

from __future__ import annotations

import ipaddress
import queue
import time
from typing import Any

import pytest

from maglev.clock import ManualClock
from maglev.config import load_text
from maglev.errors import InvalidRequest, MaglevError, NotFound
from maglev.model import Config, ProbeResult, ProbeTarget, Reason
from maglev.reconcile import events
from maglev.reconcile.port import NoAnswer, ReconcilerPort
from maglev.reconcile.reconciler import Reconciler
from maglev.vpp.lb import VipCounters
from maglev.vpp.memory import MemoryLb
from tests.rigs import NoStreams

TEXT = """
vpp:
  api-socket: /nonexistent/api.sock
  lb: {{ip4-src-address: 198.51.100.1, startup-min-delay: 0s, startup-max-delay: 0s,
        counters-interval: {counters}}}
healthchecks:
  hc: {{type: tcp, port: 80}}
backends:
  a1: {{address: 10.0.0.1, healthcheck: hc}}
  b1: {{address: 10.0.0.2, healthcheck: hc}}
frontends:
  www:
    address: 192.0.2.80
    protocol: tcp
    port: 80
    encap: gre4
    pools:
      - {{name: primary, backends: {{a1: {{weight: 100}}}}}}
      - {{name: backup, backends: {{b1: {{weight: 40}}}}}}
{extra}"""

WWW = (ipaddress.ip_network("192.0.2.80/32"), 6, 80)


def config(counters: str = "5s", extra: str = "") -> Config:
    return load_text(TEXT.format(counters=counters, extra=extra))


class Rig:
    def __init__(self, cfg: Config | None = None) -> None:
        self.clock = ManualClock()
        self.inbox: queue.Queue[Any] = queue.Queue()
        self.lb = MemoryLb()
        self.rec = Reconciler(cfg or config(), self.inbox, self.lb, NoStreams(), clock=self.clock)

    def probe(self, backend: str, ok: bool) -> None:
        b = self.rec.config.backends[backend]
        assert b.healthcheck is not None
        t = ProbeTarget(b.address, b.healthcheck)
        r = Reason.L4OK if ok else Reason.L4CON
        self.inbox.put(ProbeResult(t, ok, r, 0.001, "test", self.clock.monotonic()))

    def turn(self, advance: float = 0.0) -> None:
        self.clock.advance(advance)
        self.rec.turn()

    def weights(self) -> dict[str, int]:
        return {str(a): w for a, w in self.lb.tables[WWW].weights.items()}

    def ask(self, msg: Any) -> Any:
        self.inbox.put(msg)
        self.turn()
        return msg.reply.result(0)


def fail(r: Rig, backend: str, times: int = 3) -> None:
    """`times` failed probes, one per turn (a turn keeps only a target's latest result)."""
    for _ in range(times):
        r.probe(backend, False)
        r.turn()


def warm() -> Rig:
    r = Rig()
    r.probe("a1", True)
    r.probe("b1", True)
    r.turn()
    return r


def test_failover_on_the_memory_client() -> None:
    r = warm()
    assert r.weights() == {"10.0.0.1": 100, "10.0.0.2": 0}
    fail(r, "a1", 2)
    assert r.weights() == {"10.0.0.1": 100, "10.0.0.2": 0}  # fall is 3
    fail(r, "a1", 1)
    assert r.weights() == {"10.0.0.1": 0, "10.0.0.2": 40}
    assert not r.lb.refused


def test_operator_mistakes_are_project_errors() -> None:
    r = warm()
    with pytest.raises(NotFound, match="no backend named 'nope'"):
        r.ask(events.BackendAction("nope", "pause"))
    with pytest.raises(InvalidRequest, match="action: 'explode'"):
        r.ask(events.BackendAction("a1", "explode"))
    with pytest.raises(NotFound, match="no pool named 'nopool'"):
        r.ask(events.WeightOverride("www", "nopool", "a1", 5))
    with pytest.raises(InvalidRequest, match=r"weight: 101 is not in 0\.\.100"):
        r.ask(events.WeightOverride("www", "primary", "a1", 101))
    res = r.ask(events.BackendAction("a1", "pause"))
    assert res == events.ActionResult("a1", "paused", True)
    assert r.weights()["10.0.0.1"] == 0


def test_a_bug_answering_a_read_is_an_error_reply_and_the_loop_goes_on() -> None:
    r = warm()

    def broken() -> object:
        raise KeyError("a bug")

    r.lb.read = broken  # type: ignore[method-assign]
    with pytest.raises(MaglevError, match="internal error: KeyError"):
        r.ask(events.ReadLbState())
    del r.lb.read  # the real method again
    state = r.ask(events.ReadLbState())
    assert [v.key for v in state.vips] == [WWW]
    fail(r, "a1")
    assert r.weights()["10.0.0.2"] == 40  # still programming


def test_a_bug_while_changing_state_is_raised() -> None:
    r = warm()

    def broken(*_: object) -> None:
        raise KeyError("a bug in installing")

    r.rec._install_config = broken  # type: ignore[method-assign]
    msg = events.ApplyConfig(config(extra="metrics: {listen: '127.0.0.1:0'}\n"), "test", 1.0, 0, 0)
    r.inbox.put(msg)
    with pytest.raises(KeyError, match="a bug in installing"):
        r.turn()
    with pytest.raises(KeyError):
        msg.reply.result(0)  # the caller hears of it too


def test_reload_status_is_published_once_diffed() -> None:
    r = warm()
    same = events.ApplyConfig(config(), "SIGHUP", 10.0, time.perf_counter(), 0.1)
    status = r.ask(same)
    assert status.ok and status.changes == "none" and status.applied_seconds is None
    assert r.rec.snapshot.last_reload == status and r.rec.snapshot.reloads_ok == 0
    new = config(extra="health: {workers: 3}\n")
    status = r.ask(events.ApplyConfig(new, "file change", 20.0, time.perf_counter(), 0.2))
    assert status.ok and status.changes == "settings: health"
    assert status.restart_needed == ("health.workers",)
    snap = r.rec.snapshot
    assert snap.last_reload == status and snap.reloads_ok == 1 and snap.config is new
    assert snap.config_loaded_at == 20.0
    rejected = events.ReloadStatus(ok=False, at=30.0, why="SIGHUP", problems=("x: bad",))
    r.inbox.put(events.NoteReload(rejected))
    r.turn()
    snap = r.rec.snapshot
    assert snap.last_reload == rejected and snap.reloads_rejected == 1 and snap.config is new


def test_counters_are_read_on_their_timer_only() -> None:
    r = Rig(config(counters="5s"))
    key_counts = VipCounters(WWW, "ip4-gre4", (("first-packet", 3),))
    r.lb.counters = (key_counts,)
    r.probe("a1", True)
    r.probe("b1", True)
    r.turn()  # connects and full-syncs: the dump brings the counters along
    assert r.rec.snapshot.vip_counters == (key_counts,) and r.lb.counter_reads == 0
    r.turn(4.9)
    assert r.lb.counter_reads == 0
    newer = VipCounters(WWW, "ip4-gre4", (("first-packet", 9),))
    r.lb.counters = (newer,)
    r.turn(0.1)
    assert r.lb.counter_reads == 1 and r.rec.snapshot.vip_counters == (newer,)
    before = r.rec.snapshot.vip_counters_at
    for _ in range(3):  # readers only read the snapshot: no request reaches VPP
        assert r.rec.snapshot.vip_counters == (newer,)
    r.turn(1.0)
    assert r.lb.counter_reads == 1 and r.rec.snapshot.vip_counters_at == before
    r.turn(4.0)
    assert r.lb.counter_reads == 2


def test_counters_interval_zero_never_reads() -> None:
    r = Rig(config(counters="0s"))
    r.probe("a1", True)
    r.probe("b1", True)
    for _ in range(5):
        r.turn(10.0)
    assert r.lb.counter_reads == 0


def test_port_answers_and_times_out() -> None:
    r = warm()
    port = ReconcilerPort(r.inbox, lambda: r.rec.snapshot, timeout=0.05)
    assert port.snapshot is r.rec.snapshot and port.queue_depth() == 0
    with pytest.raises(NoAnswer):
        port.ask(events.SyncRequest())  # nobody turns the reconciler
    r.turn()
    msg = events.SyncRequest()
    r.inbox.put(msg)
    r.turn()
    assert msg.reply.result(0) == events.SyncResult(ok=True, connected=True)
