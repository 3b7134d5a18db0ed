"""Programming benchmark: how fast health events become VPP replies.

Setup: the emulator runs as its own process (`maglev-vppsim`); 1,000 frontends x 32 backends
(32,000 ASes, each backend its own address, weight 100, one pool) programmed through the real
reconciler. Then, side by side in one run:
- *batched*: 10% of the backends (3,200) fail at once; the time from their probe results entering
  the reconciler's queue to the last VPP reply of the resulting pipelined batch;
- *sync loop*: the same 3,200 `lb_as_set_weight` calls issued by a plain synchronous vpp-papi
  loop (one round trip each), the way a naive controller would;
- *latency*: one backend's transition to its VPP reply, repeated, with 1,000 frontends configured.

The reconciler runs as maglevd runs it (the scheduler's probe-target objects, the daemon's
garbage-collector policy, INFO logging: one line per transition, written to a file). The clock stops at the last reply (`VppConnection.last_reply_at`);
the time until the reconciler's turn is over (view of VPP updated, snapshot published) is
reported beside it.

With `maglev-bench program --vpp-socket PATH` the same runs against a VPP the user has
(`benchmarks.target`: refused when it has VIPs in the benchmark range, cleaned up after). The CPU
of VPP and of this process is sampled over the batched bursts and the bound named in a note.

`python -m benchmarks.program [--smoke]`, or through `maglev-bench program`.
"""

from __future__ import annotations

import argparse
import dataclasses
import ipaddress
import json
import logging
import os
import pathlib
import queue
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from benchmarks.common import percentile, ratio, stat, suite_result
from benchmarks.target import CpuWindow, Subject, VppTarget, cleanup, prepare, vpp_subject, where
from maglev.daemon import memory
from maglev.daemon.logsetup import TEXT_FORMAT
from maglev.health.state import Phase
from maglev.model import (
    Backend,
    CheckType,
    Config,
    Encap,
    Frontend,
    HealthCheck,
    LbSettings,
    Pool,
    PoolMember,
    ProbeResult,
    ProbeTarget,
    Protocol,
    Reason,
    VppSettings,
)
from maglev.reconcile.reconciler import Reconciler
from maglev.vpp import apidefs
from maglev.vpp.client import PapiLb
from maglev.vpp.lb import LbConf
from maglev.vpp.papi import LbCall, VppConnection

TARGET_RATIO = 10.0


class NoStreams:
    """Stands in for the check scheduler: keeps the probe targets it is given (its streams'
    results carry these very objects) and probes nothing."""

    def __init__(self) -> None:
        self.targets: dict[ProbeTarget, ProbeTarget] = {}

    def set_targets(
        self,
        targets: Mapping[ProbeTarget, HealthCheck],
        phases: Mapping[ProbeTarget, Phase] | None = None,
    ) -> tuple[int, int, int]:
        self.targets = {t: t for t in targets}
        return (len(targets), 0, 0)

    def set_phases(self, phases: Mapping[ProbeTarget, Phase]) -> None:
        pass


