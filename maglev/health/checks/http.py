"""HTTP and HTTPS probes: one HTTP/1.1 request on a non-blocking socket, judged by status/body.

Runs on a check worker's reactor, so many probes share one thread. The request carries
`Connection: close`; redirects are not followed (a 302 is judged by `expect_status` like any
other status). The head (status line and headers) is read up to 64 KiB; the body only when
`expect_body` needs it, and only its first `MATCH_CAP` (16 KiB) bytes, which bound the regex's
work (by Content-Length, else until the peer closes; chunked bodies are read raw, and the regex
runs on what arrived). TLS runs over `ssl.MemoryBIO`s so the
handshake never blocks the loop; SNI is `server_name`, else `host`, else none (an IP address
is never sent as SNI); with `verify`, the chain is checked against `ca_file` (or the system store)
and the certificate against that name or the address.
"""

from __future__ import annotations

import functools
import re
import socket
import ssl
import threading

from maglev.health import reactor
from maglev.health.checks.base import (
    MATCH_CAP,
    USER_AGENT,
    Outcome,
    Progress,
    connect_failure,
    open_socket,
    port_of,
    sockaddr,
)
from maglev.model import CheckType, HealthCheck, IPAddress, Reason

READ_CAP = 64 * 1024  # of the head
_STATUS = re.compile(rb"HTTP/1\.[01] (\d{3})(?: ([^\r\n]*))?\r?\n")
_CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:[ \t]*(\d+)[ \t]*\r\n", re.IGNORECASE)

_contexts: dict[tuple[bool, str | None], ssl.SSLContext] = {}
_contexts_lock = threading.Lock()


def tls_context(verify: bool, ca_file: str | None) -> ssl.SSLContext:
    """A client context, shared by every worker (SSLContext is safe to share once built)."""
    key = (verify, ca_file)
    with _contexts_lock:
        ctx = _contexts.get(key)
        if ctx is None:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            if verify:
                if ca_file:
                    ctx.load_verify_locations(cafile=ca_file)
                else:
                    ctx.load_default_certs()
            else:
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
            _contexts[key] = ctx
        return ctx


def request_bytes(address: IPAddress, port: int, check: HealthCheck) -> bytes:
    if check.host:
        host = check.host
    else:
        host = f"[{address}]" if address.version == 6 else str(address)
        if port != (443 if check.type is CheckType.HTTPS else 80):
            host = f"{host}:{port}"
    return (
        f"{check.method} {check.path} HTTP/1.1\r\n"
        f"Host: {host}\r\n"
        f"User-Agent: {USER_AGENT}\r\n"
        "Accept: */*\r\n"
        "Connection: close\r\n\r\n"
    ).encode("latin-1")


class _Plain:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    async def send(self, data: bytes) -> None:
        await reactor.send_all(self.sock, data)

    async def recv(self, n: int) -> bytes:
        return await reactor.recv(self.sock, n)


class _Tls(_Plain):
    """TLS over a non-blocking socket through memory BIOs."""

    def __init__(self, sock: socket.socket, ctx: ssl.SSLContext, name: str | None) -> None:
        super().__init__(sock)
        self.incoming = ssl.MemoryBIO()
        self.outgoing = ssl.MemoryBIO()
        self.obj = ctx.wrap_bio(self.incoming, self.outgoing, server_hostname=name)

    async def _flush(self) -> None:
        data = self.outgoing.read()
        if data:
            await reactor.send_all(self.sock, data)

    async def _fill(self) -> bool:
        data = await reactor.recv(self.sock, 65536)
        if not data:
            self.incoming.write_eof()
            return False
        self.incoming.write(data)
        return True

    async def handshake(self) -> None:
        while True:
            try:
                self.obj.do_handshake()
                await self._flush()
                return
            except ssl.SSLWantReadError:
                await self._flush()
                if not await self._fill():
                    raise ssl.SSLEOFError("peer closed during handshake") from None

    async def send(self, data: bytes) -> None:
        self.obj.write(data)
        await self._flush()

    async def recv(self, n: int) -> bytes:
        while True:
            try:
                return self.obj.read(n)
            except ssl.SSLWantReadError:
                await self._flush()
                if not await self._fill():
                    return b""
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                return b""  # close_notify or a bare close both end a close-delimited body


