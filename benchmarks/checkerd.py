"""The checker suite's whole-process row: maglevd itself probing the suite's farm.

The workers-only figure (`benchmarks.checker.run_maglev`) leaves out what an operator pays for
beside the probes: the reconciler taking each result off the queue, rise/fall, snapshots, the
metrics and the control API being there. Here `maglevd run` (a real process) gets a config of the
same N backends (same addresses, same refused and blackholed shares, same check settings) with
the emulator in this process as its dataplane, so the emulator's CPU is not counted. Figures:
maglevd's CPU (all threads, from /proc/<pid>/stat) over a steady window divided by the probes it
finished in that window (its `maglev_probes` counter on the metrics endpoint, read at both ends).
It logs at INFO, as an operator runs it.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

from benchmarks.common import frontend_yaml
from maglev.model import CheckType, HealthSettings
from maglev.vppsim import Emulator

ROOT = pathlib.Path(__file__).resolve().parent.parent
PER_FRONTEND = 10


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def config_text(
    kind: CheckType, targets: list[tuple[Any, int]], sock: str, ctl: str, metrics: int
) -> str:
    """N backends as the checker suite probes them: one healthcheck per port (good, refused,
    blackholed), everything at 1 s with a 1 s timeout and no jitter, frontends of 10 backends."""
    lines = [
        "vpp:",
        f"  api-socket: {sock}",
        "  lb: {ip4-src-address: 198.51.100.1, sync-interval: 60s, startup-min-delay: 0s,",
        "       startup-max-delay: 5s}",
        "healthchecks:",
    ]
    extra = ", path: /, expect-status: 200-299" if kind is CheckType.HTTP else ""
    for port in sorted({p for _, p in targets}):
        lines.append(
            f"  c{port}: {{type: {kind.value}, port: {port}, interval: 1s, fast-interval: 1s,"
            f" down-interval: 1s, timeout: 1s, rise: 2, fall: 3, jitter: 0%{extra}}}"
        )
    lines.append("backends:")
    lines += [f"  b{i}: {{address: {a}, healthcheck: c{p}}}" for i, (a, p) in enumerate(targets)]
    lines.append("frontends:")
    for f in range((len(targets) + PER_FRONTEND - 1) // PER_FRONTEND):
        members = range(f * PER_FRONTEND, min((f + 1) * PER_FRONTEND, len(targets)))
        lines += frontend_yaml(f, ", ".join(f"b{i}: {{}}" for i in members))
    lines += [
        "control:",
        f"  socket: {ctl}",
        "metrics:",
        f"  listen: 127.0.0.1:{metrics}",
        f"health: {{workers: {HealthSettings().workers}, queue-size: 100000}}",  # the default
    ]
    return "\n".join(lines) + "\n"


def probes_done(metrics: int) -> int:
    """Probes maglevd has finished: the sum of its `maglev_probes` counter, read on
    `/metrics/probes` (the probe counters alone): the whole `/metrics` is megabytes at 5,000
    backends (3.1 MB), and building it for the read that ends the window put a scrape's CPU
    into the window: 0.14-0.19 s, about 3 us per probe of a 10 s window at 5,000 (measured)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics}/metrics/probes", timeout=10) as r:
        text = r.read().decode()
    total = 0.0
    for line in text.splitlines():
        if line.startswith("maglev_probes_total{"):
            total += float(line.rsplit(" ", 1)[1])
    return int(total)


def _cpu_of(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def maglevd(kind: CheckType, targets: list[tuple[Any, int]]) -> Iterator[tuple[int, int]]:
    """maglevd running on the emulator (in this process) until it probes at full rate; yields
    (pid, metrics port)."""
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="maglev-bench-checkerd-"))
    sock, ctl, metrics = str(tmp / "api.sock"), str(tmp / "ctl.sock"), _free_port()
    emu = Emulator(sock)
    emu.start()
    cfg = tmp / "maglev.yaml"
    cfg.write_text(config_text(kind, targets, sock, ctl, metrics))
    log = open(tmp / "maglevd.log", "wb")  # noqa: SIM115 - closed below
    # `-m` from this tree's root: the maglev beside this benchmark runs (a copy of another
    # commit measures that commit's daemon, for before/after figures)
    args = [sys.executable, "-m", "maglev.cli.maglevd", "run", "--config", str(cfg)]
    args += ["--log-level", "info", "--state-file", str(tmp / "state.json")]
    proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    try:
        deadline = time.monotonic() + 120
        last = None
        while True:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"maglevd did not start probing (see {tmp}/maglevd.log)")
            with contextlib.suppress(OSError):
                now = (time.monotonic(), probes_done(metrics))
                # at full rate: a second's worth of probes in the last second
                if last is not None and (now[1] - last[1]) >= 0.9 * len(targets) * (
                    now[0] - last[0]
                ):
                    break
                last = now
            threading.Event().wait(1.0)
        yield proc.pid, metrics
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        emu.stop()


def run_maglevd(
    kind: CheckType, targets: list[tuple[Any, int]], warmup: float, window: float
) -> tuple[int, float, float]:
    """(probes, seconds, CPU seconds) of a whole maglevd over a steady window."""
    with maglevd(kind, targets) as (pid, metrics):
        threading.Event().wait(warmup)
        p0, c0, t0 = probes_done(metrics), _cpu_of(pid), time.monotonic()
        threading.Event().wait(window)
        p1, c1, t1 = probes_done(metrics), _cpu_of(pid), time.monotonic()
    return p1 - p0, t1 - t0, c1 - c0
