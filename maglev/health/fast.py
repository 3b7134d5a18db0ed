"""Callback-driven probes for the busiest check types: a bare TCP connect and plain HTTP.

Called on a check worker's thread (its `reactor.Reactor`). The coroutine probes in `checks/` can
do everything; at thousands of probes a second their per-probe machinery (a coroutine, a job, a
deadline timer, a progress object, a closure) cost more CPU than the sockets. A `FastProbe`
belongs to one probe stream and is reused for each of its probes: it creates the socket, starts
the connect and leaves the rest to epoll callbacks, with its deadline in the reactor's `Lane`
for the check's timeout (no heap). The syscalls are the least a probe needs: socket, SO_LINGER,
connect, one epoll registration (edge-triggered for both directions, so HTTP's request and
reply need no re-arming), SO_ERROR only when epoll reports an error, and close. They are made
on raw descriptors by `maglev.health.sockops`, whose compiled engine keeps the GIL through them:
the `socket` module would give it up around each one, and while other threads are busy (a big
reload) every such release cost the worker a whole switch interval, so probes started late.

`eligible` says which checks take this path (plain `tcp` without send/expect, `http` without
`expect_body`); their outcomes are the same `Outcome`s the coroutine probes give (a test runs
both over the same servers). `probe_once` runs one on a private reactor (tests).
"""

from __future__ import annotations

import errno
import logging
import os
import select
import socket
from collections.abc import Callable

from maglev.health import netns, reactor, sockops
from maglev.health.checks import http
from maglev.health.checks.base import (
    Outcome,
    Progress,
    errno_failure,
    port_of,
    sockaddr,
    timed_out,
)
from maglev.model import CheckType, HealthCheck, IPAddress, ProbeResult, ProbeTarget, Reason

log = logging.getLogger(__name__)

_EVENTS = select.EPOLLIN | select.EPOLLOUT | select.EPOLLET
_FAILED = select.EPOLLERR | select.EPOLLHUP
_READABLE = select.EPOLLIN
_STREAM = socket.SOCK_STREAM | socket.SOCK_NONBLOCK
_EAGAIN = errno.EAGAIN
_start, _so_error, _send_from = sockops.start, sockops.so_error, sockops.send_from
_receive, _close = sockops.receive, sockops.close_fd
_CHUNK = 8192
_CONNECTED = Outcome(True, Reason.L4OK, "connected")
_CANCELLED = Outcome(False, Reason.SOCKERR, "cancelled")

# States of a probe.
_IDLE, _CONNECTING, _SENDING, _READING = 0, 1, 2, 3

Done = Callable[["FastProbe", Outcome, float], object]
"""`done(probe, outcome, end)`: the probe ended at monotonic `end` (its start is `probe.start`)."""


def eligible(check: HealthCheck) -> bool:
    if port_of(check) is None:
        return False
    if check.type is CheckType.TCP:
        return check.send is None and check.expect is None
    return check.type is CheckType.HTTP and check.expect_body is None


