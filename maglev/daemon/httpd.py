"""The control API's listeners: accept loops with a cap on open connections.

Owns one listening socket's accept loop (run on the thread `maglev-control-<kind>`) and the
threads of its connections (`maglev-control-<kind>-<n>`, each a `http1.Connection`), at most
`Limits.connections` of them, event streams included: the connection past the cap gets a 503
at once and is closed, so idle or slow clients (on the Unix socket, or on TCP before they
authenticate) cannot use up the daemon's threads, and nobody waits on a full server.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import socket
import threading
import time
from typing import Any

from maglev.daemon.http1 import App, ClientGone, Connection, Limits, Peer, json_answer, peer_of

log = logging.getLogger(__name__)

TURN_AWAY_WAIT = 0.5  # how long a connection over the cap may take to send its request
TURN_AWAY_PENDING = 64  # connections over the cap waiting so; past that, closed at once


class HttpServer:
    """Serves `app` on a listening socket until `stop()`; `serve()` is the accept loop."""

    def __init__(
        self, sock: socket.socket, app: App, kind: str, limits: Limits, stopping: threading.Event
    ) -> None:
        self.sock = sock
        self.app = app
        self.kind = kind
        self.limits = limits
        self.stopping = stopping
        self._lock = threading.Lock()
        self._active: set[socket.socket] = set()
        self._streams = 0
        self._count = 0
        self._said_full = False
        self._wake_r, self._wake_w = os.pipe()
        self._wake_fds: tuple[int, ...] = (self._wake_r, self._wake_w)
        sock.setblocking(False)

    @property
    def connections(self) -> int:
        with self._lock:
            return len(self._active)

    @property
    def streams(self) -> int:
        with self._lock:
            return self._streams

    def serve(self) -> None:
        """Accept until stopped. A connection over the cap is answered from here, without a
        thread: it waits (in this loop's poll, up to `TURN_AWAY_WAIT`) for its request to
        arrive, so that the 503 reaches a client still sending instead of a reset."""
        poller = select.poll()
        poller.register(self.sock.fileno(), select.POLLIN)
        poller.register(self._wake_r, select.POLLIN)
        turning: dict[int, tuple[socket.socket, float]] = {}
        try:
            while not self.stopping.is_set():
                wait = None
                if turning:
                    first = min(d for _, d in turning.values())
                    wait = max(0, int((first - time.monotonic()) * 1000) + 1)
                ready = {fd for fd, _ in poller.poll(wait)}
                if self._wake_r in ready:
                    return
                now = time.monotonic()
                for fd, (conn, deadline) in list(turning.items()):
                    if fd in ready or deadline <= now:
                        poller.unregister(fd)
                        del turning[fd]
                        self._turn_away(conn)
                if self.sock.fileno() not in ready:
                    continue
                excess = self._accept()
                if excess is None:
                    continue
                if len(turning) >= TURN_AWAY_PENDING:
                    self._turn_away(excess)
                    continue
                excess.setblocking(False)
                turning[excess.fileno()] = (excess, now + TURN_AWAY_WAIT)
                poller.register(excess.fileno(), select.POLLIN)
        finally:
            for conn, _ in turning.values():
                conn.close()

    def _accept(self) -> socket.socket | None:
        """The next connection if it is over the cap (to be turned away), else None."""
        try:
            conn, address = self.sock.accept()
        except (BlockingIOError, InterruptedError, ConnectionAbortedError):
            return None
        except OSError as e:  # out of descriptors or memory: shed load, do not spin
            log.warning("control %s: accept failed: %s", self.kind, e)
            self.stopping.wait(0.1)
            return None
        with self._lock:
            full = len(self._active) >= self.limits.connections
            if not full:
                self._active.add(conn)
                self._count += 1
                n = self._count
            said, self._said_full = self._said_full, full
        if full:
            if not said:
                log.warning(
                    "control %s: %d connections open (the limit); turning clients away with 503",
                    self.kind, self.limits.connections,
                )  # fmt: skip
            return conn
        t = threading.Thread(
            target=self._serve_connection,
            args=(conn, address),
            name=f"maglev-control-{self.kind}-{n}",
            daemon=True,
        )
        try:
            t.start()
        except RuntimeError as e:  # no thread to be had: the client learns at once
            log.warning("control %s: cannot start a connection thread: %s", self.kind, e)
            with self._lock:
                self._active.discard(conn)
            return conn
        return None

    def _turn_away(self, conn: socket.socket) -> None:
        """A 503, never blocking the accept loop: the answer fits in any socket buffer."""
        msg = f"maglevd is busy: {self.limits.connections} connections open; try again"
        data = json_answer(503, {"error": msg}, {"Retry-After": "1"}, close=True)
        conn.setblocking(False)
        with contextlib.suppress(OSError):
            conn.recv(65536)  # what arrived, so that closing does not reset the answer
        with contextlib.suppress(OSError):
            conn.send(data)
            conn.shutdown(socket.SHUT_WR)
        conn.close()

    def _serve_connection(self, conn: socket.socket, address: Any) -> None:
        peer = Peer("?")
        try:
            peer = peer_of(conn, address)
            Connection(self, conn, peer).run()
        except ClientGone as e:
            log.debug("control %s: client %s went away: %s", self.kind, peer, e)
        except Exception:  # a bug here must not end the thread silently (that stops maglevd)
            log.exception("control %s: connection from %s failed", self.kind, peer)
        finally:
            with self._lock:
                self._active.discard(conn)
            conn.close()

    def take_stream(self) -> bool:
        with self._lock:
            if self._streams >= self.limits.streams:
                return False
            self._streams += 1
            return True

    def drop_stream(self) -> None:
        with self._lock:
            self._streams -= 1

    def stop(self) -> None:
        """Stop accepting and end the open connections (their threads then exit)."""
        self.stopping.set()
        if self._wake_fds:
            os.write(self._wake_w, b"x")

    def close(self) -> None:
        """After the accept loop returned: close the listener and every open connection."""
        self.sock.close()
        with self._lock:
            active = list(self._active)
        for conn in active:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        fds, self._wake_fds = self._wake_fds, ()  # once: a closed number may be reused
        for fd in fds:
            os.close(fd)
