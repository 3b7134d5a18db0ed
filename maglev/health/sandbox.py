"""What the child of an exec check keeps of maglevd's privileges: nothing.

maglevd holds capabilities (the systemd unit grants CAP_NET_RAW, CAP_SYS_ADMIN and CAP_SYS_NICE as
ambient capabilities, and root holds them all), and a child would inherit them: the ambient set
survives execve, and for uid 0 execve grants the whole bounding set again. So between fork and
exec the child runs `ChildSetup`: it enters the check's network namespace first (setns needs
CAP_SYS_ADMIN, and a child is in the namespace of the thread that forked it), then drops the
bounding set where it may (that needs CAP_SETPCAP, which the shipped unit does not grant), sets
no_new_privs, clears its ambient set, and sets its effective, permitted and inheritable sets to
nothing. With no_new_privs execve never grants more than the permitted set it starts from (which
is then empty): not for uid 0, not for setuid or file-capability binaries.

Used by the exec probe on check worker threads. Everything the child needs (the libc functions,
their argument types, the structures capset reads, the list of capabilities to drop) is made here,
in the parent, before any fork, so the child only makes calls.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
from dataclasses import dataclass
from typing import Any

CLONE_NEWNET = 0x40000000
PR_CAPBSET_READ = 23
PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4
CAP_SETPCAP = 8
_CAPABILITY_VERSION_3 = 0x20080522  # 64-bit capability sets, as two 32-bit words each


class _CapHeader(ctypes.Structure):
    _fields_ = (("version", ctypes.c_uint32), ("pid", ctypes.c_int))


class _CapData(ctypes.Structure):
    _fields_ = (
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    )


@dataclass(frozen=True, slots=True)
class _Libc:
    prctl: Any
    setns: Any
    capset: Any
    capget: Any
    header: Any  # a _CapHeader for this thread (pid 0)
    empty: Any  # two _CapData of zeros: no capabilities at all


@functools.cache
def _libc() -> _Libc:
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    ulong = ctypes.c_ulong
    prctl = libc.prctl  # (variadic in C; on x86-64 and arm64 fixed integer arguments pass alike)
    prctl.argtypes = (ctypes.c_int, ulong, ulong, ulong, ulong)
    prctl.restype = ctypes.c_int
    setns = libc.setns
    setns.argtypes = (ctypes.c_int, ctypes.c_int)
    setns.restype = ctypes.c_int
    data = ctypes.POINTER(_CapData)
    capset, capget = libc.capset, libc.capget
    for f in (capset, capget):
        f.argtypes = (ctypes.POINTER(_CapHeader), data)
        f.restype = ctypes.c_int
    header = ctypes.pointer(_CapHeader(_CAPABILITY_VERSION_3, 0))
    return _Libc(prctl, setns, capset, capget, header, (_CapData * 2)())


def _last_cap() -> int:
    try:
        with open("/proc/sys/kernel/cap_last_cap") as f:
            return int(f.read())
    except (OSError, ValueError):
        return 63


@functools.cache
def bounding_drops() -> tuple[int, ...]:
    """The capabilities a child can drop from its bounding set: those in it, if this process may
    (CAP_SETPCAP in its effective set); else none (no_new_privs and empty sets still hold)."""
    lib = _libc()
    mine = (_CapData * 2)()
    if lib.capget(lib.header, mine) != 0 or not mine[0].effective & (1 << CAP_SETPCAP):
        return ()
    return tuple(c for c in range(_last_cap() + 1) if lib.prctl(PR_CAPBSET_READ, c, 0, 0, 0) == 1)


class ChildSetup:
    """The `preexec_fn` of an exec check's child: enter the namespace, then drop every privilege.

    Runs in the forked child of a multi-threaded parent, where another thread may have held any
    lock at the fork. CPython makes the child's interpreter usable again (its own fork hooks), and
    this hook touches nothing another thread could have held: a few attribute reads, then libc
    calls that are plain system calls (setns, prctl, capset; no locks, no allocation in C), through
    ctypes, whose calls take no locks either. No logging, no formatting, no imports. A failure
    raises a bare error: subprocess then reports "Exception occurred in preexec_fn." to the parent,
    which turns it into the probe's outcome.
    """

    __slots__ = ("_drops", "_lib", "_netns_fd")

    def __init__(self, netns_fd: int | None = None) -> None:
        self._lib = _libc()
        self._drops = bounding_drops()
        self._netns_fd = -1 if netns_fd is None else netns_fd

    def __call__(self) -> None:
        lib = self._lib
        if self._netns_fd >= 0 and lib.setns(self._netns_fd, CLONE_NEWNET) != 0:
            raise OSError
        for cap in self._drops:
            lib.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0)  # (best effort: the steps below suffice)
        if lib.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            raise OSError
        # Emptying the permitted set clears the ambient one too; clearing it first costs nothing
        # and does not depend on that rule.
        lib.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
        if lib.capset(lib.header, lib.empty) != 0:
            raise OSError
