"""The reconciler against the emulator over its real socket, driven turn by turn with injected time.

Health events are the `ProbeResult`s check workers produce; the check scheduler is replaced by a
recorder (the reconciler only tells it which streams to run and at which interval).
"""

from __future__ import annotations

import ipaddress
import pathlib
import queue
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from maglev.clock import ManualClock
from maglev.config import load_text
from maglev.errors import NotFound
from maglev.health.state import Phase
from maglev.model import Config, ProbeResult, ProbeTarget, Reason
from maglev.reconcile import events
from maglev.reconcile.reconciler import Reconciler
from maglev.vpp import apidefs
from maglev.vpp.client import PapiLb
from maglev.vpp.papi import VppConnection
from maglev.vppsim import Emulator
from tests.rigs import Streams

pytestmark = pytest.mark.integration

BASE = """
vpp:
  api-socket: {sock}
  lb: {{ip4-src-address: 198.51.100.1, ip6-src-address: "2001:db8::1", sync-interval: 30s,
        startup-min-delay: 5s, startup-max-delay: 30s}}
healthchecks:
  hc: {{type: tcp, port: 80, interval: 1s, fast-interval: 500ms, down-interval: 5s, timeout: 500ms,
        rise: 2, fall: 2}}
backends:
  a1: {{address: 10.0.0.1, healthcheck: hc}}
  a2: {{address: 10.0.0.2, healthcheck: hc}}
  b1: {{address: 10.0.0.3, healthcheck: hc}}
  s1: {{address: 10.0.0.4}}
frontends:
  www:
    address: 192.0.2.80
    protocol: tcp
    port: 80
    encap: {encap}
    flush-on-down: {flush}
    pools:
      - {{name: primary, backends: {{a1: {{weight: 100}}, a2: {{weight: 50}}}}}}
      - {{name: backup, backends: {{b1: {{}}}}}}
  static:
    address: 192.0.2.81
    protocol: udp
    port: 53
    encap: gre4
    pools:
      - {{name: only, backends: {{s1: {{weight: 10}}}}}}
"""


def ops(emu: Emulator, name: str) -> list[dict[str, Any]]:
    """The emulator's record of `name` requests, with the AS address decoded."""
    out = []
    for o in emu.operations():
        if o.name != name:
            continue
        f = o.fields()
        if "as_address.un" in f:
            raw = f["as_address.un"]
            f["as_address"] = ipaddress.ip_address(raw[:4] if f["as_address.af"] == 0 else raw)
        out.append(f)
    return out


def apply_config(config: Config) -> events.ApplyConfig:
    return events.ApplyConfig(config, "test", at=0.0, started=time.perf_counter(), load_seconds=0)


class Harness:
    def __init__(
        self, emu: Emulator, files: list[str], config: Config, dry_run: bool = False
    ) -> None:
        self.emu = emu
        self.clock = ManualClock()
        self.inbox: queue.Queue[Any] = queue.Queue()
        self.streams = Streams()
        self.published: list[dict[str, Any]] = []
        self.ready: list[bool] = []
        self.conn = VppConnection(emu.socket_path, files, read_timeout=3)
        self.rec = Reconciler(
            config,
            self.inbox,
            PapiLb(self.conn),
            self.streams,
            publish=self.published.append,
            clock=self.clock,
            dry_run=dry_run,
            on_first_sync=lambda: self.ready.append(True),
        )

    def probe(self, backend: str, ok: bool, reason: Reason | None = None) -> None:
        b = self.rec.config.backends[backend]
        assert b.healthcheck is not None
        r = reason or (Reason.L4OK if ok else Reason.L4CON)
        t = ProbeTarget(b.address, b.healthcheck)
        self.inbox.put(ProbeResult(t, ok, r, 0.001, "test", self.clock.monotonic()))

    def turn(self, advance: float = 0.0) -> None:
        self.clock.advance(advance)
        self.rec.turn()

    def vpp(self) -> dict[tuple[str, int, int], dict[str, tuple[int, int]]]:
        """VPP's live tables as the emulator holds them: vip -> {as: (weight, buckets)}."""
        out: dict[tuple[str, int, int], dict[str, tuple[int, int]]] = {}
        conn = VppConnection(self.emu.socket_path, apidefs.bundled_api_files())
        conn.connect()
        try:
            from maglev.vpp.dumper import read_lb_state

            st = read_lb_state(conn)
        finally:
            conn.disconnect()
        for v in st.vips:
            out[(str(v.prefix), v.protocol, v.port)] = {}
        for a in st.ases:
            out[(str(a.vip[0]), a.vip[1], a.vip[2])][str(a.address)] = (a.weight, a.num_buckets)
        return out

    def weights(self, vip: str = "192.0.2.80/32") -> dict[str, int]:
        key = next(k for k in self.vpp() if k[0] == vip)
        return {a: w for a, (w, _) in self.vpp()[key].items()}

    def close(self) -> None:
        self.conn.disconnect()


