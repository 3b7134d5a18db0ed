"""Convergence stages, unit by unit: the health machine's onset stamps and the arithmetic of
each stage, with time injected (a `ManualClock`; no wall clock)."""

from __future__ import annotations

import ipaddress

import pytest

from maglev.clock import ManualClock
from maglev.health.state import BackendHealth, Transition
from maglev.model import BackendState, CheckType, HealthCheck, ProbeResult, ProbeTarget, Reason
from maglev.reconcile import convergence
from maglev.reconcile.convergence import Convergence
from maglev.reconcile.snapshot import CONVERGENCE_BUCKETS, CONVERGENCE_STAGES, Histogram
from maglev.vpp.ops import SetWeight

ADDR = ipaddress.IPv4Address("10.0.0.1")
OTHER = ipaddress.IPv4Address("10.0.0.2")
CHECK = HealthCheck(name="hc", type=CheckType.TCP, port=80, rise=2, fall=3)
TARGET = ProbeTarget(ADDR, "hc")
VIP = ipaddress.ip_network("192.0.2.80/32")
UP, DOWN, UNKNOWN = BackendState.UP, BackendState.DOWN, BackendState.UNKNOWN


def res(ok: bool, at: float) -> ProbeResult:
    return ProbeResult(TARGET, ok, Reason.L4OK if ok else Reason.L4CON, 0.001, "", at)


def weight(address: ipaddress.IPv4Address = ADDR) -> SetWeight:
    return SetWeight(VIP, 6, 80, address, 0, False)


def fallen(clock: ManualClock, queue: float = 0.0) -> Transition:
    """A backend up at 0 s falls: failures finish at 1, 2, 3 s, each taken `queue` later."""
    h = BackendHealth("a1", ADDR, CHECK)
    h.apply(res(True, clock.now), clock.now)
    t = None
    for _ in range(3):
        clock.advance(1.0)
        probed = clock.now
        clock.advance(queue)
        t = h.apply(res(False, probed), clock.now)
        clock.advance(-queue)  # the next probe is due an interval after this one finished
    clock.advance(queue)
    assert t is not None and t.new is DOWN
    return t


def stage(c: Convergence, name: str) -> Histogram:
    return dict(c.stats().stages)[name]


def test_a_fall_carries_its_first_failure_and_its_deciding_probe() -> None:
    clock = ManualClock(100.0)
    t = fallen(clock, queue=0.25)
    assert (t.onset, t.probed, t.at) == (101.0, 103.0, 103.25)


def test_a_rise_starts_at_its_first_success_and_a_broken_run_starts_again() -> None:
    h = BackendHealth("a1", ADDR, CHECK)
    h.apply(res(False, 0.0), 0.0)  # unknown -> down
    assert h.apply(res(True, 1.0), 1.0) is None
    assert h.apply(res(False, 2.0), 2.0) is None  # the run is broken: a new one must start
    assert h.apply(res(True, 3.0), 3.0) is None
    t = h.apply(res(True, 4.0), 4.5)
    assert t is not None and (t.old, t.new, t.onset, t.probed, t.at) == (DOWN, UP, 3.0, 4.0, 4.5)


def test_a_broken_failing_run_does_not_count_its_earlier_failures() -> None:
    h = BackendHealth("a1", ADDR, CHECK)
    h.apply(res(True, 0.0), 0.0)
    h.apply(res(False, 1.0), 1.0)
    h.apply(res(True, 2.0), 2.0)
    for at in (3.0, 4.0):
        assert h.apply(res(False, at), at) is None
    t = h.apply(res(False, 5.0), 5.0)
    assert t is not None and t.onset == 3.0


def test_operator_transitions_carry_no_probe_timing() -> None:
    h = BackendHealth("a1", ADDR, CHECK)
    t = h.pause(1.0)
    assert t is not None and (t.onset, t.probed) == (None, None)


