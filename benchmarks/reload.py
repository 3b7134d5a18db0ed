"""Reload benchmark: a big config replaced under a running maglevd, until VPP has converged.

Setup: the emulator runs in this process (it counts every write it receives); maglevd runs as its
own process on a config of 2,000 frontends x 20 backends = 40,000 backends (backends without a
healthcheck, which count as up, so this measures the config and reconcile path, not probing;
one health-checked backend joins for the rejected reloads, below). Beside them, in every config
the suite writes, identically: 1,000 backends (10 frontends of 100) TCP-checked every second
against a loopback farm (`benchmarks.lateness`; `benchmarks.farm` on 127.1.x.y, one port) that
stays up, so they add no VPP writes, and maglevd's metrics endpoint.
Then:
- *no-op reloads*: the file is replaced by rename with a comment added, then SIGHUP, then a full
  sync on request: the number of VPP writes must be 0;
- *changing reload*: the file is replaced by rename with 10% of the frontends' weights changed and
  1% more frontends; the time from the rename to the emulator having received every write;
  and the farm's probe lateness over that window: maglevd's `maglev_probe_lateness_seconds`
  histogram read on `/metrics/probes` just before the rename and just after convergence, the
  share of the window's probes started within 100 ms of their due time (its 0.1 s bucket;
  target >= 99%, all rounds, the warm-up too) and their number; beside it, the same two reads
  5 s apart with no reload (the whole `/metrics` is not read: at this size building it takes
  maglevd seconds, and made a quarter of the probes late itself);
- *rejected alias bomb*: a reload first adds one frontend whose single backend has a TCP check
  (every 100 ms, fall 2) against a listener this process runs on 127.0.0.1. Then the file is
  replaced by a 418-byte YAML alias bomb (nine levels of `&i [*h, *h, ...]`, 387 million items
  expanded) and that listener closed right after the rename; the time until maglevd reports the
  reload rejected, the slowest `status` round trip meanwhile, and the time from the close to
  the backend's weight 0 in VPP (the loader once held the GIL for the whole rejection, so
  everything stalled). With the listener back and the weight back, the same close with no
  reload, as the baseline of the same run. If the rejection takes longer than 1 s, one more
  round closes the listener 1 s after the rename. The probed frontend is added only here: its
  probes write nothing at steady state, but a flap would, and the parts above count writes.

Before the daemon starts, the loader is also measured in this process, with the full config
already loaded (as in the daemon): how long parsing and validating take, and the longest gap seen
by a thread ticking every 1 ms meanwhile (the stall probes and VPP writes would see), for the
full config, the bomb, and a document of one-letter items at the size limit (16 MiB: refused
at the node limit, the worst rejected input); and
`maglevd check-config` of the full config as a process, side by side with PyYAML's CSafeLoader
alone reading the same file (the published baseline the loader is measured against).

Last, the larger tier (emulator only): a fresh maglevd on 5,000 frontends x 20 = 100,000
backends, alone: start -> first full sync done, two changing reloads, its peak RSS.

With `--vpp-socket` it runs against a VPP the user has (`benchmarks.target`): writes are then
counted by maglevd's own counters. CPU of VPP (or the emulator's thread) and of maglevd is
sampled from each changing reload's rename to convergence.

`python -m benchmarks.reload [--smoke]`, or through `maglev-bench reload`.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import ipaddress
import json
import os
import pathlib
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import yaml

from benchmarks import lateness
from benchmarks.common import frontend_yaml, progress, ratio, stat, suite_result
from benchmarks.target import (
    CpuWindow,
    Subject,
    VppTarget,
    cleanup,
    prepare,
    vpp_lines,
    vpp_subject,
    where,
)
from maglev.cli.client import ControlClient
from maglev.config import limits, load_text
from maglev.errors import ConfigError, ConfigInvalid
from maglev.vpp.dumper import read_lb_state
from maglev.vpp.lb import LbConf
from maglev.vpp.papi import VppConnection
from maglev.vppsim import Emulator
from maglev.vppsim.cli import fmt_address, fmt_prefix

BIN = pathlib.Path(sys.executable).parent
PER = 20
LATE, LATE_SMOKE = 1000, 20
"""Backends of the lateness farm (health-checked every second throughout)."""
LATE_TARGET = 99.0
"""Percent of the farm's probes started within 100 ms of schedule during the changing reloads."""


