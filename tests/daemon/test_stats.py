"""The lb node error counters from VPP's stats segment: the reader, and maglevd's /metrics."""

from __future__ import annotations

import os
import pathlib
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable

import pytest

from maglev.vpp.stats import LbErrorReader
from maglev.vppsim.server import Emulator

BIN = pathlib.Path(sys.executable).parent


def wait_for(cond: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_reader_follows_counters_and_restarts(tmp_path: pathlib.Path) -> None:
    path = str(tmp_path / "stats.sock")
    reader = LbErrorReader(path)
    assert reader.read() == {}  # nothing serves the socket yet: no counters, no exception
    first = Emulator(str(tmp_path / "api.sock"), stats_socket=path)
    first.start()
    assert first.stats is not None
    got = reader.read()
    assert got[("lb4-gre4", "no error")] == 0
    assert all(node.startswith(("lb4-", "lb6-", "lb-nat")) for node, _ in got)
    assert ("lb-nat6-in2out", "protocol not supported") in got  # every lb node is read
    assert {c for _, c in got} == {"no error", "protocol not supported"}
    first.stats.set_error("lb6-gre6", "protocol not supported", 7)
    assert reader.read()[("lb6-gre6", "protocol not supported")] == 7
    first.stop()
    assert reader.read() == {}
    second = Emulator(str(tmp_path / "api.sock"), stats_socket=path)
    second.start()
    try:
        assert reader.read()[("lb6-gre6", "protocol not supported")] == 0
    finally:
        second.stop()


CONFIG = """
vpp:
  api-socket: {vpp}
  stats-socket: {stats}
  lb: {{ip4-src-address: 198.51.100.1}}
healthchecks:
  tcp: {{type: tcp, port: {port}, interval: 300ms, timeout: 200ms, rise: 1, fall: 1}}
backends:
  b1: {{address: 127.0.0.21, healthcheck: tcp}}
frontends:
  web:
    address: 192.0.2.10
    protocol: tcp
    port: 80
    encap: gre4
    pools:
      - {{name: primary, backends: {{b1: {{}}}}}}
control: {{socket: {ctl}}}
metrics: {{listen: "127.0.0.1:{metrics}"}}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.integration
def test_metrics_scrape_has_lb_errors(tmp_path: pathlib.Path) -> None:
    vpp, stats = str(tmp_path / "vpp.sock"), str(tmp_path / "stats.sock")
    metrics = free_port()
    cfg = tmp_path / "maglev.yaml"
    cfg.write_text(
        CONFIG.format(
            vpp=vpp, stats=stats, port=free_port(), ctl=tmp_path / "ctl.sock", metrics=metrics
        )
    )
    sim = subprocess.Popen(
        [str(BIN / "maglev-vppsim"), "--socket", vpp, "--stats-socket", stats],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    daemon: subprocess.Popen[bytes] | None = None
    try:
        wait_for(lambda: os.path.exists(stats), 10, "emulator stats socket")
        daemon = subprocess.Popen(
            [str(BIN / "maglevd"), "run", "--config", str(cfg)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        text = ""

        def scraped() -> bool:
            nonlocal text
            assert daemon is not None and daemon.poll() is None
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{metrics}/metrics", timeout=5) as r:
                    text = r.read().decode()
            except OSError:
                return False
            return "maglev_vpp_lb_errors" in text

        wait_for(scraped, 30, "maglev_vpp_lb_errors in /metrics")
        assert 'maglev_vpp_lb_errors_total{counter="no error",node="lb4-gre4"} 0.0' in text
    finally:
        for proc in (daemon, sim):
            if proc is not None:
                proc.terminate()
                proc.wait(10)


EMBEDDED = """
vpp: {{api-socket: embedded, lb: {{ip4-src-address: 198.51.100.1, startup-min-delay: 0s}}}}
backends: {{s1: {{address: 127.0.0.41}}}}
frontends:
  f: {{address: 192.0.2.41, protocol: tcp, port: 80, encap: gre4, pools: [{{name: p, backends: {{s1: {{}}}}}}]}}
control: {{socket: {ctl}}}
"""


@pytest.mark.integration
def test_embedded_emulator_serves_lb_errors(tmp_path: pathlib.Path) -> None:
    from maglev.config import load_text
    from maglev.daemon.metrics import MaglevCollector
    from maglev.daemon.runtime import Runtime, Settings

    cfg = tmp_path / "maglev.yaml"
    cfg.write_text(EMBEDDED.format(ctl=tmp_path / "ctl.sock"))
    rt = Runtime(Settings(str(cfg)), load_text(cfg.read_text()))
    rt.start()
    try:
        rt.emulator.stats.set_error("lb4-gre4", "protocol not supported", 5)
        fams = [f for f in MaglevCollector(rt.port, rt.info, rt.scheduler.snapshot)._lb_errors()]
        assert len(fams) == 1
        samples = {(s.labels["node"], s.labels["counter"]): s.value for s in fams[0].samples}
        assert samples[("lb4-gre4", "protocol not supported")] == 5.0
    finally:
        rt.stop()
