"""TCP, HTTP and HTTPS probes against real loopback servers."""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import threading
from collections.abc import Iterator

import pytest

from maglev import __version__
from maglev.health.checks.base import MATCH_CAP
from maglev.model import CheckType, Reason
from tests.health.conftest import HttpServer, HttpsServer, check, probe_to_deadline, run_probe

pytestmark = pytest.mark.integration


# --- tcp ------------------------------------------------------------------------------


def test_tcp_connect_ok(tcp_server: int) -> None:
    r = run_probe(check(CheckType.TCP, port=tcp_server))
    assert (r.ok, r.reason) == (True, Reason.L4OK)
    assert r.duration >= 0  # (no upper bound on wall time: a loaded machine may be slow)


def test_tcp_refused(refused_port: int) -> None:
    r = run_probe(check(CheckType.TCP, port=refused_port))
    assert (r.ok, r.reason) == (False, Reason.L4CON)
    assert "refused" in r.detail


def test_tcp_blackhole_times_out_at_deadline(blackhole: int) -> None:
    c = check(CheckType.TCP, port=blackhole, timeout=0.3, send="x")  # (the coroutine probe;
    r = probe_to_deadline(c, lambda _progress: True)  # the fast one: in test_fast)
    assert (r.ok, r.reason, r.detail) == (False, Reason.L4TOUT, "connect timeout after 0.3s")
    assert r.duration == pytest.approx(0.3, abs=1e-9)  # at its deadline, on the manual clock


def test_tcp_send_expect(tcp_server: int) -> None:
    r = run_probe(check(CheckType.TCP, port=tcp_server, send="PING\r\n", expect=r"^\+PONG"))
    assert (r.ok, r.reason) == (True, Reason.L7OK)
    r = run_probe(check(CheckType.TCP, port=tcp_server, send="HELLO\r\n", expect=r"^\+PONG"))
    assert (r.ok, r.reason) == (False, Reason.L7RSP)


def test_tcp_expect_silent_peer_is_l7_timeout(blackhole: int) -> None:
    # A listener that accepts and never answers: connect succeeds, the reply never comes.
    with socket.socket() as lsock:
        lsock.bind(("127.0.0.1", 0))
        lsock.listen(8)
        port = lsock.getsockname()[1]
        r = run_probe(check(CheckType.TCP, port=port, expect="x", timeout=0.3))
    assert (r.ok, r.reason) == (False, Reason.L7TOUT)


def test_tcp_without_port_is_a_socket_error() -> None:
    r = run_probe(check(CheckType.TCP))
    assert (r.ok, r.reason) == (False, Reason.SOCKERR)


def test_tcp_source_address(tcp_server: int) -> None:
    good = run_probe(
        check(CheckType.TCP, port=tcp_server, source_ip4=ipaddress.IPv4Address("127.0.0.9"))
    )
    assert good.ok
    # 192.0.2.1 (TEST-NET) is not a local address: binding fails locally, nothing is sent.
    bad = run_probe(
        check(CheckType.TCP, port=tcp_server, source_ip4=ipaddress.IPv4Address("192.0.2.1"))
    )
    assert (bad.ok, bad.reason) == (False, Reason.SOCKERR)


def test_tcp_ipv6_loopback() -> None:
    with socket.socket(socket.AF_INET6) as lsock:
        try:
            lsock.bind(("::1", 0))
        except OSError:
            pytest.skip("no IPv6 loopback")
        lsock.listen(8)
        port = lsock.getsockname()[1]
        r = run_probe(check(CheckType.TCP, port=port), ipaddress.IPv6Address("::1"))
    assert (r.ok, r.reason) == (True, Reason.L4OK)


# --- http -----------------------------------------------------------------------------


def test_http_ok_and_request_headers(http_server: HttpServer) -> None:
    r = run_probe(check(CheckType.HTTP, port=http_server.port, path="/ok"))
    assert (r.ok, r.reason, r.detail) == (True, Reason.L7OK, "HTTP 200")
    req = http_server.seen[-1]
    assert req["path"] == "/ok"
    assert req["Host"] == f"127.0.0.1:{http_server.port}"
    assert req["User-Agent"] == f"maglev/{__version__}"
    assert req["Connection"] == "close"


def test_http_host_header_and_method(http_server: HttpServer) -> None:
    r = run_probe(
        check(CheckType.HTTP, port=http_server.port, path="/ok", host="www.example", method="HEAD")
    )
    assert r.ok
    assert http_server.seen[-1]["Host"] == "www.example"


def test_http_bad_status(http_server: HttpServer) -> None:
    r = run_probe(check(CheckType.HTTP, port=http_server.port, path="/down"))
    assert (r.ok, r.reason, r.detail) == (False, Reason.L7STS, "HTTP 503")


def test_http_status_ranges(http_server: HttpServer) -> None:
    only_200 = ((200, 200),)
    r = run_probe(
        check(CheckType.HTTP, port=http_server.port, path="/redirect", expect_status=only_200)
    )
    assert (r.ok, r.reason, r.detail) == (False, Reason.L7STS, "HTTP 302")  # not followed
    r = run_probe(check(CheckType.HTTP, port=http_server.port, path="/redirect"))
    assert r.ok  # default 200-399
    r = run_probe(
        check(
            CheckType.HTTP,
            port=http_server.port,
            path="/down",
            expect_status=((200, 200), (503, 503)),
        )
    )
    assert r.ok


