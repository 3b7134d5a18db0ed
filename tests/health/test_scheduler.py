"""The scheduler and its workers: intervals by phase, jitter, streams, drops, blackholes."""

from __future__ import annotations

import ipaddress
import itertools
import os
import pathlib
import queue
import random
import statistics
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from maglev.health.scheduler import Scheduler
from maglev.health.state import Phase
from maglev.health.workers import first_delay, interval_for, jittered
from maglev.model import CheckType, HealthCheck, ProbeResult, ProbeTarget, Reason
from tests.health.conftest import LO

# --- pure parts -----------------------------------------------------------------------

CHECK = HealthCheck(
    name="c", type=CheckType.TCP, interval=2.0, fast_interval=0.5, down_interval=10.0, jitter=0.1
)


def test_interval_by_phase() -> None:
    assert interval_for(CHECK, Phase.UP) == 2.0
    assert interval_for(CHECK, Phase.CHANGING) == 0.5
    assert interval_for(CHECK, Phase.DOWN) == 10.0


def test_jitter_bounds() -> None:
    rng = random.Random(7)
    samples = [jittered(2.0, 0.1, rng) for _ in range(5000)]
    assert 1.8 <= min(samples) < 1.82 and 2.18 < max(samples) <= 2.2
    assert abs(statistics.mean(samples) - 2.0) < 0.01
    assert jittered(2.0, 0.0, rng) == 2.0


def test_first_probe_spread_over_one_interval() -> None:
    rng = random.Random(7)
    firsts = [first_delay(CHECK, Phase.CHANGING, rng) for _ in range(5000)]
    assert 0 <= min(firsts) < 0.01 and 0.49 < max(firsts) < 0.5
    ups = [first_delay(CHECK, Phase.UP, rng) for _ in range(5000)]
    assert max(ups) < 2.0 and max(ups) > 1.9


# --- live -----------------------------------------------------------------------------


def _check(name: str, port: int, **kw: float) -> HealthCheck:
    base: dict[str, float] = {
        "interval": 0.2,
        "fast_interval": 0.05,
        "down_interval": 5.0,
        "jitter": 0.0,
        "timeout": 0.5,
    }
    base.update(kw)
    return HealthCheck(name=name, type=CheckType.TCP, port=port, **base)  # type: ignore[arg-type]


def _collect(
    q: queue.Queue[ProbeResult], n: int, deadline: float, target: ProbeTarget | None = None
) -> list[ProbeResult]:
    out: list[ProbeResult] = []
    end = time.monotonic() + deadline
    while len(out) < n:
        left = end - time.monotonic()
        if left <= 0:
            break
        try:
            r = q.get(timeout=left)
        except queue.Empty:
            break
        if target is None or r.target == target:
            out.append(r)
    return out


def _starts(results: list[ProbeResult]) -> list[float]:
    return [r.at - r.duration for r in results]


def _gaps(results: list[ProbeResult]) -> list[float]:
    s = _starts(results)
    return [b - a for a, b in itertools.pairwise(s)]


@pytest.fixture
def results() -> queue.Queue[ProbeResult]:
    return queue.Queue()


@pytest.fixture
def sched(results: queue.Queue[ProbeResult]) -> Iterator[Scheduler]:
    s = Scheduler(results, workers=2, rng=random.Random(1))
    s.start()
    try:
        yield s
    finally:
        assert s.stop(5.0)


@pytest.mark.integration
def test_worker_threads_are_named(sched: Scheduler) -> None:
    names = {t.name for t in threading.enumerate()}
    assert {"maglev-check-0", "maglev-check-1"} <= names
    assert sched.alive


