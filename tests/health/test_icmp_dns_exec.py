"""ICMP, DNS and exec probes against real things: loopback pings, a DNS responder, scripts."""

from __future__ import annotations

import contextlib
import ipaddress
import os
import pathlib
import socket
import struct
import threading
import time
from collections.abc import Iterator

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest

from maglev.health.checks import icmp
from maglev.health.checks.exec import argv_for
from maglev.model import CheckType, Reason
from tests.health.conftest import LO, check, probe_to_deadline, run_probe

pytestmark = pytest.mark.integration

# --- icmp -----------------------------------------------------------------------------


def _can_ping() -> bool:
    for kind in (socket.SOCK_DGRAM, socket.SOCK_RAW):
        try:
            socket.socket(socket.AF_INET, kind, socket.IPPROTO_ICMP).close()
            return True
        except PermissionError:
            continue
    return False


needs_ping = pytest.mark.skipif(not _can_ping(), reason="no ICMP socket permitted")


@needs_ping
def test_icmp_loopback_v4() -> None:
    r = run_probe(check(CheckType.ICMP))
    assert (r.ok, r.reason) == (True, Reason.ICMPOK), r.detail


@needs_ping
def test_icmp_loopback_v6() -> None:
    try:
        socket.socket(socket.AF_INET6, socket.SOCK_DGRAM).connect(("::1", 9))
    except OSError:
        pytest.skip("no IPv6 loopback")
    r = run_probe(check(CheckType.ICMP), ipaddress.IPv6Address("::1"))
    assert (r.ok, r.reason) == (True, Reason.ICMPOK), r.detail


def test_icmp_reply_matching() -> None:
    payload = b"maglev0123456789"
    reply = bytearray(icmp.echo_request(4, 77, 5, payload))
    reply[0] = 0  # echo reply
    ip_header = bytes([0x45]) + bytes(19)
    assert icmp._matches(ip_header + bytes(reply), 4, True, 77, 5, payload)
    assert not icmp._matches(ip_header + bytes(reply), 4, True, 78, 5, payload)  # other ident
    assert not icmp._matches(ip_header + bytes(reply), 4, True, 77, 6, payload)  # other seq
    assert not icmp._matches(ip_header + bytes(reply), 4, True, 77, 5, b"x" * 16)
    assert icmp._matches(bytes(reply), 4, False, 999, 5, payload)  # datagram: kernel's ident
    request = icmp.echo_request(4, 77, 5, payload)
    assert not icmp._matches(ip_header + request, 4, True, 77, 5, payload)  # our own request
    assert icmp.checksum(request) == 0  # a correct checksum sums to zero


# --- dns ------------------------------------------------------------------------------


def _answer(data: bytes, tcp: bool) -> bytes | None:
    q = dns.message.from_wire(data)
    r = dns.message.make_response(q)
    name = q.question[0].name.to_text()
    if name == "ok.test.":
        r.answer.append(dns.rrset.from_text(name, 60, "IN", "A", "127.0.0.53"))
    elif name == "big.test.":
        if tcp:
            txt = [f'"record {i:03d} padding padding padding"' for i in range(40)]
            r.answer.append(dns.rrset.from_text_list(name, 60, "IN", "TXT", txt))
            r.answer.append(dns.rrset.from_text(name, 60, "IN", "A", "127.0.0.54"))
        else:
            r.flags |= dns.flags.TC
    elif name == "fail.test.":
        r.set_rcode(dns.rcode.SERVFAIL)
    elif name == "silent.test.":
        return None
    else:
        r.set_rcode(dns.rcode.NXDOMAIN)
    return r.to_wire(max_size=65535)