def cfg(emu: Emulator, encap: str = "gre4", flush: bool = True, text: str = BASE) -> Config:
    return load_text(text.format(sock=emu.socket_path, encap=encap, flush=str(flush).lower()))


@pytest.fixture
def make(emu: Emulator, files: list[str]) -> Iterator[Callable[..., Harness]]:
    made: list[Harness] = []

    def f(config: Config | None = None, dry_run: bool = False) -> Harness:
        h = Harness(emu, files, config or cfg(emu), dry_run)
        made.append(h)
        return h

    yield f
    for h in made:
        h.close()


def warm(h: Harness, up: tuple[str, ...] = ("a1", "a2", "b1"), down: tuple[str, ...] = ()) -> None:
    """Probe every backend once and run past the startup delay."""
    for b in up:
        h.probe(b, True)
    for b in down:
        h.probe(b, False)
    h.turn()
    h.turn(5.0)


def test_startup_holds_writes_then_programs(make: Callable[..., Harness]) -> None:
    h = make()
    h.turn()
    assert h.rec.lb.connected and h.emu.write_count == 0  # connected and dumped, wrote nothing
    h.probe("a1", True)
    h.turn(1.0)
    assert h.emu.write_count == 0  # min delay not reached
    h.probe("a2", True)
    h.probe("b1", True)
    h.turn(4.0)
    assert h.weights() == {"10.0.0.1": 100, "10.0.0.2": 50, "10.0.0.3": 0}
    assert h.weights("192.0.2.81/32") == {"10.0.0.4": 10}  # no healthcheck: up
    assert h.ready == [True]
    st = h.rec.snapshot.frontends["www"]
    assert st.active_pool == "primary" and st.state.value == "up"


def test_held_frontend_released_at_max_delay(make: Callable[..., Harness]) -> None:
    h = make()
    h.probe("a1", True)
    h.turn(6.0)
    assert "static" in h.rec.gate.released and "www" not in h.rec.gate.released
    assert ("192.0.2.80/32", 6, 80) not in h.vpp()  # www still held: a2 and b1 unknown
    h.turn(25.0)  # past startup-max-delay
    assert h.weights() == {"10.0.0.1": 100, "10.0.0.2": 0, "10.0.0.3": 0}


def test_failover_to_backup_and_back_with_flush(make: Callable[..., Harness]) -> None:
    h = make()
    warm(h)
    for _ in range(2):  # fall = 2
        h.probe("a1", False)
        h.probe("a2", False)
        h.turn(0.5)
    assert h.weights() == {"10.0.0.1": 0, "10.0.0.2": 0, "10.0.0.3": 100}
    sets = ops(h.emu, "lb_as_set_weight")
    flushed = {str(o["as_address"]): o["is_flush"] for o in sets[-3:]}
    assert flushed == {"10.0.0.3": False, "10.0.0.1": True, "10.0.0.2": True}
    # The backup is raised before the primary goes to 0: never an all-drop table.
    assert str(sets[-3]["as_address"]) == "10.0.0.3"
    assert h.rec.snapshot.frontends["www"].active_pool == "backup"
    for _ in range(2):  # rise = 2
        h.probe("a1", True)
        h.turn(0.5)
    assert h.weights() == {"10.0.0.1": 100, "10.0.0.2": 0, "10.0.0.3": 0}
    kinds = [e["type"] for e in h.published]
    assert "backend" in kinds and "frontend" in kinds


