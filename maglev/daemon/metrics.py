"""Prometheus metrics: a collector over the published snapshots, served on `metrics.listen`.

The `maglev-metrics` thread accepts; each connection is served on its own short-lived
`maglev-metrics-conn` thread (capped, with a read timeout), so an idle or slow client cannot hold
up other scrapes. A scrape reads over a narrow port, never sending the reconciler or VPP's API a
request: the reconciler's latest snapshot (VPP's per-VIP lb counters included: the reconciler
reads them on its timer), the check scheduler's counters (under its locks), and the daemon's
fixed info. VPP's lb node error counters are read from its stats segment (shared memory, not
the API), one scrape at a time (`LbErrorReader` holds a lock). `/metrics/probes` serves the
probe counters alone (cheap at any config size: `ProbeCollector`).
"""

from __future__ import annotations

import contextlib
import io
import logging
import socketserver
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
)

from maglev import __version__, diff
from maglev.config.fields import parse_host_port
from maglev.daemon.convergence import convergence_metrics
from maglev.daemon.info import DaemonInfo
from maglev.health.scheduler import CheckerStats
from maglev.model import BackendState
from maglev.reconcile.port import ReconcilerPort
from maglev.reconcile.snapshot import Histogram, Snapshot
from maglev.reconcile.vantage import GuardState
from maglev.vpp.stats import LbErrorReader

log = logging.getLogger(__name__)
STATES = [s.value for s in BackendState]


def _hist(name: str, doc: str, labels: list[str]) -> HistogramMetricFamily:
    return HistogramMetricFamily(name, doc, labels=labels)


def _buckets(h: Histogram) -> list[tuple[str, float]]:
    out, acc = [], 0
    for b, c in zip((*[str(x) for x in h.bounds], "+Inf"), h.counts, strict=True):
        acc += c
        out.append((b, float(acc)))
    return out


def _probes(stats: CheckerStats) -> CounterMetricFamily:
    probes = CounterMetricFamily(
        "maglev_probes", "probes finished", labels=["type", "result", "reason"]
    )
    for (kind, ok, reason), n in sorted(stats.probes.items(), key=str):
        probes.add_metric([kind.value, "ok" if ok else "fail", reason.value], float(n))
    return probes


def _lateness(stats: CheckerStats) -> HistogramMetricFamily:
    late = _hist("maglev_probe_lateness_seconds", "probe start minus its due time", [])
    acc, bk = 0, []
    for bound, n_late in stats.lateness_buckets:
        acc += n_late
        bk.append(("+Inf" if bound == float("inf") else str(bound), float(acc)))
    if not bk or bk[-1][0] != "+Inf":
        bk.append(("+Inf", float(stats.lateness_count)))
    late.add_metric([], bk, stats.lateness_sum)
    return late


class ProbeCollector:
    """The check scheduler's probe counters alone (`maglev_probes`, the lateness histogram),
    served on `/metrics/probes`: a scrape of `/metrics` with 40,000 backends is 25 MB built
    under the GIL for seconds, and itself makes probes late, so watching probe lateness through
    it measures the scrape."""

    def __init__(self, checker: Callable[[], CheckerStats]) -> None:
        self.checker = checker

    def collect(self) -> Iterator[Any]:
        stats = self.checker()
        yield _probes(stats)
        yield _lateness(stats)


