"""Operator state in the reconciler, turn by turn on a manual clock over `MemoryLb`: time boxes
expire by themselves (in order, waking the loop), every change reaches the state file before it
is applied, a restart from the file writes nothing new to VPP, and a reload that removes a
backend drops its state loudly."""

from __future__ import annotations

import ipaddress
import logging
import pathlib
import queue
import time
from typing import Any

import pytest

from maglev.clock import ManualClock
from maglev.config import load_text
from maglev.errors import InvalidRequest
from maglev.model import Config, ProbeResult, ProbeTarget, Reason
from maglev.reconcile import events, statefile
from maglev.reconcile.opstate import TimeBox
from maglev.reconcile.reconciler import Reconciler
from maglev.reconcile.statefile import StateFileError
from maglev.vpp.memory import MemoryLb
from maglev.vpp.ops import SetWeight
from tests.rigs import NoStreams

CONFIG = """
vpp:
  api-socket: /nonexistent/api.sock
  lb: {ip4-src-address: 198.51.100.1, startup-min-delay: 0s, startup-max-delay: 10s,
       counters-interval: 0s, sync-interval: 1h}
healthchecks:
  hc: {type: tcp, port: 80, rise: 1, fall: 1}
backends:
  a1: {address: 10.0.0.1, healthcheck: hc}
  a2: {address: 10.0.0.2, healthcheck: hc}
frontends:
  www:
    address: 192.0.2.80
    protocol: tcp
    port: 80
    encap: gre4
    min-healthy: 0
    pools: [{name: primary, backends: {a1: {}, a2: {weight: 50}}}]
"""
WWW = (ipaddress.ip_network("192.0.2.80/32"), 6, 80)


class Rig:
    def __init__(self, path: pathlib.Path, lb: MemoryLb | None = None, start: float = 0.0) -> None:
        self.path = path
        self.clock = ManualClock(start)
        self.inbox: queue.Queue[Any] = queue.Queue()
        self.lb = lb or MemoryLb()
        self.published: list[dict[str, Any]] = []
        self.rec = Reconciler(
            load_text(CONFIG), self.inbox, self.lb, NoStreams(),
            publish=self.published.append, clock=self.clock,
            state=statefile.load(str(path)), state_file=str(path),
        )  # fmt: skip

    def probe(self, name: str, ok: bool = True) -> None:
        t = ProbeTarget(ipaddress.ip_address(f"10.0.0.{name[-1]}"), "hc")
        r = Reason.L4OK if ok else Reason.L4CON
        self.inbox.put(ProbeResult(t, ok, r, 0.001, "test", self.clock.monotonic()))

    def turn(self, advance: float = 0.0) -> None:
        self.clock.advance(advance)
        self.rec.turn()

    def ask(self, msg: Any) -> Any:
        self.inbox.put(msg)
        self.turn()
        return msg.reply.result(0)

    def weights(self) -> dict[str, int]:
        return {str(a): w for a, w in self.lb.tables[WWW].weights.items()}

    def state(self, name: str) -> str:
        return self.rec.health[name].state.value

    def saved(self) -> list[dict[str, Any]]:
        loaded = statefile.load(str(self.path))
        assert loaded is not None
        return [statefile.to_doc(loaded, 0)["holds"][i] for i in range(len(loaded.holds))]

    def expired(self) -> list[str]:
        return [e["what"] for e in self.published if e["type"] == "override_expired"]


def up(r: Rig) -> None:
    r.probe("a1")
    r.probe("a2")
    r.turn()


def test_a_time_boxed_pause_ends_by_itself_on_the_clock(
    tmp_path: pathlib.Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="maglev.reconcile.holds")
    r = Rig(tmp_path / "state.json")
    up(r)
    assert r.weights() == {"10.0.0.1": 100, "10.0.0.2": 50}
    box = TimeBox(for_seconds=30.0, comment="ticket 123", by="operator (uid 0)")
    res = r.ask(events.BackendAction("a1", "pause", box=box))
    assert (res.state, res.expires) == ("paused", r.clock.wall() + 30)
    assert r.weights()["10.0.0.1"] == 0
    (saved,) = r.saved()
    assert saved["value"] == "paused" and saved["comment"] == "ticket 123"
    assert saved["by"] == "operator (uid 0)" and saved["expires"] == r.clock.wall() + 30
    # The loop wakes for the expiry (nothing else is due within the hour).
    assert r.rec._next_deadline() == pytest.approx(r.clock.monotonic() + 30)
    r.turn(29.9)
    assert r.state("a1") == "paused" and r.expired() == []
    r.turn(0.2)
    assert r.state("a1") == "unknown"  # resumed: a fresh probe decides
    assert r.expired() == ["backend a1 paused"]
    assert r.saved() == []
    assert any("backend a1 paused expired" in x.getMessage() for x in caplog.records)
    r.probe("a1")
    r.turn()
    assert r.weights()["10.0.0.1"] == 100


def test_expiries_come_in_order_and_an_override_returns_to_the_config_weight(
    tmp_path: pathlib.Path,
) -> None:
    r = Rig(tmp_path / "state.json")
    up(r)
    until = r.clock.wall() + 10
    r.ask(events.WeightOverride("www", "primary", "a2", 7, box=TimeBox(until=until)))
    r.ask(events.BackendAction("a1", "disable", box=TimeBox(for_seconds=5.0)))
    assert r.weights() == {"10.0.0.1": 0, "10.0.0.2": 7}
    assert r.rec._next_deadline() == pytest.approx(r.clock.monotonic() + 5)
    r.turn(60)  # both are due in one turn: the earlier first
    assert r.expired() == ["backend a1 disabled", "frontend www pool primary backend a2 weight 7"]
    assert r.weights()["10.0.0.2"] == 50
    assert r.state("a1") == "unknown" and r.saved() == []
    assert r.rec.snapshot.opstate.holds == ()


