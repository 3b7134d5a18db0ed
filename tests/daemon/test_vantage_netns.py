"""The vantage guard for real: maglevd probing from a network namespace whose link the test cuts.

maglevd (a subprocess, as root) probes from namespace P; the backends n1..n3 and the canary are
TCP listeners in namespace B, reached over a veth pair (link-local 169.254.78.0/24, inside the
namespaces only). Four more backends on loopback in the root namespace (l1..l4) are probed
without a namespace and never lose sight. VPP is the emulator, a process of its own, read over
its real socket. Cutting P's end of the veth makes every backend behind it look dead at once,
which is exactly the fault the guard is for:
- the canary fails and the guard trips: the backends' real health (down) is shown, but VPP's
  weights do not change; when the link comes back, the guard releases once the canary is up
  again, and the one backend that really died meanwhile is drained then;
- cut again, and an operator's `maglevc guard release` applies the held drains at once.
Waits are on states, with generous deadlines; nothing asserts how long something took. Skipped
unless root with `ip netns`.
"""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from maglev.health import netns
from maglev.vpp import apidefs
from maglev.vpp.dumper import read_lb_state
from maglev.vpp.papi import VppConnection

pytestmark = [pytest.mark.integration, pytest.mark.netns, pytest.mark.slow]

BIN = pathlib.Path(sys.executable).parent
P_ADDR = "169.254.78.1"
NS_BACKENDS = {"n1": "169.254.78.11", "n2": "169.254.78.12", "n3": "169.254.78.13"}
CANARY = "169.254.78.254"
LO_BACKENDS = {"l1": "127.0.0.41", "l2": "127.0.0.42", "l3": "127.0.0.43", "l4": "127.0.0.44"}

