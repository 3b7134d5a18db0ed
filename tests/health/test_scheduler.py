"""The scheduler and its workers: intervals by phase, jitter, spread, deadlines, streams, drops.

Schedules are checked exactly. The scheduler is never started and runs on a `ManualClock`, driven
from the test's thread one reactor pass at a time (`Drive`); its probes still go to real loopback
servers and to a blackhole. The clock stands still while a probe's I/O completes, so a probe that
gets an answer ends at the very time it started (duration 0), and every start is a time the test
can compute. Timers due within `SLACK` of a pass run in it (up to `SLACK` early): schedules of a
stream alone on its worker are exact, those of streams sharing one are bounded by it. The worker
threads themselves are tested in `test_workers`.
"""

from __future__ import annotations

import ipaddress
import itertools
import queue
import random
import statistics
import time
from collections import Counter
from types import TracebackType

import pytest

from maglev.clock import ManualClock
from maglev.health import fast
from maglev.health.scheduler import Scheduler
from maglev.health.state import Phase
from maglev.health.workers import SLACK, first_delay, interval_for, jittered
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


# --- driving a scheduler on a manual clock --------------------------------------------


def worker_rng(seed: int, index: int = 0) -> random.Random:
    """A twin of the generator `Scheduler(rng=random.Random(seed))` gives worker `index`."""
    base = random.Random(seed)
    for _ in range(index):
        base.random()
    return random.Random(base.random())


class Drive:
    """A scheduler that is never started, run on a `ManualClock` from the test's thread.

    The clock moves only to the next due timer or lane entry (`run_once` says when), which is
    when the real loop would wake. At each stop, passes run at the standing clock until nothing
    is due any more and at most `hanging` probes are in flight (those expected to hang on a
    blackhole): the others' I/O arrives meanwhile, within a generous real-time deadline.
    """

    def __init__(self, workers: int = 1, seed: int = 1, queue_size: int = 0) -> None:
        self.clock = ManualClock()
        self.t0 = self.clock.now
        self.results: queue.Queue[ProbeResult] = queue.Queue(queue_size)
        self.rings: list[int] = []  # at each on_news: how many results were queued by then
        self.sched = Scheduler(
            self.results, workers, rng=random.Random(seed), clock=self.clock,
            on_news=lambda: self.rings.append(self.results.qsize()),
        )  # fmt: skip
        self.hanging = 0

    def __enter__(self) -> Drive:
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        stopped = self.sched.stop(1.0)  # never started: closes its reactors at once
        assert stopped or et is not None

    @property
    def in_flight(self) -> int:
        return self.sched.snapshot(samples=False).in_flight

    def settle(self) -> float | None:
        """Run passes without moving the clock until it is idle; returns the next due time."""
        give_up = time.monotonic() + 10
        nxt = self.sched.run_once()
        while (nxt is not None and nxt <= self.clock.now) or self.in_flight > self.hanging:
            assert time.monotonic() < give_up, f"{self.in_flight} probes in flight for 10 s"
            nxt = self.sched.run_once(0.01)
        return nxt

    def run(self, t: float) -> None:
        """Run to clock time `t`, stopping at every due time on the way (no pass at `t` itself:
        the loop would not wake there; the next call's first pass is at `t`)."""
        nxt = self.settle()
        while nxt is not None and nxt <= t:
            self.clock.now = max(self.clock.now, nxt)
            nxt = self.settle()
        self.clock.now = max(self.clock.now, t)

    def until(self, t: float) -> list[ProbeResult]:
        """`run(t)`, then the results that came meanwhile."""
        self.run(t)
        return self.take()

    def jump(self, t: float) -> list[ProbeResult]:
        """Move the clock straight to `t`, past any due times (a loop that woke late)."""
        self.clock.now = t
        self.settle()
        return self.take()

    def take(self) -> list[ProbeResult]:
        out: list[ProbeResult] = []
        while True:
            try:
                out.append(self.results.get_nowait())
            except queue.Empty:
                return out


def _check(name: str, port: int, **kw: float) -> HealthCheck:
    # timeout 0.33: a finished probe's deadline entry stays queued until then (a pass that does
    # nothing); 0.33 keeps those passes more than SLACK away from every due time in these tests.
    base: dict[str, float] = {
        "interval": 0.2,
        "fast_interval": 0.05,
        "down_interval": 5.0,
        "jitter": 0.0,
        "timeout": 0.33,
    }
    base.update(kw)
    return HealthCheck(name=name, type=CheckType.TCP, port=port, **base)  # type: ignore[arg-type]


