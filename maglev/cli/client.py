"""HTTP client for the control API, over the daemon's Unix socket or TCP with a bearer token."""

from __future__ import annotations

import http.client
import json
import socket
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, urlencode

from maglev.errors import MaglevError


class ControlError(MaglevError):
    """The daemon could not be reached, or it refused the request (message is one line)."""


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self) -> None:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        try:
            s.connect(self.unix_path)
        except OSError:
            s.close()
            raise
        self.sock = s


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
        self.token = token
        self.timeout = timeout

    def _conn(self, timeout: float | None) -> http.client.HTTPConnection:
        t = self.timeout if timeout is None else timeout
        if self.url:
            hostport = self.url.split("://", 1)[-1].rstrip("/")
            return http.client.HTTPConnection(hostport, timeout=t)
        return _UnixConnection(self.socket_path or "", t)

    def _where(self) -> str:
        return self.url or f"unix:{self.socket_path}"

    def request(
        self, method: str, path: str, body: Any = None, timeout: float | None = None
    ) -> Any:
        conn = self._conn(timeout)
        headers = {"Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        try:
            conn.request(method, path, body=data, headers=headers)
            resp = conn.getresponse()
            raw = resp.read()
        except (OSError, http.client.HTTPException) as e:
            raise ControlError(f"cannot reach maglevd at {self._where()}: {e}") from e
        finally:
            conn.close()
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
        conn.timeout = None
        headers = {"Accept": "text/event-stream"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        path = "/v1/events" + (f"?{urlencode(filters)}" if filters else "")
        try:
            conn.request("GET", path, headers=headers)
            resp = conn.getresponse()
        except (OSError, http.client.HTTPException) as e:
            raise ControlError(f"cannot reach maglevd at {self._where()}: {e}") from e
        if resp.status >= 400:
            try:
                msg = json.loads(resp.read()).get("error")
            except ValueError:
                msg = None
            raise ControlError(f"{msg or 'request failed'} (HTTP {resp.status})")
        try:
            yield from iter_sse(iter(resp.readline, b""))
        finally:
            conn.close()


def q(name: str) -> str:
    return quote(name, safe="")
