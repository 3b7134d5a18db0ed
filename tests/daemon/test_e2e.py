"""maglevd as a real subprocess, against the emulator (its own process) and real loopback backends.

Covers what an operator does: start, watch a backend die, edit and replace the config, break it,
drive every maglevc command and check what each prints (text and JSON), scrape /metrics, stop with
SIGTERM and find VPP untouched. Waits are on events and states, with generous deadlines; nothing
asserts how long something took.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import ctypes
import json
import os
import pathlib
import re
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

import maglev
from maglev import diff
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
        wait_for(lambda: os.path.exists(self.vpp_sock), 30, "emulator socket")
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
        wait_for(lambda: self.status().get("vpp", {}).get("last_sync_ok"), 30, "first sync")

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


def rows(text: str) -> list[list[str]]:
    """The cells of each line of maglevc's text output (its columns are 2+ spaces apart)."""
    return [re.split(r"\s{2,}", line.strip()) for line in text.splitlines() if line.strip()]


def text_of(daemon: Daemon, *args: str) -> list[list[str]]:
    r = daemon.maglevc(*args)
    assert r.returncode == 0, (args, r.stdout, r.stderr)
    return rows(r.stdout)


def json_of(daemon: Daemon, *args: str) -> Any:
    r = daemon.maglevc("--json", *args)
    assert r.returncode == 0, (args, r.stdout, r.stderr)
    return json.loads(r.stdout)


def members(daemon: Daemon) -> dict[str, tuple[Any, ...]]:
    """backend -> (pool, state, configured, override, effective weight, why) of frontend web."""
    fe = json_of(daemon, "show", "frontend", "web")
    return {
        b["name"]: (
            b["pool"], b["state"], b["configured_weight"], b["override"],
            b["effective_weight"], b["reason"],
        )
        for b in fe["backends"]
    }  # fmt: skip


def backend_state(daemon: Daemon, name: str) -> str:
    return str(json_of(daemon, "show", "backend", name)["state"])


def test_backend_killed_goes_down_and_to_weight_zero(daemon: Daemon) -> None:
    wait_for(lambda: daemon.vpp() == {ADDRS[0]: 100, ADDRS[1]: 50, ADDRS[2]: 0}, 30, "programmed")
    daemon.backends[0].stop()
    # The transition, with the failed probe's reason, then the weight it causes at VPP.
    down = wait_for(
        lambda: [
            t for t in json_of(daemon, "show", "backend", "b1")["transitions"]
            if (t["from"], t["to"]) == ("up", "down")
        ],
        30,
        "b1 up -> down",
    )  # fmt: skip
    assert down[0]["reason"].startswith("L4CON"), down
    conn = daemon.vpp_connect()  # one connection: a poll costs a dump, not a handshake
    try:
        wait_for(lambda: weights(conn) == {ADDRS[0]: 0, ADDRS[1]: 50, ADDRS[2]: 0}, 30, "weight 0")
    finally:
        conn.disconnect()
    assert "backend b1: up -> down (L4CON" in daemon.logtext()
    assert members(daemon)["b1"] == ("primary", "down", 100, None, 0, "down")