@pytest.mark.integration
def test_intervals_follow_phase(
    sched: Scheduler, results: queue.Queue[ProbeResult], tcp_server: int
) -> None:
    t = ProbeTarget(LO, "c")
    sched.set_targets({t: _check("c", tcp_server)}, phases={t: Phase.UP})
    up = _collect(results, 4, 3.0)
    assert len(up) == 4 and all(r.reason is Reason.L4OK for r in up)
    assert all(0.17 < g < 0.3 for g in _gaps(up)), _gaps(up)
    sched.set_phase(t, Phase.DOWN)
    # down_interval is 5 s: nothing (beyond a probe already in flight) for a while ...
    assert len(_collect(results, 2, 0.6)) <= 1
    # ... until the phase says the state is changing: the waiting stream is rescheduled at once.
    other = ProbeTarget(ipaddress.ip_address("127.0.0.9"), "c")  # no such stream: ignored
    sched.set_phases({t: Phase.CHANGING, other: Phase.UP})
    fast = _collect(results, 6, 2.0)
    assert len(fast) == 6
    assert statistics.median(_gaps(fast)) < 0.1, _gaps(fast)


def _thread_nice(name: str) -> int:
    t = next(t for t in threading.enumerate() if t.name == name)
    assert t.native_id is not None
    return os.getpriority(os.PRIO_PROCESS, t.native_id)


def _wait_for(cond: Callable[[], bool], deadline: float = 5.0) -> bool:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.01)
    return cond()


@pytest.mark.integration
def test_worker_threads_take_their_priority_and_change_it_live(
    results: queue.Queue[ProbeResult],
) -> None:
    """Each worker sets its own thread's nice value (this test's thread is left alone)."""
    mine = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    low = min(mine + 3, 19)  # lowering one's priority needs no privilege
    s = Scheduler(results, workers=2, rng=random.Random(1), priority=low)
    s.start()
    try:
        assert _wait_for(lambda: s.priorities() == (low, low))
        assert _thread_nice("maglev-check-0") == low and _thread_nice("maglev-check-1") == low
        lower = min(low + 2, 19)
        s.set_priority(lower)
        assert _wait_for(lambda: s.priorities() == (lower, lower))
        assert _thread_nice("maglev-check-1") == lower
        if os.geteuid() == 0:  # raising priority needs CAP_SYS_NICE
            s.set_priority(mine - 2)
            assert _wait_for(lambda: s.priorities() == (mine - 2, mine - 2))
        assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == mine
    finally:
        assert s.stop(5.0)


@pytest.mark.integration
def test_one_stream_per_target_and_reload(
    sched: Scheduler, results: queue.Queue[ProbeResult], tcp_server: int, refused_port: int
) -> None:
    a = ProbeTarget(LO, "a")
    b = ProbeTarget(ipaddress.IPv4Address("127.0.0.2"), "a")
    c = ProbeTarget(LO, "c")
    checks = {a: _check("a", tcp_server), b: _check("a", tcp_server), c: _check("c", refused_port)}
    assert sched.set_targets(checks) == (3, 0, 0)
    assert sched.set_targets(dict(checks)) == (0, 0, 0)  # same targets: nothing restarts
    assert sched.snapshot().streams == 3
    got = _collect(results, 30, 3.0)
    by_target: dict[ProbeTarget, list[ProbeResult]] = {}
    for r in got:
        by_target.setdefault(r.target, []).append(r)
    assert set(by_target) == {a, b, c}
    assert all(r.reason is Reason.L4CON for r in by_target[c])
    # Every stream probes once per fast_interval, not more: one stream per target.
    for rs in by_target.values():
        assert all(g > 0.04 for g in _gaps(rs))
    # Reload: c gone, a's check changed (now refused), b untouched.
    assert sched.set_targets({a: _check("a", refused_port), b: checks[b]}) == (0, 1, 1)
    # set_targets returns at once; the workers apply it on their next pass, and a probe of c
    # already in flight may still report. Whatever finished after c's timeout must be a or b.
    settled = time.monotonic() + checks[c].timeout + 0.05
    later = [r for r in _collect(results, 60, 4.0) if r.at >= settled]
    assert {r.target for r in later} == {a, b}
    assert all(r.reason is Reason.L4CON for r in later[2:] if r.target == a)
    snap = sched.snapshot()
    assert snap.streams == 2
    assert snap.probes[(CheckType.TCP, False, Reason.L4CON)] > 0
    assert snap.probes[(CheckType.TCP, True, Reason.L4OK)] > 0


