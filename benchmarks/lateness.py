"""Probe lateness under load: a loopback farm of TCP-checked backends that stay up, and maglevd's
`maglev_probe_lateness_seconds` histogram read at both ends of a window.

The farm is `benchmarks.farm` (its own process, so this one's timing is free of its accepts),
listening on one port of 127.1.x.y addresses; its backends sit in frontends of their own
(`FRONTEND0` on), checked over TCP every second. A suite puts `config_lines()` in every config
it writes, identically, so the farm's frontends never change and, staying up, add no VPP writes.
Used from the suite's thread (`benchmarks.reload`).
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass

from benchmarks.common import frontend_yaml
from maglev.daemon.metrics import PROBES_PATH
from maglev.health.workers import LATENESS_BUCKETS

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FRONTEND0 = 100_001
"""f100001 on: past the probed frontend of the rejected reloads (f100000)."""
PER_FRONTEND = 100
BOUND = max(b for b in LATENESS_BUCKETS if b <= 0.1)
"""The histogram bound the share is read at: 0.1 s is one of maglevd's lateness bounds."""
HISTOGRAM = "maglev_probe_lateness_seconds"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True, slots=True)
class Farm:
    port: int
    addresses: tuple[str, ...]
    metrics: int
    """maglevd's metrics port (`metrics.listen` in `config_lines`)."""

    def config_lines(self) -> dict[str, list[str]]:
        """The farm's config lines per top-level section: `healthchecks`, `backends`,
        `frontends` (mass-failure guard off, as for a probed frontend), `metrics`."""
        fronts: list[str] = []
        for f in range(0, len(self.addresses), PER_FRONTEND):
            members = ", ".join(
                f"late{i}: {{}}" for i in range(f, min(f + PER_FRONTEND, len(self.addresses)))
            )
            fronts += [*frontend_yaml(FRONTEND0 + f // PER_FRONTEND, members), "    min-healthy: 0"]
        return {
            # every second, a second to answer, three misses to fall: a probe late by a
            # stall of a reload is what is measured, not a flap (the suites count VPP writes)
            "healthchecks": [
                f"  late: {{type: tcp, port: {self.port}, interval: 1s, fast-interval: 1s,"
                " down-interval: 1s, timeout: 1s, rise: 2, fall: 3, jitter: 0%}"
            ],
            "backends": [
                f"  late{i}: {{address: {a}, healthcheck: late}}"
                for i, a in enumerate(self.addresses)
            ],
            "frontends": fronts,
            "metrics": ["metrics:", f"  listen: 127.0.0.1:{self.metrics}"],
        }

    def frontends(self) -> int:
        return (len(self.addresses) + PER_FRONTEND - 1) // PER_FRONTEND

    def scrape(self) -> tuple[float, float]:
        """(probes started within `BOUND` s of their due time, all probes) so far, from
        `/metrics/probes` (the whole `/metrics` of a big config takes maglevd seconds to build,
        and would make the probes late itself)."""
        url = f"http://127.0.0.1:{self.metrics}{PROBES_PATH}"
        with urllib.request.urlopen(url, timeout=600) as r:
            text = r.read().decode()
        within = count = None
        for line in text.splitlines():
            if line.startswith(f'{HISTOGRAM}_bucket{{le="{BOUND}"}}'):
                within = float(line.rsplit(" ", 1)[1])
            elif line.startswith(f"{HISTOGRAM}_count "):
                count = float(line.rsplit(" ", 1)[1])
        if within is None or count is None:
            raise RuntimeError(f"no {HISTOGRAM} with a {BOUND} s bucket at {url}")
        return within, count

    def up(self) -> int:
        """How many of the farm's backends maglevd has up."""
        url = f"http://127.0.0.1:{self.metrics}/metrics"
        with urllib.request.urlopen(url, timeout=600) as r:
            text = r.read().decode()
        return sum(
            1
            for line in text.splitlines()
            if line.startswith('maglev_backend_up{backend="late') and line.endswith(" 1.0")
        )

    def wait_up(self, timeout: float) -> None:
        """Until maglevd has every farm backend up."""
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(OSError):
                if self.up() == len(self.addresses):
                    return
            if time.monotonic() > deadline:
                raise RuntimeError("the farm's backends did not all come up")
            time.sleep(0.5)


@dataclass(frozen=True, slots=True)
class Window:
    within: float
    count: float

    def share(self) -> float:
        """Percent of the window's probes started within `BOUND` s of schedule (100: none)."""
        return 100.0 * self.within / self.count if self.count else 100.0


def window(before: tuple[float, float], after: tuple[float, float]) -> Window:
    return Window(after[0] - before[0], after[1] - before[1])


def total(windows: list[Window]) -> Window:
    return Window(sum(w.within for w in windows), sum(w.count for w in windows))


@contextlib.contextmanager
def farm(n: int) -> Iterator[Farm]:
    """`benchmarks.farm` listening on n loopback addresses (127.1.0.1 on), one port."""
    port = _free_port()
    addrs = tuple(str(ipaddress.IPv4Address(0x7F010000 + i + 1)) for i in range(n))
    proc = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.farm", str(port), *addrs],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        assert proc.stdout is not None
        if proc.stdout.readline().strip() != "ready":
            raise RuntimeError("the lateness farm did not start")
        yield Farm(port, addrs, _free_port())
    finally:
        if proc.stdin is not None:
            proc.stdin.close()  # EOF: the farm exits
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