def check_reads(daemon: Daemon) -> None:
    """Every `show` command, as text and as JSON, against the config above (all backends up)."""
    cfg = (daemon.vpp_sock, str(daemon.cfg), str(daemon.port))

    def version(text: list[list[str]], doc: Any) -> None:
        assert ["version", maglev.__version__] in text and ["engine", diff.IMPLEMENTATION] in text
        assert doc["version"] == maglev.__version__ and doc["engine"] == diff.IMPLEMENTATION
        assert doc["vpp_version"].endswith("vppsim") and ["vpp_version", doc["vpp_version"]] in text

    def status(text: list[list[str]], doc: Any) -> None:
        for row in (["engine", diff.IMPLEMENTATION], ["connected", "yes"], ["socket", cfg[0]],
                    ["last_sync_ok", "yes"], ["file", cfg[1]], ["released", "1"], ["up", "3"],
                    ["ops_failed", "0"]):  # fmt: skip
            assert row in text, (row, text)
        assert doc["engine"] == diff.IMPLEMENTATION and doc["dry_run"] is False
        assert doc["vpp"]["connected"] is True and doc["vpp"]["last_sync_ok"] is True
        assert doc["vpp"]["socket"] == cfg[0] and doc["vpp"]["unmanaged_vips"] == []
        assert doc["config"]["file"] == cfg[1] and doc["config"]["last_reload"]["ok"] is True
        assert doc["frontends"] == {"total": 1, "released": 1, "up": 1}
        assert doc["backends"] == {"total": 3, "up": 3}
        assert doc["reconciler"]["ops_failed"] == 0 and doc["reconciler"]["ops_ok"] >= 4

    fe_row = ["web", "192.0.2.10/32", "tcp", "80", "gre4", "up", "primary", "3/3", "-"]
    programmed = [
        ("primary", "b1", "127.0.0.21", "up", 100, None, 100, "active pool primary"),
        ("primary", "b2", "127.0.0.22", "up", 50, None, 50, "active pool primary"),
        ("backup", "b3", "127.0.0.23", "up", 100, None, 0, "standby pool backup"),
    ]

    def frontend_doc(fe: Any) -> None:
        assert (fe["name"], fe["address"], fe["protocol"], fe["port"], fe["encap"]) == (
            "web", "192.0.2.10/32", "tcp", 80, "gre4",
        )  # fmt: skip
        assert (fe["state"], fe["active_pool"], fe["released"]) == ("up", "primary", True)
        assert (fe["flow_table_length"], fe["flush_on_down"]) == (1024, True)
        got = [
            (b["pool"], b["name"], b["address"], b["state"], b["configured_weight"],
             b["override"], b["effective_weight"], b["reason"])
            for b in fe["backends"]
        ]  # fmt: skip
        assert got == programmed

    def frontends(text: list[list[str]], doc: Any) -> None:
        assert text[0][:3] == ["FRONTEND", "ADDRESS", "PROTO"] and text[1:] == [fe_row]
        assert [fe["name"] for fe in doc] == ["web"]
        frontend_doc(doc[0])

    def frontend(text: list[list[str]], doc: Any) -> None:
        for row in (["name", "web"], ["address", "192.0.2.10/32"], ["encap", "gre4"],
                    ["state", "up"], ["active_pool", "primary"]):  # fmt: skip
            assert row in text, (row, text)
        for pool, name, addr, state, conf, _, eff, why in programmed:
            assert [pool, name, addr, state, str(conf), str(eff), why] in text, text
        frontend_doc(doc)

    def backends(text: list[list[str]], doc: Any) -> None:
        assert text[0][0] == "BACKEND"
        for name, addr in zip(("b1", "b2", "b3"), ADDRS, strict=True):
            assert [name, addr, "tcp", "up", "yes", "L4OK connected"] in text, text
        assert [(b["name"], b["address"], b["healthcheck"], b["state"], b["enabled"],
                 b["frontends"], b["last_probe"]["reason"]) for b in doc] == [
            (name, addr, "tcp", "up", True, ["web"], "L4OK")
            for name, addr in zip(("b1", "b2", "b3"), ADDRS, strict=True)
        ]  # fmt: skip

    def backend(text: list[list[str]], doc: Any) -> None:
        for row in (["name", "b1"], ["address", ADDRS[0]], ["healthcheck", "tcp"],
                    ["state", "up"], ["frontends", "web"], ["reason", "L4OK"]):  # fmt: skip
            assert row in text, (row, text)
        assert any(r[1:] == ["unknown", "up", "L4OK", "connected"] for r in text), text
        assert (doc["name"], doc["address"], doc["state"], doc["enabled"]) == (
            "b1", ADDRS[0], "up", True,
        )  # fmt: skip
        assert doc["last_probe"]["ok"] is True and doc["last_probe"]["detail"] == "connected"
        first = doc["transitions"][0]
        assert (first["from"], first["to"], first["reason"]) == ("unknown", "up", "L4OK")

    def healthchecks(text: list[list[str]], doc: Any) -> None:
        assert text[1:] == [["tcp", "tcp", cfg[2], "0.3", "0.1", "1", "0.2", "2", "2"]]
        assert doc == [
            {"name": "tcp", "type": "tcp", "port": daemon.port, "interval": 0.3,
             "fast_interval": 0.1, "down_interval": 1.0, "timeout": 0.2, "rise": 2, "fall": 2,
             "jitter": 0.0, "netns": None},
        ]  # fmt: skip

    def lb_state(text: list[list[str]], doc: Any) -> None:
        assert text[0] == ["VIP", "ENCAP", "BUCKETS", "AS", "WEIGHT", "AS BUCKETS"]
        assert [r[:5] for r in text[1:]] == [
            ["192.0.2.10/32 6:80", "gre4", "1024", addr, w]
            for addr, w in zip(ADDRS, ("100", "50", "0"), strict=True)
        ]
        assert doc["conf"]["ip4_src_address"] == "198.51.100.1"
        (vip,) = doc["vips"]
        assert (vip["prefix"], vip["protocol"], vip["port"], vip["encap"]) == (
            "192.0.2.10/32", 6, 80, "gre4",
        )  # fmt: skip
        assert vip["flow_table_length"] == 1024 and vip["src_ip_sticky"] is False
        ases = {a["address"]: (a["weight"], a["num_buckets"]) for a in vip["ases"]}
        assert {a: w for a, (w, _) in ases.items()} == {ADDRS[0]: 100, ADDRS[1]: 50, ADDRS[2]: 0}
        buckets = [ases[a][1] for a in ADDRS]
        assert sum(buckets) == 1024 and buckets[0] > buckets[1] > buckets[2] == 0
        assert [r[5] for r in text[1:]] == [str(b) for b in buckets]

    checks: dict[tuple[str, ...], Callable[[list[list[str]], Any], None]] = {
        ("show", "version"): version,
        ("show", "status"): status,
        ("show", "frontends"): frontends,
        ("show", "frontend", "web"): frontend,
        ("show", "backends"): backends,
        ("show", "backend", "b1"): backend,
        ("show", "healthchecks"): healthchecks,
        ("show", "vpp", "lb", "state"): lb_state,
    }

    def run(args: tuple[str, ...]) -> None:
        checks[args](text_of(daemon, *args), json_of(daemon, *args))

    # The reads change nothing, so they run side by side (each is a process start).
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        list(pool.map(run, checks))


