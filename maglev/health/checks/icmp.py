"""ICMP probe: one echo request, up when the matching echo reply arrives (IPv4 and IPv6).

Runs on a check worker's reactor. Prefers the unprivileged ICMP datagram socket
(SOCK_DGRAM/IPPROTO_ICMP[V6], allowed by net.ipv4.ping_group_range; the kernel then owns the
identifier and hands us only our replies), and falls back to a raw socket (root or CAP_NET_RAW),
where every ICMP packet is seen and replies are matched by identifier, sequence and payload.
Sockets are connected to the target, so the kernel drops replies from anyone else.
"""

from __future__ import annotations

import itertools
import os
import socket
import struct

from maglev.health import reactor
from maglev.health.checks.base import Outcome, Progress, open_socket, sockaddr
from maglev.model import HealthCheck, IPAddress, Reason

_ECHO_REQUEST = {4: 8, 6: 128}
_ECHO_REPLY = {4: 0, 6: 129}
_seq = itertools.count(1)
_dgram_ok = {4: True, 6: True}  # flips to False once the kernel refuses datagram ICMP sockets


def checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return int(~total & 0xFFFF)


def echo_request(version: int, ident: int, seq: int, payload: bytes) -> bytes:
    head = struct.pack("!BBHHH", _ECHO_REQUEST[version], 0, 0, ident, seq)
    # IPv6: the kernel fills in the checksum (it covers a pseudo-header we do not build).
    csum = checksum(head + payload) if version == 4 else 0
    return struct.pack("!BBHHH", _ECHO_REQUEST[version], 0, csum, ident, seq) + payload


def _open(check: HealthCheck, address: IPAddress) -> tuple[socket.socket, bool]:
    proto = socket.IPPROTO_ICMP if address.version == 4 else socket.IPPROTO_ICMPV6
    if _dgram_ok[address.version]:
        try:
            return open_socket(check, address, socket.SOCK_DGRAM, proto), False
        except PermissionError:
            _dgram_ok[address.version] = False
    return open_socket(check, address, socket.SOCK_RAW, proto), True


def _matches(data: bytes, version: int, raw: bool, ident: int, seq: int, payload: bytes) -> bool:
    if raw and version == 4:
        if len(data) < 20:
            return False
        data = data[(data[0] & 0x0F) * 4 :]  # strip the IPv4 header raw sockets deliver
    if len(data) < 8:
        return False
    kind, _code, _csum, rid, rseq = struct.unpack_from("!BBHHH", data)
    if kind != _ECHO_REPLY[version] or rseq != seq or data[8:] != payload:
        return False
    return rid == ident or not raw  # datagram sockets: the kernel rewrote the identifier


async def probe(address: IPAddress, check: HealthCheck, progress: Progress) -> Outcome:
    progress.at(Reason.ICMPTOUT, "no echo reply")
    sock, raw = _open(check, address)
    with sock:
        sock.connect(sockaddr(address, 0))
        ident = int.from_bytes(os.urandom(2), "big")
        seq = next(_seq) & 0xFFFF
        payload = b"maglev" + os.urandom(10)
        try:
            sock.send(echo_request(address.version, ident, seq, payload))
            while True:
                data = await reactor.recv(sock, 2048)
                if _matches(data, address.version, raw, ident, seq, payload):
                    return Outcome(True, Reason.ICMPOK, "echo reply")
        except OSError as e:
            # Connected ICMP sockets report the errors the network sent back (unreachable...).
            return Outcome(False, Reason.ICMPTOUT, e.strerror or str(e))