def config_text(
    sock: str,
    ctl: str,
    frontends: int,
    changed: int = 0,
    extra: int = 0,
    target: VppTarget | None = None,
    conf: LbConf | None = None,
    probed: int | None = None,
    farm: lateness.Farm | None = None,
) -> str:
    """The suite's config; with `probed` (a TCP port on 127.0.0.1) one more frontend, whose
    single backend is health-checked there (see `Probed`); with `farm`, the lateness farm's
    frontends and maglevd's metrics endpoint (the same lines in every variant)."""
    extras = farm.config_lines() if farm is not None else {}
    lines = ["vpp:", f"  api-socket: {sock}", *vpp_lines(target, conf, "1h", "1s")]
    if probed is not None or farm is not None:
        lines.append("healthchecks:")
    if probed is not None:
        lines.append(
            f"  tcp: {{type: tcp, port: {probed}, interval: 100ms, fast-interval: 100ms,"
            " down-interval: 100ms, timeout: 100ms, rise: 2, fall: 2, jitter: 0}"
        )
    lines += extras.get("healthchecks", [])
    lines.append("backends:")
    total = frontends + extra
    for i in range(total * PER):
        lines.append(f"  b{i}: {{address: {ipaddress.IPv4Address(0x0A000000 + i + 1)}}}")
    if probed is not None:
        lines.append(f"  probed: {{address: {Probed.ADDRESS}, healthcheck: tcp}}")
    lines += extras.get("backends", [])
    lines.append("frontends:")
    for f in range(total):
        w = 60 if f < changed else 100
        lines += frontend_yaml(f, ", ".join(f"b{f * PER + j}: {{weight: {w}}}" for j in range(PER)))
    if probed is not None:
        # The mass-failure guard off: it would keep a pool's last backend at its weight.
        lines += [*frontend_yaml(Probed.FRONTEND, "probed: {}"), "    min-healthy: 0"]
    lines += extras.get("frontends", [])
    lines += ["control:", f"  socket: {ctl}", *extras.get("metrics", [])]
    # The alternating reloads delete the 1% they added: let them past the reload interlocks
    # (measured here is the reload itself, not the guard).
    lines += ["reload-guard: {max-deleted-frontends: 1000000}"]
    return "\n".join(lines) + "\n"