def watch_one(daemon: Daemon, as_json: bool) -> str:
    """`watch events --count 1` while b1 is paused and resumed until it reports; its output."""
    opt = ["--json"] if as_json else []
    proc = subprocess.Popen(
        [str(BIN / "maglevc"), "--socket", daemon.ctl, *opt, "watch", "events", "--count", "1"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        # Cause events until the watcher (which needs a moment to subscribe) reports one.
        deadline = time.monotonic() + 30
        action = "pause"
        while proc.poll() is None and time.monotonic() < deadline:
            daemon.maglevc("set", "backend", "b1", action)
            action = "resume" if action == "pause" else "pause"
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(0.3)
        out, _ = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, out
    return out


def test_every_maglevc_command(daemon: Daemon, tmp_path: pathlib.Path) -> None:
    wait_for(lambda: daemon.status()["backends"]["up"] == 3, 30, "every backend up")
    wait_for(lambda: daemon.vpp() == {ADDRS[0]: 100, ADDRS[1]: 50, ADDRS[2]: 0}, 30, "programmed")
    check_reads(daemon)

    # Operator actions: each reply, then its effect (the JSON form repeats it: nothing changes).
    def action(name: str, verb: str, state: str) -> None:
        assert text_of(daemon, "set", "backend", name, verb) == [
            ["backend", name], ["state", state], ["changed", "yes"],
        ]  # fmt: skip

    def again(name: str, verb: str, state: str) -> None:
        doc = json_of(daemon, "set", "backend", name, verb)
        assert doc == {"backend": name, "state": state, "changed": False}

    action("b2", "pause", "paused")
    again("b2", "pause", "paused")
    wait_for(lambda: daemon.vpp()[ADDRS[1]] == 0, 30, "b2 drained")
    assert members(daemon)["b2"] == ("primary", "paused", 50, None, 0, "paused")
    action("b2", "resume", "unknown")  # probed afresh
    wait_for(lambda: backend_state(daemon, "b2") == "up", 30, "b2 up again")
    again("b2", "resume", "up")
    wait_for(lambda: daemon.vpp()[ADDRS[1]] == 50, 30, "b2 weight back")
    action("b3", "disable", "disabled")
    again("b3", "disable", "disabled")
    assert members(daemon)["b3"] == ("backup", "disabled", 100, None, 0, "disabled")
    action("b3", "enable", "unknown")
    wait_for(lambda: backend_state(daemon, "b3") == "up", 30, "b3 up again")
    again("b3", "enable", "up")

    # A weight override, and clearing it.
    override = ("set", "frontend", "web", "pool", "primary", "backend", "b2", "weight")
    assert text_of(daemon, *override, "20") == [
        ["frontend", "web"], ["pool", "primary"], ["backend", "b2"], ["override", "20"],
    ]  # fmt: skip
    assert json_of(daemon, *override, "20") == {
        "frontend": "web", "pool": "primary", "backend": "b2", "override": 20,
    }  # fmt: skip
    wait_for(lambda: daemon.vpp()[ADDRS[1]] == 20, 30, "override applied")
    assert members(daemon)["b2"] == ("primary", "up", 50, 20, 20, "override 20")
    assert text_of(daemon, *override, "default")[-1] == ["override", "-"]
    assert json_of(daemon, *override, "default")["override"] is None
    wait_for(lambda: daemon.vpp()[ADDRS[1]] == 50, 30, "override cleared")
    assert members(daemon)["b2"] == ("primary", "up", 50, None, 50, "active pool primary")

    # A full sync; VPP's counters are read with it (the VIP did not exist at the first one).
    assert text_of(daemon, "sync", "vpp", "lb", "state") == [["ok", "yes"], ["connected", "yes"]]
    assert json_of(daemon, "sync", "vpp", "lb", "state") == {"ok": True, "connected": True}
    counters = wait_for(
        lambda: json_of(daemon, "show", "vpp", "lb", "counters")["vips"], 30, "VIP counters"
    )
    assert [(v["prefix"], v["protocol"], v["port"], v["counters"]) for v in counters] == [
        ("192.0.2.10/32", 6, 80,
         {"existing-session": 0, "first-packet": 0, "untracked": 0, "no-server": 0}),
    ]  # fmt: skip
    assert text_of(daemon, "show", "vpp", "lb", "counters") == [
        ["VIP", "EXISTING-SESSION", "FIRST-PACKET", "UNTRACKED", "NO-SERVER"],
        ["192.0.2.10/32 6:80", "0", "0", "0", "0"],
    ]

    # config check: the running file plans nothing; a changed weight plans its one write.
    r = daemon.maglevc("config", "check", str(daemon.cfg))
    assert r.returncode == 0 and r.stdout.splitlines() == [f"{daemon.cfg}: valid; plan: 0 ops"]
    doc = json_of(daemon, "config", "check", str(daemon.cfg))
    assert doc["valid"] is True and doc["plan"] == [] and doc["summary"].endswith("0 ops")
    candidate = tmp_path / "candidate.yaml"
    candidate.write_text(daemon.cfg.read_text().replace("b1: {}", "b1: {weight: 80}"))
    write = f"set weight 192.0.2.10/32 tcp:80 {ADDRS[0]} weight 80"
    lines = daemon.maglevc("config", "check", str(candidate)).stdout.strip().splitlines()
    assert lines[0] == f"{candidate}: valid; plan: 1 ops (set_weight 1)"
    assert lines[1].strip() == write and lines[2].startswith("churn: 1 frontend, ")
    assert [x.strip().split(":")[0] for x in lines[3:]] == ["web"]  # its churn line
    doc = json_of(daemon, "config", "check", str(candidate))
    assert doc["valid"] is True and doc["plan"] == [write]
    assert daemon.vpp()[ADDRS[0]] == 100  # a check changes nothing

    # config reload of an unchanged file.
    text = text_of(daemon, "config", "reload")
    for row in (["ok", "yes"], ["problems", "-"], ["why", "control API"], ["changes", "none"]):
        assert row in text, (row, text)
    doc = json_of(daemon, "config", "reload")
    assert (doc["ok"], doc["problems"], doc["why"], doc["changes"]) == (
        True, [], "control API", "none",
    )  # fmt: skip

    # watch events, as JSON and as text: b1's transitions as they happen.
    ev = json.loads(watch_one(daemon, as_json=True).strip().splitlines()[0])
    assert (ev["type"], ev["backend"], ev["frontends"]) == ("backend", "b1", ["web"])
    assert (ev["from"], ev["to"]) in {("up", "paused"), ("paused", "unknown"), ("unknown", "up")}
    line = watch_one(daemon, as_json=False).strip().splitlines()[0]
    assert re.fullmatch(
        r"\d\d:\d\d:\d\d backend backend=b1 frontends=\['web'\] from=\w+ to=\w+ .*", line
    ), line

    # Errors: an unknown name, an invalid file.
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
    wait_for(lambda: any(k.startswith("192.0.2.11") for k in vips(daemon)), 30, "frontend added")
    # Replaced by rename, as editors and config management do: the frontend goes away.
    tmp = tmp_path / ".maglev.yaml.new"
    daemon.write_config("", path=tmp)
    os.rename(tmp, daemon.cfg)
    wait_for(
        lambda: not any(k.startswith("192.0.2.11") for k in vips(daemon)), 30, "frontend removed"
    )
    # An invalid edit is rejected; the running config stays.
    daemon.cfg.write_text(daemon.cfg.read_text().replace("weight: 50", "weight: 500"))
    st = wait_for(
        lambda: (s := daemon.status()) and not s["config"]["last_reload"]["ok"] and s,
        30,
        "rejection",
    )
    problems = st["config"]["last_reload"]["problems"]
    assert any("frontends.web.pools[0].backends.b2.weight" in p and "500" in p for p in problems)
    assert daemon.vpp()[ADDRS[1]] == 50
    # SIGHUP after fixing it reloads again.
    daemon.write_config("")
    assert daemon.proc is not None
    daemon.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: daemon.status()["config"]["last_reload"]["ok"], 30, "reload ok")


def vips(daemon: Daemon) -> list[str]:
    r = daemon.maglevc("--json", "show", "vpp", "lb", "state")
    return [f"{v['prefix']} {v['port']}" for v in json.loads(r.stdout)["vips"]]


def test_metrics_parse(daemon: Daemon) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    def scrape() -> dict[str, Any]:
        body = (
            urllib.request.urlopen(f"http://127.0.0.1:{daemon.metrics}/metrics", timeout=10)
            .read()
            .decode()
        )
        return {f.name: f for f in text_string_to_metric_families(body)}

    def up_of(fams: dict[str, Any]) -> dict[str, float]:
        return {s.labels["backend"]: s.value for s in fams["maglev_backend_up"].samples}

    # The first sync may come before every backend has risen: wait for the scrape that shows them.
    wait_for(lambda: up_of(scrape()) == {"b1": 1.0, "b2": 1.0, "b3": 1.0}, 30, "all up in /metrics")
    fams = scrape()
    for name in (
        "maglev_backend_state", "maglev_backend_weight_effective", "maglev_probes",
        "maglev_probe_duration_seconds", "maglev_transitions", "maglev_reconcile_pass_seconds",
        "maglev_vpp_api_calls", "maglev_vpp_connected", "maglev_config_reloads", "maglev_queue_depth",
        "maglev_dropped_results", "maglev_vpp_lb_vip_packets",
    ):  # fmt: skip
        assert name in fams, name
    assert up_of(fams) == {"b1": 1.0, "b2": 1.0, "b3": 1.0}
    conn = [s.value for s in fams["maglev_vpp_connected"].samples]
    assert conn == [1.0]


def test_sigterm_leaves_vpp_tables_untouched(daemon: Daemon) -> None:
    wait_for(lambda: daemon.vpp() == {ADDRS[0]: 100, ADDRS[1]: 50, ADDRS[2]: 0}, 30, "programmed")
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
        30,
        "all backends up and every frontend released",
    )
    assert daemon.vpp() == before


