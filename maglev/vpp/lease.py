"""Borrowing vpp-papi's socket for a pipelined batch, and reading replies straight off it.

vpp-papi's socket transport reads every message on a reader thread and hands it to the caller
through a queue: two thread hand-offs per reply, which caps a connection at a few thousand
replies per second. For a batch, maglev stops that reader (the transport's own stop signal),
owns the socket while it writes requests and parses replies itself, then starts a new reader
on the same connection. The connection, its client index and message table stay vpp-papi's.
Reconciler thread only (it owns the connection).
"""

from __future__ import annotations

import contextlib
import logging
import queue
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

from maglev.vpp import codec

log = logging.getLogger(__name__)

_HEADER = codec.FRAME
_REPLY = codec.REPLY
_MSG_ID = codec.MSG_ID
MAX_MESSAGE = 64 * 1024 * 1024


class LeaseError(Exception):
    """The transport is not in a state we can borrow it from (another vpp-papi version?)."""


@contextlib.contextmanager
def borrow_socket(transport: Any, timeout: float = 5.0) -> Iterator[socket.socket]:
    """Stop vpp-papi's reader thread, yield its socket, then start a fresh reader."""
    thread = getattr(transport, "message_thread", None)
    sock = getattr(transport, "socket", None)
    sque = getattr(transport, "sque", None)
    func = getattr(transport, "msg_thread_func", None)
    if thread is None or sock is None or sque is None or func is None or not thread.is_alive():
        raise LeaseError("vpp-papi transport has no running reader to pause")
    sque.put(True)  # the reader's own stop signal: it leaves a None in its queue and returns
    thread.join(timeout)
    if thread.is_alive():
        raise LeaseError("vpp-papi's reader did not stop")
    with contextlib.suppress(Exception):
        sque.get(timeout=timeout)  # consume the stop signal so the next reader runs
    while True:  # drop the reader's end marker (and any stray message it had queued)
        try:
            transport.q.get_nowait()
        except queue.Empty:
            break
        except Exception:
            break
    try:
        yield sock
    finally:
        if transport.connected and transport.socket is sock:
            t = threading.Thread(target=func, daemon=True, name="vpp-papi-reader")
            transport.message_thread = t
            t.start()


class FrameReader:
    """Reads socket-transport frames (16-byte header, big-endian length) from a socket."""

    def __init__(self, sock: socket.socket, timeout: float) -> None:
        self.sock = sock
        self.timeout = timeout
        self.buf = bytearray()

    def _fill(self, deadline: float) -> bool:
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        self.sock.settimeout(left)
        try:
            data = self.sock.recv(262144)
        except (TimeoutError, OSError):
            return False
        if not data:
            return False
        self.buf += data
        return True

    def read_body(self) -> bytes | None:
        """The next message body; None on timeout or a closed socket."""
        deadline = time.monotonic() + self.timeout
        while len(self.buf) < 16:
            if not self._fill(deadline):
                return None
        _, length, _ = _HEADER.unpack_from(self.buf, 0)
        if length > MAX_MESSAGE:
            return None
        while len(self.buf) < 16 + length:
            if not self._fill(deadline):
                return None
        body = bytes(self.buf[16 : 16 + length])
        del self.buf[: 16 + length]
        return body

    def read_replies(self) -> list[tuple[int, int, int]] | None:
        """(msg_id, context, retval) of every complete message now buffered, waiting for at
        least one; None on timeout, a closed socket or an oversized frame.

        A burst's replies arrive many per `recv`: they are parsed in place and the buffer is
        compacted once, not once per message. A body too short for a retval reads as retval 0
        with context 0 (no request of ours uses context 0, so it is skipped by the caller).
        """
        deadline = time.monotonic() + self.timeout
        buf = self.buf
        out: list[tuple[int, int, int]] = []
        header, reply, short = _HEADER.unpack_from, _REPLY.unpack_from, _MSG_ID.unpack_from
        while True:
            off, end_of_data = 0, len(buf)
            while end_of_data - off >= 16:
                length = header(buf, off)[1]
                if length > MAX_MESSAGE:
                    return None
                end = off + 16 + length
                if end > end_of_data:
                    break
                if length >= _REPLY.size:
                    out.append(reply(buf, off + 16))
                else:
                    out.append((short(buf, off + 16)[0] if length >= 2 else 0, 0, 0))
                off = end
            if off:
                del buf[:off]
            if out:
                return out
            if not self._fill(deadline):
                return None