def test_each_stage_of_a_written_fall() -> None:
    clock = ManualClock(100.0)
    c = Convergence()
    t = fallen(clock, queue=0.25)  # transition at 103.25
    c.note(t, ("www",), ADDR)
    assert c.stats().pending == 1
    clock.advance(0.004)  # VPP's replies
    c.settle({"www"}, [weight()], [weight()], clock.monotonic())
    got = {s: stage(c, s) for s in CONVERGENCE_STAGES}
    want = {"queue": 0.25, "detect": 2.25, "write": 0.004, "total": 2.254}
    for name, seconds in want.items():
        h = got[name]
        assert h.count == 1 and abs(h.total - seconds) < 1e-9, name
        i = next(i for i, b in enumerate(CONVERGENCE_BUCKETS) if seconds <= b)
        assert h.counts[i] == 1 and sum(h.counts) == 1, name
    s = c.stats()
    assert (s.written, s.unwritten, s.dropped, s.pending) == (1, 0, 0, 0)
    (last,) = s.recent
    assert (last.backend, last.old, last.new) == ("a1", UP, DOWN)
    assert last.write is not None and abs(last.write - 0.004) < 1e-9


def test_a_pass_without_an_operation_for_the_backend_leaves_it_unwritten() -> None:
    clock = ManualClock()
    c = Convergence()
    c.note(fallen(clock), ("www",), ADDR)
    c.settle({"www"}, [weight(OTHER)], [weight(OTHER)], clock.now + 1.0)
    s = c.stats()
    assert (s.written, s.unwritten, s.pending) == (0, 1, 0)
    assert stage(c, "queue").count == stage(c, "detect").count == 1
    assert stage(c, "write").count == stage(c, "total").count == 0
    assert s.recent[0].write is None and s.recent[0].total is None


def test_an_empty_pass_settles_as_unwritten_too() -> None:
    clock = ManualClock()
    c = Convergence()
    c.note(fallen(clock), ("www",), ADDR)
    c.settle({"www"}, (), (), clock.now)
    assert c.stats().unwritten == 1


def test_another_frontends_pass_leaves_it_waiting_and_a_full_sync_settles_it() -> None:
    clock = ManualClock()
    c = Convergence()
    c.note(fallen(clock), ("www",), ADDR)
    c.settle({"api"}, [weight()], [weight()], clock.now)
    assert c.stats().pending == 1
    c.settle(None, [weight()], [weight()], clock.now + 2.0)
    s = c.stats()
    assert (s.written, s.pending) == (1, 0)
    assert abs(stage(c, "write").total - 2.0) < 1e-9


def test_a_failed_operation_waits_for_the_retry_and_is_measured_to_its_reply() -> None:
    clock = ManualClock()
    c = Convergence()
    t = fallen(clock)
    c.note(t, ("www",), ADDR)
    c.settle({"www"}, [], [weight()], clock.now + 0.01)  # refused
    assert c.stats().pending == 1 and c.stats().written == 0
    c.settle(None, [weight()], [weight()], t.at + 2.5)  # the full sync after the failure
    assert c.stats().written == 1
    assert abs(stage(c, "write").total - 2.5) < 1e-9


def test_discovery_operator_actions_and_dry_runs_are_not_measured() -> None:
    c = Convergence()
    first = BackendHealth("a1", ADDR, CHECK).apply(res(True, 1.0), 1.0)  # unknown -> up
    assert first is not None and first.old is UNKNOWN
    c.note(first, ("www",), ADDR)
    c.note(Transition("a1", 2.0, UP, BackendState.PAUSED, None, "paused"), ("www",), ADDR)
    dry = Convergence(on=False)
    dry.note(fallen(ManualClock()), ("www",), ADDR)
    assert c.stats().pending == 0 and dry.stats().pending == 0


def test_beyond_the_waiting_limit_transitions_are_dropped_and_counted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(convergence, "PENDING_MAX", 2)
    clock = ManualClock()
    c = Convergence()
    t = fallen(clock)
    for _ in range(3):
        c.note(t, ("www",), ADDR)
    s = c.stats()
    assert (s.pending, s.dropped) == (2, 1)


def test_the_published_value_is_reused_until_something_changes() -> None:
    clock = ManualClock()
    c = Convergence()
    first = c.stats()
    assert c.stats() is first
    c.note(fallen(clock), ("www",), ADDR)
    assert c.stats() is not first