def start_of(r: ProbeResult) -> float:
    return r.at - r.duration


def series(first: float, step: float, n: int) -> list[float]:
    """`first`, then each one `step` after the one before: the times a worker computes."""
    out = [first]
    for _ in range(n - 1):
        out.append(out[-1] + step)
    return out


def _gaps(starts: list[float]) -> list[float]:
    return [b - a for a, b in itertools.pairwise(starts)]


def _within(values: list[float], lo: float, hi: float) -> bool:
    return all(lo - 1e-9 <= v <= hi + 1e-9 for v in values)


def _by_target(results: list[ProbeResult]) -> dict[ProbeTarget, list[ProbeResult]]:
    out: dict[ProbeTarget, list[ProbeResult]] = {}
    for r in results:
        out.setdefault(r.target, []).append(r)
    return out


# --- schedules ------------------------------------------------------------------------


@pytest.mark.integration
def test_intervals_follow_phase(tcp_server: int) -> None:
    with Drive() as d:
        t = ProbeTarget(LO, "c")
        c = _check("c", tcp_server)
        assert d.sched.set_targets({t: c}, phases={t: Phase.UP}) == (1, 0, 0)
        s0 = d.t0 + worker_rng(1).uniform(0.0, c.interval)  # the first probe's spread
        up = d.until(s0 + 0.65)
        assert [start_of(r) for r in up] == series(s0, c.interval, 4)
        assert all(r.reason is Reason.L4OK and r.duration == 0.0 for r in up)
        # Down while waiting: the next probe moves to the last start + down_interval ...
        d.sched.set_phase(t, Phase.DOWN)
        down_due = start_of(up[-1]) + c.down_interval
        assert d.until(down_due - 0.01) == []
        assert [start_of(r) for r in d.until(down_due)] == [down_due]
        # ... until the phase says the state is changing: the waiting stream probes at once, then
        # every fast_interval. A phase for a target without a stream is ignored.
        changed = d.until(down_due + 1.0)
        assert changed == []
        other = ProbeTarget(ipaddress.ip_address("127.0.0.9"), "c")
        d.sched.set_phases({t: Phase.CHANGING, other: Phase.UP})
        quick = d.until(down_due + 1.0 + 5 * c.fast_interval + 0.01)
        assert [start_of(r) for r in quick] == series(down_due + 1.0, c.fast_interval, 6)
        assert d.sched.snapshot().streams == 1


@pytest.mark.integration
def test_first_probes_spread_over_one_interval_of_their_phase(tcp_server: int) -> None:
    phases = (Phase.UP, Phase.CHANGING, Phase.DOWN)
    intervals = {Phase.UP: 2.0, Phase.CHANGING: 0.5, Phase.DOWN: 8.0}
    checks = {
        ProbeTarget(LO, f"c{i}"): _check(
            f"c{i}", tcp_server, interval=2.0, fast_interval=0.5, down_interval=8.0
        )
        for i in range(30)
    }
    phase_of = {t: phases[i % 3] for i, t in enumerate(checks)}
    with Drive(seed=5) as d:
        d.sched.set_targets(checks, phase_of)
        rng = worker_rng(5)  # one first delay per stream, drawn in the order they were given
        due = {t: d.t0 + rng.uniform(0.0, interval_for(c, phase_of[t])) for t, c in checks.items()}
        first: dict[ProbeTarget, float] = {}
        for r in d.until(d.t0 + 8.0):
            first.setdefault(r.target, start_of(r))
    assert first.keys() == checks.keys()
    for t, s in first.items():
        assert due[t] - SLACK <= s <= due[t]  # at its drawn time, or with a pass up to SLACK before
        assert d.t0 <= s < d.t0 + intervals[phase_of[t]]
    # Spread over the whole interval of each phase, not just its first part.
    for phase in phases:
        spread = [s - d.t0 for t, s in first.items() if phase_of[t] is phase]
        assert len(spread) == 10
        assert min(spread) < intervals[phase] / 2 < max(spread)