def _tls_detail(e: ssl.SSLError) -> str:
    if isinstance(e, ssl.SSLCertVerificationError):
        return f"certificate: {e.verify_message}"
    return str(e.reason or e)[:200]


async def probe(address: IPAddress, check: HealthCheck, progress: Progress) -> Outcome:
    port = port_of(check)
    assert port is not None  # http/https always have a default
    progress.at(Reason.L4TOUT, "connect timeout")
    with open_socket(check, address, socket.SOCK_STREAM) as sock:
        try:
            await reactor.connect(sock, sockaddr(address, port))
        except OSError as e:
            return connect_failure(e)
        conn: _Plain
        if check.type is CheckType.HTTPS:
            progress.at(Reason.L7TOUT, "TLS handshake timeout")
            try:
                ctx = tls_context(check.verify, check.ca_file)
                name = check.server_name or check.host
                if name is None and check.verify:
                    name = str(address)  # verify the certificate's IP address SAN
                conn = _Tls(sock, ctx, name)
                await conn.handshake()
            except ssl.SSLError as e:
                return Outcome(False, Reason.TLSERR, _tls_detail(e))
            except OSError as e:  # includes a missing ca_file
                if e.errno is None or isinstance(e, FileNotFoundError):
                    return Outcome(False, Reason.TLSERR, str(e)[:200])
                return connect_failure(e)
        else:
            conn = _Plain(sock)
        progress.at(Reason.L7TOUT, "no response")
        try:
            await conn.send(request_bytes(address, port, check))
            return await _read_response(conn, check)
        except ssl.SSLError as e:
            return Outcome(False, Reason.TLSERR, _tls_detail(e))
        except OSError as e:
            return connect_failure(e)


@functools.lru_cache(maxsize=1024)
def _status_ok(status: int) -> Outcome:
    return Outcome(True, Reason.L7OK, f"HTTP {status}")


def judge_head(buf: bytes, check: HealthCheck) -> Outcome | None:
    """The outcome of a response whose head is complete in `buf`; None when the body decides."""
    m = _STATUS.match(buf)
    if m is None:
        return Outcome(False, Reason.L7RSP, f"malformed status line: {buf[:40]!r}")
    status = int(m.group(1))
    if not any(lo <= status <= hi for lo, hi in check.expect_status):
        return Outcome(False, Reason.L7STS, f"HTTP {status}")
    if check.expect_body is None:
        return _status_ok(status)
    return None


def head_missing(buf: bytes) -> Outcome:
    """The outcome when the peer closed before the end of the response head."""
    if not buf:
        return Outcome(False, Reason.L7RSP, "empty response")
    return Outcome(False, Reason.L7RSP, "truncated headers")


HEAD_TOO_LARGE = Outcome(False, Reason.L7RSP, "headers too large")


async def _read_response(conn: _Plain, check: HealthCheck) -> Outcome:
    buf = b""
    head_end = -1
    while head_end < 0:
        if len(buf) >= READ_CAP:
            return HEAD_TOO_LARGE
        chunk = await conn.recv(READ_CAP - len(buf))
        if not chunk:
            return head_missing(buf)
        buf += chunk
        head_end = buf.find(b"\r\n\r\n")
    judged = judge_head(buf, check)
    if judged is not None:
        return judged
    status = int(buf[9:12])  # judge_head matched the status line
    head = buf[: head_end + 2]
    body = buf[head_end + 4 :]
    cl = _CONTENT_LENGTH.search(head)
    want = min(int(cl.group(1)), MATCH_CAP) if cl else MATCH_CAP
    while len(body) < want:
        chunk = await conn.recv(want - len(body))
        if not chunk:
            break
        body += chunk
    assert check.expect_body is not None  # judge_head decides alone without one
    if re.search(check.expect_body.encode(), body[:want]):
        return Outcome(True, Reason.L7OK, f"HTTP {status}, body matched")
    return Outcome(False, Reason.L7RSP, f"HTTP {status}, body did not match")
