"""Checker benchmark: maglev's probe scheduler against a local backend farm, HAProxy beside it.

The farm: one nginx (Debian's `nginx-light`) listening on 0.0.0.0 on an unprivileged port, so every
127.x.y.z address answers; a second port nothing listens on (refused);
a third port whose listener never accepts and whose queue is full (blackholed: SYNs are dropped).
Backend i is 127.10.(i // 250).(i % 250 + 1); 10% of them point at the refused port, 10% at the
blackholed one, the rest at nginx. Every backend is probed once a second (TCP connect, or HTTP GET
/ judged by status), first by maglev's `Scheduler` (in this process), then by HAProxy
(`check inter 1s` on the same servers, no traffic), one after the other in the same run.

Reported per (check type, backend count): probes/s, lateness p50/p99 (probe start minus its due
time) and the share within 100 ms, and CPU microseconds per probe (process CPU time / probes).
HAProxy reports no count of its checks, so probes are counted by the kernel: every probe is one
TCP connect, and `ActiveOpens` in /proc/net/snmp counts connects. To make that count exact and to
keep other loopback traffic on the machine out of the way, the benchmark runs itself inside a
network namespace of its own when it can (root and `ip netns`; otherwise in place, counting
HAProxy's probes the same way but with whatever else connects meanwhile). maglev's probes are
counted by its own scheduler and the kernel figure is shown beside it as a cross-check.
At the largest size both run once more with every core kept busy by a busy-looping process
(`contended`): whether probes still start on time when the box is loaded (HAProxy's achieved
probes/s beside it; it reports no lateness).
Beside that workers-only figure, the whole `maglevd` process probes the same farm
(`benchmarks.checkerd`: the emulator in this process as its dataplane) and its CPU per probe is
compared with HAProxy's (`daemon_cpu_per_probe`, `daemon_cpu_vs_haproxy`): what an operator pays.
maglev's check workers run at the nice value maglevd gives them (`health.priority`, default -5;
it changes when they run, not what a probe costs); the stand-in for the reconciler drains the
result queue the way the reconciler does.

`python -m benchmarks.checker [--smoke]`, or through `maglev-bench checker`. nginx and haproxy are
looked for on PATH, then in /usr/sbin and /usr/local/sbin (`MAGLEV_BENCH_TOOL_PATH`, a PATH-style
list, replaces that search). Nothing is ever installed from here: `make bench-deps` installs
Debian's packages. Without them a real run fails and says so; a smoke run (tests, CI) skips the
parts that need them, with a note in the results and a line on stdout: without haproxy, HAProxy's
side and the ratios against it; without nginx, maglev's probes go to a stand-in farm
(`benchmarks.farm`: accepts and closes, so HTTP checks fail and nginx's accept count is absent).
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import queue
import random
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from benchmarks.checkerd import run_maglevd
from benchmarks.common import percentile, ratio, stat, suite_result
from maglev.health.scheduler import Scheduler
from maglev.model import CheckType, HealthCheck, HealthSettings, ProbeResult, ProbeTarget
from maglev.reconcile.events import drain as take

TICK = os.sysconf("SC_CLK_TCK")
WORKERS = int(os.environ.get("MAGLEV_BENCH_WORKERS", str(HealthSettings().workers)))  # maglevd's
PRIORITY = HealthSettings().priority  # the check workers' nice value, as maglevd sets it


# binary -> the Debian package that provides it (what `make bench-deps` installs)
TOOLS = {"nginx": "nginx-light", "haproxy": "haproxy"}


def tool_path() -> str:
    """Where nginx and haproxy are looked for: MAGLEV_BENCH_TOOL_PATH, else PATH followed by the
    sbin directories Debian installs them in (not on an ordinary user's PATH)."""
    return os.environ.get("MAGLEV_BENCH_TOOL_PATH") or os.pathsep.join(
        (os.environ.get("PATH", os.defpath), "/usr/sbin", "/usr/local/sbin")
    )


def find_tool(binary: str) -> str | None:
    return shutil.which(binary, path=tool_path())


def missing_tools(smoke: bool) -> list[str]:
    """The external tools that are absent; a real run cannot do without them and says what to do
    (a benchmark never installs anything: it runs in tests, and often not as root)."""
    missing = [b for b in TOOLS if find_tool(b) is None]
    if missing and not smoke:
        raise RuntimeError(
            f"the checker benchmark needs {' and '.join(missing)}, not found in {tool_path()}:"
            f" run `make bench-deps` (installs Debian's {' and '.join(TOOLS[b] for b in missing)})"
            " or set MAGLEV_BENCH_TOOL_PATH to where they are"
        )
    return missing


def _skip_note(binary: str) -> str:
    part = {
        "nginx": "nginx skipped: maglev's probes go to a stand-in farm that accepts and closes"
        " (HTTP checks fail, accepts are not counted)",
        "haproxy": "haproxy skipped: HAProxy's side and the ratios against it are not measured",
    }[binary]
    return f"{part}; {binary} not found in {tool_path()} (`make bench-deps` installs it)"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cpu_of(pid: int, tid: int | None = None) -> float:
    """User+system CPU seconds of a process (all threads), or of one of its threads, from /proc."""
    path = f"/proc/{pid}/stat" if tid is None else f"/proc/{pid}/task/{tid}/stat"
    with open(path) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def active_opens() -> int:
    """TCP connects made in this network namespace so far (all processes)."""
    with open("/proc/net/snmp") as f:
        rows = [line.split() for line in f if line.startswith("Tcp:")]
    return int(rows[1][rows[0].index("ActiveOpens")])


def _wait_port(port: int, deadline: float = 10.0) -> None:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        threading.Event().wait(0.05)
    raise RuntimeError(f"nothing listens on {port}")


@dataclass
class Farm:
    dir: str
    good: int
    refused: int
    blackhole: int
    status: int | None  # nginx's stub_status port; None for the stand-in farm

    def accepts(self) -> int:
        """Connections nginx accepted so far (-1 from the stand-in farm, which does not count)."""
        if self.status is None:
            return -1
        with urllib.request.urlopen(f"http://127.0.0.1:{self.status}/status", timeout=5) as r:
            lines = r.read().decode().splitlines()
        return int(lines[2].split()[0])


@contextlib.contextmanager
def _blackhole() -> Iterator[int]:
    """A port whose listener never accepts and whose queue is full: SYNs to it are dropped."""
    bh = socket.socket()
    bh.bind(("0.0.0.0", 0))
    bh.listen(0)
    fillers = []
    for _ in range(4):
        c = socket.socket()
        c.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            c.connect(("127.0.0.1", bh.getsockname()[1]))
        fillers.append(c)
    try:
        yield int(bh.getsockname()[1])
    finally:
        for c in fillers:
            c.close()
        bh.close()


@contextlib.contextmanager
def standin_farm(n: int) -> Iterator[Farm]:
    """Without nginx (smoke runs only): `benchmarks.farm` listening on the first n backends."""
    d = tempfile.mkdtemp(prefix="maglev-bench-")
    good, refused = _free_port(), _free_port()
    addrs = [str(backend_address(i)) for i in range(n)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.farm", str(good), *addrs],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
    )
    try:
        assert proc.stdout is not None
        if proc.stdout.readline().strip() != "ready":
            raise RuntimeError("the stand-in farm did not start")
        with _blackhole() as blackhole:
            yield Farm(d, good, refused, blackhole, None)
    finally:
        if proc.stdin is not None:
            proc.stdin.close()  # EOF: the farm exits
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(d, ignore_errors=True)


@contextlib.contextmanager
def farm() -> Iterator[Farm]:
    nginx = find_tool("nginx")
    if nginx is None:
        raise RuntimeError(f"nginx not found in {tool_path()}: run `make bench-deps`")
    d = tempfile.mkdtemp(prefix="maglev-bench-")
    good, status, refused = _free_port(), _free_port(), _free_port()
    conf = f"""
worker_processes 1;
daemon off;
user root;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
worker_rlimit_nofile 65536;
events {{ worker_connections 16384; }}
http {{
    access_log off;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    server {{
        listen 0.0.0.0:{good} backlog=8192;
        location / {{ return 200 "ok\\n"; }}
    }}
    server {{
        listen 127.0.0.1:{status};
        location /status {{ stub_status; }}
    }}
}}
"""
    with open(f"{d}/nginx.conf", "w") as f:
        f.write(conf)
    proc = subprocess.Popen(
        [nginx, "-c", f"{d}/nginx.conf", "-p", d], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        with _blackhole() as blackhole:
            _wait_port(good)
            _wait_port(status)
            yield Farm(d, good, refused, blackhole, status)
    finally:
        proc.send_signal(signal.SIGQUIT)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(d, ignore_errors=True)


def backend_address(i: int) -> ipaddress.IPv4Address:
    return ipaddress.IPv4Address(f"127.10.{i // 250}.{i % 250 + 1}")


def backends(f: Farm, n: int) -> list[tuple[ipaddress.IPv4Address, int]]:
    out = []
    for i in range(n):
        addr = backend_address(i)
        port = f.refused if i % 10 == 0 else f.blackhole if i % 10 == 1 else f.good
        out.append((addr, port))
    return out


@dataclass
class Measured:
    probes: int
    seconds: float
    cpu: float  # the whole process
    checker_cpu: float  # the check worker threads only (without the stand-in reconciler)
    lateness: list[float]
    accepts: int  # connections nginx accepted
    opens: int  # connects the kernel counted (all probes, good, refused and blackholed)

    @property
    def per_second(self) -> float:
        return self.probes / self.seconds

    @property
    def cpu_us_per_probe(self) -> float:
        return self.cpu / max(self.probes, 1) * 1e6

    @property
    def checker_cpu_us_per_probe(self) -> float:
        return self.checker_cpu / max(self.probes, 1) * 1e6


def run_maglev(f: Farm, kind: CheckType, n: int, warmup: float, window: float) -> Measured:
    q: queue.Queue[ProbeResult] = queue.Queue(maxsize=1_000_000)
    stop = threading.Event()

    def drain() -> None:  # stands in for the reconciler: takes results off the queue as it does
        while not stop.is_set():
            with contextlib.suppress(queue.Empty):
                q.get(timeout=0.1)
                take(q, 100_000)

    consumer = threading.Thread(target=drain, name="bench-drain", daemon=True)
    consumer.start()
    sched = Scheduler(
        q,
        workers=WORKERS,
        rng=random.Random(1),
        lateness_samples=n * int(window + 5),
        priority=PRIORITY,
    )
    targets = {}
    for addr, port in backends(f, n):
        check = HealthCheck(
            name=f"{kind.value}-{port}",
            type=kind,
            port=port,
            interval=1.0,
            fast_interval=1.0,
            down_interval=1.0,
            timeout=1.0,
            jitter=0.0,
        )
        targets[ProbeTarget(addr, check.name)] = check
    sched.start()
    try:
        sched.set_targets(targets)
        stop.wait(warmup)
        sched.drain_lateness()
        a0, o0 = f.accepts(), active_opens()
        tids = [t.native_id for t in threading.enumerate() if t.name.startswith("maglev-check-")]
        w0 = sum(_cpu_of(os.getpid(), tid) for tid in tids if tid is not None)
        p0, c0, t0 = sched.snapshot(False).total_probes, _self_cpu(), time.monotonic()
        stop.wait(window)
        p1, c1, t1 = sched.snapshot(False).total_probes, _self_cpu(), time.monotonic()
        w1 = sum(_cpu_of(os.getpid(), tid) for tid in tids if tid is not None)
        a1, o1 = f.accepts(), active_opens()
        late = list(sched.drain_lateness())
    finally:
        sched.stop(10)
        stop.set()
        consumer.join(2)
    return Measured(p1 - p0, t1 - t0, c1 - c0, w1 - w0, late, a1 - a0, o1 - o0 - 1)


@contextlib.contextmanager
def cpu_hogs(n: int) -> Iterator[None]:
    """n busy-looping processes at normal priority for the duration: other work on the box."""
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(max(n, 1))]
    try:
        yield
    finally:
        for p in procs:
            p.kill()
        for p in procs:
            p.wait()


def _self_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def run_haproxy(f: Farm, kind: CheckType, n: int, warmup: float, window: float) -> Measured:
    haproxy = find_tool("haproxy")
    if haproxy is None:
        raise RuntimeError(f"haproxy not found in {tool_path()}: run `make bench-deps`")
    front = _free_port()
    lines = [
        "global",
        "    maxconn 4000",
        "    nbthread 1",
        "defaults",
        "    mode http" if kind is CheckType.HTTP else "    mode tcp",
        "    timeout connect 1s",
        "    timeout client 10s",
        "    timeout server 10s",
        "    timeout check 1s",
        "    default-server check inter 1s fastinter 1s downinter 1s rise 2 fall 3",
        "frontend f",
        f"    bind 127.0.0.1:{front}",
        "    default_backend b",
        "backend b",
    ]
    if kind is CheckType.HTTP:
        lines += [
            "    option httpchk",
            "    http-check send meth GET uri / ver HTTP/1.1 hdr Host x",
        ]
    for i, (addr, port) in enumerate(backends(f, n)):
        lines.append(f"    server s{i} {addr}:{port}")
    cfg = os.path.join(f.dir, f"haproxy-{kind.value}-{n}.cfg")
    with open(cfg, "w") as fh:
        fh.write("\n".join(lines) + "\n")
    proc = subprocess.Popen(
        [haproxy, "-f", cfg, "-db"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        _wait_port(front)
        threading.Event().wait(warmup)
        a0, o0 = f.accepts(), active_opens()
        c0, t0 = _cpu_of(proc.pid), time.monotonic()
        threading.Event().wait(window)
        c1, t1 = _cpu_of(proc.pid), time.monotonic()
        a1, o1 = f.accepts(), active_opens()
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    opens = o1 - o0 - 1  # less our own stub_status fetch
    return Measured(opens, t1 - t0, c1 - c0, c1 - c0, [], a1 - a0, opens)


def _reached(f: Farm, m: Measured, own: bool = False) -> str:
    """How many of the connects nginx accepted, for a note (the stand-in farm counts none)."""
    if f.status is None:
        return ""
    return f" ({m.accepts} reached nginx)" if own else f", {m.accepts} reached nginx"


def run(smoke: bool = False) -> dict[str, Any]:
    """The suite; inside a private network namespace when possible (see the module docstring)."""
    missing_tools(smoke)  # a real run without nginx or haproxy fails here, before any work
    if os.environ.get("MAGLEV_BENCH_INNER") or os.geteuid() != 0 or not shutil.which("ip"):
        return _run(smoke, isolated=bool(os.environ.get("MAGLEV_BENCH_INNER")))
    ns = f"maglev-bench-{os.getpid()}"
    try:
        subprocess.run(["ip", "netns", "add", ns], check=True, capture_output=True)
    except (OSError, subprocess.CalledProcessError):
        return _run(smoke, isolated=False)
    try:
        subprocess.run(["ip", "-n", ns, "link", "set", "lo", "up"], check=True)
        with tempfile.NamedTemporaryFile("r", suffix=".json") as out:
            cmd = ["ip", "netns", "exec", ns, sys.executable, "-m", "benchmarks.checker"]
            cmd += ["--json", out.name] + (["--smoke"] if smoke else [])
            env = dict(os.environ, MAGLEV_BENCH_INNER="1")
            subprocess.run(cmd, check=True, env=env, cwd=os.path.dirname(os.path.dirname(__file__)))
            result: dict[str, Any] = json.load(out)
            return result
    finally:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def _run(smoke: bool, isolated: bool) -> dict[str, Any]:
    sizes: tuple[int, ...] = (100,) if smoke else (1000, 5000)
    if os.environ.get("MAGLEV_BENCH_SIZES"):  # e.g. "1000" for a quicker look
        sizes = tuple(int(x) for x in os.environ["MAGLEV_BENCH_SIZES"].split(","))
    warmup, window = (1.5, 2.0) if smoke else (3.0, 10.0)
    figures: dict[str, dict[str, Any]] = {}
    ratios: dict[str, dict[str, Any]] = {}
    samples: dict[str, list[float]] = {}
    notes: list[str] = []
    missing = missing_tools(smoke)  # raises on a real run
    for binary in missing:
        notes.append(_skip_note(binary))
        print(f"checker: {notes[-1]}", flush=True)
    with standin_farm(max(sizes)) if "nginx" in missing else farm() as f:
        for kind in (CheckType.TCP, CheckType.HTTP):
            for n in sizes:
                key = f"{kind.value}.{n}"
                ours = run_maglev(f, kind, n, warmup, window)
                # The whole maglevd on the same farm: what the operator pays per probe.
                d_probes, d_secs, d_cpu = run_maglevd(kind, backends(f, n), warmup, window)
                d_us = d_cpu / max(d_probes, 1) * 1e6
                theirs = None if "haproxy" in missing else run_haproxy(f, kind, n, warmup, window)
                within = sum(1 for x in ours.lateness if x <= 0.1) / max(len(ours.lateness), 1)
                figures[f"{key}.probes_per_s"] = stat([ours.per_second], "probes/s")
                figures[f"{key}.lateness_p50"] = stat([percentile(ours.lateness, 50)], "s")
                figures[f"{key}.lateness_p99"] = stat([percentile(ours.lateness, 99)], "s")
                figures[f"{key}.cpu_per_probe"] = stat([ours.cpu_us_per_probe], "us")
                figures[f"{key}.checker_cpu_per_probe"] = stat(
                    [ours.checker_cpu_us_per_probe], "us"
                )
                figures[f"{key}.daemon_probes_per_s"] = stat([d_probes / d_secs], "probes/s")
                figures[f"{key}.daemon_cpu_per_probe"] = stat([d_us], "us")
                ratios[f"{key}.within_100ms_pct"] = ratio(within * 100, 99.0 if n >= 5000 else None)
                if theirs is not None:
                    figures[f"{key}.haproxy_probes_per_s"] = stat([theirs.per_second], "probes/s")
                    figures[f"{key}.haproxy_cpu_per_probe"] = stat([theirs.cpu_us_per_probe], "us")
                    ratios[f"{key}.cpu_vs_haproxy"] = ratio(
                        ours.cpu_us_per_probe / max(theirs.cpu_us_per_probe, 1e-9),
                        3.0,
                        higher_is_better=False,
                    )
                    ratios[f"{key}.daemon_cpu_vs_haproxy"] = ratio(
                        d_us / max(theirs.cpu_us_per_probe, 1e-9), 2.0, higher_is_better=False
                    )
                    ratios[f"{key}.checker_cpu_vs_haproxy"] = ratio(
                        ours.checker_cpu_us_per_probe / max(theirs.cpu_us_per_probe, 1e-9),
                        3.0,
                        higher_is_better=False,
                    )
                samples[f"{key} lateness ms"] = [x * 1e3 for x in ours.lateness[:20000]]
                if n == max(sizes) and not smoke:
                    # The same again with every core kept busy by other processes.
                    with cpu_hogs(os.cpu_count() or 1):
                        busy = run_maglev(f, kind, n, warmup, window)
                        busy_theirs = run_haproxy(f, kind, n, warmup, window)
                    busy_within = sum(1 for x in busy.lateness if x <= 0.1) / max(
                        len(busy.lateness), 1
                    )
                    figures[f"{key}.contended.probes_per_s"] = stat([busy.per_second], "probes/s")
                    figures[f"{key}.contended.lateness_p99"] = stat(
                        [percentile(busy.lateness, 99)], "s"
                    )
                    figures[f"{key}.contended.haproxy_probes_per_s"] = stat(
                        [busy_theirs.per_second], "probes/s"
                    )
                    ratios[f"{key}.contended.within_100ms_pct"] = ratio(busy_within * 100, None)
                    print(
                        f"{key} with {os.cpu_count()} busy processes: maglev"
                        f" {busy.per_second:.0f}/s p99 {percentile(busy.lateness, 99) * 1e3:.1f}ms"
                        f" within100 {busy_within:.2%}; haproxy {busy_theirs.per_second:.0f}/s",
                        file=sys.stderr,
                        flush=True,
                    )

                notes.append(
                    f"{key}: maglev {ours.probes} probes ({ours.opens} connects{_reached(f, ours)}), "
                    + (
                        f"haproxy {theirs.opens} connects{_reached(f, theirs, True)}"
                        if theirs is not None
                        else "haproxy skipped"
                    )
                    + f" in {window:g} s"
                )
                print(
                    f"{key}: maglev {ours.per_second:.0f}/s cpu {ours.cpu_us_per_probe:.0f}us"
                    f" (workers {ours.checker_cpu_us_per_probe:.0f}us)"
                    f"; maglevd {d_probes / d_secs:.0f}/s cpu {d_us:.0f}us"
                    f" p50 {percentile(ours.lateness, 50) * 1e3:.1f}ms"
                    f" p99 {percentile(ours.lateness, 99) * 1e3:.1f}ms within100 {within:.2%};"
                    + (
                        f" haproxy {theirs.per_second:.0f}/s cpu {theirs.cpu_us_per_probe:.0f}us"
                        if theirs is not None
                        else " haproxy skipped"
                    ),
                    file=sys.stderr,
                    flush=True,
                )
    res = suite_result(
        "checker",
        f"{'/'.join(map(str, sizes))} backends at 1 s, tcp+http, 10% refused, 10% blackholed;"
        f" maglev Scheduler ({WORKERS} workers at nice {PRIORITY}, as maglevd runs them)"
        " and the whole maglevd process"
        + (" vs HAProxy (nbthread 1)" if "haproxy" not in missing else "")
        + ("; nginx's stand-in farm" if "nginx" in missing else "")
        + ("; in a private network namespace" if isolated else "; in the host namespace"),
        figures,
        ratios,
        samples,
        notes,
    )
    res["skipped"] = missing  # the external parts not run (their reasons are in the notes)
    return res


def main(argv: list[str]) -> None:
    res = run(smoke="--smoke" in argv)
    if "--json" in argv:
        with open(argv[argv.index("--json") + 1], "w") as f:
            json.dump(res, f, default=str)
    else:
        print(json.dumps({k: v for k, v in res.items() if k != "samples"}, indent=2, default=str))


if __name__ == "__main__":
    main(sys.argv[1:])
