"""Convergence for readers: the reconciler's per-stage histograms as metrics, and its last
few convergences for `GET /v1/status` (`maglevc show status`).

Called by `maglev.daemon.metrics.MaglevCollector` on a scrape's connection thread and by the
control API on its request threads; both read the frozen `ConvergenceStats` of the latest
snapshot only (the stages are defined in `maglev.reconcile.convergence` and the README's
metrics section).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

from maglev.reconcile.snapshot import Converged, ConvergenceStats, Histogram, Snapshot

HELP = (
    "seconds a backend's change of health (up <-> down, decided by probes) took, per stage: "
    "queue = deciding probe finished -> reconciler took its result; detect = first probe of "
    "the failing (or succeeding) run finished -> transition; write = transition -> replies of "
    "the VPP write carrying its weight; total = detect + write"
)


def _buckets(h: Histogram) -> list[tuple[str, float]]:
    out, acc = [], 0
    for b, c in zip((*[str(x) for x in h.bounds], "+Inf"), h.counts, strict=True):
        acc += c
        out.append((b, float(acc)))
    return out


def convergence_metrics(s: Snapshot) -> Iterator[Any]:
    c = s.convergence
    hist = HistogramMetricFamily("maglev_convergence_seconds", HELP, labels=["stage"])
    for stage, h in c.stages:
        hist.add_metric([stage], _buckets(h), h.total)
    yield hist
    out = CounterMetricFamily(
        "maglev_convergence_transitions",
        "measured transitions by outcome: written = measured to a VPP reply; unwritten = the "
        "first pass over its frontends wrote nothing for the backend (its weight did not change,"
        " e.g. a backup pool's 0, or a safety rule held it), so no write/total stage; dropped = "
        "too many waited for a write (VPP away), not measured",
        labels=["outcome"],
    )
    out.add_metric(["written"], float(c.written))
    out.add_metric(["unwritten"], float(c.unwritten))
    out.add_metric(["dropped"], float(c.dropped))
    yield out
    yield GaugeMetricFamily(
        "maglev_convergence_pending",
        "transitions waiting for the VPP write that carries their weight",
        value=float(c.pending),
    )


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1e3, 3)


def _recent_doc(c: Converged) -> dict[str, Any]:
    return {
        "backend": c.backend,
        "from": c.old.value,
        "to": c.new.value,
        "queue_ms": _ms(c.queue),
        "detect_ms": _ms(c.detect),
        "write_ms": _ms(c.write),  # None: no VPP write carried it (unwritten)
        "total_ms": _ms(c.total),
    }


def convergence_doc(c: ConvergenceStats) -> dict[str, Any]:
    """The outcomes so far and the last few convergences (oldest first), for the status."""
    return {
        "written": c.written,
        "unwritten": c.unwritten,
        "dropped": c.dropped,
        "pending": c.pending,
        "recent": [_recent_doc(r) for r in c.recent],
    }
