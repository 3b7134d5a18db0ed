"""Real servers on loopback for the probe and scheduler tests.

TCP echo-ish server, HTTP and HTTPS servers (a throw-away CA made here with `cryptography`), a
port nothing listens on, and a blackhole: a listener whose accept queue is full, so the kernel
drops further SYNs and a connect hangs until its deadline. `probe_to_deadline` shows a probe that
cannot finish ending at exactly its deadline, on a manual clock.
"""

from __future__ import annotations

import contextlib
import datetime
import http.server
import ipaddress
import pathlib
import socket
import socketserver
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from maglev.clock import ManualClock
from maglev.health import checks, fast, reactor
from maglev.health.checks.base import Progress
from maglev.model import CheckType, HealthCheck, IPAddress, ProbeResult, ProbeTarget, Reason

LO = ipaddress.IPv4Address("127.0.0.1")


def run_probe(check: HealthCheck, address: IPAddress = LO) -> ProbeResult:
    """Probe once; a check the workers run on the fast path is probed both ways, which must agree.

    The fast path's result is returned (it is the one the workers use for such checks).
    """
    target = ProbeTarget(address, check.name)
    slow = checks.probe_once(target, check)
    if not fast.eligible(check):
        return slow
    quick = fast.probe_once(target, check)
    assert (quick.ok, quick.reason, quick.detail) == (slow.ok, slow.reason, slow.detail)
    assert quick.target == target and quick.at - quick.duration > 0
    return quick


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def refused_port() -> int:
    return free_port()


@pytest.fixture
def blackhole() -> Iterator[int]:
    """A port whose listener never accepts and whose accept queue is already full.

    It listens on 0.0.0.0, so every 127.x.y.z address blackholes on this port.
    """
    lsock = socket.socket()
    lsock.bind(("0.0.0.0", 0))
    lsock.listen(0)
    port = lsock.getsockname()[1]
    fillers = []
    for _ in range(4):
        c = socket.socket()
        c.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            c.connect(("127.0.0.1", port))
        fillers.append(c)
    # The queue holds backlog+1 = 1 completed connection; the others sit in SYN_SENT, retrying.
    try:
        yield port
    finally:
        for c in fillers:
            c.close()
        lsock.close()


class _TcpHandler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        sock: socket.socket = self.request
        sock.settimeout(2)
        with contextlib.suppress(OSError):
            data = sock.recv(1024)
            if data.startswith(b"PING"):
                sock.sendall(b"+PONG\r\n")
            elif data:
                sock.sendall(b"-ERR unknown\r\n")


class _Threaded(socketserver.ThreadingMixIn, socketserver.TCPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    # Probes on a manual clock come as fast as the test can run them, faster than this server
    # accepts: with the default backlog (5) the kernel would drop SYNs and a connect would take
    # a retransmission (1 s) to succeed.
    request_queue_size = 1024


@pytest.fixture
def tcp_server() -> Iterator[int]:
    srv = _Threaded(("127.0.0.1", 0), _TcpHandler)
    t = threading.Thread(target=srv.serve_forever, args=(0.05,), daemon=True)
    t.start()
    try:
        yield srv.server_address[1]
    finally:
        srv.shutdown()
        srv.server_close()


class _HttpHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    seen: list[dict[str, str]]

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _send(self, status: int, body: bytes, length: bool = True, **headers: str) -> None:
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k.replace("_", "-"), v)
        if length:
            self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self.close_connection = True

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        self.server.seen.append({"path": self.path, **dict(self.headers.items())})  # type: ignore[attr-defined]
        p = self.path
        if p == "/ok":
            self._send(200, b"all good: healthy\n")
        elif p == "/down":
            self._send(503, b"maintenance\n")
        elif p == "/redirect":
            self._send(302, b"", Location="/ok")
        elif p == "/close-delimited":
            self._send(200, b"x" * 5000 + b"MARKER", length=False)
        elif p == "/big":
            self._send(200, b"y" * 200_000 + b"TAIL")
        elif p == "/garbage":
            self.wfile.write(b"SSH-2.0-OpenSSH\r\n\r\n")
            self.close_connection = True
        elif p == "/hang":  # answers only when the test is over
            self.server.release.wait(30)  # type: ignore[attr-defined]
            with contextlib.suppress(OSError):
                self._send(200, b"late\n")
        elif p.startswith("/marker-at-"):  # MARK after that many bytes
            self._send(200, b"z" * int(p.removeprefix("/marker-at-")) + b"MARK")
        else:
            self._send(404, b"no\n")