CONFIG = """
vpp:
  api-socket: {vpp}
  lb: {{ip4-src-address: 198.51.100.1, sync-interval: 5s, startup-min-delay: 200ms,
        startup-max-delay: 5s}}
healthchecks:
  ns: {{type: tcp, port: {port}, netns: {ns}, interval: 300ms, fast-interval: 100ms,
        down-interval: 500ms, timeout: 200ms, rise: 2, fall: 2, jitter: 0}}
  # The canary falls at its first failure and rises after ten successes: it trips the guard
  # before the backends fall, and releases it after they are back.
  canary: {{type: tcp, port: {port}, netns: {ns}, interval: 100ms, fast-interval: 100ms,
            down-interval: 100ms, timeout: 100ms, rise: 10, fall: 1, jitter: 0}}
  lo: {{type: tcp, port: {port}, interval: 300ms, fast-interval: 100ms, down-interval: 500ms,
        timeout: 200ms, rise: 2, fall: 2, jitter: 0}}
backends:
{backends}
frontends:
  web:
    address: 192.0.2.10
    protocol: tcp
    port: 80
    encap: gre4
    pools:
      - {{name: primary, backends: {{n1: {{}}, n2: {{}}, n3: {{}}, l1: {{}}, l2: {{}}, l3: {{}},
          l4: {{}}}}}}
health:
  vantage: {{canaries: {{gw: {{address: {canary}, healthcheck: canary}}}}}}
control: {{socket: {ctl}}}
metrics: {{listen: "127.0.0.1:{metrics}"}}
"""


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(cond: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            v = cond()
        except Exception:
            v = None
        if v:
            return v
        threading.Event().wait(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


class Listener:
    """A TCP listener (in namespace `ns`, or here) that accepts and closes; stop() refuses."""

    def __init__(self, addr: str, port: int, ns: str | None = None) -> None:
        self.sock = netns.socket_in(ns, socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((addr, port))
        self.sock.listen(64)
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                c, _ = self.sock.accept()
                c.close()
            except OSError:
                return

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)  # ends the blocked accept, and the listener
        self.sock.close()


class Rig:
    def __init__(self, tmp: pathlib.Path, p: str, b: str) -> None:
        self.tmp, self.p, self.b = tmp, p, b
        self.port = free_port()
        self.ctl = str(tmp / "ctl.sock")
        self.vpp_sock = str(tmp / "vpp.sock")
        self.metrics = free_port()
        self.log = tmp / "maglevd.log"
        self.listeners = {n: Listener(a, self.port, b) for n, a in NS_BACKENDS.items()}
        self.listeners["gw"] = Listener(CANARY, self.port, b)
        self.listeners |= {n: Listener(a, self.port) for n, a in LO_BACKENDS.items()}
        backends = "\n".join(
            f"  {n}: {{address: {a}, healthcheck: {'ns' if n in NS_BACKENDS else 'lo'}}}"
            for n, a in (NS_BACKENDS | LO_BACKENDS).items()
        )
        (tmp / "maglev.yaml").write_text(
            CONFIG.format(
                vpp=self.vpp_sock, port=self.port, ns=p, backends=backends, canary=CANARY,
                ctl=self.ctl, metrics=self.metrics,
            )
        )  # fmt: skip
        self.sim = subprocess.Popen(
            [str(BIN / "maglev-vppsim"), "--socket", self.vpp_sock],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for(lambda: os.path.exists(self.vpp_sock), 30, "emulator socket")
        self.logf = open(self.log, "ab")  # noqa: SIM115 - closed in close()
        self.proc = subprocess.Popen(
            [str(BIN / "maglevd"), "run", "--config", str(tmp / "maglev.yaml"),
             "--log-level", "info"],
            stdout=self.logf,
            stderr=subprocess.STDOUT,
        )  # fmt: skip

    def link(self, up: bool) -> None:
        _ip("-n", self.p, "link", "set", "vp", "up" if up else "down")
        if up:
            wait_carrier(self.p, "vp")

    def maglevc(self, *args: str) -> str:
        r = subprocess.run(
            [str(BIN / "maglevc"), "--socket", self.ctl, *args],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        assert r.returncode == 0, (args, r.stdout, r.stderr)
        return r.stdout

    def status(self) -> dict[str, Any]:
        return dict(json.loads(self.maglevc("--json", "show", "status")))

    def vpp(self) -> dict[str, int]:
        conn = VppConnection(self.vpp_sock, apidefs.bundled_api_files())
        conn.connect()
        try:
            st = read_lb_state(conn)
        finally:
            conn.disconnect()
        by_addr = {a: n for n, a in (NS_BACKENDS | LO_BACKENDS).items()}
        return {by_addr[str(a.address)]: a.weight for a in st.ases}

    def scrape(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics}/metrics", timeout=10) as r:
            return str(r.read().decode())

    def logtext(self) -> str:
        return self.log.read_text(errors="replace")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.logf.close()
        self.sim.terminate()
        self.sim.wait(10)
        for listener in self.listeners.values():
            listener.stop()


def wait_carrier(ns: str, dev: str) -> None:
    """A veth brought up may drop packets until it reports a carrier."""

    def up() -> bool:
        out = subprocess.run(
            ["ip", "-n", ns, "link", "show", "dev", dev], capture_output=True, text=True
        ).stdout
        return "state UP" in out and "NO-CARRIER" not in out

    wait_for(up, 10, f"{dev} in {ns} up")


@pytest.fixture
def rig(tmp_path: pathlib.Path) -> Iterator[Rig]:
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root")
    if shutil.which("ip") is None:
        pytest.skip("the `ip` command (iproute2) is missing")
    tag = uuid.uuid4().hex[:6]
    p, b = f"mgv-p-{tag}", f"mgv-b-{tag}"
    made: list[str] = []
    r: Rig | None = None
    try:
        for ns in (p, b):
            try:
                _ip("netns", "add", ns)
            except (OSError, subprocess.CalledProcessError) as e:
                pytest.skip(f"ip netns unavailable: {e}")
            made.append(ns)
            _ip("-n", ns, "link", "set", "lo", "up")
        _ip("-n", p, "link", "add", "vp", "type", "veth", "peer", "name", "vb", "netns", b)
        _ip("-n", p, "addr", "add", f"{P_ADDR}/24", "dev", "vp")
        for a in (*NS_BACKENDS.values(), CANARY):
            _ip("-n", b, "addr", "add", f"{a}/24", "dev", "vb")
        _ip("-n", p, "link", "set", "vp", "up")
        _ip("-n", b, "link", "set", "vb", "up")
        wait_carrier(p, "vp")
        r = Rig(tmp_path, p, b)
        yield r
    finally:
        if r is not None:
            r.close()
        for ns in made:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=10)


ALL = dict.fromkeys((*NS_BACKENDS, *LO_BACKENDS), 100)


def test_a_cut_vantage_freezes_drains_and_its_recovery_applies_them(rig: Rig) -> None:
    wait_for(lambda: rig.vpp() == ALL, 60, "every backend programmed")
    assert rig.status()["vantage"]["state"] == "armed"

    # Cut: every backend behind the link looks dead, and n2 really dies meanwhile.
    rig.link(False)
    rig.listeners["n2"].stop()
    held = wait_for(
        lambda: (
            (s := rig.status())["backends"].get("down") == 3
            and s["vantage"]["held_backends"] == 3
            and s["vantage"]
        ),
        60,
        "the guard holding the three backends behind the link",
    )
    assert held["state"] == "holding" and held["canaries"] == {"gw": "down"}
    assert held["why"].startswith(f"canary gw ({CANARY}, healthcheck canary) is down")
    assert rig.vpp() == ALL  # real health is down, VPP's weights did not move
    n1 = json.loads(rig.maglevc("--json", "show", "backend", "n1"))
    assert (n1["state"], n1["drain_held_by"]) == ("down", "vantage guard")
    metrics = rig.scrape()
    assert "maglev_vantage_guard_active 1.0" in metrics
    assert "maglev_vantage_held_backends 3.0" in metrics
    assert "vantage guard tripped: canary gw" in rig.logtext()

    # The link comes back: n1 and n3 recover, then the canary, and the guard releases: the
    # one drain still pending (n2, really dead) goes out.
    rig.link(True)
    wait_for(
        lambda: rig.status()["vantage"]["state"] == "armed" and rig.vpp() == ALL | {"n2": 0},
        60,
        "released, n2 drained",
    )
    assert "vantage guard released as the vantage recovered (no canary down)" in rig.logtext()
    assert rig.status()["backends"] == {"total": 7, "up": 6, "down": 1}

    # Cut again; this time an operator releases: the held drains (n1, n3) apply at once.
    rig.link(False)
    wait_for(
        lambda: (
            (s := rig.status())["vantage"]["held_backends"] == 2 and s["backends"].get("down") == 3
        ),
        60,
        "holding again",
    )
    assert rig.vpp() == ALL | {"n2": 0}
    out = rig.maglevc("guard", "release")
    assert out.strip() == "vantage guard released: 2 held drain(s) applied"
    wait_for(lambda: rig.vpp() == ALL | {"n1": 0, "n2": 0, "n3": 0}, 60, "n1 and n3 drained")
    st = rig.status()["vantage"]
    assert st["state"] == "armed" and st["why"].startswith("released by operator (uid 0 ")
    assert "vantage guard released by operator (uid 0 " in rig.logtext()
    assert "maglev_vantage_guard_active 0.0" in rig.scrape()

    # Back to normal: the link returns, n1 and n3 take traffic again.
    rig.link(True)
    wait_for(
        lambda: (
            rig.vpp() == ALL | {"n2": 0} and rig.status()["vantage"]["canaries"] == {"gw": "up"}
        ),
        60,
        "n1 and n3 back",
    )
    assert rig.status()["vantage"]["trips"] == 2