class MaglevCollector:
    def __init__(
        self, port: ReconcilerPort, info: DaemonInfo, checker: Callable[[], CheckerStats]
    ) -> None:
        self.port = port
        self.info = info
        self.checker = checker
        self._errors: LbErrorReader | None = None

    def collect(self) -> Iterator[Any]:
        s = self.port.snapshot
        cfg = s.config
        info = InfoMetricFamily("maglev", "maglevd build and engine")
        info.add_metric([], {"version": __version__, "engine": diff.IMPLEMENTATION})
        yield info

        st = GaugeMetricFamily(
            "maglev_backend_state", "1 for the backend's current state", labels=["backend", "state"]
        )
        up = GaugeMetricFamily(
            "maglev_backend_up", "1 when the backend is healthy (up)", labels=["backend"]
        )
        en = GaugeMetricFamily(
            "maglev_backend_enabled", "1 when enabled in config", labels=["backend"]
        )
        for name, b in s.backends.items():
            for v in STATES:
                st.add_metric([name, v], 1.0 if b.state.value == v else 0.0)
            up.add_metric([name], 1.0 if b.state is BackendState.UP else 0.0)
            cb = cfg.backends.get(name)
            en.add_metric([name], 1.0 if cb is not None and cb.enabled else 0.0)
        yield from (st, up, en)

        eff = GaugeMetricFamily(
            "maglev_backend_weight_effective", "weight programmed for the backend in the frontend",
            labels=["frontend", "backend"],
        )  # fmt: skip
        conf = GaugeMetricFamily(
            "maglev_backend_weight_configured", "configured pool weight",
            labels=["frontend", "pool", "backend"],
        )  # fmt: skip
        fst = GaugeMetricFamily(
            "maglev_frontend_up",
            "1 when the frontend has traffic-taking backends",
            labels=["frontend"],
        )
        guard = GaugeMetricFamily(
            "maglev_frontend_mass_failure_guard",
            "1 while the frontend's mass-failure guard holds weights (fail-static) or serves "
            "every member (panic)",
            labels=["frontend", "mode"],
        )
        ramp = GaugeMetricFamily(
            "maglev_backend_slow_start_step",
            "the slow-start step a backend is at in a frontend (1..steps; 0: not ramping)",
            labels=["frontend", "backend"],
        )
        for fname, fe in cfg.frontends.items():
            for bname in fe.backend_names():
                doc = s.slow_start.get((fname, bname))
                if doc is not None or fe.slow_start_of(bname) is not None:
                    ramp.add_metric([fname, bname], float(doc["step"]) if doc else 0.0)
            guard.add_metric(
                [fname, fe.on_mass_failure.value], 1.0 if fname in s.mass_failure else 0.0
            )
            for pool in fe.pools:
                for m in pool.members:
                    conf.add_metric([fname, pool.name, m.backend], float(m.weight))
            view = s.frontends.get(fname)
            if view is not None:
                fst.add_metric([fname], 1.0 if view.state.value == "up" else 0.0)
                for bv in view.backends:
                    eff.add_metric([fname, bv.name], float(bv.weight))
        yield from (eff, conf, fst, guard, ramp)

        stats = self.checker()
        yield _probes(stats)
        dur = _hist("maglev_probe_duration_seconds", "probe duration", ["type"])
        for ptype, h in s.counters.probe_durations.items():
            dur.add_metric([ptype], _buckets(h), h.total)
        yield dur
        yield _lateness(stats)
        tr = CounterMetricFamily(
            "maglev_transitions", "backend state transitions", labels=["from", "to"]
        )
        for (old, new), n in s.counters.transitions.items():
            tr.add_metric([old, new], float(n))
        yield tr

        c = s.counters
        yield CounterMetricFamily(
            "maglev_reconcile_passes", "reconcile passes", value=float(c.passes)
        )
        yield CounterMetricFamily(
            "maglev_full_syncs", "full syncs (dump + diff)", value=float(c.full_syncs)
        )
        ops = CounterMetricFamily(
            "maglev_vpp_operations", "plan operations applied", labels=["result"]
        )
        ops.add_metric(["ok"], float(c.ops_ok))
        ops.add_metric(["failed"], float(c.ops_failed))
        yield ops
        moved = CounterMetricFamily(
            "maglev_frontend_buckets_moved",
            "new-flow table buckets that changed owner in the frontend's applied plans",
            labels=["frontend"],
        )
        for fname, n in sorted(c.buckets_moved.items()):
            moved.add_metric([fname], float(n))
        yield moved
        yield CounterMetricFamily(
            "maglev_churn_skipped_frontends",
            "frontends of applied plans whose bucket moves were not computed (over the time "
            "budget of a pass; not in maglev_frontend_buckets_moved)",
            value=float(c.churn_skipped),
        )
        ph = _hist("maglev_reconcile_pass_seconds", "reconcile pass latency", [])
        ph.add_metric([], _buckets(c.pass_hist), c.pass_hist.total)
        yield ph

        calls = CounterMetricFamily(
            "maglev_vpp_api_calls", "VPP API calls", labels=["message", "result"]
        )
        for (msg, res), n in sorted(s.vpp_calls.items()):
            calls.add_metric([msg, res], float(n))
        yield calls
        yield GaugeMetricFamily(
            "maglev_vpp_connected", "1 when connected to VPP", value=1.0 if s.vpp_connected else 0.0
        )
        yield GaugeMetricFamily(
            "maglev_vpp_connected_seconds", "seconds since the VPP connection was made",
            value=(time.time() - s.vpp_since) if s.vpp_since else 0.0,
        )  # fmt: skip
        vi = InfoMetricFamily("maglev_vpp", "VPP the daemon is connected to")
        vi.add_metric([], {"version": s.vpp_version or "", "socket": self.info.vpp_socket})
        yield vi
        rl = CounterMetricFamily("maglev_config_reloads", "config reloads", labels=["result"])
        rl.add_metric(["ok"], float(s.reloads_ok))
        rl.add_metric(["rejected"], float(s.reloads_rejected))
        rl.add_metric(["held"], float(s.reloads_held))  # by the reload interlocks
        yield rl
        yield GaugeMetricFamily(
            "maglev_config_reload_held",
            "1 while the reload interlocks hold a reload (the running config stays)",
            value=1.0 if s.reload_hold is not None else 0.0,
        )
        yield GaugeMetricFamily(
            "maglev_queue_depth", "reconciler queue depth", value=float(self.port.queue_depth())
        )
        yield CounterMetricFamily(
            "maglev_dropped_results", "probe results dropped on a full queue",
            value=float(stats.dropped_results),
        )  # fmt: skip
        yield GaugeMetricFamily("maglev_probe_streams", "probe streams", value=float(stats.streams))
        yield from self._vantage(s)
        yield from self._damping(s)
        yield from self._budget(s)
        yield from convergence_metrics(s)
        yield from self._vip_counters(s)
        yield from self._lb_errors()

    def _damping(self, s: Snapshot) -> Iterator[Any]:
        """Flap damping of each backend whose healthcheck has it (0 when it never flapped)."""
        pen = GaugeMetricFamily(
            "maglev_backend_damping_penalty", "the backend's flap-damping penalty",
            labels=["backend"],
        )  # fmt: skip
        sup = GaugeMetricFamily(
            "maglev_backend_suppressed", "1 while flap damping holds the backend out",
            labels=["backend"],
        )  # fmt: skip
        checks = s.config.healthchecks
        for name, b in s.config.backends.items():
            hc = checks.get(b.healthcheck) if b.healthcheck else None
            if hc is None or hc.flap_damping is None:
                continue
            d = s.damping.get(name)
            pen.add_metric([name], d.penalty if d else 0.0)
            sup.add_metric([name], 1.0 if d and d.suppressed else 0.0)
        yield from (pen, sup)

    def _budget(self, s: Snapshot) -> Iterator[Any]:
        """The disruption budget of each frontend that has one (0: no change held)."""
        step = GaugeMetricFamily(
            "maglev_frontend_budget_step",
            "the step a budgeted change is at (1..steps; 0: none held by max-churn)",
            labels=["frontend"],
        )
        for name, fe in s.config.frontends.items():
            if fe.max_churn is None:
                continue
            d = s.budget.get(name)
            step.add_metric([name], float(d["step"]) if d else 0.0)
        yield step

    def _vantage(self, s: Snapshot) -> Iterator[Any]:
        v = s.vantage
        yield GaugeMetricFamily(
            "maglev_vantage_guard_active", "1 while the vantage guard holds health-driven drains",
            value=1.0 if v.state is GuardState.HOLDING else 0.0,
        )  # fmt: skip
        yield GaugeMetricFamily(
            "maglev_vantage_held_backends", "backends down whose drain the vantage guard holds",
            value=float(len(v.held)),
        )  # fmt: skip
        yield CounterMetricFamily(
            "maglev_vantage_trips", "times the vantage guard tripped", value=float(v.trips)
        )
        up = GaugeMetricFamily(
            "maglev_vantage_canary_up", "1 when the canary is up", labels=["canary"]
        )
        for name, state in v.canaries:
            up.add_metric([name], 1.0 if state is BackendState.UP else 0.0)
        yield up

    def _lb_errors(self) -> Iterator[Any]:
        path = self.info.stats_socket
        if path is None:
            return
        if self._errors is None or self._errors.socket_path != path:
            self._errors = LbErrorReader(path)
        fam = CounterMetricFamily(
            "maglev_vpp_lb_errors", "VPP lb node error counters", labels=["node", "counter"]
        )
        for (node, counter), n in sorted(self._errors.read().items()):
            fam.add_metric([node, counter], float(n))
        yield fam

    def _vip_counters(self, s: Snapshot) -> Iterator[Any]:
        if not s.vpp_connected:
            return  # absent while VPP is away, as before a first read
        fam = CounterMetricFamily(
            "maglev_vpp_lb_vip_packets", "VPP lb per-VIP packet counters", labels=["vip", "counter"]
        )
        for v in s.vip_counters:
            vip = f"{v.key[0]} {v.key[1]}:{v.key[2]}"
            for name, n in v.counters:
                fam.add_metric([vip, name], float(n))
        yield fam


