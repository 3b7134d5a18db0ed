"""The control API: HTTP+JSON on a Unix socket (and optionally TCP with a bearer token).

Owns its listener threads (`maglev-control-unix`, `maglev-control-tcp`) and one short-lived
thread per request. It never touches daemon state itself: every route calls the `ControlHandler`
the runtime passes in, which reads published snapshots or sends the reconciler a message. Every
request is validated here first; a bad one gets a 4xx with a one-line message.
"""

from __future__ import annotations

import contextlib
import hmac
import http.server
import json
import logging
import os
import queue
import re
import socket
import socketserver
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import parse_qs, unquote, urlsplit

from maglev.config.fields import parse_host_port

log = logging.getLogger(__name__)

MAX_BODY = 4 * 1024 * 1024  # a candidate config may be large, but not unbounded
NAME = r"([A-Za-z0-9_.:@-]{1,128})"


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class ControlHandler(Protocol):
    def version(self) -> dict[str, Any]: ...
    def status(self) -> dict[str, Any]: ...
    def frontends(self) -> list[dict[str, Any]]: ...
    def frontend(self, name: str) -> dict[str, Any]: ...
    def backends(self) -> list[dict[str, Any]]: ...
    def backend(self, name: str) -> dict[str, Any]: ...
    def healthchecks(self) -> list[dict[str, Any]]: ...
    def vpp_lb_state(self) -> dict[str, Any]: ...
    def vpp_lb_counters(self) -> dict[str, Any]: ...
    def backend_action(self, name: str, action: str) -> dict[str, Any]: ...
    def set_weight(
        self, frontend: str, pool: str, backend: str, weight: int | None
    ) -> dict[str, Any]: ...
    def sync(self) -> dict[str, Any]: ...
    def reload(self) -> dict[str, Any]: ...
    def check_config(self, text: str) -> dict[str, Any]: ...
    def subscribe(
        self, filters: dict[str, str]
    ) -> tuple[queue.Queue[dict[str, Any]], Callable[[], None]]: ...


@dataclass(frozen=True, slots=True)
class Route:
    method: str
    pattern: re.Pattern[str]
    call: Callable[[ControlHandler, tuple[str, ...], dict[str, str], Any], Any]


def _weight_body(body: Any) -> int:
    if not isinstance(body, dict) or "weight" not in body:
        raise ApiError(400, 'body must be a JSON object {"weight": 0..100}')
    w = body["weight"]
    if isinstance(w, bool) or not isinstance(w, int) or not 0 <= w <= 100:
        raise ApiError(400, f"weight: {w!r} is not an integer in 0..100")
    return w


def _config_body(body: Any) -> str:
    if not isinstance(body, dict) or not isinstance(body.get("config"), str):
        raise ApiError(400, 'body must be a JSON object {"config": "<YAML text>"}')
    return str(body["config"])


BACKEND_ACTIONS = ("pause", "resume", "enable", "disable")

ROUTES: tuple[Route, ...] = tuple(
    Route(m, re.compile("^" + p + "$"), c)
    for m, p, c in (
        ("GET", r"/v1/version", lambda h, a, q, b: h.version()),
        ("GET", r"/v1/status", lambda h, a, q, b: h.status()),
        ("GET", r"/v1/frontends", lambda h, a, q, b: h.frontends()),
        ("GET", rf"/v1/frontends/{NAME}", lambda h, a, q, b: h.frontend(a[0])),
        ("GET", r"/v1/backends", lambda h, a, q, b: h.backends()),
        ("GET", rf"/v1/backends/{NAME}", lambda h, a, q, b: h.backend(a[0])),
        ("GET", r"/v1/healthchecks", lambda h, a, q, b: h.healthchecks()),
        ("GET", r"/v1/vpp/lb/state", lambda h, a, q, b: h.vpp_lb_state()),
        ("GET", r"/v1/vpp/lb/counters", lambda h, a, q, b: h.vpp_lb_counters()),
        (
            "POST",
            rf"/v1/backends/{NAME}/(pause|resume|enable|disable)",
            lambda h, a, q, b: h.backend_action(a[0], a[1]),
        ),
        (
            "PUT",
            rf"/v1/frontends/{NAME}/pools/{NAME}/backends/{NAME}/weight",
            lambda h, a, q, b: h.set_weight(a[0], a[1], a[2], _weight_body(b)),
        ),
        (
            "DELETE",
            rf"/v1/frontends/{NAME}/pools/{NAME}/backends/{NAME}/weight",
            lambda h, a, q, b: h.set_weight(a[0], a[1], a[2], None),
        ),
        ("POST", r"/v1/sync", lambda h, a, q, b: h.sync()),
        ("POST", r"/v1/reload", lambda h, a, q, b: h.reload()),
        ("POST", r"/v1/config/check", lambda h, a, q, b: h.check_config(_config_body(b))),
    )
)
EVENTS_PATH = "/v1/events"
EVENT_FILTERS = ("backend", "frontend", "level", "type")