def make_config(socket_path: str, frontends: int, per: int, conf: LbConf | None = None) -> Config:
    """The suite's config; with `conf` (a real VPP's global lb settings) it asks for exactly
    those, so maglev sends that VPP no lb_conf."""
    hc = HealthCheck("hc", CheckType.TCP, port=80, rise=1, fall=1)
    backends: dict[str, Backend] = {}
    fes: dict[str, Frontend] = {}
    for f in range(frontends):
        members = []
        for j in range(per):
            n = f * per + j
            name = f"b{n}"
            backends[name] = Backend(name, ipaddress.ip_address(0x0A000000 + n + 1), "hc")
            members.append(PoolMember(name, 100))
        vip = ipaddress.ip_network((0xC6120000 + f, 32))  # 198.18.x.y: benchmark range
        fes[f"f{f}"] = Frontend(
            f"f{f}", vip, Protocol.TCP, 80, Encap.GRE4, (Pool("p", tuple(members)),)
        )
    lb = LbSettings(
        ip4_src_address=ipaddress.IPv4Address("198.51.100.1"),
        sync_interval=3600.0,
        startup_min_delay=0.0,
        startup_max_delay=0.0,
    )
    if conf is not None:
        lb = dataclasses.replace(
            lb,
            ip4_src_address=ipaddress.IPv4Address(conf.ip4_src_address),
            ip6_src_address=ipaddress.IPv6Address(conf.ip6_src_address),
            sticky_buckets_per_core=conf.sticky_buckets_per_core,
            flow_timeout=float(conf.flow_timeout),
        )
    return Config(
        vpp=VppSettings(api_socket=socket_path, lb=lb),
        healthchecks=MappingProxyType({"hc": hc}),
        backends=MappingProxyType(backends),
        frontends=MappingProxyType(fes),
    )


def results(
    cfg: Config, names: list[str], ok: bool, streams: NoStreams | None = None
) -> list[ProbeResult]:
    """Probe results for backends `names`, with the scheduler's target objects when given."""
    now = time.monotonic()
    known = streams.targets if streams is not None else {}
    out = []
    for n in names:
        b = cfg.backends[n]
        r = Reason.L4OK if ok else Reason.L4CON
        t = ProbeTarget(b.address, "hc")
        out.append(ProbeResult(known.get(t, t), ok, r, 0.001, "bench", now))
    return out


