"""maglevd as a real subprocess, against the emulator (its own process) and real loopback backends.

Covers what an operator does: start, watch a backend die, edit and replace the config, break it,
drive every maglevc command, scrape /metrics, stop with SIGTERM and find VPP untouched.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from maglev.vpp import apidefs
from maglev.vpp.dumper import read_lb_state
from maglev.vpp.papi import VppConnection

pytestmark = [pytest.mark.integration, pytest.mark.slow]

BIN = pathlib.Path(sys.executable).parent
ADDRS = ("127.0.0.21", "127.0.0.22", "127.0.0.23")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Backend:
    """A TCP listener that accepts and closes; stop() makes connects fail (refused)."""

    def __init__(self, addr: str, port: int) -> None:
        self.addr, self.port = addr, port
        self.sock: socket.socket | None = None
        self.start()

    def start(self) -> None:
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((self.addr, self.port))
        s.listen(64)
        self.sock = s
        threading.Thread(target=self._accept, args=(s,), daemon=True).start()

    def _accept(self, s: socket.socket) -> None:
        while True:
            try:
                c, _ = s.accept()
                c.close()
            except OSError:
                return

    def stop(self) -> None:
        if self.sock is not None:
            # close() alone leaves the listener open while the accept thread is blocked in it, so
            # one more connect would succeed; shutdown() ends the accept and the listener now.
            with contextlib.suppress(OSError):
                self.sock.shutdown(socket.SHUT_RDWR)
            self.sock.close()
            self.sock = None


CONFIG = """
vpp:
  api-socket: {vpp}
  lb: {{ip4-src-address: 198.51.100.1, sync-interval: 5s, startup-min-delay: 200ms,
        startup-max-delay: 3s}}
healthchecks:
  tcp: {{type: tcp, port: {port}, interval: 300ms, fast-interval: 100ms, down-interval: 1s,
         timeout: 200ms, rise: 2, fall: 2, jitter: 0}}
backends:
  b1: {{address: 127.0.0.21, healthcheck: tcp}}
  b2: {{address: 127.0.0.22, healthcheck: tcp}}
  b3: {{address: 127.0.0.23, healthcheck: tcp}}
