"""The probe interface and what every probe shares: sockets, deadlines, error mapping.

A probe is a coroutine `probe(address, check, progress) -> Outcome` driven by a check worker's
`reactor.Reactor` (one per worker thread, many probes in flight on each); it awaits only the
reactor's primitives (`connect`, `recv`, `send_all`, `readable`, `writable`, `sleep`). It owns its sockets
and closes them. It never raises for a backend's misbehaviour: refused, timed out, garbage are
all `Outcome`s with a `Reason`. `result()` turns its end into a `ProbeResult`: the deadline
(`check.timeout`, after which the reason the probe last declared in `progress` is reported), the
duration, and the conversion of stray `OSError`s (local trouble: no such namespace, bad source address, out of descriptors) into
`SOCKERR`. Any other exception is a bug; it is logged with its traceback and reported as
`SOCKERR` so one bad probe cannot take the worker down.
"""

from __future__ import annotations

import errno
import functools
import logging
import os
import socket
import struct
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from maglev import __version__
from maglev.clock import Clock, SystemClock
from maglev.health import netns, reactor
from maglev.model import DEFAULT_PORTS, HealthCheck, IPAddress, ProbeResult, ProbeTarget, Reason

log = logging.getLogger(__name__)

USER_AGENT = f"maglev/{__version__}"

MATCH_CAP = 16 * 1024
"""The most of a reply a regex (`expect`, `expect-body`) is run over. `re` cannot be interrupted,
so a search's cost must be bounded where it starts: the config accepts only patterns whose search
is linear in the reply (`maglev.config.healthchecks.reply_regex`), and this caps the reply."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a probe concluded (the runner adds target, duration and time)."""

    ok: bool
    reason: Reason
    detail: str


class Progress:
    """How far a probe got: what a timeout at this point would mean. Set by the probe."""

    __slots__ = ("detail", "reason")

    def __init__(self, reason: Reason, detail: str) -> None:
        self.reason = reason
        self.detail = detail

    def at(self, reason: Reason, detail: str) -> None:
        self.reason = reason
        self.detail = detail


ProbeFunc = Callable[[IPAddress, HealthCheck, Progress], Coroutine[Any, None, Outcome]]


def port_of(check: HealthCheck) -> int | None:
    return check.port if check.port is not None else DEFAULT_PORTS.get(check.type)


@functools.lru_cache(maxsize=1 << 16)
def sockaddr(address: IPAddress, port: int) -> tuple[str, int] | tuple[str, int, int, int]:
    # Cached: formatting an address costs more than the connect it is for.
    if address.version == 6:
        return (str(address), port, 0, 0)
    return (str(address), port)


NO_LINGER = struct.pack("ii", 1, 0)


def open_socket(check: HealthCheck, address: IPAddress, kind: int, proto: int = 0) -> socket.socket:
    """A non-blocking socket for probing `address`: in the check's namespace, bound to its source.

    TCP sockets close with a reset (SO_LINGER 0), as HAProxy's checks do: a checker that closes
    first would otherwise leave a TIME_WAIT socket per probe (thousands a second, each holding a
    local port for a minute), and the FIN exchange costs both ends CPU for nothing.
    Raises OSError on local trouble (reported as SOCKERR by `result`).
    """
    family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
    # SOCK_NONBLOCK at creation: one syscall less than setblocking(False) afterwards.
    sock = netns.socket_in(check.netns, family, kind | socket.SOCK_NONBLOCK, proto)
    try:
        if kind == socket.SOCK_STREAM:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, NO_LINGER)
        source = check.source_ip6 if address.version == 6 else check.source_ip4
        if source is not None:
            sock.bind(sockaddr(source, 0))
        return sock
    except BaseException:
        sock.close()
        raise


_PEER_ERRNOS = {
    errno.ECONNREFUSED: "connection refused",
    errno.ECONNRESET: "connection reset",
    errno.EHOSTUNREACH: "host unreachable",
    errno.ENETUNREACH: "network unreachable",
    errno.ECONNABORTED: "connection aborted",
    errno.EPIPE: "broken pipe",
}


_PEER_OUTCOMES = {n: Outcome(False, Reason.L4CON, text) for n, text in _PEER_ERRNOS.items()}
_PEER_OUTCOMES[errno.ETIMEDOUT] = Outcome(False, Reason.L4TOUT, "connect timed out")


def connect_failure(e: OSError) -> Outcome:
    """An outcome for a failed connect (or send/recv): the peer's fault or ours."""
    known = _PEER_OUTCOMES.get(e.errno or 0)
    return known if known is not None else Outcome(False, Reason.SOCKERR, _short(e))


def errno_failure(err: int) -> Outcome:
    """`connect_failure` for a bare errno (SO_ERROR, connect_ex), without making an OSError."""
    known = _PEER_OUTCOMES.get(err)
    return known if known is not None else Outcome(False, Reason.SOCKERR, os.strerror(err)[:200])


def timed_out(progress: Progress, check: HealthCheck) -> Outcome:
    """What a probe that hit its deadline at `progress` reports."""
    return Outcome(False, progress.reason, f"{progress.detail} after {check.timeout:g}s")


def _short(e: object) -> str:
    text = e.strerror if isinstance(e, OSError) and e.strerror else str(e) or type(e).__name__
    return text[:200]


def result(
    target: ProbeTarget,
    check: HealthCheck,
    progress: Progress,
    value: object,
    error: BaseException | None,
    start: float,
    end: float,
) -> ProbeResult:
    """The `ProbeResult` of a finished probe coroutine (its return value or its exception)."""
    if error is None and isinstance(value, Outcome):
        out = value
    elif isinstance(error, reactor.Deadline):
        out = timed_out(progress, check)
    elif isinstance(error, OSError):
        out = Outcome(False, Reason.SOCKERR, _short(error))
    elif isinstance(error, netns.NetnsEscapeError) or (
        error is not None and not isinstance(error, Exception)
    ):
        raise error
    else:
        log.error("probe %s of %s failed with a bug", check.name, target.address, exc_info=error)
        out = Outcome(False, Reason.SOCKERR, f"internal error: {_short(error or value)}")
    return ProbeResult(
        target=target,
        ok=out.ok,
        reason=out.reason,
        duration=end - start,
        detail=out.detail,
        at=end,
    )


def probe_once(
    func: ProbeFunc, target: ProbeTarget, check: HealthCheck, clock: Clock | None = None
) -> ProbeResult:
    """Run one probe on a private reactor in the calling thread (tests, one-off checks).

    Its start and end are read from the clock the reactor runs on.
    """
    clock = clock or SystemClock()
    progress = Progress(Reason.L4TOUT, "timeout")
    start = clock.monotonic()
    value: object = None
    error: BaseException | None = None
    try:
        value = reactor.run_one(func(target.address, check, progress), check.timeout, clock)
    except BaseException as e:
        error = e
    return result(target, check, progress, value, error, start, clock.monotonic())
