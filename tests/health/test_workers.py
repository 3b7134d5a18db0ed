"""Check worker threads, for real: names, priority, probing on the system clock, stop.

Schedules are checked exactly in `test_scheduler` (a manual clock, no threads); here the threads
run as in the daemon, so the tests wait for real events with generous deadlines and assert no
bound on elapsed time, upper or lower.
"""

from __future__ import annotations

import itertools
import os
import pathlib
import queue
import random
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from maglev.health.scheduler import Scheduler
from maglev.model import CheckType, HealthCheck, ProbeResult, ProbeTarget
from tests.health.conftest import LO

pytestmark = pytest.mark.integration


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
        assert s.stop(10.0)


def _collect(q: queue.Queue[ProbeResult], n: int, deadline: float) -> list[ProbeResult]:
    """Up to `n` results, waiting at most `deadline` seconds (a generous one: a real event)."""
    out: list[ProbeResult] = []
    end = time.monotonic() + deadline
    while len(out) < n and (left := end - time.monotonic()) > 0:
        try:
            out.append(q.get(timeout=left))
        except queue.Empty:
            break
    return out


def test_worker_threads_are_named_and_probe_on_the_system_clock(
    sched: Scheduler, results: queue.Queue[ProbeResult], tcp_server: int
) -> None:
    names = {t.name for t in threading.enumerate()}
    assert {"maglev-check-0", "maglev-check-1"} <= names
    assert sched.alive
    with pytest.raises(RuntimeError):
        sched.run_once()  # its workers run on their own threads
    t = ProbeTarget(LO, "c")
    c = HealthCheck(name="c", type=CheckType.TCP, port=tcp_server, fast_interval=0.05, jitter=0.0)
    before = time.monotonic()
    sched.set_targets({t: c})
    got = _collect(results, 4, 10.0)
    after = time.monotonic()
    assert len(got) == 4 and all(r.target == t and r.ok for r in got)
    # Their times are readings of the system clock, taken in order (the exact schedule, gaps
    # and all, is checked on a manual clock in test_scheduler; real time here has no bounds).
    stamps = [x for r in got for x in (r.at - r.duration, r.at)]
    assert before <= stamps[0] and stamps[-1] <= after
    assert all(a <= b + 1e-9 for a, b in itertools.pairwise(stamps))


def _thread_nice(name: str) -> int:
    t = next(t for t in threading.enumerate() if t.name == name)
    assert t.native_id is not None
    return os.getpriority(os.PRIO_PROCESS, t.native_id)


def _wait_for(cond: Callable[[], bool], deadline: float = 10.0) -> bool:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if cond():
            return True
        threading.Event().wait(0.01)
    return cond()


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
        assert s.stop(10.0)


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
    assert _wait_for(lambda: pidfile.exists() and bool(pidfile.read_text().strip()))
    pid = int(pidfile.read_text())
    # Stop ends the probe (its deadline is 20 s away, its command sleeps 30 s) and the thread.
    assert s.stop(10.0)
    assert not pathlib.Path(f"/proc/{pid}").exists()  # killed and reaped
    assert q.empty()  # a cancelled probe reports nothing


def _results(n: int) -> list[ProbeResult]:
    import ipaddress

    from maglev.model import Reason

    t = ProbeTarget(ipaddress.ip_address("10.0.0.1"), "hc")
    return [ProbeResult(t, True, Reason.L4OK, 0.001, "x", float(i)) for i in range(n)]


def test_put_all_queues_in_order_drops_what_does_not_fit_and_wakes_the_consumer() -> None:
    from maglev.health.workers import put_all
    from maglev.reconcile.events import Inbox

    items = _results(5)
    q: queue.Queue[ProbeResult] = queue.Queue(maxsize=3)
    q.put_nowait(items[0])
    assert put_all(q, items[1:]) == 2  # room for two of four
    assert [q.get_nowait().at for _ in range(3)] == [0.0, 1.0, 2.0] and q.empty()
    assert q.unfinished_tasks == 3
    assert put_all(q, []) == 0 and q.empty()
    inbox = Inbox()
    got: list[ProbeResult] = []
    waiter = threading.Thread(target=lambda: got.append(inbox.get(timeout=60)))
    waiter.start()
    assert put_all(inbox, items) == 0  # unbounded: all of them
    waiter.join(60)
    assert got == items[:1] and inbox.qsize() == 4
    assert not inbox.bell.is_set()  # probe results do not ring it (see Inbox)

    class Sink:  # not a queue: item by item, through put_nowait
        def __init__(self) -> None:
            self.items: list[ProbeResult] = []

        def put_nowait(self, item: ProbeResult) -> None:
            if len(self.items) >= 2:
                raise queue.Full
            self.items.append(item)

    sink = Sink()
    assert put_all(sink, items) == 3 and sink.items == items[:2]


def test_probe_result_builds_the_same_value_as_the_dataclass() -> None:
    import dataclasses

    from maglev.model import probe_result

    (r,) = _results(1)
    fast = probe_result(r.target, r.ok, r.reason, r.duration, r.detail, r.at)
    assert type(fast) is ProbeResult and fast == r and hash(fast) == hash(r)
    assert dataclasses.astuple(fast) == dataclasses.astuple(r)
    with pytest.raises(dataclasses.FrozenInstanceError):
        fast.ok = False  # type: ignore[misc]
