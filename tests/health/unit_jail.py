"""Run a probe under the privilege restrictions of the shipped systemd unit, without systemd.

`python -m tests.health.unit_jail SPEC` (as root) reads etc/systemd/maglevd.service and puts
itself where the unit puts maglevd: the bounding set cut to `CapabilityBoundingSet=`, the
`AmbientCapabilities=` raised (so they are its effective set after execve, as for `User=maglev`),
`NoNewPrivileges=`, and `RestrictNamespaces=` as systemd enforces it, a seccomp filter refusing
unshare/clone/setns for other namespace types (and clone3, which glibc then replaces by clone).
Then it executes itself again (`--inner`), as systemd executes maglevd, and runs the exec probe
SPEC describes (JSON: command, netns), printing the result and what it saw as JSON.

It stays uid 0, with the securebits that make uid 0 ordinary for capabilities (SECBIT_NOROOT:
execve grants it nothing; only the ambient set carries over, as for an unprivileged user):
this keeps the interpreter under /root readable. Only x86-64 (its system call numbers).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import ipaddress
import json
import os
import pathlib
import struct
import subprocess
import sys

UNIT = pathlib.Path(__file__).resolve().parents[2] / "etc" / "systemd" / "maglevd.service"

CAPS = {"CAP_SETPCAP": 8, "CAP_NET_RAW": 13, "CAP_SYS_ADMIN": 21, "CAP_SYS_NICE": 23}
NAMESPACES = {
    "mnt": 0x00020000,
    "cgroup": 0x02000000,
    "uts": 0x04000000,
    "ipc": 0x08000000,
    "user": 0x10000000,
    "pid": 0x20000000,
    "net": 0x40000000,
}
PR_SET_SECUREBITS, PR_SET_KEEPCAPS, PR_CAPBSET_DROP = 28, 8, 24
PR_SET_NO_NEW_PRIVS, PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE = 38, 47, 2
PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 22, 2
SECBITS_NOROOT = 0x0F  # SECBIT_NOROOT and SECBIT_NO_SETUID_FIXUP, each with its lock
NR_CLONE, NR_UNSHARE, NR_SETNS, NR_CLONE3 = 56, 272, 308, 435
AUDIT_ARCH_X86_64 = 0xC000003E

libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
libc.prctl.argtypes = (ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong)


def unit_settings() -> dict[str, str]:
    out: dict[str, str] = {}
    for line in UNIT.read_text().splitlines():
        if "=" in line and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            out[key.strip()] = value.strip()
    return out


def _check(rc: int, what: str) -> None:
    if rc != 0:
        e = ctypes.get_errno()
        raise OSError(e, f"{what}: {os.strerror(e)}")


def _capset(caps: int) -> None:
    header = struct.pack("Ii", 0x20080522, 0)
    lo, hi = caps & 0xFFFFFFFF, caps >> 32
    data = struct.pack("6I", lo, lo, lo, hi, hi, hi)  # effective, permitted, inheritable
    _check(libc.capset(header, data), "capset")


def _seccomp(forbidden: int) -> None:
    """systemd's RestrictNamespaces= filter, in classic BPF."""
    ld, jeq, jset, ret = 0x20, 0x15, 0x45, 0x06
    allow, eperm, enosys = 0x7FFF0000, 0x00050000 | errno.EPERM, 0x00050000 | errno.ENOSYS
    prog = [
        (ld, 0, 0, 4),  # 0: arch
        (jeq, 1, 0, AUDIT_ARCH_X86_64),  # 1
        (ret, 0, 0, allow),  # 2: another architecture: not ours to judge
        (ld, 0, 0, 0),  # 3: system call number
        (jeq, 5, 0, NR_UNSHARE),  # 4 -> 10
        (jeq, 4, 0, NR_CLONE),  # 5 -> 10
        (jeq, 7, 0, NR_SETNS),  # 6 -> 14
        (jeq, 1, 0, NR_CLONE3),  # 7 -> 9
        (ret, 0, 0, allow),  # 8
        (ret, 0, 0, enosys),  # 9: clone3's flags are out of a filter's reach
        (ld, 0, 0, 16),  # 10: flags (first argument, low word)
        (jset, 0, 1, forbidden),  # 11 -> 12 / 13
        (ret, 0, 0, eperm),  # 12
        (ret, 0, 0, allow),  # 13
        (ld, 0, 0, 24),  # 14: setns's nstype (second argument, low word)
        (jeq, 2, 0, 0),  # 15: 0 means any type: refused unless every type is allowed -> 18
        (jset, 1, 0, forbidden),  # 16 -> 18 / 17
        (ret, 0, 0, allow),  # 17
        (ret, 0, 0, eperm),  # 18
    ]
    code = b"".join(struct.pack("HBBI", *ins) for ins in prog)
    buf = ctypes.create_string_buffer(code)
    fprog = struct.pack("HxxxxxxQ", len(prog), ctypes.addressof(buf))
    fbuf = ctypes.create_string_buffer(fprog)
    _check(libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.addressof(fbuf), 0, 0), "seccomp")


