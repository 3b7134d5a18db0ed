"""Fault run: restarts, crashes, VPP restarts, malformed API requests and mutated configs.

A real maglevd (its own process) runs against the emulator (in this process, so every VPP write
is counted where it lands) with real loopback backends. Once VPP is programmed and stable the run
records VPP's tables as the baseline, then:

- **restarts**: SIGTERM maglevd and start it again; it must converge with zero VPP writes (an
  explicit full sync included);
- **crashes**: the same after SIGKILL;
- **VPP restarts**: replace the emulator by a fresh one (empty tables) on the same socket;
  maglevd must reprogram it to the baseline;
- **requests**: malformed and random control requests (`benchmarks.faultgen`); none may get a
  5xx or a non-JSON answer, none may hang, and valid requests still get 200 afterwards;
- **configs**: mutated configs through `config check` (none may get a 5xx or hang), and those it
  calls invalid installed as the config file and reloaded: each is rejected, and VPP sees no
  write;
- and the daemon's log holds no traceback.

`run_faults(sizes)` returns a `FaultReport`; `tests/daemon/test_fault.py` runs it at `SMOKE`
size in `make check`, `maglev-bench fault` at `FULL` size.
"""

from __future__ import annotations

import contextlib
import dataclasses
import ipaddress
import json
import os
import pathlib
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from typing import Any

from benchmarks import faultgen
from benchmarks.common import stat, suite_result
from maglev.vpp import apidefs
from maglev.vpp.dumper import read_lb_state
from maglev.vpp.papi import VppConnection
from maglev.vppsim import Emulator

BIN = pathlib.Path(sys.executable).parent
DEADLINE = 60.0  # generous: waits end on events, this only bounds a failure
ANSWER_DEADLINE = 30.0  # a request with no answer and no close by then has hung


@dataclasses.dataclass(frozen=True, slots=True)
class Sizes:
    backends: int
    restarts: int
    crashes: int
    vpp_restarts: int
    requests: int
    configs: int
    installs: int  # how many configs found invalid are also installed and reloaded


SMOKE = Sizes(backends=6, restarts=2, crashes=1, vpp_restarts=1, requests=400, configs=60,
              installs=4)  # fmt: skip
FULL = Sizes(backends=60, restarts=10, crashes=5, vpp_restarts=5, requests=5000, configs=1000,
             installs=40)  # fmt: skip


@dataclasses.dataclass
class FaultReport:
    seed: int
    restarts: int = 0
    restart_writes: list[int] = dataclasses.field(default_factory=list)
    restart_seconds: list[float] = dataclasses.field(default_factory=list)
    vpp_restarts: int = 0
    vpp_reconverged: int = 0
    reconverge_seconds: list[float] = dataclasses.field(default_factory=list)
    requests: int = 0
    statuses: dict[str, int] = dataclasses.field(default_factory=dict)
    bad_answers: list[str] = dataclasses.field(default_factory=list)  # 5xx, non-JSON, hangs
    configs: int = 0
    configs_valid: int = 0
    installs: int = 0
    install_problems: list[str] = dataclasses.field(default_factory=list)
    tracebacks: int = 0
    log_tail: str = ""

    @property
    def zero_write_restarts(self) -> int:
        return sum(1 for w in self.restart_writes if w == 0)

    def problems(self) -> list[str]:
        out = []
        if self.zero_write_restarts != self.restarts:
            out.append(f"restarts with VPP writes: {self.restart_writes}")
        if self.vpp_reconverged != self.vpp_restarts:
            out.append(f"VPP restarts re-converged: {self.vpp_reconverged}/{self.vpp_restarts}")
        out += self.bad_answers[:20]
        out += self.install_problems[:20]
        if self.tracebacks:
            out.append(f"{self.tracebacks} traceback(s) in the log: ...{self.log_tail}")
        return out


def _wait(cond: Callable[[], Any], what: str, timeout: float = DEADLINE) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            v = cond()
        except (OSError, ValueError, KeyError):
            v = None
        if v:
            return v
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.05)


