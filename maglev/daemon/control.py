"""The control API: HTTP+JSON on a Unix socket (and optionally TCP with a bearer token).

Owns the listening sockets, their accept threads (`maglev-control-unix`, `maglev-control-tcp`)
and the routes; `maglev.daemon.httpd` speaks HTTP on each connection's thread within its limits.
It never touches daemon state itself: every route calls the `ControlHandler` the runtime passes
in, which reads published snapshots or sends the reconciler a message. Every request is
validated here first; a bad one gets a 4xx with a one-line JSON message.

The Unix socket never exists with other than its final mode and group (it is made in a private
directory and renamed into place). The bearer token is read by `read_token_file`, which refuses
a file that others may read, as ssh refuses such a private key.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import logging
import os
import queue
import re
import reprlib
import socket
import stat
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import parse_qs, unquote

from maglev.config.fields import parse_host_port
from maglev.daemon.bodies import (
    _box_body,
    _config_body,
    _dry_run,
    _reload_body,
    _weight_body,
    json_body,
)
from maglev.daemon.http1 import Answer, ApiError, Limits, Request, Stream
from maglev.daemon.httpd import HttpServer
from maglev.errors import MaglevError
from maglev.reconcile.opstate import BOX_KEYS, TimeBox

__all__ = ["ApiError", "ControlHandler", "ControlServer", "Limits", "TokenFileError"]

log = logging.getLogger(__name__)

NAME = r"([A-Za-z0-9_.:@-]{1,128})"
MAX_TOKEN = 1024
_repr = reprlib.Repr()  # client values in messages: short, and shallow however deep they are
_repr.maxlevel, _repr.maxstring, _repr.maxother = 2, 40, 40
_show = _repr.repr


class ControlHandler(Protocol):
    def version(self) -> dict[str, Any]: ...
    def status(self) -> dict[str, Any]: ...
    def frontends(self) -> list[dict[str, Any]]: ...
    def frontend(self, name: str) -> dict[str, Any]: ...
    def explain(self, name: str, backend: str | None = None) -> dict[str, Any]: ...
    def backends(self) -> list[dict[str, Any]]: ...
    def backend(self, name: str) -> dict[str, Any]: ...
    def healthchecks(self) -> list[dict[str, Any]]: ...
    def vpp_lb_state(self) -> dict[str, Any]: ...
    def vpp_lb_counters(self) -> dict[str, Any]: ...
    def backend_action(
        self, name: str, action: str, box: TimeBox | None = None, dry_run: bool = False
    ) -> dict[str, Any]: ...
    def set_weight(
        self,
        frontend: str,
        pool: str,
        backend: str,
        weight: int | None,
        box: TimeBox | None = None,
        dry_run: bool = False,
    ) -> dict[str, Any]: ...
    def overrides(self) -> dict[str, Any]: ...
    def sync(self) -> dict[str, Any]: ...
    def guard_release(self, by: str) -> dict[str, Any]: ...
    def reload(self, force: bool = False) -> dict[str, Any]: ...
    def check_config(self, text: str) -> dict[str, Any]: ...
    def subscribe(
        self, filters: dict[str, str]
    ) -> tuple[queue.Queue[dict[str, Any]], Callable[[], None]]: ...


@dataclass(frozen=True, slots=True)
class Route:
    method: str
    pattern: re.Pattern[str]
    call: Callable[[ControlHandler, tuple[str, ...], Any], Any]
    peer: bool = False  # the caller (`Peer`, as text) is passed as the last group
    dry: bool = False  # takes `?dry-run=1` (passed as the last argument, a bool)


ROUTES: tuple[Route, ...] = tuple(
    Route(m, re.compile("^" + p + "$"), c, *peer)
    for m, p, c, *peer in (
        ("GET", r"/v1/version", lambda h, a, b: h.version()),
        ("GET", r"/v1/status", lambda h, a, b: h.status()),
        ("GET", r"/v1/frontends", lambda h, a, b: h.frontends()),
        ("GET", rf"/v1/frontends/{NAME}", lambda h, a, b: h.frontend(a[0])),
        ("GET", rf"/v1/frontends/{NAME}/explain", lambda h, a, b: h.explain(a[0])),
        (
            "GET",
            rf"/v1/frontends/{NAME}/backends/{NAME}/explain",
            lambda h, a, b: h.explain(a[0], a[1]),
        ),
        ("GET", r"/v1/backends", lambda h, a, b: h.backends()),
        ("GET", rf"/v1/backends/{NAME}", lambda h, a, b: h.backend(a[0])),
        ("GET", r"/v1/healthchecks", lambda h, a, b: h.healthchecks()),
        ("GET", r"/v1/vpp/lb/state", lambda h, a, b: h.vpp_lb_state()),
        ("GET", r"/v1/vpp/lb/counters", lambda h, a, b: h.vpp_lb_counters()),
        (
            "POST",
            rf"/v1/backends/{NAME}/(pause|resume|enable|disable)",
            lambda h, a, b: h.backend_action(a[0], a[1], _box_body(b, a[2]), dry_run=a[3]),
            True,
            True,
        ),
        (
            "PUT",
            rf"/v1/frontends/{NAME}/pools/{NAME}/backends/{NAME}/weight",
            lambda h, a, b: h.set_weight(
                a[0],
                a[1],
                a[2],
                _weight_body(b),
                _box_body(b, a[3], ("weight", *BOX_KEYS)),
                dry_run=a[4],
            ),
            True,
            True,
        ),
        (
            "DELETE",
            rf"/v1/frontends/{NAME}/pools/{NAME}/backends/{NAME}/weight",
            lambda h, a, b: h.set_weight(a[0], a[1], a[2], None, dry_run=a[3]),
            False,
            True,
        ),
        ("GET", r"/v1/overrides", lambda h, a, b: h.overrides()),
        ("POST", r"/v1/sync", lambda h, a, b: h.sync()),
        ("POST", r"/v1/reload", lambda h, a, b: h.reload(_reload_body(b))),
        ("POST", r"/v1/config/check", lambda h, a, b: h.check_config(_config_body(b))),
        ("POST", r"/v1/guard/release", lambda h, a, b: h.guard_release(a[-1]), True),
    )
)
EVENTS_PATH = "/v1/events"
EVENT_FILTERS = ("backend", "frontend", "level", "type")


class _Events:
    """An event stream's source: the subscriber queue as server-sent events."""

    def __init__(
        self, q: queue.Queue[dict[str, Any]], unsubscribe: Callable[[], None], keepalive: float
    ) -> None:
        self.q = q
        self.unsubscribe = unsubscribe
        self.keepalive = keepalive
        self.last = 0.0
        self.first = True

    def read(self, timeout: float) -> bytes:
        if self.first:
            self.first = False
            self.last = time.monotonic()
            return b": subscribed\n\n"
        due = self.last + self.keepalive
        try:
            ev = self.q.get(timeout=max(0.0, min(timeout, due - time.monotonic())))
        except queue.Empty:
            if time.monotonic() < due:
                return b""
            self.last = time.monotonic()
            return b": keepalive\n\n"
        self.last = time.monotonic()
        kind = re.sub(r"\s", "_", str(ev.get("type", "event")))  # one line, whatever it holds
        return f"event: {kind}\ndata: {json.dumps(ev, default=str)}\n\n".encode()

    def close(self) -> None:
        self.unsubscribe()