frontends:
  web:
    address: 192.0.2.10
    protocol: tcp
    port: 80
    encap: gre4
    pools:
      - {{name: primary, backends: {{b1: {{}}, b2: {{weight: 50}}}}}}
      - {{name: backup, backends: {{b3: {{}}}}}}
{extra}
control: {{socket: {ctl}}}
metrics: {{listen: "127.0.0.1:{metrics}"}}
"""


class Daemon:
    def __init__(self, tmp: pathlib.Path) -> None:
        self.tmp = tmp
        self.port = free_port()
        self.metrics = free_port()
        self.vpp_sock = str(tmp / "vpp.sock")
        self.ctl = str(tmp / "ctl.sock")
        self.cfg = tmp / "maglev.yaml"
        self.log = tmp / "maglevd.log"
        self.backends = [Backend(a, self.port) for a in ADDRS]
        self.sim = subprocess.Popen(
            [str(BIN / "maglev-vppsim"), "--socket", self.vpp_sock],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for(lambda: os.path.exists(self.vpp_sock), 10, "emulator socket")
        self.write_config()
        self.proc: subprocess.Popen[bytes] | None = None

    def write_config(self, extra: str = "", path: pathlib.Path | None = None) -> None:
        text = CONFIG.format(
            vpp=self.vpp_sock, port=self.port, ctl=self.ctl, metrics=self.metrics, extra=extra
        )
        (path or self.cfg).write_text(text)

    def start(self) -> None:
        self.logf = open(self.log, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [str(BIN / "maglevd"), "run", "--config", str(self.cfg), "--log-level", "debug",
             "--pidfile", str(self.tmp / "maglevd.pid")],
            stdout=self.logf,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        wait_for(lambda: self.status().get("vpp", {}).get("last_sync_ok"), 20, "first sync")

    def maglevc(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(BIN / "maglevc"), "--socket", self.ctl, *args],
            capture_output=True,
            text=True,
            timeout=30,
        )

    def status(self) -> dict[str, Any]:
        r = self.maglevc("--json", "show", "status")
        return json.loads(r.stdout) if r.returncode == 0 else {}

    def vpp(self) -> dict[str, int]:
        conn = self.vpp_connect()
        try:
            return weights(conn)
        finally:
            conn.disconnect()

    def vpp_connect(self) -> VppConnection:
        conn = VppConnection(self.vpp_sock, apidefs.bundled_api_files())
        conn.connect()
        return conn

    def logtext(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> int | None:
        code = None
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                code = self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        elif self.proc is not None:
            code = self.proc.returncode
        if hasattr(self, "logf"):
            self.logf.close()
        return code

    def close(self) -> None:
        self.stop()
        self.sim.terminate()
        self.sim.wait(10)
        for b in self.backends:
            b.stop()


def weights(conn: VppConnection) -> dict[str, int]:
    return {str(a.address): a.weight for a in read_lb_state(conn).ases}


def wait_for(cond: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            v = cond()
        except Exception:
            v = None
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@pytest.fixture
def daemon(tmp_path: pathlib.Path) -> Iterator[Daemon]:
    d = Daemon(tmp_path)
    try:
        d.start()
        yield d
    finally:
        d.close()
        if os.environ.get("MAGLEV_TEST_SHOW_LOG"):
            print(d.logtext())


def test_backend_killed_goes_to_weight_zero_fast(daemon: Daemon) -> None:
    wait_for(lambda: daemon.vpp() == {ADDRS[0]: 100, ADDRS[1]: 50, ADDRS[2]: 0}, 10, "programmed")
    conn = daemon.vpp_connect()  # one connection: a poll costs a dump, not a handshake
    try:
        t0 = time.monotonic()
        daemon.backends[0].stop()
        wait_for(lambda: weights(conn)[ADDRS[0]] == 0, 5, "weight 0")
        elapsed = time.monotonic() - t0
    finally:
        conn.disconnect()
    # fall (2) x interval (300 ms, then fast 100 ms) plus the probe timeout and a margin
    assert elapsed < 2 * 0.3 + 0.2 + 1.0, elapsed
    log = daemon.logtext()
    assert "backend b1: up -> down (L4CON" in log


def test_every_maglevc_command(daemon: Daemon, tmp_path: pathlib.Path) -> None:
    ok = [
        ("show", "version"),
        ("show", "status"),
        ("show", "frontends"),
        ("show", "frontend", "web"),
        ("show", "backends"),
        ("show", "backend", "b1"),
        ("show", "healthchecks"),
        ("show", "vpp", "lb", "state"),
        ("show", "vpp", "lb", "counters"),
        ("set", "backend", "b2", "pause"),
        ("set", "backend", "b2", "resume"),
        ("set", "backend", "b3", "disable"),
        ("set", "backend", "b3", "enable"),
        ("set", "frontend", "web", "pool", "primary", "backend", "b2", "weight", "20"),
        ("sync", "vpp", "lb", "state"),
        ("config", "check", str(daemon.cfg)),
        ("config", "reload"),
        ("watch", "events", "--count", "1"),
    ]

    def both(args: tuple[str, ...]) -> None:
        r = daemon.maglevc(*args)
        assert r.returncode == 0, (args, r.stdout, r.stderr)
        rj = daemon.maglevc("--json", *args)
        assert rj.returncode == 0, (args, rj.stderr)
        json.loads(rj.stdout)

    # The reads change nothing, so they run side by side (each is a process start); the rest run
    # in order.
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        list(pool.map(both, [a for a in ok if a[0] == "show"]))
    for args in ok:
        if args[0] == "show":
            continue
        if args[0] == "watch":
            # Make an event happen while watching.
            proc = subprocess.Popen(
                [str(BIN / "maglevc"), "--socket", daemon.ctl, "--json", *args],
                stdout=subprocess.PIPE,
                text=True,
            )
            try:
                # Cause events until the watcher (which needs a moment to subscribe) reports one.
                deadline = time.monotonic() + 20
                action = "pause"
                while proc.poll() is None and time.monotonic() < deadline:
                    daemon.maglevc("set", "backend", "b1", action)
                    action = "resume" if action == "pause" else "pause"
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        proc.wait(0.3)
                out, _ = proc.communicate(timeout=5)
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
            ev = json.loads(out.strip().splitlines()[0])
            assert ev["type"] == "backend" and ev["backend"] == "b1"
            continue
        both(args)
    assert wait_for(lambda: daemon.vpp()[ADDRS[1]] == 20, 5, "override applied")
    r = daemon.maglevc(
        "set", "frontend", "web", "pool", "primary", "backend", "b2", "weight", "default"
    )
    assert r.returncode == 0
    assert wait_for(lambda: daemon.vpp()[ADDRS[1]] == 50, 5, "override cleared")
    r = daemon.maglevc("show", "backend", "nope")
    assert r.returncode == 1 and "no backend named 'nope'" in r.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text("frontends: {x: {address: nope}}\n")
    r = daemon.maglevc("config", "check", str(bad))
    assert r.returncode == 2 and "frontends.x" in r.stdout


def test_reload_by_edit_rename_and_invalid(daemon: Daemon, tmp_path: pathlib.Path) -> None:
    extra = """  extra:
    address: 192.0.2.11
    protocol: udp
    port: 53
    encap: gre4
    pools:
      - {name: p, backends: {b3: {weight: 30}}}