class _RequestHandler(http.server.BaseHTTPRequestHandler):
    server_version = "maglevd"
    protocol_version = "HTTP/1.1"
    handler: ControlHandler  # set on the per-server subclass
    token: bytes | None = None
    stopping: threading.Event

    def address_string(self) -> str:  # Unix sockets have no peer address
        return str(self.client_address[0]) if self.client_address else "unix"

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("control %s: " + format, self.address_string(), *args)

    def _send(self, status: int, payload: Any) -> None:
        data = (json.dumps(payload, default=str, indent=None) + "\n").encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _authorized(self) -> bool:
        if self.token is None:
            return True
        got = self.headers.get("Authorization", "")
        if not got.startswith("Bearer "):
            return False
        return hmac.compare_digest(got[7:].strip().encode(), self.token)

    def _body(self) -> Any:
        length = self.headers.get("Content-Length")
        if length is None:
            return None
        try:
            n = int(length)
        except ValueError as e:
            raise ApiError(400, f"Content-Length: {length!r} is not a number") from e
        if n < 0 or n > MAX_BODY:
            raise ApiError(413, f"body of {n} bytes is over the {MAX_BODY}-byte limit")
        raw = self.rfile.read(n)
        if not raw:
            return None
        try:
            return json.loads(raw)
        except (ValueError, UnicodeDecodeError) as e:
            raise ApiError(400, f"body is not valid JSON: {e}") from e

    def _dispatch(self, method: str) -> None:
        try:
            if not self._authorized():
                raise ApiError(401, "missing or wrong bearer token")
            url = urlsplit(self.path)
            path = unquote(url.path).rstrip("/") or "/"
            query = {k: v[-1] for k, v in parse_qs(url.query).items()}
            body = self._body() if method in ("POST", "PUT", "DELETE") else None
            if method == "GET" and path == EVENTS_PATH:
                self._events(query)
                return
            allowed = []
            for r in ROUTES:
                m = r.pattern.match(path)
                if not m:
                    continue
                if r.method != method:
                    allowed.append(r.method)
                    continue
                self._send(200, r.call(self.handler, m.groups(), query, body))
                return
            if allowed:
                raise ApiError(405, f"{method} is not allowed on {path} (use {', '.join(allowed)})")
            raise ApiError(404, f"no such endpoint: {path}")
        except ApiError as e:
            self._send(e.status, {"error": e.message})
        except (BrokenPipeError, ConnectionResetError):
            pass
        except Exception as e:  # a bug must not take the daemon down: log it, answer 500
            log.exception("control request %s %s failed", method, self.path)
            with contextlib.suppress(OSError):
                self._send(500, {"error": f"internal error: {e!r}"})

    def _events(self, query: dict[str, str]) -> None:
        unknown = set(query) - set(EVENT_FILTERS)
        if unknown:
            raise ApiError(400, f"unknown filter(s) {sorted(unknown)}; use {list(EVENT_FILTERS)}")
        q, unsubscribe = self.handler.subscribe(query)
        try:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True
            self.wfile.write(b": subscribed\n\n")
            self.wfile.flush()
            while not self.stopping.is_set():
                try:
                    ev = q.get(timeout=1.0)
                except queue.Empty:
                    self.wfile.write(b": keepalive\n\n")
                    self.wfile.flush()
                    continue
                data = json.dumps(ev, default=str)
                self.wfile.write(f"event: {ev.get('type', 'event')}\ndata: {data}\n\n".encode())
                self.wfile.flush()
        except OSError:
            pass
        finally:
            unsubscribe()

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")


class _UnixServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def get_request(self) -> tuple[socket.socket, Any]:
        conn, _ = self.socket.accept()
        return conn, ("unix", 0)


class _TcpServer(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


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
    ) -> None:
        if tcp_listen and not token:
            raise ValueError("control.tcp-listen needs a token: unauthenticated TCP is refused")
        self.stopping = threading.Event()
        self._servers: list[socketserver.BaseServer] = []
        self._threads: list[threading.Thread] = []
        self.socket_path = socket_path
        if socket_path:
            cls = type(
                "UnixHandler", (_RequestHandler,), {"handler": handler, "stopping": self.stopping}
            )
            if os.path.exists(socket_path):
                os.unlink(socket_path)  # a stale socket of an earlier run
            os.makedirs(os.path.dirname(socket_path) or ".", exist_ok=True)
            srv = _UnixServer(socket_path, cls)
            os.chmod(socket_path, socket_mode)
            if socket_group:
                import grp

                os.chown(socket_path, -1, grp.getgrnam(socket_group).gr_gid)
            self._servers.append(srv)
        self.tcp_address: tuple[str, int] | None = None
        if tcp_listen:
            cls = type(
                "TcpHandler",
                (_RequestHandler,),
                {"handler": handler, "stopping": self.stopping, "token": (token or "").encode()},
            )
            tsrv = _TcpServer(parse_host_port(tcp_listen), cls)
            self.tcp_address = tsrv.server_address[:2]  # type: ignore[assignment]
            self._servers.append(tsrv)

    def start(self) -> None:
        for srv in self._servers:
            kind = "unix" if isinstance(srv, _UnixServer) else "tcp"
            t = threading.Thread(
                target=srv.serve_forever, args=(0.05,), name=f"maglev-control-{kind}", daemon=True
            )
            t.start()
            self._threads.append(t)

    def stop(self) -> None:
        self.stopping.set()
        for srv in self._servers:
            srv.shutdown()
            srv.server_close()
        if self.socket_path and os.path.exists(self.socket_path):
            os.unlink(self.socket_path)


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