@pytest.mark.integration
@pytest.mark.parametrize("send", [None, "PING\r\n"], ids=["fast-path", "coroutine"])
def test_a_hung_probe_ends_at_exactly_start_plus_timeout(blackhole: int, send: str | None) -> None:
    t = ProbeTarget(LO, "bh")
    c = HealthCheck(
        name="bh",
        type=CheckType.TCP,
        port=blackhole,
        send=send,
        interval=2.0,
        fast_interval=0.1,
        timeout=0.3,
        jitter=0.0,
    )
    assert fast.eligible(c) is (send is None)  # each way of probing really is taken
    with Drive() as d:
        d.hanging = 1
        d.sched.set_targets({t: c}, phases={t: Phase.UP})
        s0 = d.t0 + worker_rng(1).uniform(0.0, c.interval)
        assert d.until(s0) == [] and d.in_flight == 1
        assert d.until(s0 + c.timeout - 0.01) == []  # (a pass within SLACK would end it early)
        (r,) = d.until(s0 + c.timeout)
        assert (r.ok, r.reason, r.detail) == (False, Reason.L4TOUT, "connect timeout after 0.3s")
        assert r.at == s0 + c.timeout and r.duration == pytest.approx(c.timeout, abs=1e-9)
        # The next one is due an interval after the hung one started.
        assert d.in_flight == 0
        s1 = s0 + c.interval
        assert d.until(s1 - 0.01) == []
        d.run(s1)
        assert d.in_flight == 1
        # A phase change while a probe is in flight applies when it ends: the fast interval is
        # over by then, so the next probe starts as this one ends, never beside it.
        d.run(s1 + 0.15)
        d.sched.set_phase(t, Phase.CHANGING)
        d.run(s1 + 0.2)
        assert d.in_flight == 1
        (r,) = d.until(s1 + c.timeout)
        assert start_of(r) == pytest.approx(s1, abs=1e-9) and r.at == s1 + c.timeout
        assert d.in_flight == 1
        (r,) = d.until(s1 + 2 * c.timeout)
        assert start_of(r) == pytest.approx(s1 + c.timeout, abs=1e-9)
        # Starting as soon as the hung one ended is on time: a hung probe makes nobody late.
        assert d.sched.drain_lateness() == (0.0, 0.0, 0.0)


@pytest.mark.integration
def test_jitter_moves_each_interval_within_its_bounds(tcp_server: int) -> None:
    t = ProbeTarget(LO, "c")
    c = _check("c", tcp_server, interval=2.0, jitter=0.1)
    with Drive(seed=7) as d:
        d.sched.set_targets({t: c}, phases={t: Phase.UP})
        rng = worker_rng(7)  # first delay, then one jittered interval per probe
        expected = [d.t0 + rng.uniform(0.0, c.interval)]
        for _ in range(11):
            expected.append(expected[-1] + c.interval * (1.0 + rng.uniform(-0.1, 0.1)))
        starts = [start_of(r) for r in d.until(expected[-1] + 0.01)]
    assert starts == expected
    gaps = _gaps(starts)
    assert _within(gaps, 1.8, 2.2) and len(set(gaps)) == len(gaps)


@pytest.mark.integration
def test_lateness_is_how_long_after_its_due_time_a_probe_started(tcp_server: int) -> None:
    t = ProbeTarget(LO, "c")
    c = _check("c", tcp_server)
    with Drive() as d:
        d.sched.set_targets({t: c})
        s0 = d.t0 + worker_rng(1).uniform(0.0, c.fast_interval)
        assert [start_of(r) for r in d.until(s0 + 0.01)] == [s0]
        late = s0 + c.fast_interval + 0.03  # the loop wakes 30 ms after the next probe was due
        assert [start_of(r) for r in d.jump(late)] == [late]
        # The schedule goes on from the late start.
        assert [start_of(r) for r in d.until(late + c.fast_interval + 0.01)] == [
            late + c.fast_interval
        ]
        snap = d.sched.snapshot()
        assert d.sched.drain_lateness() == pytest.approx((0.0, 0.03, 0.0), abs=1e-9)
        assert d.sched.drain_lateness() == ()
    buckets = dict(snap.lateness_buckets)
    assert buckets[0.001] == 2 and buckets[0.05] == 1 and snap.lateness_count == 3
    assert snap.lateness_sum == pytest.approx(0.03, abs=1e-9)


