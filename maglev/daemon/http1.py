"""HTTP/1.1 on one control-API connection: requests read within limits, answers in JSON.

Owns the vocabulary shared with the listener (`maglev.daemon.httpd`) and the application
(`maglev.daemon.control`): `Limits`, `Request`, `Answer`, `Stream`, `ApiError`, and
`Connection`, which serves one client's requests in turn on that connection's thread. Every
read has a deadline: a connection waits `idle_timeout` for its next request, a request head must
be complete `head_timeout` after its first byte (a client trickling bytes gets no longer), a
body must arrive within `body_timeout`; a send the client does not read gives up after
`send_timeout`. A request line, header block or body over its limit gets 414, 431 or 413, a
malformed one 400. Every answer is JSON, also for bytes that are not HTTP at all, and a client
that hangs up is logged at DEBUG, never with a traceback (`ClientGone`).

An event stream (`Stream`) is long-lived by design: it is exempt from the idle timeout, counts
toward its own cap (`Limits.streams`), and ends when the client closes its side or stops
reading, or the server stops. Write requests (POST, PUT, DELETE) are logged at INFO with the
peer: uid, gid and pid on a Unix socket (SO_PEERCRED), host:port on TCP.
"""

from __future__ import annotations

import contextlib
import http
import json
import logging
import re
import select
import socket
import struct
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

log = logging.getLogger(__name__)

WRITE_METHODS = ("POST", "PUT", "DELETE")
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # RFC 9110 token: methods, header names
_BAD_TARGET = re.compile(rb"[^\x21-\x7e]")  # a request target is visible ASCII
_BAD_VALUE = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")  # control characters but TAB
_POLL_HUP = select.POLLHUP | select.POLLERR | getattr(select, "POLLRDHUP", 0)


@dataclass(frozen=True, slots=True)
class Limits:
    connections: int = 256  # open connections per listener; event streams included
    streams: int = 32  # of which event streams
    request_line: int = 8192
    header_line: int = 8192
    header_count: int = 64
    header_bytes: int = 32768  # the whole header block
    body: int = 16 * 1024 * 1024  # a candidate config (`limits.MAX_BYTES`), but not unbounded
    idle_timeout: float = 15.0  # waiting for a request (the first, or the next on keep-alive)
    head_timeout: float = 10.0  # from a request's first byte to the end of its headers
    body_timeout: float = 30.0
    send_timeout: float = 10.0
    keepalive: float = 15.0  # an event stream's comment line, so idle proxies keep it open
    backlog: int = max(128, socket.SOMAXCONN)  # a burst of clients waits instead of EAGAIN