@pytest.mark.integration
def test_pause_and_resume(
    sched: Scheduler, results: queue.Queue[ProbeResult], tcp_server: int
) -> None:
    t = ProbeTarget(LO, "c")
    sched.set_targets({t: _check("c", tcp_server)})
    assert len(_collect(results, 2, 2.0)) == 2
    sched.pause(t)
    _collect(results, 1, 0.1)  # at most the probe that was already in flight
    assert _collect(results, 1, 0.4) == []
    sched.resume(t)
    assert len(_collect(results, 2, 2.0)) == 2


@pytest.mark.integration
def test_full_queue_drops_and_counts(tcp_server: int) -> None:
    q: queue.Queue[ProbeResult] = queue.Queue(maxsize=1)
    s = Scheduler(q, workers=1)
    s.start()
    try:
        t = ProbeTarget(LO, "c")
        s.set_targets({t: _check("c", tcp_server, fast_interval=0.02)})
        deadline = time.monotonic() + 5
        while s.snapshot().dropped_results < 3 and time.monotonic() < deadline:
            threading.Event().wait(0.02)
        assert s.snapshot().dropped_results >= 3
        assert q.full()
        q.get_nowait()
        # The next probe heals it: a fresh result arrives.
        fresh = q.get(timeout=2.0)
        assert fresh.target == t and fresh.ok
        assert s.alive
    finally:
        assert s.stop(5.0)


@pytest.mark.integration
def test_blackholed_backends_do_not_delay_others(tcp_server: int, blackhole: int) -> None:
    q: queue.Queue[ProbeResult] = queue.Queue()
    s = Scheduler(q, workers=1, rng=random.Random(3))
    s.start()
    try:
        targets = {
            ProbeTarget(ipaddress.IPv4Address(f"127.0.1.{i % 250 + 1}"), f"bh{i // 250}"): _check(
                f"bh{i // 250}", blackhole, timeout=1.0, fast_interval=0.2
            )
            for i in range(200)
        }
        good = ProbeTarget(LO, "good")
        targets[good] = _check("good", tcp_server, fast_interval=0.1)
        s.set_targets(targets)
        seen = _collect(q, 1000, 2.0)  # timeout 1 s, first probes within 0.2 s
        got = [r for r in seen if r.target == good]
        assert len(got) >= 12
        assert all(r.ok for r in got)
        gaps = _gaps(got)
        assert max(gaps) < 0.2, gaps  # on time while 200 probes hang
        snap = s.snapshot()
        assert snap.in_flight >= 100  # the blackholed probes really are in flight together
    finally:
        assert s.stop(5.0)
    bh = [r for r in seen if r.target != good]
    assert len(bh) >= 190 and all(r.reason is Reason.L4TOUT for r in bh)


@pytest.mark.integration
def test_stop_kills_in_flight_exec(tmp_path: pathlib.Path) -> None:
    q: queue.Queue[ProbeResult] = queue.Queue()
    s = Scheduler(q, workers=1)
    s.start()
    pidfile = tmp_path / "pid"
    c = HealthCheck(
        name="x",
        type=CheckType.EXEC,
        command=(f"echo $$ > {pidfile}; exec sleep 30",),
        shell=True,
        timeout=20.0,
        fast_interval=0.01,
    )
    s.set_targets({ProbeTarget(LO, "x"): c})
    deadline = time.monotonic() + 5
    while not (pidfile.exists() and pidfile.read_text().strip()) and time.monotonic() < deadline:
        threading.Event().wait(0.02)
    pid = int(pidfile.read_text())
    t0 = time.monotonic()
    assert s.stop(5.0)
    assert time.monotonic() - t0 < 2
    assert not pathlib.Path(f"/proc/{pid}").exists()  # killed and reaped
    assert q.empty()  # a cancelled probe reports nothing