def _tgkill(pid: int, tid: int, sig: int) -> None:
    """Send `sig` to one thread of a process (`kill` lets the kernel pick the thread)."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.syscall(SYS_TGKILL, pid, tid, sig) != 0:
        raise OSError(ctypes.get_errno(), "tgkill")


SYS_TGKILL = 234  # x86-64


@pytest.mark.skipif(os.uname().machine != "x86_64", reason="the tgkill syscall number is x86-64's")
def test_sigterm_delivered_to_another_thread_still_stops_it(daemon: Daemon) -> None:
    """The kernel may hand a process's SIGTERM to any of its threads; CPython then only sets a
    flag, and its handler runs when the main thread next runs bytecode. The main loop's wait on
    its event queue times out so that it does: here the signal goes to a check worker's thread,
    with nothing else for the main thread to wake for."""
    wait_for(lambda: daemon.vpp() == {ADDRS[0]: 100, ADDRS[1]: 50, ADDRS[2]: 0}, 30, "programmed")
    assert daemon.proc is not None
    pid = daemon.proc.pid
    tid = max(int(t) for t in os.listdir(f"/proc/{pid}/task") if int(t) != pid)
    _tgkill(pid, tid, signal.SIGTERM)
    assert daemon.proc.wait(30) == 0
    assert "stopping (SIGTERM)" in daemon.logtext()


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