def test_bad_time_boxes_are_refused_and_change_nothing(tmp_path: pathlib.Path) -> None:
    r = Rig(tmp_path / "state.json")
    up(r)
    cases: list[tuple[Any, str]] = [
        (events.BackendAction("a1", "resume", box=TimeBox(for_seconds=5.0)), "^for: only pause"),
        (events.BackendAction("a1", "pause", box=TimeBox(until=r.clock.wall())), "^until: .*past"),
        (events.WeightOverride("www", "primary", "a2", None, box=TimeBox(comment="x")),
         "^comment: clearing"),
    ]  # fmt: skip
    for msg, match in cases:
        r.inbox.put(msg)
        r.turn()
        with pytest.raises(InvalidRequest, match=match):
            msg.reply.result(0)
    assert r.state("a1") == "up" and r.weights() == {"10.0.0.1": 100, "10.0.0.2": 50}
    assert not (tmp_path / "state.json").exists()


def test_a_failed_write_answers_with_an_error_and_changes_nothing(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    r = Rig(tmp_path / "state.json")
    up(r)
    r.ask(events.WeightOverride("www", "primary", "a2", 7))

    def broken(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(statefile.os, "fsync", broken)
    for msg in (
        events.BackendAction("a1", "pause"),
        events.WeightOverride("www", "primary", "a2", None),
    ):
        r.inbox.put(msg)
        r.turn()
        with pytest.raises(StateFileError, match="No space left on device"):
            msg.reply.result(0)
    assert r.state("a1") == "up" and r.weights() == {"10.0.0.1": 100, "10.0.0.2": 7}
    assert len(r.rec.opstate.holds) == 1 and len(r.saved()) == 1


def test_a_restart_from_the_file_keeps_it_all_and_writes_no_weight(
    tmp_path: pathlib.Path,
) -> None:
    path = tmp_path / "state.json"
    r = Rig(path)
    up(r)
    r.ask(events.BackendAction("a1", "pause", box=TimeBox(comment="drain for kernel")))
    r.ask(events.WeightOverride("www", "primary", "a2", 7, box=TimeBox(for_seconds=3600.0)))
    assert r.weights() == {"10.0.0.1": 0, "10.0.0.2": 7}
    before = len(r.lb.applied)
    # A new maglevd, 10 minutes later, over the same VPP: paused from its very first pass.
    r2 = Rig(path, lb=r.lb, start=600.0)
    assert r2.state("a1") == "paused" and r2.rec.overrides == {("www", "a2"): 7}
    r2.probe("a2")
    r2.turn()
    assert r2.rec.gate.all_released
    assert r2.weights() == {"10.0.0.1": 0, "10.0.0.2": 7}
    assert [op for op in r.lb.applied[before:] if isinstance(op, SetWeight)] == []
    hold = r2.rec.opstate.get(("weight", "www", "a2"))
    assert hold is not None and hold.expires == r.clock.wall() + 3600  # the same instant
    assert r2.rec._next_deadline() == pytest.approx(r2.clock.monotonic() + 3000)


def test_what_expired_while_down_ends_before_the_first_pass(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "state.json"
    r = Rig(path)
    up(r)
    r.ask(events.BackendAction("a1", "pause", box=TimeBox(for_seconds=60.0)))
    r2 = Rig(path, lb=r.lb, start=120.0)
    assert r2.state("a1") == "unknown" and r2.rec.opstate.holds == ()
    assert r2.saved() == []


def test_a_reload_drops_the_state_of_what_it_removes_loudly(
    tmp_path: pathlib.Path, caplog: pytest.LogCaptureFixture
) -> None:
    r = Rig(tmp_path / "state.json")
    up(r)
    r.ask(events.BackendAction("a1", "disable", box=TimeBox(comment="rma", by="op")))
    r.ask(events.WeightOverride("www", "primary", "a2", 7))
    smaller: Config = load_text(
        CONFIG.replace("  a1: {address: 10.0.0.1, healthcheck: hc}\n", "").replace("a1: {}, ", "")
    )
    r.ask(events.ApplyConfig(smaller, "test", 0.0, time.perf_counter(), 0.0))
    warn = [x.getMessage() for x in caplog.records if x.levelno == logging.WARNING]
    assert any("dropped: backend a1 disabled" in w and "'rma'" in w for w in warn), warn
    assert [e["what"] for e in r.published if e["type"] == "override_dropped"] == [
        "backend a1 disabled"
    ]
    assert [h["backend"] for h in r.saved()] == ["a2"]
    # The backend coming back is a new one: no state of the old one returns with it.
    r.ask(events.ApplyConfig(load_text(CONFIG), "test", 0.0, time.perf_counter(), 0.0))
    assert r.state("a1") == "unknown"


def test_a_reload_that_remakes_a_machine_keeps_the_pause(tmp_path: pathlib.Path) -> None:
    r = Rig(tmp_path / "state.json")
    up(r)
    r.ask(events.BackendAction("a1", "pause"))
    moved = load_text(CONFIG.replace("10.0.0.1", "10.0.0.9"))  # another host: a fresh machine
    r.ask(events.ApplyConfig(moved, "test", 0.0, time.perf_counter(), 0.0))
    assert r.state("a1") == "paused"