@pytest.fixture
def dns_server() -> Iterator[int]:
    """A tiny UDP+TCP DNS responder on one loopback port."""
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    port = udp.getsockname()[1]
    tcp = socket.socket()
    tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    tcp.bind(("127.0.0.1", port))
    tcp.listen(8)
    stop = threading.Event()
    udp.settimeout(0.1)
    tcp.settimeout(0.1)

    def serve_udp() -> None:
        while not stop.is_set():
            try:
                data, peer = udp.recvfrom(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            out = _answer(data, tcp=False)
            if out is not None:
                udp.sendto(out, peer)

    def serve_tcp() -> None:
        while not stop.is_set():
            try:
                conn, _ = tcp.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn, contextlib.suppress(OSError):
                conn.settimeout(2)
                n = struct.unpack("!H", conn.recv(2))[0]
                out = _answer(conn.recv(n), tcp=True)
                if out is not None:
                    conn.sendall(struct.pack("!H", len(out)) + out)

    threads = [threading.Thread(target=f, daemon=True) for f in (serve_udp, serve_tcp)]
    for t in threads:
        t.start()
    try:
        yield port
    finally:
        stop.set()
        for t in threads:
            t.join(2)
        udp.close()
        tcp.close()


def test_dns_ok_and_expected_answer(dns_server: int) -> None:
    r = run_probe(check(CheckType.DNS, port=dns_server, query_name="ok.test"))
    assert (r.ok, r.reason) == (True, Reason.L7OK), r.detail
    r = run_probe(
        check(CheckType.DNS, port=dns_server, query_name="ok.test", expect_answer="127.0.0.53")
    )
    assert r.ok, r.detail
    r = run_probe(
        check(CheckType.DNS, port=dns_server, query_name="ok.test", expect_answer="127.0.0.99")
    )
    assert (r.ok, r.reason) == (False, Reason.L7RSP)


def test_dns_rcodes(dns_server: int) -> None:
    r = run_probe(check(CheckType.DNS, port=dns_server, query_name="nope.test"))
    assert (r.ok, r.reason, r.detail) == (False, Reason.DNSRCODE, "rcode NXDOMAIN")
    r = run_probe(check(CheckType.DNS, port=dns_server, query_name="fail.test"))
    assert (r.ok, r.reason) == (False, Reason.DNSRCODE)
    r = run_probe(
        check(CheckType.DNS, port=dns_server, query_name="nope.test", expect_rcode="NXDOMAIN")
    )
    assert r.ok


def test_dns_truncated_falls_back_to_tcp(dns_server: int) -> None:
    r = run_probe(
        check(
            CheckType.DNS,
            port=dns_server,
            query_name="big.test",
            query_type="A",
            expect_answer="127.0.0.54",
        )
    )
    assert (r.ok, r.reason) == (True, Reason.L7OK), r.detail


def test_dns_timeout_and_refused(dns_server: int, refused_port: int) -> None:
    r = run_probe(check(CheckType.DNS, port=dns_server, query_name="silent.test", timeout=0.3))
    assert (r.ok, r.reason) == (False, Reason.L7TOUT)
    r = run_probe(check(CheckType.DNS, port=refused_port, query_name="ok.test"))
    assert (r.ok, r.reason) == (False, Reason.L4CON)


# --- exec -----------------------------------------------------------------------------


def test_exec_success_and_failure() -> None:
    assert run_probe(check(CheckType.EXEC, command=("true",))).reason is Reason.EXECOK
    r = run_probe(check(CheckType.EXEC, command=("sh", "-c", "exit 3")))
    assert (r.ok, r.reason, r.detail) == (False, Reason.EXECFAIL, "exit 3")
    r = run_probe(check(CheckType.EXEC, command=("/nonexistent/maglev-check",)))
    assert (r.ok, r.reason) == (False, Reason.EXECFAIL)


def test_exec_substitution() -> None:
    c = check(
        CheckType.EXEC,
        port=8080,
        command=("sh", "-c", 'test "$0" = 127.0.0.1 && test "$1" = 8080', "{address}", "{port}"),
    )
    assert argv_for(LO, c)[-2:] == ["127.0.0.1", "8080"]
    assert run_probe(c).ok
    shell = check(CheckType.EXEC, port=81, shell=True, command=("test", "{port}", "=", "81"))
    assert argv_for(LO, shell) == ["/bin/sh", "-c", "test 81 = 81"]
    assert run_probe(shell).ok


def _gone(pid: int) -> bool:
    """True when pid no longer exists or is a zombie not ours to reap."""
    try:
        state = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return True
    return state == "Z"


def test_exec_timeout_kills_the_process_group(tmp_path: pathlib.Path) -> None:
    pidfile = tmp_path / "pids"
    script = f"sleep 30 & echo $! > {pidfile}.tmp; echo $$ >> {pidfile}.tmp; mv {pidfile}.tmp {pidfile}; wait"
    c = check(CheckType.EXEC, shell=True, command=(script,), timeout=0.5)
    # On a manual clock: the command runs (both processes started) while the clock stands still,
    # is still running a moment before the deadline, and is killed at exactly the deadline.
    r = probe_to_deadline(c, lambda _progress: pidfile.exists())
    assert (r.ok, r.reason, r.detail) == (False, Reason.EXECTOUT, "command killed after 0.5s")
    assert r.duration == pytest.approx(0.5, abs=1e-9)
    pids = [int(p) for p in pidfile.read_text().split()]
    assert len(pids) == 2
    deadline = time.monotonic() + 5
    while not all(_gone(p) for p in pids) and time.monotonic() < deadline:
        threading.Event().wait(0.05)
    assert all(_gone(p) for p in pids)
    # The shell was our child and has been reaped already: no zombie left behind.
    with pytest.raises(ChildProcessError):
        os.waitpid(pids[1], os.WNOHANG)
