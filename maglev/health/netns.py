"""Creating sockets inside a named network namespace (`ip netns`, /run/netns/NAME).

Called by check worker threads. A socket belongs to the namespace it was created in for its whole
life, whatever the creating thread does afterwards. So a probe for a check with `netns` switches
its own thread into the namespace with setns(2), creates the socket, and switches straight back
before anything else runs on that thread (no await in between: the worker's other in-flight probes
never observe the foreign namespace). This keeps one worker pool for every namespace instead of
a thread per namespace. setns(CLONE_NEWNET) affects only the calling thread and needs
CAP_SYS_ADMIN. The namespace file is opened afresh each time, so a namespace deleted and re-created
under the same name is picked up.

The child of an `exec` check enters the namespace itself, between fork and exec, through a
descriptor from `open_ns` (see `checks.exec` and `sandbox`): the worker thread never switches.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import socket

from maglev.model import netns_name_ok

CLONE_NEWNET = 0x40000000
NETNS_DIR = "/run/netns"

_libc: ctypes.CDLL | None = None


class NetnsEscapeError(RuntimeError):
    """A thread entered a namespace and could not get back to its own."""


def _setns(fd: int) -> None:
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


def ns_path(name: str) -> str:
    # The same rule the config loader applies (`model.netns_name_ok`); checked again here since a
    # name that slipped through would open a file outside NETNS_DIR.
    if not netns_name_ok(name):
        raise OSError(f"bad network namespace name {name!r}")
    return os.path.join(NETNS_DIR, name)


def open_ns(name: str) -> int:
    """A close-on-exec descriptor of namespace `name`, for setns(2); OSError if there is none."""
    return os.open(ns_path(name), os.O_RDONLY | os.O_CLOEXEC)


def socket_in(name: str | None, family: int, kind: int, proto: int = 0) -> socket.socket:
    """A new socket in namespace `name` (None: the thread's own namespace).

    Raises OSError when the namespace does not exist or cannot be entered; the caller reports that
    as a socket error, not as the backend being down.
    """
    if name is None:
        return socket.socket(family, kind, proto)
    target = open_ns(name)
    try:
        home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        try:
            _setns(target)
            try:
                return socket.socket(family, kind, proto)
            finally:
                try:
                    _setns(home)
                except OSError as e:
                    # Stuck in the wrong namespace, this worker would probe from the wrong place:
                    # an infrastructure failure, not a probe result. Crash the worker.
                    raise NetnsEscapeError(f"cannot return from netns {name}: {e}") from e
        finally:
            os.close(home)
    finally:
        os.close(target)