"""
    daemon.write_config(extra)  # edited in place
    wait_for(lambda: any(k.startswith("192.0.2.11") for k in vips(daemon)), 10, "frontend added")
    # Replaced by rename, as editors and config management do: the frontend goes away.
    tmp = tmp_path / ".maglev.yaml.new"
    daemon.write_config("", path=tmp)
    os.rename(tmp, daemon.cfg)
    wait_for(
        lambda: not any(k.startswith("192.0.2.11") for k in vips(daemon)), 10, "frontend removed"
    )
    # An invalid edit is rejected; the running config stays.
    daemon.cfg.write_text(daemon.cfg.read_text().replace("weight: 50", "weight: 500"))
    st = wait_for(
        lambda: (s := daemon.status()) and not s["config"]["last_reload"]["ok"] and s,
        10,
        "rejection",
    )
    problems = st["config"]["last_reload"]["problems"]
    assert any("frontends.web.pools[0].backends.b2.weight" in p and "500" in p for p in problems)
    assert daemon.vpp()[ADDRS[1]] == 50
    # SIGHUP after fixing it reloads again.
    daemon.write_config("")
    assert daemon.proc is not None
    daemon.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: daemon.status()["config"]["last_reload"]["ok"], 10, "reload ok")


def vips(daemon: Daemon) -> list[str]:
    r = daemon.maglevc("--json", "show", "vpp", "lb", "state")
    return [f"{v['prefix']} {v['port']}" for v in json.loads(r.stdout)["vips"]]


def test_metrics_parse(daemon: Daemon) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    body = (
        urllib.request.urlopen(f"http://127.0.0.1:{daemon.metrics}/metrics", timeout=10)
        .read()
        .decode()
    )
    fams = {f.name: f for f in text_string_to_metric_families(body)}
    for name in (
        "maglev_backend_state", "maglev_backend_weight_effective", "maglev_probes",
        "maglev_probe_duration_seconds", "maglev_transitions", "maglev_reconcile_pass_seconds",
        "maglev_vpp_api_calls", "maglev_vpp_connected", "maglev_config_reloads", "maglev_queue_depth",
        "maglev_dropped_results", "maglev_vpp_lb_vip_packets",
    ):  # fmt: skip
        assert name in fams, name
    up = {s.labels["backend"]: s.value for s in fams["maglev_backend_up"].samples}
    assert up == {"b1": 1.0, "b2": 1.0, "b3": 1.0}
    conn = [s.value for s in fams["maglev_vpp_connected"].samples]
    assert conn == [1.0]


def test_sigterm_leaves_vpp_tables_untouched(daemon: Daemon) -> None:
    wait_for(lambda: daemon.vpp() == {ADDRS[0]: 100, ADDRS[1]: 50, ADDRS[2]: 0}, 10, "programmed")
    before = daemon.vpp()
    assert daemon.stop() == 0
    assert daemon.vpp() == before
    assert "VPP's lb tables are left as they are" in daemon.logtext()
    assert not (daemon.tmp / "maglevd.pid").exists()
    # A restart with healthy backends changes nothing: not the first sync, nor the writes that
    # follow once every backend is known up (the snapshot is published after the turn's write).
    daemon.start()
    wait_for(
        lambda: (
            (s := daemon.status())["backends"].get("up") == 3
            and s["frontends"]["released"] == s["frontends"]["total"]
        ),
        20,
        "all backends up and every frontend released",
    )
    assert daemon.vpp() == before


def test_systemd_readiness_after_first_sync(tmp_path: pathlib.Path) -> None:
    """Type=notify: READY=1 reaches $NOTIFY_SOCKET once the first full sync is done."""
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    path = str(tmp_path / "notify.sock")
    notify.bind(path)
    notify.settimeout(30)
    d = Daemon(tmp_path)
    os.environ["NOTIFY_SOCKET"] = path
    try:
        d.start()
        got = notify.recv(4096).decode()
        assert got == "READY=1"
        assert d.status()["vpp"]["last_sync_ok"] is True
        assert d.stop() == 0
        assert notify.recv(4096).decode() == "STOPPING=1"
    finally:
        del os.environ["NOTIFY_SOCKET"]
        notify.close()
        d.close()