class _App:
    """Routes one request, on its connection's thread, to the handler (an `http1.App`)."""

    def __init__(self, handler: ControlHandler, token: bytes | None, limits: Limits) -> None:
        self.handler = handler
        self.token = token
        self.limits = limits

    def _authorized(self, got: str) -> bool:
        if self.token is None:
            return True
        if not got.startswith("Bearer "):
            return False
        return hmac.compare_digest(got[7:].strip().encode("latin-1"), self.token)

    def __call__(self, req: Request) -> Answer | Stream:
        if not self._authorized(req.headers.get("authorization", "")):
            raise ApiError(401, "missing or wrong bearer token", {"WWW-Authenticate": "Bearer"})
        raw_path, _, query = req.target.partition("?")
        path = unquote(raw_path).rstrip("/") or "/"
        method = req.method
        if path == EVENTS_PATH:
            if method != "GET":
                raise ApiError(
                    405, f"{method} is not allowed on {path} (use GET)", {"Allow": "GET"}
                )
            return self._events(query)
        allowed = []
        for r in ROUTES:
            m = r.pattern.match(path)
            if not m:
                continue
            if r.method != method:
                allowed.append(r.method)
                continue
            dry = _dry_run(query, r.dry, f"{method} {path}")
            body = json_body(req.read_body()) if method in ("POST", "PUT", "DELETE") else None
            args = (*m.groups(), f"operator ({req.peer})") if r.peer else m.groups()
            if r.dry:
                args = (*args, dry)
            return Answer(200, r.call(self.handler, args, body))
        if allowed:
            use = ", ".join(sorted(set(allowed)))
            raise ApiError(405, f"{method} is not allowed on {path} (use {use})", {"Allow": use})
        raise ApiError(404, f"no such endpoint: {path}")

    def _events(self, query: str) -> Stream:
        try:
            parsed = parse_qs(query, max_num_fields=4 * len(EVENT_FILTERS))
        except ValueError as e:
            raise ApiError(400, f"query: {e}") from None
        filters = {k: v[-1] for k, v in parsed.items()}
        unknown = set(filters) - set(EVENT_FILTERS)
        if unknown:
            raise ApiError(
                400, f"unknown filter(s) {_show(sorted(unknown))}; use {list(EVENT_FILTERS)}"
            )

        def open_stream() -> _Events:
            q, unsubscribe = self.handler.subscribe(filters)
            return _Events(q, unsubscribe, self.limits.keepalive)

        return Stream(open_stream)