@pytest.mark.integration
def test_one_stream_per_target_and_reload(tcp_server: int, refused_port: int) -> None:
    a = ProbeTarget(LO, "a")
    b = ProbeTarget(ipaddress.IPv4Address("127.0.0.2"), "a")  # nothing listens there: refused
    c = ProbeTarget(LO, "c")
    checks = {a: _check("a", tcp_server), b: _check("a", tcp_server), c: _check("c", refused_port)}
    fast_iv = checks[a].fast_interval
    with Drive(workers=2) as d:
        assert d.sched.set_targets(checks) == (3, 0, 0)
        assert d.sched.set_targets(dict(checks)) == (0, 0, 0)  # same targets: nothing restarts
        assert d.sched.snapshot().streams == 3
        before = _by_target(d.until(d.t0 + 1.0))
        assert set(before) == {a, b, c}
        assert all(r.reason is Reason.L4OK for r in before[a])
        assert all(r.reason is Reason.L4CON for r in before[b] + before[c])
        # One stream per target: each probes once per fast_interval (a pass of its worker for
        # another stream may start it up to SLACK early), never more.
        for rs in before.values():
            assert 19 <= len(rs) <= 23
            assert _within(_gaps([start_of(r) for r in rs]), fast_iv - SLACK, fast_iv)
        # Reload: c gone, a's check changed (now refused), b untouched.
        reload_at = d.clock.now
        assert d.sched.set_targets({a: _check("a", refused_port), b: checks[b]}) == (0, 1, 1)
        after = _by_target(d.until(reload_at + 1.0))
        assert set(after) == {a, b}  # nothing more of c
        assert all(
            r.reason is Reason.L4CON for r in after[a]
        )  # every probe of a uses the new check
        assert reload_at <= start_of(after[a][0]) < reload_at + fast_iv  # restarted, spread anew
        b_starts = [start_of(r) for r in before[b] + after[b]]
        assert _within(_gaps(b_starts), fast_iv - SLACK, fast_iv)  # b went on as it was
        snap = d.sched.snapshot()
        assert snap.streams == 2
        received = Counter(
            (r.ok, r.reason) for rs in (*before.values(), *after.values()) for r in rs
        )
        assert snap.probes == {
            (CheckType.TCP, ok, reason): n for (ok, reason), n in received.items()
        }
        assert snap.dropped_results == 0 and snap.in_flight == 0


@pytest.mark.integration
def test_news_rings_after_queuing_only_for_results_that_may_move_a_backend(
    tcp_server: int, refused_port: int
) -> None:
    good, bad = ProbeTarget(LO, "good"), ProbeTarget(LO, "bad")
    checks = {good: _check("good", tcp_server), bad: _check("bad", refused_port)}
    with Drive() as d:
        d.sched.set_targets(checks, phases={good: Phase.UP, bad: Phase.DOWN})
        same = d.until(d.t0 + 0.65)  # the same outcomes as the phases: no news
        assert all(r.ok == (r.target == good) for r in same) and len(same) >= 3
        assert d.rings == []
        d.sched.set_phase(good, Phase.DOWN)  # a success while down may bring it up
        moved = d.until(d.t0 + 6.0)  # its next probe: within down-interval
        assert any(r.target == good for r in moved) and d.rings
        assert all(n >= 1 for n in d.rings)  # rung after its result was queued
        d.rings.clear()
        d.sched.set_phases({good: Phase.UP, bad: Phase.UP})  # a failure while up may drain it
        later = d.until(d.t0 + 6.7)
        assert any(r.target == bad and not r.ok for r in later) and d.rings
        d.rings.clear()
        d.sched.set_phase(bad, Phase.DOWN)
        d.until(d.t0 + 7.2)
        assert d.rings == []


@pytest.mark.integration
def test_full_queue_drops_and_counts(tcp_server: int) -> None:
    t = ProbeTarget(LO, "c")
    c = _check("c", tcp_server, fast_interval=0.02)
    with Drive(queue_size=1) as d:
        d.sched.set_targets({t: c})
        s0 = d.t0 + worker_rng(1).uniform(0.0, c.fast_interval)
        expected = series(s0, c.fast_interval, 5)
        d.run(expected[3] + 0.001)
        snap = d.sched.snapshot()
        assert snap.total_probes == 4 and snap.dropped_results == 3 and d.results.full()
        assert start_of(d.results.get_nowait()) == s0  # the first stayed; the next three dropped
        # The next probe heals it: a fresh result arrives.
        (fresh,) = d.until(expected[4] + 0.001)
        assert fresh.target == t and fresh.ok and start_of(fresh) == expected[4]
        assert d.sched.snapshot().dropped_results == 3