def run(smoke: bool = False, target: VppTarget | None = None) -> dict[str, Any]:
    frontends, per = (40, 32) if smoke else (1000, 32)
    reps = 2 if smoke else 3
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="maglev-bench-program-"))
    sim = None
    conf: LbConf | None = None
    if target is None:
        sock = str(tmp / "api.sock")
        sim = subprocess.Popen(
            [os.path.join(os.path.dirname(sys.executable), "maglev-vppsim"), "--socket", sock],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    else:
        sock = target.socket
        conf = prepare(target)  # refuses a VPP with VIPs where ours go
    # maglevd logs at INFO: every transition is a log line (here to a file, as to a journal).
    logger = logging.getLogger("maglev")
    handler = logging.FileHandler(tmp / "maglev.log")
    handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    saved = (logger.level, logger.propagate)
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        deadline = time.monotonic() + 20
        while not os.path.exists(sock):
            if time.monotonic() > deadline or (sim is not None and sim.poll() is not None):
                raise RuntimeError("the emulator did not start")
            time.sleep(0.05)
        vpp = vpp_subject(target, sim.pid if sim is not None else None)
        return _measure(sock, tmp, frontends, per, reps, smoke, target, conf, vpp)
    finally:
        logger.removeHandler(handler)
        handler.close()
        logger.level, logger.propagate = saved
        if sim is not None:
            sim.terminate()
            sim.wait(10)
        if target is not None:
            cleanup(target)


def _measure(
    sock: str,
    tmp: pathlib.Path,
    frontends: int,
    per: int,
    reps: int,
    smoke: bool,
    target: VppTarget | None,
    conf: LbConf | None,
    vpp_cpu: Subject | None,
) -> dict[str, Any]:
    cfg = make_config(sock, frontends, per, conf)
    files = apidefs.generate(tmp / "defs") if target is None else target.api_files()
    # Sampled over the batched bursts only: the sync loop's CPU is vpp-papi's, not maglev's.
    window = CpuWindow(vpp_cpu, Subject("maglev", os.getpid()))
    inbox: queue.Queue[Any] = queue.Queue()
    streams = NoStreams()
    conn = VppConnection(sock, files, read_timeout=60)
    # As maglevd runs it, garbage-collector policy included.
    rec = Reconciler(cfg, inbox, PapiLb(conn), streams, on_config=memory.settle)
    names = list(cfg.backends)
    for r in results(cfg, names, True, streams):
        inbox.put(r)
    t0 = time.perf_counter()
    rec.turn()
    setup_s = time.perf_counter() - t0
    assert rec.snapshot.counters.ops_ok >= frontends * (per + 1), "initial programming incomplete"

    rng = random.Random(7)
    batch_n = len(names) // 10
    batched: list[float] = []
    turns: list[float] = []
    syncs: list[float] = []
    # The baseline is stock vpp-papi: its own client, no maglev tweaks.
    from vpp_papi import VPPApiClient

    vpp = VPPApiClient(apifiles=files, server_address=sock, read_timeout=60)
    vpp.connect("bench-sync")
    restore = VppConnection(sock, files, name="bench-restore", read_timeout=60)
    restore.connect()
    for _ in range(reps):
        chosen = rng.sample(names, batch_n)
        ops_before = rec.snapshot.counters.ops_ok
        failures = results(cfg, chosen, False, streams)  # made by the workers, before
        with window.measure():
            t0 = time.perf_counter()
            for r in failures:
                inbox.put(r)
            rec.turn()
            turns.append(time.perf_counter() - t0)
        batched.append(conn.last_reply_at - t0)
        assert rec.snapshot.counters.ops_ok - ops_before == batch_n, "batch incomplete"
        for r in results(cfg, chosen, True, streams):  # restore (not measured)
            inbox.put(r)
        rec.turn()
        # The same calls, one synchronous vpp-papi round trip each.
        calls = []
        for n in chosen:
            f = int(n[1:]) // per
            calls.append(dict(pfx=cfg.frontends[f"f{f}"].address, protocol=6, port=80,
                              as_address=cfg.backends[n].address, weight=0, is_flush=True))  # fmt: skip
        t0 = time.perf_counter()
        for kw in calls:
            rv = vpp.api.lb_as_set_weight(**kw)
            assert rv.retval == 0
        syncs.append(time.perf_counter() - t0)
        for kw in calls:  # restore
            kw["weight"] = 100
            kw["is_flush"] = False
        restore.pipeline([LbCall("lb_as_set_weight", kw) for kw in calls])
    vpp.disconnect()
    restore.disconnect()

    # One transition to its reply, with every frontend configured.
    lat: list[float] = []
    for _ in range(40 if smoke else 300):
        n = rng.choice(names)
        for ok in (False, True):
            res = results(cfg, [n], ok, streams)[0]
            t0 = time.perf_counter()
            inbox.put(res)
            rec.turn()
            lat.append(conn.last_reply_at - t0)
    rec.lb.disconnect()
    r = min(syncs) / max(min(batched), 1e-9)
    on = f"on {where(target)}" + ("" if target else " (own process)")
    notes = ["smoke size: figures are not meaningful"] if smoke else []
    notes.append(f"batched bursts: {window.verdict()}")
    return suite_result(
        "program",
        f"{frontends} frontends x {per} backends = {frontends * per} ASes {on}; "
        f"{batch_n} backends fail at once",
        figures={
            "initial programming (s)": stat([setup_s], "s"),
            f"batched: {batch_n} events -> last reply": stat(batched, "s"),
            f"batched: {batch_n} events -> reconciler turn done": stat(turns, "s"),
            f"sync vpp-papi loop: {batch_n} calls": stat(syncs, "s"),
            "batched: weight changes per second": stat([batch_n / b for b in batched], "/s"),
            "one transition -> reply p50": stat([percentile(lat, 50)], "s"),
            "one transition -> reply p99": stat([percentile(lat, 99)], "s"),
            **{k: stat([v], "%") for k, v in window.figures().items()},
        },
        ratios={"batched vs sync loop": ratio(r, TARGET_RATIO)},
        samples={"transition latency (ms)": [x * 1e3 for x in lat]},
        notes=notes,
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--smoke", action="store_true")
    res = run(ap.parse_args().smoke)
    print(json.dumps(res, indent=2, default=str))


if __name__ == "__main__":
    main()