class _Listeners:
    """Loopback TCP listeners that accept and close (the backends), on one thread."""

    def __init__(self, addrs: list[str], port: int) -> None:
        self.socks = []
        for a in addrs:
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((a, port))
            s.listen(256)
            s.setblocking(False)
            self.socks.append(s)
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, name="fault-backends", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        import selectors

        sel = selectors.DefaultSelector()
        for s in self.socks:
            sel.register(s, selectors.EVENT_READ)
        while not self.stopping.is_set():
            for key, _ in sel.select(0.2):
                with contextlib.suppress(OSError):
                    c, _ = key.fileobj.accept()  # type: ignore[union-attr]
                    c.close()
        sel.close()

    def close(self) -> None:
        self.stopping.set()
        self.thread.join(5)
        for s in self.socks:
            s.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def config_text(vpp: str, ctl: str, port: int, addrs: list[str]) -> str:
    lines = [
        "vpp:",
        f"  api-socket: {vpp}",
        "  lb: {ip4-src-address: 198.51.100.1, sync-interval: 30s, startup-min-delay: 200ms,",
        "       startup-max-delay: 5s}",
        "healthchecks:",
        f"  tcp: {{type: tcp, port: {port}, interval: 500ms, fast-interval: 200ms,",
        "         down-interval: 1s, timeout: 300ms, rise: 1, fall: 2, jitter: 0}",
        "backends:",
    ]
    lines += [f"  b{i}: {{address: {a}, healthcheck: tcp}}" for i, a in enumerate(addrs)]
    lines.append("frontends:")
    for f in range(len(addrs) // 3):
        lines += [
            f"  web{f}:",
            f"    address: 192.0.2.{f + 1}",
            "    protocol: tcp",
            "    port: 80",
            "    encap: gre4",
            "    pools:",
            f"      - {{name: primary, backends: {{b{3 * f}: {{}}, b{3 * f + 1}: {{weight: 50}}}}}}",
            f"      - {{name: backup, backends: {{b{3 * f + 2}: {{}}}}}}",
        ]
    lines += ["control:", f"  socket: {ctl}"]
    return "\n".join(lines) + "\n"


def http(ctl: str, data: bytes, mode: str = faultgen.FULL) -> tuple[int | None, bytes]:
    """Send raw bytes to the control socket; (status or None when closed unanswered, reply)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(ANSWER_DEADLINE)
    try:
        s.connect(ctl)
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            s.sendall(data)
        if mode == faultgen.HANGUP:
            return None, b""
        with contextlib.suppress(OSError):
            s.shutdown(socket.SHUT_WR)
        chunks = []
        deadline = time.monotonic() + ANSWER_DEADLINE
        while True:
            try:
                b = s.recv(65536)
            except ConnectionResetError:
                break
            if not b:
                break
            chunks.append(b)
            if time.monotonic() > deadline:
                raise TimeoutError("no end of answer")
        raw = b"".join(chunks)
    finally:
        s.close()
    if not raw:
        return None, b""
    head = raw.split(b"\r\n", 1)[0].split()
    status = int(head[1]) if len(head) >= 2 and head[1].isdigit() else -1
    return status, raw


def _json_body(raw: bytes) -> Any:
    _, _, body = raw.partition(b"\r\n\r\n")
    return json.loads(body) if body else None


def vpp_tables(sock: str) -> tuple[Any, ...]:
    conn = VppConnection(sock, apidefs.bundled_api_files())
    conn.connect()
    try:
        st = read_lb_state(conn, with_sticky=False)
    finally:
        conn.disconnect()
    vips = sorted(str(v.prefix) + f" {v.protocol}:{v.port}" for v in st.vips)
    ases = sorted((str(a.vip), str(a.address), a.weight) for a in st.ases)
    return tuple(vips), tuple(ases)


class Rig:
    """The emulator, the backends and one maglevd process, in a temporary directory."""

    def __init__(self, sizes: Sizes) -> None:
        self.tmp = pathlib.Path(tempfile.mkdtemp(prefix="maglev-fault-"))
        self.vpp_sock, self.ctl = str(self.tmp / "api.sock"), str(self.tmp / "ctl.sock")
        self.emu = Emulator(self.vpp_sock)
        self.emu.start()
        port = _free_port()
        addrs = [str(ipaddress.IPv4Address(0x7F040000 + i + 1)) for i in range(sizes.backends)]
        self.backends = _Listeners(addrs, port)
        self.base_config = config_text(self.vpp_sock, self.ctl, port, addrs)
        self.cfg = self.tmp / "maglev.yaml"
        self.cfg.write_text(self.base_config)
        self.log = self.tmp / "maglevd.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def get(self, path: str) -> Any:
        status, raw = http(self.ctl, f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        if status != 200:
            raise ValueError(f"GET {path}: HTTP {status}")
        return _json_body(raw)

    def post(self, path: str, body: bytes = b"") -> tuple[int | None, Any]:
        req = f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n"
        status, raw = http(self.ctl, req.encode() + body)
        return status, (_json_body(raw) if status is not None else None)

    def start(self) -> float:
        t0 = time.monotonic()
        with open(self.log, "ab") as logf:
            self.proc = subprocess.Popen(
                [
                    str(BIN / "maglevd"),
                    "run",
                    "--config",
                    str(self.cfg),
                    "--log-level",
                    "info",
                    "--state-file",
                    str(self.cfg.parent / "state.json"),
                ],
                stdout=logf,
                stderr=subprocess.STDOUT,
            )
        _wait(self.ready, "maglevd ready (first sync done, every backend up)")
        return time.monotonic() - t0

    def ready(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"maglevd exited with {self.proc.returncode}: {self.log_tail()}")
        s = self.get("/v1/status")
        b = s["backends"]
        return bool(s["vpp"]["last_sync_ok"]) and b.get("up", 0) == b["total"]

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(DEADLINE)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def restart_vpp(self) -> None:
        self.emu.stop()
        self.emu = Emulator(self.vpp_sock)
        self.emu.start()

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def log_tail(self) -> str:
        return self.log_text()[-2000:]

    def close(self) -> None:
        self.stop()
        self.emu.stop()
        self.backends.close()
        shutil.rmtree(self.tmp, ignore_errors=True)


def _restarts(rig: Rig, report: FaultReport, n: int, sig: int, baseline: Any) -> None:
    for _ in range(n):
        before = rig.emu.write_count
        rig.stop(sig)
        report.restart_seconds.append(rig.start())
        status, _ = rig.post("/v1/sync")  # a full sync must find nothing to do either
        if status != 200 or vpp_tables(rig.vpp_sock) != baseline:
            report.restart_writes.append(-1)
        else:
            report.restart_writes.append(rig.emu.write_count - before)
        report.restarts += 1


def _vpp_restarts(rig: Rig, report: FaultReport, n: int, baseline: Any) -> None:
    for _ in range(n):
        rig.restart_vpp()
        t0 = time.monotonic()
        report.vpp_restarts += 1
        try:
            _wait(lambda: vpp_tables(rig.vpp_sock) == baseline, "VPP re-programmed")
        except TimeoutError:
            continue
        report.reconverge_seconds.append(time.monotonic() - t0)
        report.vpp_reconverged += 1


def _answer_problem(req: faultgen.RawRequest, status: int | None, raw: bytes) -> str | None:
    if req.mode == faultgen.HANGUP or status is None:
        return None  # a close without an answer is allowed for garbage; a hang raises instead
    if status >= 500 or status < 100:
        return f"HTTP {status} for {req.kind} request {req.data[:120]!r}"
    head = raw.partition(b"\r\n\r\n")[0].lower()
    if status == 200 and b"content-type: text/event-stream" in head:
        return None  # an odd but acceptable query (`?%`) opened the event stream: not JSON
    try:
        body = _json_body(raw)
    except ValueError:
        return f"non-JSON answer (HTTP {status}) for {req.kind} request {req.data[:120]!r}"
    if status >= 400 and not (isinstance(body, dict) and body.get("error")):
        return f"HTTP {status} without an error message for {req.kind} {req.data[:120]!r}"
    return None


def _requests(rig: Rig, report: FaultReport, rng: random.Random, n: int, baseline: Any) -> None:
    before = rig.emu.write_count
    for req in faultgen.requests(rng, n):
        report.requests += 1
        try:
            status, raw = http(rig.ctl, req.data, req.mode)
        except TimeoutError:
            report.bad_answers.append(
                f"no answer within {ANSWER_DEADLINE:.0f}s: {req.data[:120]!r}"
            )
            continue
        except OSError as e:
            report.bad_answers.append(f"{e} for {req.kind} request {req.data[:120]!r}")
            continue
        key = "closed" if status is None else str(status)
        report.statuses[key] = report.statuses.get(key, 0) + 1
        problem = _answer_problem(req, status, raw)
        if problem:
            report.bad_answers.append(problem)
    # the daemon still answers, and nothing it was sent changed VPP
    _wait(rig.ready, "maglevd ready after the malformed requests")
    if rig.emu.write_count != before or vpp_tables(rig.vpp_sock) != baseline:
        report.bad_answers.append("the malformed requests changed VPP")


def _configs(rig: Rig, report: FaultReport, rng: random.Random, sizes: Sizes) -> None:
    invalid: list[str] = []
    for kind, text in faultgen.configs(rng, rig.base_config, sizes.configs):
        report.configs += 1
        try:
            status, doc = rig.post("/v1/config/check", faultgen.check_body(text))
        except TimeoutError:
            report.bad_answers.append(f"config check of a {kind} mutation hung")
            continue
        if status != 200 or not isinstance(doc, dict) or "valid" not in doc:
            report.bad_answers.append(f"config check of a {kind} mutation: HTTP {status} {doc}")
            continue
        if doc["valid"]:
            report.configs_valid += 1
        else:
            invalid.append(text)
    baseline = vpp_tables(rig.vpp_sock)
    for text in invalid[: sizes.installs]:
        report.installs += 1
        before = rig.emu.write_count
        tmp = rig.cfg.with_suffix(".new")
        tmp.write_text(text, errors="surrogateescape")
        os.replace(tmp, rig.cfg)  # as an operator's editor or config management does
        status, doc = rig.post("/v1/reload")
        if status != 200 or not isinstance(doc, dict) or doc.get("ok") is not False:
            report.install_problems.append(f"reload of an invalid config: HTTP {status} {doc}")
        if rig.emu.write_count != before or vpp_tables(rig.vpp_sock) != baseline:
            report.install_problems.append("a rejected config changed VPP")
        rig.cfg.write_text(rig.base_config)
        status, doc = rig.post("/v1/reload")
        if status != 200 or not isinstance(doc, dict) or doc.get("ok") is not True:
            report.install_problems.append(f"reload of the base config: HTTP {status} {doc}")


def run_faults(sizes: Sizes, seed: int | None = None) -> FaultReport:
    seed = random.SystemRandom().randrange(2**32) if seed is None else seed
    rng = random.Random(seed)
    report = FaultReport(seed=seed)
    rig = Rig(sizes)
    try:
        rig.start()
        _wait(lambda: rig.emu.write_count > 0, "VPP programmed")
        baseline = _wait(lambda: _stable(rig), "VPP tables stable")
        _restarts(rig, report, sizes.restarts, signal.SIGTERM, baseline)
        _restarts(rig, report, sizes.crashes, signal.SIGKILL, baseline)
        _vpp_restarts(rig, report, sizes.vpp_restarts, baseline)
        _requests(rig, report, rng, sizes.requests, baseline)
        _configs(rig, report, rng, sizes)
        rig.stop()
    finally:
        text = rig.log_text()
        report.tracebacks = text.count("Traceback")
        if report.tracebacks:
            at = text.index("Traceback")
            report.log_tail = text[max(0, at - 300) : at + 1500]
        rig.close()
    return report


def _stable(rig: Rig) -> Any:
    """VPP's tables, once two reads a sync apart agree and the daemon is ready."""
    if not rig.ready():
        return None
    first = vpp_tables(rig.vpp_sock)
    rig.post("/v1/sync")
    return first if vpp_tables(rig.vpp_sock) == first else None


def run(smoke: bool = False) -> dict[str, Any]:
    sizes = SMOKE if smoke else FULL
    r = run_faults(sizes)
    count = "count"
    figures = {
        "restarts with zero VPP writes": stat([float(r.zero_write_restarts)], count),
        "restarts and crashes": stat([float(r.restarts)], count),
        "restart to ready": stat(r.restart_seconds or [0.0], "s"),
        "VPP restarts re-converged": stat([float(r.vpp_reconverged)], count),
        "VPP restarts": stat([float(r.vpp_restarts)], count),
        "VPP restart to re-programmed": stat(r.reconverge_seconds or [0.0], "s"),
        "malformed requests sent": stat([float(r.requests)], count),
        "requests with 5xx, no JSON or hung": stat([float(len(r.bad_answers))], count),
        "mutated configs checked": stat([float(r.configs)], count),
        "invalid configs installed and rejected": stat([float(r.installs)], count),
        "tracebacks in the log": stat([float(r.tracebacks)], count),
    }
    notes = [f"seed {r.seed}", f"answers: {dict(sorted(r.statuses.items()))}"]
    notes += [f"problem: {p}" for p in r.problems()]
    setup = (f"maglevd process, emulator in-process, {sizes.backends} loopback backends, "
             f"{sizes.backends // 3} frontends")  # fmt: skip
    return suite_result("fault", setup, figures, notes=notes)


if __name__ == "__main__":
    import argparse

    p = argparse.ArgumentParser()
    p.add_argument("--smoke", action="store_true")
    p.add_argument("--seed", type=int)
    a = p.parse_args()
    rep = run_faults(SMOKE if a.smoke else FULL, a.seed)
    print(json.dumps(dataclasses.asdict(rep), indent=2, default=str))
    sys.exit(1 if rep.problems() else 0)
