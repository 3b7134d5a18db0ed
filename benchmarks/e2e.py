"""End-to-end benchmark: a backend dies -> its weight-0 reaches VPP. maglevd as a real process.

Setup: the emulator runs in this process (so every write it receives is timestamped where it
lands); a farm process (`benchmarks.farm`) listens on N loopback addresses; maglevd runs as its
own process with TCP checks (interval 1 s, fast-interval 200 ms, fall 2, timeout 300 ms) and
N/10 frontends of 10 backends. When everything is programmed, 10% of the backends are killed at
once (their listeners closed: connects are refused). Reported: the distribution of the time from
the kill to the weight-0 `lb_as_set_weight` arriving at VPP, next to the theoretical floor
(fall x fast-interval; the first failure can come up to one `interval` after the kill).

With `--vpp-socket` it runs against a VPP the user has (`benchmarks.target`): weight 0 is then
seen by polling VPP's AS dump. CPU of VPP (or the emulator's thread) and of maglevd is sampled
over the kill rounds.

`python -m benchmarks.e2e [--smoke]`, or through `maglev-bench e2e`.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import pathlib
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any

from benchmarks.common import frontend_yaml, percentile, progress, stat, suite_result
from benchmarks.target import (
    CpuWindow,
    Subject,
    VppTarget,
    cleanup,
    in_range,
    prepare,
    vpp_lines,
    vpp_subject,
    where,
)
from maglev.vpp import apidefs
from maglev.vpp.dumper import read_lb_state
from maglev.vpp.lb import LbConf
from maglev.vpp.papi import VppConnection
from maglev.vppsim import Emulator
from maglev.vppsim.handlers import Operation

INTERVAL, FAST, FALL = 1.0, 0.2, 2
BIN = pathlib.Path(sys.executable).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def addresses(n: int) -> list[str]:
    return [str(ipaddress.IPv4Address(0x7F020000 + i + 1)) for i in range(n)]  # 127.2.x.y


def config_text(
    sock: str,
    port: int,
    addrs: list[str],
    ctl: str,
    target: VppTarget | None = None,
    conf: LbConf | None = None,
) -> str:
    lines = ["vpp:", f"  api-socket: {sock}", *vpp_lines(target, conf, "60s", "5s")]
    lines += [
        "healthchecks:",
        f"  tcp: {{type: tcp, port: {port}, interval: {INTERVAL}s, fast-interval: {int(FAST * 1000)}ms,",
        f"         down-interval: 2s, timeout: 300ms, rise: 2, fall: {FALL}, jitter: 10%}}",
        "backends:",
    ]
    lines += [f"  b{i}: {{address: {a}, healthcheck: tcp}}" for i, a in enumerate(addrs)]
    lines.append("frontends:")
    for f in range(len(addrs) // 10):
        lines += frontend_yaml(f, ", ".join(f"b{f * 10 + j}: {{}}" for j in range(10)))
    lines += ["control:", f"  socket: {ctl}", "health: {workers: 2, queue-size: 100000}"]
    return "\n".join(lines) + "\n"


def _live_weights(sock: str, files: list[str]) -> dict[str, int]:
    conn = VppConnection(sock, files)
    conn.connect()
    try:
        st = read_lb_state(conn, with_sticky=False)
    finally:
        conn.disconnect()
    # Only the suite's VIPs: a real VPP may carry others, which are none of its business.
    return {str(a.address): a.weight for a in st.ases if in_range(a.vip[0])}


class DumpWatch:
    """WeightZeroWatch for a VPP outside this process: polls its AS dump and timestamps each
    watched AS when it is first seen at weight 0 (later than its arrival by up to one dump)."""

    def __init__(self, sock: str, files: list[str], watched: set[str]) -> None:
        self.conn = VppConnection(sock, files, name="bench-watch")
        self.conn.connect()
        self.watched = watched
        self.seen: dict[str, float] = {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            while not self.stop.is_set() and len(self.seen) < len(self.watched):
                st = read_lb_state(self.conn, with_sticky=False)
                now = time.monotonic()
                for a in st.ases:
                    if not in_range(a.vip[0]):
                        continue
                    addr = str(a.address)
                    if a.weight == 0 and addr in self.watched and addr not in self.seen:
                        self.seen[addr] = now
                self.stop.wait(0.005)  # a breath between dumps: VPP's main thread serves them
        finally:
            self.conn.disconnect()


class WeightZeroWatch:
    """Timestamps each weight-0 set for the watched AS addresses as the emulator receives it."""

    def __init__(self, emu: Emulator, watched: set[str]) -> None:
        self.emu = emu
        self.watched = watched
        self.seen: dict[str, float] = {}
        with emu.lock:
            self.last_seq = emu.api.operations[-1][0] if emu.api.operations else 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.is_set() and len(self.seen) < len(self.watched):
            now = time.monotonic()
            with self.emu.lock:
                ops = self.emu.api.operations
                new = [op for op in reversed(ops) if op[0] > self.last_seq] if ops else []
            for seq, name, body, rv in reversed(new):
                self.last_seq = max(self.last_seq, seq)
                if name != "lb_as_set_weight" or rv != 0:
                    continue
                f = Operation(seq, name, body, rv).fields()
                if f["weight"] != 0:
                    continue
                raw = f["as_address.un"]
                addr = str(ipaddress.ip_address(raw[:4] if f["as_address.af"] == 0 else raw))
                if addr in self.watched and addr not in self.seen:
                    self.seen[addr] = now
            self.stop.wait(0.002)


def run(smoke: bool = False, target: VppTarget | None = None) -> dict[str, Any]:
    n = 50 if smoke else 1000
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="maglev-bench-e2e-"))
    ctl = str(tmp / "ctl.sock")
    emu: Emulator | None = None
    conf = None
    if target is None:
        sock = str(tmp / "api.sock")
        emu = Emulator(sock)
        emu.start()
    else:
        sock = target.socket
        conf = prepare(target)  # refuses a VPP with VIPs where ours go
    port = _free_port()
    addrs = addresses(n)
    farm = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.farm", str(port), *addrs],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=pathlib.Path(__file__).resolve().parent.parent,
    )
    daemon = None
    try:
        assert farm.stdout is not None and farm.stdin is not None
        if farm.stdout.readline().strip() != "ready":
            raise RuntimeError("the farm did not start")
        cfg = tmp / "maglev.yaml"
        cfg.write_text(config_text(sock, port, addrs, ctl, target, conf))
        log = open(tmp / "maglevd.log", "wb")  # noqa: SIM115 - closed below
        daemon = subprocess.Popen(
            [
                str(BIN / "maglevd"),
                "run",
                "--config",
                str(cfg),
                "--log-level",
                "warning",
                "--state-file",
                str(tmp / "state.json"),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        files = apidefs.bundled_api_files() if target is None else target.api_files()
        deadline = time.monotonic() + 120
        while True:
            try:
                w = _live_weights(sock, files)
            except Exception:
                w = {}
            if len(w) == n and all(v == 100 for v in w.values()):
                break
            if time.monotonic() > deadline or daemon.poll() is not None:
                raise RuntimeError(
                    f"maglevd did not program all {n} backends (see {tmp}/maglevd.log)"
                )
            time.sleep(0.5)
        rng = random.Random(1)
        rounds = 2 if smoke else 4  # the first is the warm-up, not reported
        p50s: list[float] = []
        p99s: list[float] = []
        maxes: list[float] = []
        lat: list[float] = []
        missing = 0
        vpp = vpp_subject(target, os.getpid() if emu else None, emu.thread_id if emu else None)
        window = CpuWindow(vpp, Subject("maglev", daemon.pid))
        with (
            window.measure(),
            progress(range(rounds), f"e2e: {rounds} kill rounds") as bar,
        ):
            for rnd in bar:
                time.sleep(2 * INTERVAL)  # settle into the steady probing rhythm
                victims = rng.sample(addrs, n // 10)
                watch: WeightZeroWatch | DumpWatch = (
                    WeightZeroWatch(emu, set(victims))
                    if emu is not None
                    else DumpWatch(sock, files, set(victims))
                )
                farm.stdin.write("kill " + " ".join(victims) + "\n")
                farm.stdin.flush()
                if not farm.stdout.readline().startswith("killed"):
                    raise RuntimeError("the farm did not kill its listeners")
                t0 = time.monotonic()
                watch.thread.join(timeout=30)
                watch.stop.set()
                got = [t - t0 for t in watch.seen.values()]
                if rnd > 0:
                    lat.extend(got)
                    missing += len(victims) - len(got)
                    p50s.append(percentile(got, 50))
                    p99s.append(percentile(got, 99))
                    maxes.append(max(got) if got else float("nan"))
                # Bring them back and wait until VPP has them at weight 100 again.
                farm.stdin.write("revive " + " ".join(victims) + "\n")
                farm.stdin.flush()
                farm.stdout.readline()
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline:
                    w = _live_weights(sock, files)
                    if all(w.get(v) == 100 for v in victims):
                        break
                    time.sleep(0.3)
        floor = FALL * FAST
        log.close()
    finally:
        if daemon is not None:
            daemon.terminate()
            daemon.wait(30)
        if farm.stdin:
            farm.stdin.close()
        farm.wait(10)
        if emu is not None:
            emu.stop()
        if target is not None:
            cleanup(target)
    notes = [f"{missing} backend(s) never reached weight 0 within 30 s"] if missing else []
    if target is not None:
        notes.append(
            "weight 0 seen by polling VPP's AS dump: later than its arrival by up to one dump"
        )
    notes.append(f"kill rounds: {window.verdict()}")
    return suite_result(
        "e2e",
        f"maglevd process on {where(target)}, {n} backends ({n // 10} frontends x 10) on a loopback farm, TCP checks "
        f"interval {INTERVAL}s / fast {FAST}s / fall {FALL}; {n // 10} killed at once, "
        f"{len(p50s)} rounds after a warm-up round",
        figures={
            "kill -> weight 0 at VPP: p50 (per round)": stat(p50s, "s"),
            "kill -> weight 0 at VPP: p99 (per round)": stat(p99s, "s"),
            "kill -> weight 0 at VPP: max (per round)": stat(maxes, "s"),
            "theoretical floor (fall x fast-interval)": stat([floor], "s"),
            "floor + one interval (worst phase)": stat([floor + INTERVAL], "s"),
            **{k: stat([v], "%") for k, v in window.figures().items()},
        },
        samples={"kill to weight 0 (s)": lat},
        notes=notes,
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--smoke", action="store_true")
    print(json.dumps(run(ap.parse_args().smoke), indent=2, default=str))


if __name__ == "__main__":
    main()
