"""The reconciler's counters and queue draining."""

from __future__ import annotations

from maglev.reconcile.snapshot import PASS_BUCKETS, PROBE_BUCKETS, Tally


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