def test_down_without_flush_on_down_drains(make: Callable[..., Harness], emu: Emulator) -> None:
    h = make(cfg(emu, flush=False))
    warm(h)
    h.probe("a2", False)
    h.turn(0.5)
    h.probe("a2", False)
    h.turn(0.5)
    last = ops(h.emu, "lb_as_set_weight")[-1]
    assert str(last["as_address"]) == "10.0.0.2"
    assert last["weight"] == 0 and not last["is_flush"]


def test_operator_pause_drains_and_disable_flushes(make: Callable[..., Harness]) -> None:
    h = make()
    warm(h)
    msg = events.BackendAction("a1", "pause")
    h.inbox.put(msg)
    h.turn()
    assert msg.reply.result(1).state == "paused"
    last = ops(h.emu, "lb_as_set_weight")[-1]
    assert (str(last["as_address"]), last["weight"], last["is_flush"]) == (
        "10.0.0.1",
        0,
        False,
    )
    assert ProbeTarget(ipaddress.ip_address("10.0.0.1"), "hc") not in h.streams.targets
    h.inbox.put(events.BackendAction("a2", "disable"))
    h.turn()
    last = ops(h.emu, "lb_as_set_weight")[-1]
    assert (str(last["as_address"]), last["weight"], last["is_flush"]) == (
        "10.0.0.2",
        0,
        True,
    )
    assert h.weights() == {"10.0.0.1": 0, "10.0.0.2": 0, "10.0.0.3": 100}
    h.inbox.put(events.BackendAction("a1", "resume"))
    h.turn()
    assert h.rec.health["a1"].state.value == "unknown"
    h.probe("a1", True)
    h.turn()
    assert h.weights()["10.0.0.1"] == 100
    bad = events.BackendAction("nope", "pause")
    h.inbox.put(bad)
    h.turn()
    with pytest.raises(NotFound, match="nope"):
        bad.reply.result(1)


def test_weight_override_and_clear(make: Callable[..., Harness]) -> None:
    h = make()
    warm(h)
    m = events.WeightOverride("www", "primary", "a2", 7)
    h.inbox.put(m)
    h.turn()
    assert m.reply.result(1).override == 7
    assert h.weights()["10.0.0.2"] == 7
    h.inbox.put(events.WeightOverride("www", "primary", "a2", None))
    h.turn()
    assert h.weights()["10.0.0.2"] == 50
    bad = events.WeightOverride("www", "nopool", "a2", 3)
    h.inbox.put(bad)
    h.turn()
    with pytest.raises(NotFound, match="nopool"):
        bad.reply.result(1)


def test_reload_removes_backend_and_frontend(make: Callable[..., Harness], emu: Emulator) -> None:
    h = make()
    warm(h)
    text = BASE.replace("  b1: {{address: 10.0.0.3, healthcheck: hc}}\n", "")
    text = text.replace("      - {{name: backup, backends: {{b1: {{}}}}}}\n", "")
    text = text[: text.index("  static:")]
    msg = apply_config(cfg(emu, text=text))
    h.inbox.put(msg)
    h.turn()
    assert msg.reply.result(1).ok
    assert list(h.vpp()) == [("192.0.2.80/32", 6, 80)]  # static deleted: maglev made it
    assert h.weights() == {"10.0.0.1": 100, "10.0.0.2": 50}
    dels = [o for o in ops(h.emu, "lb_add_del_as_v2") if o["is_del"]]
    assert {str(o["as_address"]) for o in dels} == {"10.0.0.3", "10.0.0.4"}
    assert all(o["is_flush"] for o in dels)
    # State of unchanged backends is kept across the reload.
    assert h.rec.health["a1"].state.value == "up"