class _HttpServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # probes close with a reset (SO_LINGER 0): expected, not worth a traceback

    seen: list[dict[str, str]]
    release: threading.Event


@dataclass
class HttpServer:
    port: int
    seen: list[dict[str, str]]


@contextlib.contextmanager
def _serve_http(ctx: ssl.SSLContext | None = None) -> Iterator[HttpServer]:
    srv = _HttpServer(("127.0.0.1", 0), _HttpHandler)
    srv.seen = []
    srv.release = threading.Event()
    if ctx is not None:
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    t = threading.Thread(target=srv.serve_forever, args=(0.05,), daemon=True)
    t.start()
    try:
        yield HttpServer(srv.server_address[1], srv.seen)
    finally:
        srv.release.set()
        srv.shutdown()
        srv.server_close()


@pytest.fixture
def http_server() -> Iterator[HttpServer]:
    with _serve_http() as s:
        yield s


@dataclass
class Pki:
    ca_file: pathlib.Path
    cert_file: pathlib.Path
    key_file: pathlib.Path
    name: str


def _make_pki(d: pathlib.Path) -> Pki:
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "maglev test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "www.example.test")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("www.example.test"), x509.IPAddress(ipaddress.ip_address(LO))]
            ),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), False)
        .sign(ca_key, hashes.SHA256())
    )
    pki = Pki(d / "ca.pem", d / "cert.pem", d / "key.pem", "www.example.test")
    pki.ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    pki.cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pki.key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return pki


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return _make_pki(tmp_path_factory.mktemp("pki"))


@dataclass
class HttpsServer(HttpServer):
    pki: Pki
    snis: list[str | None]


@pytest.fixture
def https_server(pki: Pki) -> Iterator[HttpsServer]:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(pki.cert_file, pki.key_file)
    snis: list[str | None] = []

    def sni(_sock: ssl.SSLObject | ssl.SSLSocket, name: str | None, _ctx: ssl.SSLContext) -> None:
        snis.append(name)

    ctx.sni_callback = sni
    with _serve_http(ctx) as s:
        yield HttpsServer(s.port, s.seen, pki, snis)


def check(type: CheckType, **kw: object) -> HealthCheck:
    # A generous deadline: on a loaded machine a probe that should succeed must not time out.
    # Tests of timeouts set their own (and run on a manual clock: `probe_to_deadline`).
    kw.setdefault("timeout", 10.0)
    return HealthCheck(name=f"{type.value}-check", type=type, **kw)  # type: ignore[arg-type]


def probe_to_deadline(
    check: HealthCheck, ready: Callable[[Progress], bool], address: IPAddress = LO
) -> ProbeResult:
    """Run a (coroutine) probe that cannot finish on a manual clock; return its timeout result.

    The clock stands still until `ready(progress)` says the probe is waiting for what never comes
    (a real event, awaited with a generous real deadline); then the probe is shown still running
    a moment before its deadline, and over at exactly its deadline.
    """
    clock = ManualClock()
    r = reactor.Reactor(clock=clock)
    progress = Progress(Reason.L4TOUT, "timeout")
    ends: list[tuple[object, BaseException | None]] = []
    start = clock.now
    deadline = start + check.timeout
    func = checks.PROBES[check.type]
    r.spawn(func(address, check, progress), deadline, lambda _j, v, e: ends.append((v, e)))
    give_up = time.monotonic() + 30
    while not ready(progress):
        assert time.monotonic() < give_up and not ends, (progress.detail, ends)
        r.run_once(0.01)
    clock.now = deadline - 1e-6
    r.run_once()
    assert ends == [] and r.jobs == 1, ends
    clock.now = deadline
    r.run_once()
    r.close()
    ((value, error),) = ends
    target = ProbeTarget(address, check.name)
    return checks.result(target, check, progress, value, error, start, clock.now)