class ApiError(Exception):
    """An answer other than 200, with its one-line message (and headers such as `Allow`)."""

    def __init__(self, status: int, message: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = dict(headers or {})


class ClientGone(Exception):
    """The client closed or reset the connection, or stopped reading: nothing to answer."""


class _Timeout(Exception):
    pass


class _Eof(Exception):
    pass


@dataclass(frozen=True, slots=True)
class Peer:
    address: str  # "unix", or host:port
    uid: int | None = None
    gid: int | None = None
    pid: int | None = None

    def __str__(self) -> str:
        if self.uid is None:
            return self.address
        return f"uid {self.uid} gid {self.gid} pid {self.pid}"


def peer_of(conn: socket.socket, address: Any) -> Peer:
    if conn.family == socket.AF_UNIX:
        opt = getattr(socket, "SO_PEERCRED", None)
        if opt is None:
            return Peer("unix")
        try:
            pid, uid, gid = struct.unpack("3i", conn.getsockopt(socket.SOL_SOCKET, opt, 12))
        except OSError:
            return Peer("unix")
        return Peer("unix", uid, gid, pid)
    host, port = address[0], address[1]
    return Peer(f"[{host}]:{port}" if ":" in host else f"{host}:{port}")


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    target: str  # as sent: a path with an optional query (anything else was refused)
    headers: Mapping[str, str]  # lower-case names
    peer: Peer
    read_body: Callable[[], bytes]  # the body (b"" if none); ApiError if it is late or cut short


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    payload: Any  # JSON-serialisable
    headers: Mapping[str, str] | None = None


class Source(Protocol):
    def read(self, timeout: float) -> bytes:
        """The next bytes of the stream, waiting at most `timeout`; b"" when none are due."""
        ...

    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Stream:
    """A long-lived answer: `open()` starts it once the stream cap allows (ApiError refuses)."""

    open: Callable[[], Source]
    content_type: str = "text/event-stream"


App = Callable[[Request], Answer | Stream]


def json_answer(status: int, payload: Any, headers: Mapping[str, str], close: bool) -> bytes:
    body = (json.dumps(payload, default=str) + "\n").encode()
    return _head(status, {"Content-Type": "application/json", **headers}, len(body), close) + body


def _head(status: int, headers: Mapping[str, str], length: int | None, close: bool) -> bytes:
    try:
        reason = http.HTTPStatus(status).phrase
    except ValueError:
        reason = "Unknown"
    lines = [f"HTTP/1.1 {status} {reason}", "Server: maglevd"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    if length is not None:
        lines.append(f"Content-Length: {length}")
    if close:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", "replace")


class Host(Protocol):
    """What a connection needs of its listener (`httpd.HttpServer`)."""

    app: App
    limits: Limits
    stopping: threading.Event

    def take_stream(self) -> bool: ...
    def drop_stream(self) -> None: ...


class Connection:
    """One client connection: requests in turn (keep-alive), on its own thread."""

    def __init__(self, server: Host, sock: socket.socket, peer: Peer) -> None:
        self.server = server
        self.limits = server.limits
        self.sock = sock
        self.peer = peer
        self.buf = bytearray()
        self.status = 0  # of the answer to the current request, once decided

    # --- bytes in and out -------------------------------------------------------------------

    def _fill(self, deadline: float) -> None:
        left = deadline - time.monotonic()
        if left <= 0:
            raise _Timeout
        self.sock.settimeout(left)
        try:
            chunk = self.sock.recv(65536)
        except TimeoutError:
            raise _Timeout from None
        except OSError as e:
            raise ClientGone(str(e)) from None
        if not chunk:
            raise _Eof
        self.buf += chunk

    def _line(self, limit: int, deadline: float, status: int, what: str) -> bytes:
        start = 0
        while True:
            i = self.buf.find(b"\n", start)
            if i > limit + 1 or (i < 0 and len(self.buf) > limit + 1):
                raise ApiError(status, f"{what} is longer than {limit} bytes")
            if i >= 0:
                line = bytes(self.buf[:i])
                del self.buf[: i + 1]
                return line.removesuffix(b"\r")
            start = len(self.buf)
            self._fill(deadline)

    def _write(self, data: bytes) -> None:
        self.sock.settimeout(self.limits.send_timeout)
        try:
            self.sock.sendall(data)
        except OSError as e:  # reset, broken pipe, or a client that stopped reading
            raise ClientGone(str(e) or type(e).__name__) from None

    def _linger_close(self) -> None:
        """Close after an answer sent before the request was read to its end: half-close and
        read what the client still sends, briefly, so that closing does not reset the
        connection and lose the answer on its way."""
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_WR)
            deadline = time.monotonic() + 1.0
            got = 0
            while got < 1024 * 1024 and (left := deadline - time.monotonic()) > 0:
                self.sock.settimeout(left)
                chunk = self.sock.recv(65536)
                if not chunk:
                    break
                got += len(chunk)

    # --- requests ---------------------------------------------------------------------------

    def run(self) -> None:
        while not self.server.stopping.is_set():
            if not self.buf:
                try:  # the idle wait: a client that sends nothing is closed quietly
                    self._fill(time.monotonic() + self.limits.idle_timeout)
                except (_Timeout, _Eof):
                    return
            if not self._one():
                return

    def _one(self) -> bool:
        """Read and answer one request; False when the connection is to be closed."""
        method = path = "-"
        self.status = 0
        try:
            try:
                method, target, headers, keep = self._head()
                path = target.partition("?")[0]
                keep = self._answer(method, target, headers, keep)
            except _Timeout:
                t = self.limits.head_timeout
                raise ApiError(408, f"request not received within {t:g}s") from None
            except _Eof:
                raise ApiError(400, "the request ended before its headers did") from None
        except ApiError as e:
            self.status = e.status
            self._write(json_answer(e.status, {"error": e.message}, e.headers, close=True))
            self._linger_close()
            return False
        finally:  # who asked for a change, even one refused or not answered, is worth a line
            level = logging.INFO if method in WRITE_METHODS else logging.DEBUG
            answer = self.status or "no answer"
            log.log(level, "control %.32r %r from %s: %s", method, path, self.peer, answer)
        return keep

    def _head(self) -> tuple[str, str, dict[str, str], bool]:
        lim = self.limits
        deadline = time.monotonic() + lim.head_timeout
        line = b""
        for _ in range(4):  # RFC 9112 2.2: ignore empty lines before a request
            line = self._line(lim.request_line, deadline, 414, "the request line")
            if line:
                break
        parts = line.split(b" ")
        if len(parts) != 3:
            raise ApiError(400, "the request line is not METHOD PATH HTTP/1.1")
        raw_method, raw_target, version = parts
        if not _TOKEN.fullmatch(raw_method) or len(raw_method) > 32:
            raise ApiError(400, f"method {raw_method[:40]!r} is not an HTTP method")
        if version not in (b"HTTP/1.1", b"HTTP/1.0"):
            raise ApiError(400, f"HTTP version {version[:40]!r} is not HTTP/1.1 or HTTP/1.0")
        if not raw_target.startswith(b"/") or _BAD_TARGET.search(raw_target):
            raise ApiError(
                400, "the request target is not a path (percent-encode what is not ASCII)"
            )
        headers: dict[str, str] = {}
        count = size = 0
        while line := self._line(lim.header_line, deadline, 431, "a header line"):
            count += 1
            size += len(line)
            if count > lim.header_count or size > lim.header_bytes:
                raise ApiError(
                    431, f"more than {lim.header_count} headers or {lim.header_bytes} bytes of them"
                )
            name, colon, value = line.partition(b":")
            if line[:1] in (b" ", b"\t"):
                raise ApiError(400, "folded header lines are not accepted")
            if not colon or not _TOKEN.fullmatch(name) or _BAD_VALUE.search(value):
                raise ApiError(400, f"header line {line[:40]!r}... is not NAME: VALUE")
            key, text = name.decode().lower(), value.strip(b" \t").decode("latin-1")
            if key in headers and headers[key] != text:
                if key in ("content-length", "authorization", "host", "transfer-encoding"):
                    raise ApiError(400, f"conflicting {key} headers")
                text = f"{headers[key]}, {text}"
            headers[key] = text
        conn = {t.strip().lower() for t in headers.get("connection", "").split(",")}
        keep = "close" not in conn if version == b"HTTP/1.1" else "keep-alive" in conn
        return raw_method.decode(), raw_target.decode(), headers, keep

    def _body_length(self, headers: Mapping[str, str]) -> int:
        if "transfer-encoding" in headers:
            raise ApiError(411, "chunked bodies are not accepted: send a Content-Length")
        text = headers.get("content-length")
        if text is None:
            return 0
        if not (text.isascii() and text.isdigit()):
            raise ApiError(400, f"Content-Length: {text[:40]!r} is not a number of bytes")
        if len(text) > 12 or int(text) > self.limits.body:
            raise ApiError(
                413, f"a body of {text[:40]} bytes is over the {self.limits.body}-byte limit"
            )
        return int(text)

    def _answer(self, method: str, target: str, headers: dict[str, str], keep: bool) -> bool:
        """Have the app answer; whether the connection may serve another request."""
        length = self._body_length(headers)
        pending = [length]  # body bytes not yet read; the connection is reusable only at 0
        expect = headers.get("expect", "").lower() == "100-continue"

        def read_body() -> bytes:
            n = pending[0]
            if n == 0:
                return b""
            if expect and len(self.buf) < n:
                self._write(b"HTTP/1.1 100 Continue\r\n\r\n")
            deadline = time.monotonic() + self.limits.body_timeout
            while len(self.buf) < n:
                try:
                    self._fill(deadline)
                except _Timeout:
                    raise ApiError(
                        408, f"the body did not arrive within {self.limits.body_timeout:g}s"
                    ) from None
                except _Eof:
                    raise ApiError(
                        400, f"the body ended after {len(self.buf)} of {n} bytes"
                    ) from None
            body = bytes(self.buf[:n])
            del self.buf[:n]
            pending[0] = 0
            return body

        req = Request(method, target, headers, self.peer, read_body)
        try:
            reply = self.server.app(req)
            if isinstance(reply, Stream):
                self._stream(reply)
                return False
            keep = keep and pending[0] == 0
            data = json_answer(reply.status, reply.payload, reply.headers or {}, not keep)
        except ApiError:
            raise
        except ClientGone:
            raise
        except Exception as e:  # a bug: one log line with its traceback, a 500 for the client
            log.exception("control %.32r %r from %s failed", method, target[:200], self.peer)
            raise ApiError(500, f"internal error: {type(e).__name__}") from None
        self.status = reply.status
        self._write(data)
        if not keep and pending[0]:
            self._linger_close()
        return keep

    def _stream(self, reply: Stream) -> None:
        if not self.server.take_stream():
            raise ApiError(
                503,
                f"{self.limits.streams} event streams are open (the limit); try again",
                {"Retry-After": "5"},
            )
        try:
            source = reply.open()
            self.status = 200
            head = {"Content-Type": reply.content_type, "Cache-Control": "no-cache"}
            try:
                self._write(_head(200, head, None, close=True))
                self._pump(source)
            finally:
                source.close()
        finally:
            self.server.drop_stream()

    def _pump(self, source: Source) -> None:
        poller = select.poll()
        poller.register(self.sock.fileno(), select.POLLIN | _POLL_HUP)
        while not self.server.stopping.is_set():
            for _, ev in poller.poll(0):
                if ev & _POLL_HUP:
                    raise ClientGone("the event stream's client closed the connection")
                try:  # a stream's client has nothing to say: EOF means it left
                    if not self.sock.recv(65536, socket.MSG_DONTWAIT):
                        raise ClientGone("the event stream's client closed the connection")
                except (BlockingIOError, InterruptedError):
                    pass
                except OSError as e:
                    raise ClientGone(str(e)) from None
            data = source.read(0.25)
            if data:
                self._write(data)