def test_encap_change_recreates_vip(make: Callable[..., Harness], emu: Emulator) -> None:
    h = make()
    warm(h)
    h.inbox.put(apply_config(cfg(emu, encap="l3dsr\n    dscp: 10")))
    h.turn()
    assert h.weights() == {"10.0.0.1": 100, "10.0.0.2": 50, "10.0.0.3": 0}
    vips = ops(h.emu, "lb_add_del_vip_v2")
    assert [o["is_del"] for o in vips[-2:]] == [True, False]
    assert vips[-1]["encap"] == 2 and vips[-1]["dscp"] == 10


def test_vpp_restart_recreates_everything(
    make: Callable[..., Harness], emu: Emulator, tmp_path: pathlib.Path
) -> None:
    h = make()
    warm(h)
    before = h.vpp()
    emu.stop()
    deadline = time.monotonic() + 10  # vpp-papi's reader notices the closed socket on its own
    while h.rec.lb.connected and time.monotonic() < deadline:
        time.sleep(0.01)
    h.turn(1.0)
    assert not h.rec.lb.connected
    assert h.rec.snapshot.vpp_connected is False
    fresh = Emulator(emu.socket_path)
    fresh.start()
    try:
        h.emu = fresh
        for _ in range(6):  # reconnect backoff
            h.turn(1.0)
            if h.rec.lb.connected:
                break
        assert h.rec.lb.connected
        assert h.vpp() == before
        assert any(e["type"] == "vpp" and e["connected"] for e in h.published)
    finally:
        fresh.stop()


def test_restart_with_healthy_backends_writes_nothing(make: Callable[..., Harness]) -> None:
    first = make()
    warm(first)
    first.close()
    before = first.vpp()
    writes = first.emu.write_count
    second = make()  # a new maglevd against the same VPP
    warm(second)
    second.turn(30.0)  # and a periodic full sync
    assert second.emu.write_count == writes
    assert second.vpp() == before


def test_unmanaged_vip_is_left_alone(make: Callable[..., Harness]) -> None:
    h = make()
    other = VppConnection(h.emu.socket_path, apidefs.bundled_api_files())
    other.connect()
    other.call(
        "lb_add_del_vip_v2", pfx=ipaddress.ip_network("203.0.113.9/32"), protocol=6, port=443,
        encap=0, new_flows_table_length=1024,
    )  # fmt: skip
    other.disconnect()
    warm(h)
    assert ("203.0.113.9/32", 6, 443) in h.vpp()
    assert h.rec.snapshot.unmanaged == ((ipaddress.ip_network("203.0.113.9/32"), 6, 443),)


def test_dry_run_never_writes(make: Callable[..., Harness]) -> None:
    h = make(dry_run=True)
    warm(h)
    h.probe("a1", False)
    h.turn(0.5)
    assert h.emu.write_count == 0


def test_failed_write_is_retried(make: Callable[..., Harness]) -> None:
    h = make()
    warm(h)
    # Someone deletes an AS behind maglev's back; the targeted pass fails on it (-6) ...
    other = VppConnection(h.emu.socket_path, apidefs.bundled_api_files())
    other.connect()
    other.call(
        "lb_add_del_as_v2", pfx=ipaddress.ip_network("192.0.2.80/32"), protocol=6, port=80,
        as_address=ipaddress.ip_address("10.0.0.3"), is_del=True,
    )  # fmt: skip
    other.disconnect()
    for _ in range(2):
        h.probe("a1", False)
        h.probe("a2", False)
        h.turn(0.5)
    assert h.rec.snapshot.counters.ops_failed >= 1
    h.turn(3.0)  # ... and the retry sync re-reads VPP and repairs it
    assert h.weights() == {"10.0.0.1": 0, "10.0.0.2": 0, "10.0.0.3": 100}


