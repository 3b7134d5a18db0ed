"""The reconciler's counters and queue draining."""

from __future__ import annotations

import ipaddress

from maglev.model import BackendState, ProbeResult, ProbeTarget, Reason
from maglev.reconcile.snapshot import PASS_BUCKETS, PROBE_BUCKETS, BackendStatus, ProbeLog, Tally


def test_probe_and_pass_histograms_bucket_by_inclusive_upper_bound() -> None:
    t = Tally()
    for v in (0.0, 0.001, 0.0011, 0.0025, 10.0, 10.5):
        t.probe("tcp", v)
    t.pass_done(0.0005)
    t.pass_done(99.0)
    c = t.freeze()
    h = c.probe_durations["tcp"]
    assert h.bounds == PROBE_BUCKETS
    want = [0] * (len(PROBE_BUCKETS) + 1)
    want[0] = 2  # 0 and 0.001 (<= 0.001)
    want[1] = 2  # 0.0011 and 0.0025 (<= 0.0025)
    want[PROBE_BUCKETS.index(10.0)] = 1
    want[-1] = 1  # above the last bound: +Inf
    assert list(h.counts) == want
    assert h.count == 6 and abs(h.total - 20.5046) < 1e-9
    assert c.pass_hist.counts[0] == 1 and c.pass_hist.counts[len(PASS_BUCKETS)] == 1


def test_drain_takes_oldest_first_up_to_a_limit_and_wakes_producers() -> None:
    import queue
    import threading

    from maglev.reconcile.events import drain

    q: queue.Queue[int] = queue.Queue(maxsize=3)
    for i in range(3):
        q.put(i)
    done = threading.Event()

    def producer() -> None:
        q.put(3)  # blocks: the queue is full
        q.put(4)
        done.set()

    t = threading.Thread(target=producer, daemon=True)
    t.start()
    assert drain(q, 2) == [0, 1]
    assert done.wait(5)  # both waiting puts went through once room was made
    assert drain(q, 100) == [2, 3, 4]
    assert drain(q, 100) == [] and q.empty()
    t.join(5)


def _result(t: ProbeTarget, at: float, ok: bool = True) -> ProbeResult:
    return ProbeResult(t, ok, Reason.L4OK if ok else Reason.L4CON, 0.001, "x", at)


def test_probe_log_keeps_the_latest_and_the_last_few_per_target_and_forgets_on_request() -> None:
    a = ProbeTarget(ipaddress.ip_address("10.0.0.1"), "hc")
    b = ProbeTarget(ipaddress.ip_address("10.0.0.2"), "hc")
    log = ProbeLog(keep=3)
    assert log.recent(a) == () and log.last.get(a) is None
    for i in range(5):
        log.record(a, _result(a, float(i)))
    log.record(b, _result(b, 9.0, ok=False))
    assert [p.at for p in log.recent(a)] == [2.0, 3.0, 4.0]  # oldest first, bounded
    assert log.last[a].at == 4.0 and log.last[b].ok is False
    recent = log.recent(a)
    log.record(a, _result(a, 5.0))
    assert [p.at for p in recent] == [2.0, 3.0, 4.0]  # a copy: what was read stays as read
    log.keep_only({a: ()}, set())
    assert b not in log.last and log.recent(b) == () and log.last[a].at == 5.0
    log.keep_only(set(), {a})  # kept by the second container
    assert a in log.last
    log.keep_only(set())
    assert not log.last


def test_a_status_reads_its_probes_through_the_log() -> None:
    a = ProbeTarget(ipaddress.ip_address("10.0.0.1"), "hc")
    log = ProbeLog()
    st = BackendStatus("a", BackendState.UP, 2, (), a, log)
    assert st.last_probe is None and st.recent == ()
    log.record(a, _result(a, 1.0))
    assert st.last_probe is not None and st.last_probe.at == 1.0 and len(st.recent) == 1
    assert BackendStatus("b", BackendState.UP, 0, ()).last_probe is None  # no target, no log
    assert st == BackendStatus("a", BackendState.UP, 2, (), a, ProbeLog())  # the log: not compared
