"""HTTP client for the control API, over the daemon's Unix socket or TCP with a bearer token.

maglevd speaks plain HTTP only (no TLS): an `https://` URL is refused rather than sent in the
clear, and `cleartext_risk` tells maglevc when a token would cross the network unencrypted.
A connect the daemon cannot take yet (its listen queue full: EAGAIN on a Unix socket; or
refused while it restarts) and an answer "busy" from its connection cap are retried briefly,
with backoff, before giving up: the request was not seen, so trying again is safe.
"""

from __future__ import annotations

import errno
import http.client
import ipaddress
import json
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from maglev.errors import MaglevError

RETRY_FOR = 2.0  # seconds of retrying a connect the daemon could not take (or a busy answer)
_FIRST_PAUSE, _MAX_PAUSE = 0.01, 0.25
_RETRY_ERRNOS = (errno.EAGAIN, errno.ECONNREFUSED)
NO_TLS = (
    "maglevd serves plain HTTP only, no TLS, so https:// URLs are refused. To reach a remote "
    "maglevd safely, use an ssh tunnel (ssh -L 9901:127.0.0.1:9901 HOST, then --url "
    "http://127.0.0.1:9901) or a TLS-terminating proxy in front of its TCP listener"
)


class ControlError(MaglevError):
    """The daemon could not be reached, or it refused the request (message is one line)."""


def _pause(seconds: float) -> None:
    time.sleep(seconds)  # a CLI's short wait; tests replace it


def _connect_retrying(connect: Callable[[], None], timeout: float | None) -> None:
    """Call `connect` until it succeeds, retrying EAGAIN and ECONNREFUSED for a bounded time."""
    budget = RETRY_FOR if timeout is None else min(RETRY_FOR, timeout)
    deadline = time.monotonic() + budget
    pause = _FIRST_PAUSE
    while True:
        try:
            connect()
            return
        except OSError as e:
            if e.errno not in _RETRY_ERRNOS or time.monotonic() + pause > deadline:
                raise
        _pause(pause)
        pause = min(pause * 2, _MAX_PAUSE)


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float | None) -> None:
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def _connect_once(self) -> None:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        try:
            s.connect(self.unix_path)
        except OSError:
            s.close()
            raise
        self.sock = s

    def connect(self) -> None:
        _connect_retrying(self._connect_once, self.timeout)


class _TcpConnection(http.client.HTTPConnection):
    def connect(self) -> None:
        _connect_retrying(super().connect, self.timeout)


def parse_url(url: str) -> tuple[str, int]:
    """(host, port) of a control URL: `http://host:port`, or `host:port`; https is refused."""
    u = urlsplit(url if "://" in url else f"http://{url}")
    if u.scheme.lower() == "https":
        raise ControlError(f"--url {url}: {NO_TLS}")
    try:
        port = u.port
    except ValueError:
        port = -1
    if u.scheme.lower() != "http" or not u.hostname or port == -1 or u.path not in ("", "/"):
        raise ControlError(f"--url {url}: expected http://HOST:PORT")
    return u.hostname, port or 80


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost" or host.lower().endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name: it may resolve anywhere


def cleartext_risk(url: str | None, token: str | None) -> str | None:
    """A warning when a token would be sent unencrypted beyond this host, else None."""
    if not url or not token:
        return None
    host, _ = parse_url(url)
    if is_loopback(host):
        return None
    return (
        f"warning: the bearer token goes to {host} in cleartext (maglevd speaks no TLS); "
        "anyone on the path can read it: use an ssh tunnel to a loopback address"
    )


class ControlClient:
    def __init__(
        self,
        socket_path: str | None = None,
        url: str | None = None,
        token: str | None = None,
        timeout: float = 30.0,
    ) -> None:
        self.socket_path = socket_path
        self.url = url
        self.address = parse_url(url) if url else None  # refuses https:// at once
        self.token = token
        self.timeout = timeout

    def _conn(self, timeout: float | None) -> http.client.HTTPConnection:
        t = self.timeout if timeout is None else timeout
        if self.address:
            return _TcpConnection(*self.address, timeout=t)
        return _UnixConnection(self.socket_path or "", t)

    def _where(self) -> str:
        return self.url or f"unix:{self.socket_path}"

    def request(
        self, method: str, path: str, body: Any = None, timeout: float | None = None
    ) -> Any:
        headers = {"Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        deadline = time.monotonic() + RETRY_FOR
        pause = _FIRST_PAUSE
        while True:
            conn = self._conn(timeout)
            try:
                conn.request(method, path, body=data, headers=headers)
                resp = conn.getresponse()
                raw = resp.read()
            except (OSError, http.client.HTTPException) as e:
                raise ControlError(f"cannot reach maglevd at {self._where()}: {e}") from e
            finally:
                conn.close()
            # "Busy" (its connection cap) is answered before the request is read: try again.
            busy = resp.status == 503 and resp.getheader("Retry-After") is not None
            if not busy or time.monotonic() + pause > deadline:
                break
            _pause(pause)
            pause = min(pause * 2, _MAX_PAUSE)
        try:
            payload = json.loads(raw) if raw else None
        except ValueError as e:
            raise ControlError(f"maglevd sent a reply that is not JSON (HTTP {resp.status})") from e
        if resp.status >= 400:
            msg = payload.get("error") if isinstance(payload, dict) else None
            raise ControlError(f"{msg or 'request failed'} (HTTP {resp.status})")
        return payload

    def events(self, filters: dict[str, str]) -> Iterator[dict[str, Any]]:
        from maglev.daemon.control import iter_sse

        conn = self._conn(None)
        headers = {"Accept": "text/event-stream"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        path = "/v1/events" + (f"?{urlencode(filters)}" if filters else "")
        try:
            conn.request("GET", path, headers=headers)
            resp = conn.getresponse()
        except (OSError, http.client.HTTPException) as e:
            conn.close()
            raise ControlError(f"cannot reach maglevd at {self._where()}: {e}") from e
        if resp.status >= 400:
            try:
                doc = json.loads(resp.read())
            except (OSError, ValueError, http.client.HTTPException):
                doc = None
            conn.close()
            msg = doc.get("error") if isinstance(doc, dict) else None
            raise ControlError(f"{msg or 'request failed'} (HTTP {resp.status})")
        if conn.sock is not None:
            conn.sock.settimeout(None)  # events come when they come; the daemon sends keepalives
        try:
            yield from iter_sse(iter(resp.readline, b""))
        finally:
            conn.close()


def q(name: str) -> str:
    return quote(name, safe="")