def test_two_controllers_same_tables_any_order(tmp_path: pathlib.Path, files: list[str]) -> None:
    tables = []
    for order in (("a1", "a2", "b1"), ("b1", "a2", "a1")):
        emu = Emulator(str(tmp_path / f"api-{order[0]}.sock"))
        emu.start()
        try:
            h = Harness(emu, files, cfg(emu))
            for b in order:
                h.probe(b, True)
                h.turn(2.0)
            h.turn(5.0)
            h.probe("a1", False)
            h.turn(0.5)
            h.probe("a1", False)
            h.turn(0.5)
            vip = ipaddress.ip_network("192.0.2.80/32")
            tables.append(emu.bucket_table(str(vip), 6, 80))
            h.close()
        finally:
            emu.stop()
    assert tables[0] == tables[1]
    assert len(tables[0]) == 1024


def test_nat_frontend_target_port(make: Callable[..., Harness], emu: Emulator) -> None:
    text = BASE.replace("    encap: {encap}\n", "    encap: nat4\n    target-port: 8080\n")
    h = make(cfg(emu, text=text))
    warm(h)
    vip = [o for o in ops(h.emu, "lb_add_del_vip_v2") if o["port"] == 80][-1]
    assert vip["encap"] == 3 and vip["target_port"] == 8080
    assert h.weights() == {"10.0.0.1": 100, "10.0.0.2": 50, "10.0.0.3": 0}


def test_memory_hooks_and_shared_probe_targets(emu: Emulator, files: list[str]) -> None:
    """`on_config` runs once after each config is installed, at the end of the first turn that
    leaves nothing of it to write (off the reload's path to VPP), `on_idle` when a turn of the
    running thread left the queue empty; the scheduler gets the reconciler's own target objects, kept
    across a reload, so results find their backends by identity."""
    inbox: queue.Queue[Any] = queue.Queue()
    streams = Streams()
    installed: list[int] = []
    idle = threading.Event()
    conn = VppConnection(emu.socket_path, files, read_timeout=3)
    rec = Reconciler(
        cfg(emu), inbox, PapiLb(conn), streams,
        on_config=lambda: installed.append(1), on_idle=idle.set,
    )  # fmt: skip
    try:
        assert installed == []  # not while the config is being installed
        rec.turn()
        assert installed == [1] and not rec.full_due
        rec.turn()
        assert installed == [1]  # once per config
        keys = {id(t) for t in rec._by_target}
        assert {id(t) for t in streams.targets} == keys
        reload = apply_config(cfg(emu, flush=False))
        inbox.put(reload)
        rec.turn()
        assert reload.reply.result(1).ok and installed == [1, 1]
        assert {id(t) for t in rec._by_target} == keys  # same objects after the reload
        assert {id(t) for t in streams.targets} == keys
        thread = threading.Thread(target=rec.run, daemon=True)
        thread.start()
        b = rec.config.backends["a1"]
        assert b.healthcheck is not None
        inbox.put(ProbeResult(ProbeTarget(b.address, b.healthcheck), True, Reason.L4OK, 0.0, "", 0))
        assert idle.wait(5)
        inbox.put(events.Stop())
        thread.join(5)
        assert not thread.is_alive()
        assert rec.health["a1"].state.value == "up"
    finally:
        conn.disconnect()


def test_scheduler_hears_phase_changes_once_per_turn(make: Callable[..., Harness]) -> None:
    """Probe intervals follow the backends' phases: up (counter at the top), changing, down."""
    h = make()
    calls: list[dict[ProbeTarget, Phase]] = []
    record = h.streams.set_phases
    h.streams.set_phases = lambda p: (calls.append(dict(p)), record(p))[1]  # type: ignore[method-assign]
    warm(h)
    a1 = ProbeTarget(h.rec.config.backends["a1"].address, "hc")
    assert h.streams.phases[a1] is Phase.UP and len(calls) == 1  # one hand-off for the turn
    h.probe("a1", False)  # fall 2: one failure leaves it up, counter below the top
    h.turn()
    assert h.streams.phases[a1] is Phase.CHANGING
    h.probe("a1", False)
    h.turn()
    assert h.streams.phases[a1] is Phase.DOWN and h.rec.health["a1"].state.value == "down"
    n = len(calls)
    h.probe("a1", False)  # still down: no change, nothing sent
    h.turn()
    assert len(calls) == n
