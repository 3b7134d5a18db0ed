"""Which VPP a suite measures (the emulator it starts, or one the user has), and whose CPU bound it.

`maglev-bench program|e2e|reload|vppsim --vpp-socket PATH --api-dir DIR` runs those suites against
a VPP the user already runs instead of the emulator. Such a VPP may carry an operator's traffic,
so a suite (1) refuses to start when the VPP already has an lb VIP in the benchmark range
198.18.0.0/15 (every VIP the suites make lies there: one found there is someone else's), (2)
mirrors VPP's global lb conf into its config so no `lb_conf` is ever sent, and (3) deletes every
VIP and AS it made when it ends, pass or fail.

The CPU sampler reads /proc/PID/stat (and /proc/PID/task/TID/stat for one thread) over a measured
window, for "VPP" (a real VPP's main thread, which runs the binary API and the lb plugin's table
rebuilds; the emulator's process or thread) and for maglev, and names the bound: a real VPP at
1,000 VIPs x 32 ASes runs its main thread at 80-94% while maglev uses 10-20%, which the emulator
(~40x faster) hides.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import struct
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from maglev.model import IPNetwork
from maglev.vpp import apidefs
from maglev.vpp.lb import LbConf
from maglev.vpp.ops import DeleteAs, DeleteVip, Op
from maglev.vpp.papi import VppConnection

# Suites that program VPP through its API and so can run against a real one; the others measure
# maglev alone (diff, table, churn), a checker farm, or need the emulator's internals (fault).
EXTERNAL_SUITES = ("program", "e2e", "reload", "vppsim")
# Options a suite uses beyond the socket: only maglevd (e2e, reload) reads the stats socket.
OPTION_SUITES = {"--vpp-stats-socket": ("e2e", "reload")}
BENCH_RANGE = ipaddress.ip_network("198.18.0.0/15")  # RFC 2544 benchmarking range
_CLK_TCK = os.sysconf("SC_CLK_TCK")


class Occupied(RuntimeError):
    """The VPP already has VIPs where the suite would program its own."""


@dataclass(frozen=True, slots=True)
class VppTarget:
    """A VPP the user has: its API socket, API definitions, stats socket and pid (found from the
    socket's peer when not given)."""

    socket: str
    api_dir: str | None = None
    stats_socket: str | None = None
    pid: int | None = None

    def api_files(self) -> list[str]:
        return apidefs.api_files(self.api_dir)

    def vpp_pid(self) -> int | None:
        return self.pid if self.pid is not None else peer_pid(self.socket)


def refused_options(suites: tuple[str, ...], given: dict[str, object]) -> str | None:
    """The error for VPP-target options given to suites that cannot use them, else None.
    `given` maps option names (`--vpp-socket`, ...) to their values (None: not given)."""
    named = [opt for opt, v in given.items() if v is not None]
    if not named:
        return None
    if given.get("--vpp-socket") is None:
        return f"{', '.join(named)} needs --vpp-socket (the VPP to run against)"
    other = [s for s in suites if s not in EXTERNAL_SUITES]
    if other:
        return (
            f"{', '.join(named)} cannot be used with suite(s) {', '.join(other)}: only "
            f"{', '.join(EXTERNAL_SUITES)} run against a VPP"
        )
    for opt in named:
        users = OPTION_SUITES.get(opt)
        unused = [s for s in suites if users is not None and s not in users]
        if unused:
            return (
                f"{opt} cannot be used with suite(s) {', '.join(unused)}: only "
                f"{', '.join(users or ())} read it"
            )
    return None


# ---- safety on an operator's VPP --------------------------------------------------------------


def _connect(target: VppTarget, name: str) -> VppConnection:
    conn = VppConnection(target.socket, target.api_files(), name=name, read_timeout=60)
    conn.connect()
    return conn


def in_range(net: IPNetwork) -> bool:
    """Whether `net` lies in the benchmark range (is one of the suites' VIPs)."""
    return net.version == 4 and net.subnet_of(BENCH_RANGE)  # type: ignore[arg-type]


def prepare(target: VppTarget) -> LbConf | None:
    """Refuse a VPP that has VIPs in the benchmark range; return its global lb conf (which the
    suite's config then asks for, so maglev sends no lb_conf to it)."""
    from maglev.vpp.dumper import read_lb_state

    conn = _connect(target, "maglev-bench-check")
    try:
        state = read_lb_state(conn, with_sticky=False)
    finally:
        conn.disconnect()
    taken = [v for v in state.vips if in_range(v.prefix)]
    if taken:
        shown = ", ".join(f"{v.prefix} port {v.port}" for v in taken[:5])
        raise Occupied(
            f"refusing to run: the VPP at {target.socket} already has {len(taken)} lb VIP(s) in "
            f"{BENCH_RANGE}, where this suite programs its own ({shown}"
            f"{', ...' if len(taken) > 5 else ''}); they are not the benchmark's and it would "
            "change or delete them. Use a VPP without them."
        )
    return state.conf


def cleanup(target: VppTarget) -> int:
    """Delete every VIP in the benchmark range and its live ASes (each AS flushed, as maglev
    deletes them); returns the number of calls. `prepare` saw none there before the run, so all
    of them are the suite's."""
    from maglev.vpp.applier import op_call
    from maglev.vpp.dumper import read_lb_state

    conn = _connect(target, "maglev-bench-cleanup")
    try:
        state = read_lb_state(conn, with_sticky=False)
        ops: list[Op] = []
        mine = {v.key for v in state.vips if in_range(v.prefix)}
        for a in state.ases:
            if a.vip in mine:
                ops.append(DeleteAs(*a.vip, a.address, True))
        ops.extend(DeleteVip(*k) for k in sorted(mine, key=str))
        if ops:
            conn.pipeline([op_call(op) for op in ops])
        return len(ops)
    finally:
        conn.disconnect()


def vpp_lines(
    target: VppTarget | None, conf: LbConf | None, sync_interval: str, max_delay: str
) -> list[str]:
    """maglevd's `vpp:` lines after `api-socket`: for a real VPP its API files and stats socket,
    and its own global lb conf (so maglevd sends it no lb_conf); for the emulator the suites'
    usual source address."""
    lines = []
    if target is not None and target.api_dir:
        lines.append(f"  api-dir: {target.api_dir}")
    if target is not None and target.stats_socket:
        lines.append(f"  stats-socket: {target.stats_socket}")
    if conf is None:
        src = "ip4-src-address: 198.51.100.1"
    else:
        src = (
            f"ip4-src-address: {conf.ip4_src_address}, ip6-src-address: {conf.ip6_src_address},"
            f" sticky-buckets-per-core: {conf.sticky_buckets_per_core},"
            f" flow-timeout: {conf.flow_timeout}s"
        )
    lines.append(
        f"  lb: {{{src}, sync-interval: {sync_interval}, startup-min-delay: 0s,"
        f" startup-max-delay: {max_delay}}}"
    )
    return lines


# ---- CPU -------------------------------------------------------------------------------------


def peer_pid(path: str) -> int | None:
    """The pid of the process serving the Unix socket `path` (SO_PEERCRED of a connection)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(path)
        raw = s.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        pid = struct.unpack("3i", raw)[0]
        return int(pid) if pid > 0 else None
    except OSError:
        return None
    finally:
        s.close()


def cpu_seconds(pid: int, tid: int | None = None) -> float:
    """User + system CPU seconds of process `pid` (all threads) or of its thread `tid`."""
    path = f"/proc/{pid}/stat" if tid is None else f"/proc/{pid}/task/{tid}/stat"
    with open(path) as f:
        text = f.read()
    # The command name (field 2) may hold spaces and parentheses: split after its last ')'.
    fields = text[text.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK


@dataclass(frozen=True, slots=True)
class Subject:
    """Whose CPU to sample: a process, or one of its threads."""

    label: str  # "VPP main thread", "emulator process", "maglev"
    pid: int
    tid: int | None = None

    def cpu(self) -> float:
        try:
            return cpu_seconds(self.pid, self.tid)
        except (OSError, ValueError, IndexError):
            return float("nan")  # gone (or not local): reported as unknown, not as idle


@dataclass(slots=True)
class CpuWindow:
    """CPU shares of VPP and maglev over measured windows; `with window.measure():` may be
    entered several times (bursts), their times summed."""

    vpp: Subject | None
    maglev: Subject
    wall: float = 0.0
    cpu: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def measure(self) -> Iterator[None]:
        subjects = [s for s in (self.vpp, self.maglev) if s is not None]
        before = [s.cpu() for s in subjects]
        t0 = time.monotonic()
        try:
            yield
        finally:
            self.wall += time.monotonic() - t0
            for s, b in zip(subjects, before, strict=True):
                self.cpu[s.label] = self.cpu.get(s.label, 0.0) + s.cpu() - b

    def pct(self, subject: Subject | None) -> float | None:
        if subject is None or self.wall <= 0 or subject.label not in self.cpu:
            return None
        v = self.cpu[subject.label]
        return None if v != v else 100.0 * v / self.wall  # NaN: could not be read

    def verdict(self) -> str:
        text = verdict(
            self.vpp.label if self.vpp else "VPP",
            self.pct(self.vpp),
            self.pct(self.maglev),
            self.maglev.label,
        )
        # /proc counts CPU in clock ticks (10 ms at the usual 100 Hz): a short window cannot
        # show a small share, so say so rather than let "0%" pass for idle.
        if self.wall * _CLK_TCK < 100:
            text += (
                f" (window {self.wall * 1e3:.0f} ms, CPU counted in {1e3 / _CLK_TCK:.0f} ms "
                "ticks: too short to judge)"
            )
        return text

    def figures(self) -> dict[str, float]:
        out = {}
        for s in (self.vpp, self.maglev):
            p = self.pct(s)
            if s is not None and p is not None:
                out[f"CPU {s.label} (%)"] = p
        return out


BUSY_PCT = 70.0  # above this a single-threaded side is taken to be saturated


def verdict(
    vpp_label: str, vpp_pct: float | None, maglev_pct: float | None, client: str = "maglev"
) -> str:
    """'VPP main thread 91% CPU, maglev 14%: VPP-bound'. The bound is the side that is busy
    (a single thread near 100% cannot go faster) and busier than the other; when neither is
    busy the time went to waiting (round trips, I/O), which is said rather than guessed."""
    if vpp_pct is None or maglev_pct is None:
        known = (
            f"{vpp_label} {vpp_pct:.0f}% CPU" if vpp_pct is not None else f"{vpp_label} CPU unknown"
        )
        known += (
            f", {client} {maglev_pct:.0f}%" if maglev_pct is not None else f", {client} unknown"
        )
        return f"{known}: bound unknown (VPP not local, or no pid)"
    text = f"{vpp_label} {vpp_pct:.0f}% CPU, {client} {maglev_pct:.0f}%"
    if max(vpp_pct, maglev_pct) < BUSY_PCT:
        return f"{text}: neither CPU-bound (waiting)"
    return f"{text}: {'VPP' if vpp_pct >= maglev_pct else client}-bound"


def vpp_subject(
    target: VppTarget | None, emulator_pid: int | None = None, tid: int | None = None
) -> Subject | None:
    """Who is "VPP": a real VPP's main thread (tid = pid), else the emulator's process or, when
    it runs inside the benchmark, its thread."""
    if target is not None:
        pid = target.vpp_pid()
        return None if pid is None else Subject("VPP main thread", pid, pid)
    if emulator_pid is None:
        return None
    if tid is not None:
        return Subject("emulator thread", emulator_pid, tid)
    return Subject("emulator process", emulator_pid)


def where(target: VppTarget | None) -> str:
    """The setup text's words for the VPP measured."""
    return f"the VPP at {target.socket}" if target else "the emulator"