# A scraper sends its request at once; a connection that sends nothing for this long is closed,
# so an idle or slow client holds one connection thread for a few seconds, never the server.
READ_TIMEOUT = 5.0
# Scrapers are few (a Prometheus or two, an operator's curl): beyond this many connections at
# once something is wrong, and a 503 costs less than a thread per connection.
MAX_CONNECTIONS = 16
_BUSY = b"HTTP/1.0 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


class _DebugStream(io.TextIOBase):
    """wsgiref writes a failed request's traceback (a client that timed out or went away) to
    the handler's stderr: keep it in the debug log instead of the daemon's stderr."""

    def write(self, s: str) -> int:
        if s.strip():
            log.debug("metrics: %s", s.rstrip())
        return len(s)


class _QuietHandler(WSGIRequestHandler):
    timeout = READ_TIMEOUT  # StreamRequestHandler.setup() puts it on the connection's socket

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("metrics %s", format % args)

    def get_stderr(self) -> Any:
        return _DebugStream()


class _Server(socketserver.ThreadingMixIn, WSGIServer):
    """One daemon thread per connection, at most `max_connections` at once.

    Each scrape only reads the published snapshots (see `MaglevCollector`), so scrapes may run
    side by side; the single-threaded wsgiref server let one idle connection block them all.
    """

    daemon_threads = True
    block_on_close = False

    def __init__(self, address: tuple[str, int], read_timeout: float, max_connections: int) -> None:
        self.max_connections = max_connections
        self._slots = threading.BoundedSemaphore(max_connections)
        handler = type("MetricsHandler", (_QuietHandler,), {"timeout": read_timeout})
        super().__init__(address, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            log.debug(
                "metrics: %d connections open; refusing %s", self.max_connections, client_address
            )
            with contextlib.suppress(OSError):
                request.setblocking(False)  # the accept loop never waits on a client
                request.send(_BUSY)
            self.shutdown_request(request)
            return
        t = threading.Thread(
            target=self.process_request_thread,
            args=(request, client_address),
            name="maglev-metrics-conn",
            daemon=True,
        )
        try:
            t.start()
        except BaseException:
            self._slots.release()
            self.shutdown_request(request)
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that went quiet past the read timeout, or hung up: not the daemon's problem.
        log.debug("metrics: connection from %s ended: %s", client_address, sys.exc_info()[1])


PROBES_PATH = "/metrics/probes"
"""Only `ProbeCollector`'s families; every other path serves all of them."""


class MetricsServer:
    def __init__(
        self,
        collector: MaglevCollector,
        listen: str,
        *,
        read_timeout: float = READ_TIMEOUT,
        max_connections: int = MAX_CONNECTIONS,
    ) -> None:
        self.registry = CollectorRegistry()
        self.registry.register(collector)
        self.probes = CollectorRegistry()
        self.probes.register(ProbeCollector(collector.checker))
        every, probes = make_wsgi_app(self.registry), make_wsgi_app(self.probes)

        def app(environ: dict[str, Any], start_response: Any) -> Any:
            if environ.get("PATH_INFO") == PROBES_PATH:
                return probes(environ, start_response)
            return every(environ, start_response)

        host, port = parse_host_port(listen)
        self.server: WSGIServer = _Server((host, port), read_timeout, max_connections)
        self.server.set_app(app)
        self.address = self.server.server_address[:2]
        self._thread = threading.Thread(
            target=self.server.serve_forever, args=(0.1,), name="maglev-metrics", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