def enter_jail() -> None:
    unit = unit_settings()
    ambient = [CAPS[c] for c in unit["AmbientCapabilities"].split()]
    bounding = {CAPS[c] for c in unit["CapabilityBoundingSet"].split()}
    allowed = unit["RestrictNamespaces"].split()
    forbidden = sum(bit for name, bit in NAMESPACES.items() if name not in allowed)
    last = int(pathlib.Path("/proc/sys/kernel/cap_last_cap").read_text())
    for cap in range(last + 1):
        if cap not in bounding:
            _check(libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0), f"drop {cap}")
    _check(libc.prctl(PR_SET_SECUREBITS, SECBITS_NOROOT, 0, 0, 0), "securebits")
    _capset(sum(1 << c for c in ambient))
    for cap in ambient:
        _check(libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0), f"ambient {cap}")
    if unit.get("NoNewPrivileges") == "yes":
        _check(libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")
    _seccomp(forbidden)


def run_inner(spec: dict[str, object]) -> dict[str, object]:
    from maglev.health import checks
    from maglev.model import CheckType, HealthCheck, ProbeTarget

    out: dict[str, object] = {"status": status_caps("/proc/thread-self/status")}
    # The filter bites: a mount namespace (what `ip netns exec` makes) is refused.
    out["unshare_mnt"] = libc.unshare(NAMESPACES["mnt"]) == 0 or os.strerror(ctypes.get_errno())
    c = HealthCheck(
        name="jail",
        type=CheckType.EXEC,
        shell=True,
        command=(str(spec["command"]),),
        netns=spec.get("netns"),  # type: ignore[arg-type]
        timeout=30.0,
    )
    r = checks.probe_once(ProbeTarget(ipaddress.IPv4Address("127.0.0.1"), "jail"), c)
    out["result"] = [r.ok, r.reason.value, r.detail]
    if c.netns:  # how exec checks used to enter a namespace
        old = subprocess.run(["ip", "netns", "exec", c.netns, "true"], capture_output=True)
        out["ip_netns_exec"] = old.returncode
    return out


def status_caps(path: str) -> dict[str, str]:
    """The capability lines (and NoNewPrivs) of a /proc/.../status file."""
    lines = pathlib.Path(path).read_text().splitlines()
    return dict(
        line.split(":\t", 1) for line in lines if line.startswith(("Cap", "NoNewPrivs", "Seccomp"))
    )


def main() -> None:
    if sys.argv[1] == "--inner":
        print(json.dumps(run_inner(json.loads(sys.argv[2]))))
        return
    enter_jail()
    argv = [sys.executable, "-m", "tests.health.unit_jail", "--inner", sys.argv[1]]
    os.execv(sys.executable, argv)


def run(spec: dict[str, object], cwd: pathlib.Path) -> dict[str, object]:
    """Run `spec` in the jail (from a test); what the inner process printed."""
    p = subprocess.run(
        [sys.executable, "-m", "tests.health.unit_jail", json.dumps(spec)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)  # type: ignore[no-any-return]


if __name__ == "__main__":
    main()