@pytest.mark.integration
def test_a_stream_left_out_stops_at_once_and_starts_afresh_when_back(
    tcp_server: int, blackhole: int
) -> None:
    """How a paused or disabled backend stops being probed, and starts again when resumed."""
    good, hung = ProbeTarget(LO, "g"), ProbeTarget(LO, "h")
    checks = {good: _check("g", tcp_server), hung: _check("h", blackhole)}
    with Drive() as d:
        d.hanging = 1
        d.sched.set_targets(checks)
        rng = worker_rng(1)
        s_good = d.t0 + rng.uniform(0.0, checks[good].fast_interval)
        rng.uniform(0.0, checks[hung].fast_interval)
        got = d.until(d.t0 + 0.2)  # the hung probe's deadline is 0.33 after its start
        starts = [start_of(r) for r in got]
        assert len(starts) >= 3 and s_good - SLACK <= starts[0] <= s_good  # (the two streams
        assert _within(_gaps(starts), 0.05 - SLACK, 0.05)  # share a worker: SLACK applies)
        assert d.in_flight == 1
        # Left out: both streams end now, the hung probe with no result, not even at its deadline.
        assert d.sched.set_targets({}) == (0, 0, 2)
        d.hanging = 0
        assert d.until(d.t0 + 2.0) == [] and d.in_flight == 0
        assert d.sched.snapshot().streams == 0
        # Back: a new stream, changing (unknown) until told otherwise, spread over fast_interval.
        back = d.clock.now
        d.sched.set_targets({good: checks[good]})
        starts = [start_of(r) for r in d.until(back + 0.2)]
        assert starts == series(back + rng.uniform(0.0, 0.05), 0.05, len(starts))
        assert back <= starts[0] < back + 0.05 and len(starts) >= 3


@pytest.mark.integration
def test_blackholed_probes_do_not_delay_others(tcp_server: int, blackhole: int) -> None:
    bh = {
        ProbeTarget(ipaddress.IPv4Address(f"127.0.1.{i + 1}"), "bh"): _check(
            "bh", blackhole, timeout=5.0, fast_interval=0.2
        )
        for i in range(200)
    }
    good = ProbeTarget(LO, "good")
    with Drive(seed=3) as d:
        d.hanging = 200
        assert d.sched.set_targets(bh) == (200, 0, 0)
        assert d.until(d.t0 + 0.2) == []  # every first probe started within 0.2 s ...
        assert d.in_flight == 200  # ... and all of them hang, together, on one worker
        added = d.clock.now
        everything = {**bh, good: _check("good", tcp_server, fast_interval=0.1)}
        assert d.sched.set_targets(everything) == (1, 0, 0)
        got = d.until(added + 2.0)
        assert {r.target for r in got} == {good} and all(r.ok and r.duration == 0 for r in got)
        starts = [start_of(r) for r in got]
        assert added <= starts[0] < added + 0.1
        assert starts == series(starts[0], 0.1, 20)  # on time, to the tick, beside 200 hung
        assert d.in_flight == 200
        # Their deadlines come (5 s after each start): each ends as a timeout, and the good stream
        # keeps its pace meanwhile (a pass for a deadline may start it up to SLACK early).
        got = d.until(d.t0 + 5.2 + 0.01)
        hung = [r for r in got if r.target != good]
        assert Counter(r.target for r in hung) == Counter(bh.keys())  # each once
        assert all(
            (r.ok, r.reason, r.detail) == (False, Reason.L4TOUT, "connect timeout after 5s")
            for r in hung
        )
        assert _within([r.duration for r in hung], 5.0 - SLACK, 5.0)
        more = [r for r in got if r.target == good]
        assert all(r.ok and r.duration == 0 for r in more) and len(more) >= 30
        assert _within(_gaps([starts[-1], *map(start_of, more)]), 0.1 - SLACK, 0.1)
        assert d.in_flight == 200  # (their timeout exceeds their interval: the next ones began)