def bomb_text(levels: int = 9) -> str:
    """A billion-laughs document: each level a list of nine aliases of the one before."""
    names = "abcdefghijklmnopqrstuvwxyz"
    lines = ["a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for i in range(1, levels):
        lines.append(f"{names[i]}: &{names[i]} [{', '.join([f'*{names[i - 1]}'] * 9)}]")
    lines.append(f"health: {{workers: *{names[levels - 1]}}}")
    return "\n".join(lines) + "\n"


def at_node_limit_text() -> str:
    """The worst rejected input within the size limit: 16 MiB of one-letter items (5.6 million),
    parsed up to the node limit, which refuses it."""
    return "x: [" + ", ".join(["a"] * ((limits.MAX_BYTES - 8) // 3)) + "]\n"


def stalled(fn: Callable[[], object]) -> tuple[float, float]:
    """(seconds fn took, the longest gap in seconds between ticks of a thread sleeping 1 ms)."""
    stop = threading.Event()
    gaps: list[float] = []

    def tick() -> None:
        last = time.perf_counter()
        while not stop.is_set():
            time.sleep(0.001)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    ticker = threading.Thread(target=tick, name="bench-ticker")
    ticker.start()
    time.sleep(0.05)
    t0 = time.perf_counter()
    try:
        fn()
    finally:
        took = time.perf_counter() - t0
        time.sleep(0.05)  # a stall just after fn (freeing what it built) counts too
        stop.set()
        ticker.join()
    return took, max(gaps)


def load_expecting(text: str, error: type[Exception] | None) -> None:
    """Load `text`; it must fail with exactly `error` (None: it must load)."""
    try:
        load_text(text)
    except (ConfigError, ConfigInvalid) as e:
        if error is None or not isinstance(e, error):
            raise
    else:
        if error is not None:
            raise RuntimeError(f"the text loaded; expected {error.__name__}")


def loader_figures(base: str, smoke: bool) -> dict[str, dict[str, Any]]:
    """The loader in this process: time and the 1 ms ticker's worst gap, per input."""
    running = load_text(base)  # the daemon holds its config while it loads the next one
    inputs: dict[str, tuple[str, type[Exception] | None]] = {
        "full config, accepted": (base, None),
        "418-byte alias bomb, rejected": (bomb_text(), ConfigError),
        f"{limits.MAX_BYTES >> 20} MiB at the node limit, rejected": (
            at_node_limit_text(),
            ConfigError,
        ),
    }
    out: dict[str, dict[str, Any]] = {}
    for name, (text, error) in inputs.items():
        runs = [
            stalled(functools.partial(load_expecting, text, error))
            for _ in range(1 if smoke else 3)
        ]
        out[f"loader, {name}: parse + validate"] = stat([t for t, _ in runs], "s")
        out[f"loader, {name}: max stall of a 1 ms ticker"] = stat([g for _, g in runs], "s")
    del running
    return out


CHECK_TARGET_S = 0.5
"""The goal for `maglevd check-config` of the full config, and ..."""
CHECK_SPEEDUP_TARGET = 10.0
"""... how much faster than PyYAML's CSafeLoader alone reads the same file."""


def check_config_figures(
    cfg: pathlib.Path, smoke: bool
) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """`maglevd check-config` of the file (a process: start, read, parse, validate) against
    `yaml.load` with PyYAML's CSafeLoader of the same file (parse only), side by side."""
    check: list[float] = []
    csafe: list[float] = []
    # As an installed package runs: with its modules' bytecode compiled (a package install
    # compiles it; a source tree under PYTHONDONTWRITEBYTECODE would compile every module at
    # every start). Kept beside the config, written by one untimed run first.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(cfg.parent / "pycache")
    command = [str(BIN / "maglevd"), "check-config", str(cfg)]
    subprocess.run(command, check=True, capture_output=True, env=env)
    for _ in range(1 if smoke else 3):
        t0 = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True, env=env)
        check.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        with open(cfg, "rb") as f:
            yaml.load(f.read().decode("utf-8"), Loader=yaml.CSafeLoader)
        csafe.append(time.perf_counter() - t0)
    figures = {
        "maglevd check-config of the file (process: start, read, parse, validate)": stat(
            check, "s"
        ),
        "PyYAML CSafeLoader alone on the same file (parse only, same run)": stat(csafe, "s"),
    }
    ratios = {
        "check-config vs CSafeLoader: speedup": ratio(
            statistics.median(csafe) / statistics.median(check), CHECK_SPEEDUP_TARGET
        ),
        "check-config: seconds": ratio(
            statistics.median(check), CHECK_TARGET_S, higher_is_better=False
        ),
    }
    return figures, ratios


class Probed:
    """The one health-checked backend: a TCP listener on 127.0.0.1 that accepts and closes
    (stopped: connects are refused), and its weight as VPP has it.

    Its frontend joins the config only for the rejected reloads (before them, a reload adds it):
    its probes write nothing at steady state, but a probe timing out under the load of a big
    reload would, and the other parts count every write."""

    ADDRESS = "127.0.0.1"
    FRONTEND = 100_000
    """f100000: past every frontend the changing reloads add, inside the benchmark range."""
    WEIGHT = 100

    def __init__(self, target: VppTarget | None, emu: Emulator | None) -> None:
        self.sock: socket.socket | None = None
        self.port = 0
        self.start()
        vip = ipaddress.IPv4Address(0xC6120000 + self.FRONTEND)
        self.vip = ipaddress.ip_network(f"{vip}/32")
        self.emu = emu
        self.conn: VppConnection | None = None
        if emu is None:
            assert target is not None
            self.conn = VppConnection(target.socket, target.api_files(), name="bench-probed")
            self.conn.connect()
        self.key: tuple[bytes, int, int, int] | None = None

    def start(self) -> None:
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((self.ADDRESS, self.port))
        s.listen(64)
        self.port = s.getsockname()[1]
        self.sock = s
        threading.Thread(target=self._accept, args=(s,), name="bench-probed", daemon=True).start()

    def _accept(self, s: socket.socket) -> None:
        while True:
            try:
                c, _ = s.accept()
                c.close()
            except OSError:
                return

    def stop(self) -> None:
        if self.sock is not None:
            # shutdown() ends the blocked accept and the listener at once (close() alone would
            # leave it open until accept returns).
            with contextlib.suppress(OSError):
                self.sock.shutdown(socket.SHUT_RDWR)
            self.sock.close()
            self.sock = None

    def weight(self) -> int | None:
        """The backend's weight in VPP now (None: not there): read from the emulator's tables
        under its lock, or from a VPP's AS dump (all of it: a dump filtered by an IPv4 VIP
        returns nothing, so with a real VPP each reading costs a full dump)."""
        if self.emu is not None:
            with self.emu.lock:
                state = self.emu.state
                if self.key is None:
                    self.key = next(
                        (v.key for _, v in state.live_vips() if fmt_prefix(v) == str(self.vip)),
                        None,
                    )
                vip = state.vip_by_key.get(self.key) if self.key is not None else None
                if vip is None:
                    return None
                for addr, w in zip(vip.order, vip.weights, strict=True):
                    if fmt_address(addr) == self.ADDRESS:
                        return w
                return None
        assert self.conn is not None
        for a in read_lb_state(self.conn, with_sticky=False).ases:
            if a.vip[0] == self.vip and str(a.address) == self.ADDRESS:
                return a.weight
        return None

    def wait(self, want: int, timeout: float = 120) -> float:
        """Seconds until VPP has the backend at weight `want`."""
        t0 = time.monotonic()
        while (w := self.weight()) != want:
            if time.monotonic() - t0 > timeout:
                raise RuntimeError(f"the probed backend stayed at weight {w}, not {want}")
            time.sleep(0.002 if self.emu is not None else 0.005)
        return time.monotonic() - t0

    def stopped_to_zero(self) -> float:
        """Stop the listener; seconds until VPP has the backend at weight 0."""
        self.stop()
        return self.wait(0)

    def restart(self) -> None:
        """Listen again, and wait until VPP has the backend back at its weight."""
        self.start()
        self.wait(self.WEIGHT)

    def close(self) -> None:
        self.stop()
        if self.conn is not None:
            self.conn.disconnect()


@dataclass(frozen=True, slots=True)
class Rejected:
    """One rejected bomb reload, in seconds from the rename."""

    rejected: float
    slowest_status: float
    slowest_status_before: float
    """The slowest `status` round trip in the second before the rename."""
    zero: float
    """From stopping the probed backend's listener to its weight 0 in VPP."""


def bomb_reload(
    cfg: pathlib.Path, ctl: str, since: object, probed: Probed, n: int, delay: float = 0.0
) -> tuple[Rejected, object]:
    """Replace the file by the bomb (round `n`: the file differs from the one before, so it is
    read again) and, `delay` seconds after, stop the probed backend; the figures, and the
    rejected reload's time stamp."""
    client = ControlClient(socket_path=ctl, timeout=600)
    trips: list[tuple[float, float]] = []  # (start, seconds)
    stop = threading.Event()
    rejected: list[dict[str, Any]] = []

    def poll() -> None:
        while not stop.is_set():
            t0 = time.monotonic()
            doc = client.request("GET", "/v1/status")
            trips.append((t0, time.monotonic() - t0))
            last = doc.get("config", {}).get("last_reload", {})
            if last.get("at") and last["at"] != since and not last.get("ok", True):
                rejected.append(last)
                return

    poller = threading.Thread(target=poll, name="bench-status")
    poller.start()
    time.sleep(1.0)
    t_rename = time.monotonic()
    replace(cfg, bomb_text() + f"# round {n}\n")
    if delay:
        time.sleep(delay)
    zero = probed.stopped_to_zero()
    poller.join(600)
    stop.set()
    if not rejected:
        raise RuntimeError("maglevd did not reject the bomb")
    done = trips[-1][0] + trips[-1][1]
    during = [s for t, s in trips if t + s >= t_rename]
    before = [s for t, s in trips if t + s < t_rename]
    figures = Rejected(done - t_rename, max(during), max(before or [0.0]), zero)
    return figures, rejected[0]["at"]


def rejected_figures(
    cfg: pathlib.Path, ctl: str, since: object, probed: Probed, smoke: bool
) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """Rounds of: the bomb renamed over the file with the probed backend stopped at the rename,
    then (listener back, weight back) the same stop with no reload, as the baseline of the same
    run; and one round stopping it 1 s after the rename, if the rejection takes longer."""
    rounds: list[Rejected] = []
    idle: list[float] = []
    for n in range(2 if smoke else 3):
        got, since = bomb_reload(cfg, ctl, since, probed, n)
        rounds.append(got)
        probed.restart()
        idle.append(probed.stopped_to_zero())
        probed.restart()
    figures = {
        "alias bomb: file replaced -> reload rejected": stat([r.rejected for r in rounds], "s"),
        "alias bomb: slowest status round trip meanwhile": stat(
            [r.slowest_status for r in rounds], "s"
        ),
        "slowest status round trip in the second before": stat(
            [r.slowest_status_before for r in rounds], "s"
        ),
        "alias bomb: backend stopped at the rename -> weight 0 in VPP": stat(
            [r.zero for r in rounds], "s"
        ),
        "no reload: backend stopped -> weight 0 in VPP (same run)": stat(idle, "s"),
    }
    notes = []
    slowest = max(r.rejected for r in rounds)
    if slowest > 1.0:
        late, since = bomb_reload(cfg, ctl, since, probed, len(rounds), delay=1.0)
        probed.restart()
        figures["alias bomb: backend stopped 1 s after the rename -> weight 0 in VPP"] = stat(
            [late.zero], "s"
        )
    else:
        notes.append(
            f"alias bomb rejected within {slowest:.3f} s: no round stopping the backend 1 s "
            "after the rename (it would stop after the rejection)"
        )
    return figures, notes


def replace(path: pathlib.Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.new")
    tmp.write_text(text)
    os.rename(tmp, path)


def daemon_writes(ctl: str) -> Callable[[], int]:
    """Writes as maglevd counts them (ops sent, ok or failed), for a VPP outside this process;
    0 until its control socket answers. Published when a reconciler turn is over, so a little
    later than the last reply."""
    client = ControlClient(socket_path=ctl, timeout=600)

    def count() -> int:
        try:
            rec = client.request("GET", "/v1/status").get("reconciler", {})
        except Exception:  # not up yet
            return 0
        return int(rec.get("ops_ok", 0)) + int(rec.get("ops_failed", 0))

    return count


def wait_writes(
    writes: Callable[[], int], target: int, timeout: float, proc: subprocess.Popen[bytes]
) -> float:
    """Seconds until `writes()` (VPP writes so far) reaches `target`."""
    t0 = time.monotonic()
    while (n := writes()) < target:
        if time.monotonic() - t0 > timeout or proc.poll() is not None:
            raise RuntimeError(f"only {n} of {target} writes arrived")
        time.sleep(0.005)
    return time.monotonic() - t0


def status(ctl: str) -> dict[str, Any]:
    r = subprocess.run(
        [str(BIN / "maglevc"), "--socket", ctl, "--json", "--timeout", "600", "show", "status"],
        capture_output=True, text=True, timeout=660,
    )  # fmt: skip
    return dict(json.loads(r.stdout)) if r.returncode == 0 else {}


def wait_reload(ctl: str, since: float | None, timeout: float) -> dict[str, Any]:
    """The daemon's last reload result once it is newer than `since`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        last = status(ctl).get("config", {}).get("last_reload", {})
        if last.get("at") and last["at"] != since:
            return dict(last)
        time.sleep(0.2)
    raise RuntimeError("the daemon did not finish the reload")


def settle(writes: Callable[[], int], quiet: float = 2.0) -> int:
    """Wait until no write arrived for `quiet` seconds; returns the write count."""
    last, since = writes(), time.monotonic()
    while time.monotonic() - since < quiet:
        time.sleep(0.05)
        if (n := writes()) != last:
            last, since = n, time.monotonic()
    return last


TIER = 5000
"""Frontends of the larger tier (x PER = 100,000 backends)."""


def peak_rss(pid: int) -> float:
    """The process's peak resident set (VmHWM), in MiB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmHWM for pid {pid}")


def tier_figures(frontends: int, smoke: bool) -> dict[str, dict[str, Any]]:
    """maglevd at a larger size, on the emulator (in this process), with nothing else beside
    it: the time from starting the process to its first full sync done (every VIP and AS in
    VPP), two changing reloads (10% of the frontends' weights and 1% more frontends, then back)
    from the rename to VPP converged, and maglevd's peak RSS over all of it."""
    n = frontends * PER
    changed, extra = frontends // 10, max(1, frontends // 100)
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="maglev-bench-tier-"))
    sock, ctl, cfg = str(tmp / "api.sock"), str(tmp / "ctl.sock"), tmp / "maglev.yaml"
    base = config_text(sock, ctl, frontends)
    changed_text = config_text(sock, ctl, frontends, changed, extra)
    cfg.write_text(base)
    emu = Emulator(sock)
    emu.start()
    writes: Callable[[], int] = lambda: emu.write_count  # noqa: E731
    log = open(tmp / "maglevd.log", "wb")  # noqa: SIM115 - closed below
    t0 = time.monotonic()
    proc = subprocess.Popen(
        [str(BIN / "maglevd"), "run", "--config", str(cfg), "--log-level", "info",
         "--state-file", str(tmp / "state.json")],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        wait_writes(writes, frontends + n, 1200, proc)
        first = time.monotonic() - t0
        settle(writes)
        expected = changed * PER + extra * (PER + 1)
        reloads: list[float] = []
        for rnd in range(2):
            w1 = writes()
            t1 = time.monotonic()
            replace(cfg, changed_text if rnd % 2 == 0 else base)
            reloads.append(time.monotonic() - t1 + wait_writes(writes, w1 + expected, 600, proc))
            settle(writes)
        rss = peak_rss(proc.pid)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
        log.close()
        emu.stop()
    size = f"{n:,} backends"
    return {
        f"{size}: maglevd started -> first full sync done ({frontends + n} writes)": stat(
            [first], "s"
        ),
        f"{size}: reload, file replaced -> VPP converged ({expected} writes)": stat(reloads, "s"),
        f"{size}: peak RSS of maglevd": stat([rss], "MiB"),
    }


def run(smoke: bool = False, target: VppTarget | None = None) -> dict[str, Any]:
    frontends = 40 if smoke else 2000
    changed, extra = frontends // 10, max(1, frontends // 100)
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="maglev-bench-reload-"))
    ctl = str(tmp / "ctl.sock")
    conf = None
    if target is None:
        sock = str(tmp / "api.sock")
    else:
        sock = target.socket
        conf = prepare(target)  # refuses a VPP with VIPs where ours go
    cfg = tmp / "maglev.yaml"
    # The loader and check-config figures on the config without the lateness farm (comparable
    # with the runs before it); the daemon's every config has the farm.
    plain = config_text(sock, ctl, frontends, target=target, conf=conf)
    cfg.write_text(plain)
    loader = loader_figures(plain, smoke)
    checked, check_ratios = check_config_figures(cfg, smoke)
    stack = contextlib.ExitStack()
    fm = stack.enter_context(lateness.farm(LATE_SMOKE if smoke else LATE))
    base = config_text(sock, ctl, frontends, target=target, conf=conf, farm=fm)
    cfg.write_text(base)
    emu: Emulator | None = None
    if target is None:
        emu = Emulator(sock)
        emu.start()
        em = emu
        writes: Callable[[], int] = lambda: em.write_count  # noqa: E731 - counted where they land
    else:
        writes = daemon_writes(ctl)
    probed: Probed | None = None
    log = open(tmp / "maglevd.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [
            str(BIN / "maglevd"),
            "run",
            "--config",
            str(cfg),
            "--log-level",
            "info",
            "--state-file",
            str(tmp / "state.json"),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        # create VIP + add ASes (the farm's: at least that, more as its backends come up)
        initial_writes = (frontends + fm.frontends()) + (frontends * PER + len(fm.addresses))
        t_initial = wait_writes(writes, initial_writes, 600, proc)
        fm.wait_up(600)
        settle(writes)
        # The same two scrapes over a quiet window: the baseline of the reloads' lateness.
        before = fm.scrape()
        time.sleep(2.0 if smoke else 5.0)
        idle = lateness.window(before, fm.scrape())
        w0 = writes()
        # No-op reloads: comment only (rename), SIGHUP, then an explicit full sync; each waits
        # for the previous one to finish, so they do not overlap.
        since = status(ctl).get("config", {}).get("last_reload", {}).get("at")
        replace(cfg, "# touched\n" + base)
        first = wait_reload(ctl, since, 600)
        proc.send_signal(signal.SIGHUP)
        second = wait_reload(ctl, first["at"], 600)
        subprocess.run(
            [str(BIN / "maglevc"), "--socket", ctl, "--timeout", "600", "sync", "vpp", "lb", "state"],
            check=True, capture_output=True, timeout=660,
        )  # fmt: skip
        noop_writes = settle(writes) - w0
        load_s = [float(first.get("load_seconds", 0.0)), float(second.get("load_seconds", 0.0))]
        # Changing reloads, alternating: 10% of the frontends' weights and 1% more frontends,
        # then back (the same number of writes each way). The first is the warm-up.
        expected = changed * PER + extra * (PER + 1)
        changed_text = config_text(sock, ctl, frontends, changed, extra, target, conf, farm=fm)
        late: list[lateness.Window] = []
        t_reloads: list[float] = []
        reads: list[float] = list(load_s)
        applied: list[float] = []
        extra_writes = 0
        since = second["at"]
        rounds = 2 if smoke else 4
        vpp = vpp_subject(target, os.getpid() if emu else None, emu.thread_id if emu else None)
        window = CpuWindow(vpp, Subject("maglev", proc.pid))
        with progress(range(rounds), f"reload: {rounds} changing reloads") as bar:
            for rnd in bar:
                w1 = writes()
                before = fm.scrape()
                # Sampled from the rename to convergence, not over the quiet settling after.
                with window.measure():
                    t0 = time.monotonic()
                    replace(cfg, changed_text if rnd % 2 == 0 else base)
                    t = time.monotonic() - t0 + wait_writes(writes, w1 + expected, 600, proc)
                # every round, the warm-up too: its stalls are the probes' as much
                late.append(lateness.window(before, fm.scrape()))
                extra_writes += settle(writes) - w1 - expected
                last = wait_reload(ctl, since, 600)
                since = last["at"]
                if rnd > 0:
                    t_reloads.append(t)
                    reads.append(float(last.get("load_seconds", 0.0)))
                    applied.append(
                        float(last.get("applied_seconds", 0.0))
                        - float(last.get("load_seconds", 0.0))
                    )
        # The rejected reloads, on the config plus the probed frontend (added by a reload).
        probed = Probed(target, emu)
        replace(
            cfg,
            config_text(
                sock, ctl, frontends, target=target, conf=conf, probed=probed.port, farm=fm
            ),
        )
        last = wait_reload(ctl, since, 600)
        if not last.get("ok"):
            raise RuntimeError(f"the probed frontend's reload failed: {last}")
        probed.wait(Probed.WEIGHT, 600)
        rejected, rejected_notes = rejected_figures(cfg, ctl, last["at"], probed, smoke)
    finally:
        if probed is not None:
            probed.close()
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
        log.close()
        if emu is not None:
            emu.stop()
        if target is not None:
            cleanup(target)
        stack.close()
    tier = tier_figures(60 if smoke else TIER, smoke) if target is None else {}
    reloads = lateness.total(late)
    within = f"within {lateness.BOUND * 1000:g} ms of schedule"
    notes = [f"logs in {tmp}", f"changing reloads: {window.verdict()}", *rejected_notes]
    if target is not None:
        notes.append("writes as maglevd counts them (published at the end of each turn)")
    return suite_result(
        "reload",
        f"maglevd process, {frontends} frontends x {PER} = {frontends * PER} backends (no "
        f"healthchecks), {len(fm.addresses)} more TCP-checked every 1 s on a loopback farm "
        "throughout; one TCP-checked backend joins for the rejected reloads; "
        f"{'emulator in-process' if emu else where(target)}",
        figures={
            f"initial programming ({initial_writes} writes)": stat([t_initial], "s"),
            f"reload, file replaced -> VPP converged ({expected} writes)": stat(t_reloads, "s"),
            "of which: read + validate the YAML file": stat(reads, "s"),
            "reload applied by the reconciler after loading": stat(applied, "s"),
            "VPP writes on no-op reloads + full sync (must be 0)": stat(
                [float(noop_writes)], "writes"
            ),
            "unexpected extra writes on the changing reload": stat([float(extra_writes)], "writes"),
            f"probes {within} during the changing reloads (%)": stat([reloads.share()], "%"),
            f"per changing reload: probes {within} (%)": stat([w.share() for w in late], "%"),
            "probes recorded during the changing reloads": stat([reloads.count], "probes"),
            f"no reload, quiet window, same scrapes: probes {within} (%)": stat(
                [idle.share()], "%"
            ),
            "no reload: probes recorded in the quiet window": stat([idle.count], "probes"),
            **rejected,
            **tier,
            **loader,
            **{k: stat([v], "%") for k, v in window.figures().items()},
            **checked,
        },
        ratios={
            **check_ratios,
            f"probes {within} during the changing reloads (%)": ratio(reloads.share(), LATE_TARGET),
        },
        notes=notes + (["smoke size: figures are not meaningful"] if smoke else []),
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--smoke", action="store_true")
    print(json.dumps(run(ap.parse_args().smoke), indent=2, default=str))


if __name__ == "__main__":
    main()
