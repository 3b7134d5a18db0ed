"""DNS probe: one query over UDP (TCP when the reply is truncated), judged by rcode and answer.

Runs on a check worker's reactor; the socket I/O is ours and non-blocking, dnspython only
builds and parses messages. Up when the reply's rcode is `expect_rcode` and, if `expect_answer`
is set, some record of the answer section reads exactly that (case and a trailing dot ignored).
"""

from __future__ import annotations

import errno
import socket
import struct

import dns.exception
import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype

from maglev.health import reactor
from maglev.health.checks.base import (
    Outcome,
    Progress,
    connect_failure,
    open_socket,
    port_of,
    sockaddr,
)
from maglev.model import HealthCheck, IPAddress, Reason


def _norm(text: str) -> str:
    return text.rstrip(".").lower()


def judge(reply: dns.message.Message, check: HealthCheck) -> Outcome:
    want = dns.rcode.from_text(check.expect_rcode)
    got = reply.rcode()
    if got != want:
        return Outcome(False, Reason.DNSRCODE, f"rcode {dns.rcode.to_text(got)}")
    if check.expect_answer is None:
        return Outcome(True, Reason.L7OK, f"rcode {dns.rcode.to_text(got)}")
    expected = _norm(check.expect_answer)
    seen = [rd.to_text() for rrset in reply.answer for rd in rrset]
    if any(_norm(t) == expected for t in seen):
        return Outcome(True, Reason.L7OK, f"answer {check.expect_answer}")
    return Outcome(False, Reason.L7RSP, f"answer not found in {seen[:3]}"[:200])


async def _udp(
    address: IPAddress, port: int, check: HealthCheck, query: dns.message.Message
) -> dns.message.Message:
    with open_socket(check, address, socket.SOCK_DGRAM) as sock:
        await reactor.connect(sock, sockaddr(address, port))
        await reactor.send_all(sock, query.to_wire())
        while True:
            data = await reactor.recv(sock, 65535)
            try:
                reply = dns.message.from_wire(data, ignore_trailing=True, one_rr_per_rrset=False)
            except dns.message.Truncated:
                reply = dns.message.from_wire(data, question_only=True)
                reply.flags |= dns.flags.TC
            except dns.exception.DNSException:
                continue  # garbage from the address we are connected to: keep waiting
            if query.is_response(reply):
                return reply


async def _tcp(
    address: IPAddress, port: int, check: HealthCheck, query: dns.message.Message
) -> dns.message.Message:
    with open_socket(check, address, socket.SOCK_STREAM) as sock:
        await reactor.connect(sock, sockaddr(address, port))
        wire = query.to_wire()
        await reactor.send_all(sock, struct.pack("!H", len(wire)) + wire)
        buf = b""
        need = 2
        while len(buf) < need:
            chunk = await reactor.recv(sock, 65537 - len(buf))
            if not chunk:
                raise ConnectionResetError(errno.ECONNRESET, "connection closed mid-reply")
            buf += chunk
            if len(buf) >= 2:
                need = 2 + struct.unpack_from("!H", buf)[0]
        return dns.message.from_wire(buf[2:need])


async def probe(address: IPAddress, check: HealthCheck, progress: Progress) -> Outcome:
    port = port_of(check)
    assert port is not None
    if not check.query_name:
        return Outcome(False, Reason.SOCKERR, "no query_name configured")
    query = dns.message.make_query(check.query_name, dns.rdatatype.from_text(check.query_type))
    progress.at(Reason.L7TOUT, "no DNS reply (udp)")
    try:
        reply = await _udp(address, port, check, query)
        if reply.flags & dns.flags.TC:
            progress.at(Reason.L7TOUT, "no DNS reply (tcp)")
            reply = await _tcp(address, port, check, query)
    except ConnectionRefusedError:
        return Outcome(False, Reason.L4CON, "port unreachable")
    except dns.exception.DNSException as e:
        return Outcome(False, Reason.L7RSP, f"malformed reply: {e}"[:200])
    except OSError as e:
        return connect_failure(e)
    return judge(reply, check)
