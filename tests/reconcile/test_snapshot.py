"""The reconciler's counters: histogram buckets follow Prometheus' `le` (upper bound inclusive)."""

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
