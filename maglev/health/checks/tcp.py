"""TCP probe: connect; optionally send `send` and wait for a reply matching regex `expect`.

Runs on a check worker's reactor. A bare connect is L4OK. With `send`/`expect` the reply is
read (up to `MATCH_CAP`, 16 KiB, until the regex matches or the peer closes) and judged: L7OK or
L7RSP. The regex runs over the whole reply after each chunk: each search is bounded (a linear
pattern over at most 16 KiB), and the probe's deadline ends the loop between chunks.
"""

from __future__ import annotations

import errno
import os
import re
import socket

from maglev.health import reactor
from maglev.health.checks.base import (
    MATCH_CAP,
    Outcome,
    Progress,
    connect_failure,
    open_socket,
    port_of,
    sockaddr,
)
from maglev.model import HealthCheck, IPAddress, Reason

_CONNECTED = Outcome(True, Reason.L4OK, "connected")


async def probe(address: IPAddress, check: HealthCheck, progress: Progress) -> Outcome:
    port = port_of(check)
    if port is None:
        return Outcome(False, Reason.SOCKERR, "no port configured")
    progress.at(Reason.L4TOUT, "connect timeout")
    with open_socket(check, address, socket.SOCK_STREAM) as sock:
        # reactor.connect, inlined: this is the hottest path of the checker.
        err = sock.connect_ex(sockaddr(address, port))
        if err == errno.EINPROGRESS:
            await reactor.writable(sock)
            err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:
            return connect_failure(OSError(err, os.strerror(err)))
        if check.send is None and check.expect is None:
            return _CONNECTED
        progress.at(Reason.L7TOUT, "no matching reply")
        try:
            if check.send:
                await reactor.send_all(sock, check.send.encode())
            if check.expect is None:
                return Outcome(True, Reason.L4OK, "connected, sent")
            pattern = re.compile(check.expect.encode())
            buf = b""
            while len(buf) < MATCH_CAP:
                chunk = await reactor.recv(sock, MATCH_CAP - len(buf))
                if not chunk:
                    break
                buf += chunk
                if pattern.search(buf):
                    return Outcome(True, Reason.L7OK, "reply matched")
        except OSError as e:
            return connect_failure(e)
        return Outcome(False, Reason.L7RSP, f"reply did not match: {buf[:60]!r}")