# --- the bearer token ------------------------------------------------------------------------


class TokenFileError(MaglevError):
    """control.token-file cannot be used (unreadable, empty, or readable by others)."""


def read_token_file(path: str) -> str:
    """The bearer token in `path`, refused (`TokenFileError`, naming the path and its mode) when
    the file is readable or writable by its group or others, as ssh refuses such a private key:
    a token others can read is no secret, one others can write lets them choose it."""
    try:  # O_NONBLOCK: a FIFO put there must not hang the start
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError as e:
        raise TokenFileError(f"control.token-file {path}: {e.strerror}") from None
    try:
        st = os.fstat(fd)  # of the file opened, whatever a symlink pointed at
        mode = stat.S_IMODE(st.st_mode)
        if not stat.S_ISREG(st.st_mode):
            raise TokenFileError(f"control.token-file {path}: not a regular file")
        if mode & 0o077:
            raise TokenFileError(
                f"control.token-file {path}: mode {mode:04o} lets its group or others read or "
                f"write it; make it private to maglevd's user (chmod 600 {path})"
            )
        raw = os.read(fd, MAX_TOKEN + 2)
    except OSError as e:
        raise TokenFileError(f"control.token-file {path}: {e.strerror}") from None
    finally:
        os.close(fd)
    try:
        token = raw.decode("ascii").strip()
    except UnicodeDecodeError:
        token = "\x00"  # refused below
    if not token:
        raise TokenFileError(f"control.token-file {path}: the file is empty")
    if len(token) > MAX_TOKEN or not token.isprintable() or any(c.isspace() for c in token):
        raise TokenFileError(
            f"control.token-file {path}: the token must be one line of at most {MAX_TOKEN} "
            "printable ASCII characters without spaces"
        )
    return token


# --- the listening sockets -------------------------------------------------------------------