def test_http_body_regex(http_server: HttpServer) -> None:
    port = http_server.port
    assert run_probe(check(CheckType.HTTP, port=port, path="/ok", expect_body="healthy")).ok
    r = run_probe(check(CheckType.HTTP, port=port, path="/ok", expect_body="sick"))
    assert (r.ok, r.reason) == (False, Reason.L7RSP)
    # No Content-Length: the body ends when the server closes.
    assert run_probe(
        check(CheckType.HTTP, port=port, path="/close-delimited", expect_body="MARKER$")
    ).ok
    # Bodies are read up to MATCH_CAP only: a marker past the cap is not seen.
    r = run_probe(check(CheckType.HTTP, port=port, path="/big", expect_body="TAIL"))
    assert (r.ok, r.reason) == (False, Reason.L7RSP)


def test_body_regex_runs_over_at_most_16_kib(http_server: HttpServer) -> None:
    """The regex's input is capped (its cost is linear in it; see config's `reply_regex`)."""
    assert MATCH_CAP == 16 * 1024
    port = http_server.port
    inside = check(
        CheckType.HTTP, port=port, path=f"/marker-at-{MATCH_CAP - 4}", expect_body="MARK"
    )
    assert run_probe(inside).ok
    past = check(CheckType.HTTP, port=port, path=f"/marker-at-{MATCH_CAP}", expect_body="MARK")
    r = run_probe(past)
    assert (r.ok, r.reason, r.detail) == (False, Reason.L7RSP, "HTTP 200, body did not match")


@contextlib.contextmanager
def _sender(data: bytes) -> Iterator[int]:
    """A listener that sends `data` to each connection and keeps it open."""
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(8)
    done = threading.Event()

    def serve() -> None:
        with contextlib.suppress(OSError):
            conn, _ = lsock.accept()
            with conn:
                conn.sendall(data)
                done.wait(30)

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        yield lsock.getsockname()[1]
    finally:
        done.set()
        lsock.close()
        t.join(10)


@pytest.mark.parametrize(("at", "ok"), [(MATCH_CAP - 4, True), (MATCH_CAP, False)])
def test_tcp_expect_runs_over_at_most_16_kib(at: int, ok: bool) -> None:
    with _sender(b"z" * at + b"MARK") as port:
        r = run_probe(check(CheckType.TCP, port=port, expect="MARK"))
    assert (r.ok, r.reason) == ((True, Reason.L7OK) if ok else (False, Reason.L7RSP)), r.detail


def test_http_malformed_reply(http_server: HttpServer) -> None:
    r = run_probe(check(CheckType.HTTP, port=http_server.port, path="/garbage"))
    assert (r.ok, r.reason) == (False, Reason.L7RSP)


def test_http_slow_reply_is_l7_timeout(http_server: HttpServer) -> None:
    # The server answers /hang only after the test; the deadline comes first, on the manual clock.
    c = check(CheckType.HTTP, port=http_server.port, path="/hang", timeout=0.3)
    r = probe_to_deadline(c, lambda progress: progress.detail == "no response")
    assert (r.ok, r.reason, r.detail) == (False, Reason.L7TOUT, "no response after 0.3s")
    assert r.duration == pytest.approx(0.3, abs=1e-9)


def test_http_refused_and_blackhole(refused_port: int, blackhole: int) -> None:
    r = run_probe(check(CheckType.HTTP, port=refused_port))
    assert r.reason is Reason.L4CON
    r = run_probe(check(CheckType.HTTP, port=blackhole, timeout=0.3))
    assert r.reason is Reason.L4TOUT


def test_http_against_tcp_silence_then_close(tcp_server: int) -> None:
    # The TCP server reads our request and answers in its own protocol: malformed HTTP.
    r = run_probe(check(CheckType.HTTP, port=tcp_server))
    assert (r.ok, r.reason) == (False, Reason.L7RSP)


# --- https ----------------------------------------------------------------------------


def test_https_without_verification(https_server: HttpsServer) -> None:
    r = run_probe(check(CheckType.HTTPS, port=https_server.port, path="/ok"))
    assert (r.ok, r.reason) == (True, Reason.L7OK)
    assert https_server.snis[-1] is None  # an address is never sent as SNI


def test_https_sni_and_verify(https_server: HttpsServer) -> None:
    pki = https_server.pki
    r = run_probe(
        check(
            CheckType.HTTPS,
            port=https_server.port,
            path="/ok",
            server_name=pki.name,
            verify=True,
            ca_file=str(pki.ca_file),
            expect_body="healthy",
        )
    )
    assert (r.ok, r.reason) == (True, Reason.L7OK), r.detail
    assert https_server.snis[-1] == pki.name
    # Verifying the address itself (IP SAN) works too.
    r = run_probe(
        check(
            CheckType.HTTPS,
            port=https_server.port,
            path="/ok",
            verify=True,
            ca_file=str(pki.ca_file),
        )
    )
    assert r.ok, r.detail


def test_https_verification_failures(https_server: HttpsServer, tmp_path: object) -> None:
    pki = https_server.pki
    wrong_name = run_probe(
        check(
            CheckType.HTTPS,
            port=https_server.port,
            server_name="other.example.test",
            verify=True,
            ca_file=str(pki.ca_file),
        )
    )
    assert (wrong_name.ok, wrong_name.reason) == (False, Reason.TLSERR)
    assert "certificate" in wrong_name.detail
    # The system store does not know our private CA.
    unknown_ca = run_probe(
        check(CheckType.HTTPS, port=https_server.port, server_name=pki.name, verify=True)
    )
    assert (unknown_ca.ok, unknown_ca.reason) == (False, Reason.TLSERR)


def test_https_against_plain_http(http_server: HttpServer) -> None:
    r = run_probe(check(CheckType.HTTPS, port=http_server.port, timeout=2.0))
    assert (r.ok, r.reason) == (False, Reason.TLSERR)