class FastProbe:
    """The probes of one stream (one at a time), driven by reactor callbacks."""

    __slots__ = (
        "_buf",
        "_connect_timeout",
        "_deadlines",
        "_done",
        "_ep",
        "_family",
        "_fd",
        "_handle",
        "_http",
        "_ip",
        "_netns",
        "_now",
        "_on_event",
        "_on_expire",
        "_port",
        "_read_timeout",
        "_request",
        "_sent",
        "_seq",
        "_source",
        "_state",
        "_timeout",
        "_unwatch",
        "addr",
        "check",
        "start",
    )

    def __init__(
        self, r: reactor.Reactor, address: IPAddress, check: HealthCheck, done: Done
    ) -> None:
        port = port_of(check)
        assert port is not None and eligible(check)
        self.check = check
        self.addr = sockaddr(address, port)
        self._family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
        src = check.source_ip6 if address.version == 6 else check.source_ip4
        self._ip = socket.inet_pton(self._family, str(address))
        self._port = port
        self._source = socket.inet_pton(self._family, str(src)) if src is not None else b""
        self._http = check.type is CheckType.HTTP
        self._request = http.request_bytes(address, port, check) if self._http else b""
        self._done = done
        lane = r.lane(check.timeout)
        self._deadlines = lane.items  # FIFO of (when, fn, seq); see reactor.Lane
        self._timeout = lane.delay
        self._netns = check.netns
        self._ep = r.epoll
        self._handle = r.handle
        self._unwatch = r.unwatch
        self._now = r.time  # the reactor's clock: a probe's end and its deadline agree
        # What a timeout means at each stage, worded as the coroutine probes word it.
        self._connect_timeout = timed_out(Progress(Reason.L4TOUT, "connect timeout"), check)
        self._read_timeout = timed_out(Progress(Reason.L7TOUT, "no response"), check)
        self._on_event = self._event  # bound once, not for every watch
        self._on_expire = self._expire
        self._fd = -1
        self._buf = b""
        self._sent = 0
        self._state = _IDLE
        self._seq = 0  # which probe the queued deadline belongs to
        self.start = 0.0

    @property
    def busy(self) -> bool:
        return self._state != _IDLE

    def begin(self, start: float) -> None:
        """Start a probe (none may be running) at `start`, the reactor's time now; `done` may be
        called before this returns."""
        self.start = start
        self._seq += 1
        self._state = _CONNECTING
        fd = -1
        if self._netns is not None:
            try:
                fd = netns.socket_in(self._netns, self._family, _STREAM).detach()
            except OSError as e:
                self._end(Outcome(False, Reason.SOCKERR, (e.strerror or str(e))[:200]))
                return
        fd, err, local = _start(
            fd, self._family, self._ip, self._port, self._source, self._ep, _EVENTS
        )
        if fd < 0:
            if local:
                self._end(Outcome(False, Reason.SOCKERR, os.strerror(err)[:200]))
            else:
                self._end(errno_failure(err))
            return
        self._fd = fd
        self._handle(fd, self._on_event)
        self._deadlines.append((start + self._timeout, self._on_expire, self._seq))
        if not err:
            self._connected()

    def _event(self, events: int) -> None:
        try:
            state = self._state
            if state == _CONNECTING:
                if events & _FAILED:
                    err = _so_error(self._fd)
                    if err:
                        self._end(errno_failure(err))
                        return
                self._connected()
            elif state == _SENDING:
                self._send()
            elif state == _READING:
                self._read()
                return
            # A peer may have spoken first: edge-triggered, that data brings no new event.
            if self._state == _READING and events & _READABLE:
                self._read()
        except OSError as e:
            self._end(Outcome(False, Reason.SOCKERR, (e.strerror or str(e))[:200]))
        except Exception as e:  # a bug: report it, keep the worker alive
            log.error("probe %s of %s failed with a bug", self.check.name, self.addr, exc_info=e)
            self._end(Outcome(False, Reason.SOCKERR, f"internal error: {e!s:.180}"))

    def _connected(self) -> None:
        if not self._http:
            self._end(_CONNECTED)
            return
        self._state = _SENDING
        self._sent = 0
        self._send()

    def _send(self) -> None:
        request = self._request
        sent = _send_from(self._fd, request, self._sent)
        if sent < 0:
            if sent != -_EAGAIN:  # EAGAIN: the next EPOLLOUT edge brings us back
                self._end(errno_failure(-sent))
            return
        self._sent += sent
        if self._sent >= len(request):
            self._state = _READING

    def _read(self) -> None:
        # Edge-triggered: read until the socket has nothing more, or the head is complete.
        fd = self._fd
        buf = self._buf
        while True:
            chunk = _receive(fd, min(_CHUNK, http.READ_CAP - len(buf)))
            if isinstance(chunk, int):
                if chunk == _EAGAIN:
                    self._buf = buf
                else:
                    self._end(errno_failure(chunk))
                return
            if not chunk:
                self._end(http.head_missing(buf))
                return
            buf += chunk
            if buf.find(b"\r\n\r\n") >= 0:
                judged = http.judge_head(buf, self.check)
                assert judged is not None  # no expect_body on this path
                self._end(judged)
                return
            if len(buf) >= http.READ_CAP:
                self._end(http.HEAD_TOO_LARGE)
                return

    def _expire(self, seq: int) -> None:
        if seq == self._seq and self._state != _IDLE:
            self._end(self._connect_timeout if self._state == _CONNECTING else self._read_timeout)

    def cancel(self) -> None:
        """End the running probe now (if any); `done` still sees it end, as `cancelled`."""
        if self._state != _IDLE:
            self._end(_CANCELLED)

    def _end(self, outcome: Outcome) -> None:
        self._state = _IDLE
        self._buf = b""
        fd = self._fd
        if fd >= 0:
            self._fd = -1
            self._unwatch(fd)
            _close(fd)
        self._done(self, outcome, self._now())


def probe_once(target: ProbeTarget, check: HealthCheck) -> ProbeResult:
    """Run one probe on a private reactor in the calling thread (tests)."""
    r = reactor.Reactor()
    out: list[ProbeResult] = []

    def done(p: FastProbe, outcome: Outcome, end: float) -> None:
        out.append(
            ProbeResult(target, outcome.ok, outcome.reason, end - p.start, outcome.detail, end)
        )
        r.stop()

    FastProbe(r, target.address, check, done).begin(r.time())
    r.run()
    return out[0]