def bind_unix(path: str, mode: int, group: str | None, backlog: int) -> socket.socket:
    """A listening Unix socket at `path` that never exists there with other than `mode` and
    `group`: binding creates the file with umask-derived permissions, so it is bound in a
    private directory (mode 0700) beside `path`, given its mode and group, put to listen, and
    only then renamed into place (replacing the stale socket of an earlier run at once)."""
    gid = -1
    if group:
        import grp

        try:
            gid = grp.getgrnam(group).gr_gid
        except KeyError:
            raise ValueError(f"control.socket-group: no group named {group!r}") from None
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    private = tempfile.mkdtemp(prefix=".m", dir=parent)
    tmp = os.path.join(private, "s")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.bind(tmp)
        os.chmod(tmp, mode)
        if gid != -1:
            os.chown(tmp, -1, gid)
        s.listen(backlog)
        os.replace(tmp, path)
    except BaseException:
        s.close()
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    finally:
        with contextlib.suppress(OSError):
            os.rmdir(private)
    return s


def bind_tcp(listen: str, backlog: int) -> socket.socket:
    host, port = parse_host_port(listen)
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    s = socket.socket(family, kind, proto)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(address)
        s.listen(backlog)
    except BaseException:
        s.close()
        raise
    return s


class ControlServer:
    """Serves the control API until stop(). Start it after the handler is ready."""

    def __init__(
        self,
        handler: ControlHandler,
        socket_path: str | None,
        socket_mode: int = 0o660,
        socket_group: str | None = None,
        tcp_listen: str | None = None,
        token: str | None = None,
        limits: Limits | None = None,
    ) -> None:
        if tcp_listen and not token:
            raise ValueError("control.tcp-listen needs a token: unauthenticated TCP is refused")
        lim = limits or Limits()
        self.stopping = threading.Event()
        self._servers: list[HttpServer] = []
        self._threads: list[threading.Thread] = []
        self.socket_path = socket_path
        self._socket_id: tuple[int, int] | None = None
        self.tcp_address: tuple[str, int] | None = None
        try:
            if socket_path:
                usock = bind_unix(socket_path, socket_mode, socket_group, lim.backlog)
                st = os.stat(socket_path)
                self._socket_id = (st.st_dev, st.st_ino)
                app = _App(handler, None, lim)
                self._servers.append(HttpServer(usock, app, "unix", lim, self.stopping))
            if tcp_listen:
                tsock = bind_tcp(tcp_listen, lim.backlog)
                self.tcp_address = tsock.getsockname()[:2]
                app = _App(handler, (token or "").encode(), lim)
                self._servers.append(HttpServer(tsock, app, "tcp", lim, self.stopping))
        except BaseException:
            self._close()
            raise

    @property
    def connections(self) -> int:
        """Open connections, event streams included (for tests and diagnostics)."""
        return sum(s.connections for s in self._servers)

    def start(self) -> None:
        for srv in self._servers:
            t = threading.Thread(target=srv.serve, name=f"maglev-control-{srv.kind}", daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self) -> None:
        self.stopping.set()
        for srv in self._servers:
            srv.stop()
        for t in self._threads:
            t.join(5.0)
        self._close()

    def _close(self) -> None:
        for srv in self._servers:
            srv.close()
        path, self.socket_path = self.socket_path, None
        if path and self._socket_id is not None:
            with contextlib.suppress(OSError):
                st = os.stat(path)
                if (st.st_dev, st.st_ino) == self._socket_id:  # ours, not a newer daemon's
                    os.unlink(path)


def iter_sse(lines: Iterator[bytes]) -> Iterator[dict[str, Any]]:
    """Parse a server-sent event stream into its JSON payloads (used by maglevc)."""
    data: list[str] = []
    for raw in lines:
        line = raw.decode(errors="replace").rstrip("\r\n")
        if not line:
            if data:
                yield json.loads("\n".join(data))
                data = []
            continue
        if line.startswith("data:"):
            data.append(line[5:].strip())
