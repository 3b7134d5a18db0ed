"""The emulator's socket transport: VPP's binary-API framing on a Unix SOCK_STREAM socket.

`Emulator` listens on a socket path and serves any number of clients from one selectors-based,
non-blocking thread named `maglev-vppsim`: it splits the byte stream into 16-byte-header frames
(big-endian body length at offset 8), answers `sockclnt_create` with the message table, routes
every other reply to the registration named by the request's client_index, and drops clients that
send an absurd frame length or stop reading. The lb state is guarded by a lock so other threads
(tests, maglevd) can read it through `Emulator` methods while the server runs.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import logging
import os
import selectors
import socket
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from maglev.clock import Clock, SystemClock
from maglev.table import maglev_table
from maglev.vppsim import lb
from maglev.vppsim.codec import LAYOUTS
from maglev.vppsim.handlers import Api, MessageTable, Operation
from maglev.vppsim.stats import StatsSegment

log = logging.getLogger(__name__)

HEADER = struct.Struct(">QII")
_HEADER_PACK = HEADER.pack
_LENGTH = struct.Struct(">I")
MAX_FRAME = 1 << 20  # far above any request we know; an absurd length drops the client
MAX_PENDING_OUTPUT = 64 << 20  # a client that stops reading is dropped past this
READ_SIZE = 1 << 18
SOCKCLNT_CREATE = 15
SOCKCLNT_DELETE = 17
CLIENT_BIT = 0x80000000
T = TypeVar("T")
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(eq=False)
class _Client:
    sock: socket.socket
    slot: int
    inbuf: bytearray = field(default_factory=bytearray)
    out: bytearray = field(default_factory=bytearray)
    closing: bool = False
    writing: bool = False

    @property
    def index(self) -> int:
        return CLIENT_BIT | self.slot


class Emulator:
    """A VPP 26.10 lb plugin behind a real binary-API socket.

    `clock` drives the plugin's notion of time (GC of deleted ASes and VIPs); the emulated VPP
    starts at the clock's time at construction. `start()` serves on the `maglev-vppsim` thread,
    `stop()` closes every connection and the socket but keeps the lb state (a later `start()`
    serves it again; a fresh `Emulator` is a restarted VPP). `write_count` and `operations()`
    record every mutating lb request received, whatever its retval; `op_count` counts every
    request handled.
    """

    def __init__(
        self, socket_path: str, clock: Clock | None = None, stats_socket: str | None = None
    ) -> None:
        self.socket_path = socket_path
        # The optional stats segment (lb node error counters) on its own SOCK_SEQPACKET socket.
        self.stats = StatsSegment(stats_socket) if stats_socket is not None else None
        self.clock = clock or SystemClock()
        self._t0 = self.clock.monotonic()
        self.lock = threading.RLock()
        self.state = lb.LbState(lambda: self.clock.monotonic() - self._t0)
        self.table = MessageTable()
        self.api = Api(self.state, self.table)
        self._handshake_reply_tail = self._message_table_bytes()
        self._sel: selectors.BaseSelector | None = None
        self._listener: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._wake_r: socket.socket | None = None
        self._wake_w: socket.socket | None = None
        self._stopping = threading.Event()
        self._bound: os.stat_result | None = None
        self._clients: dict[int, _Client] = {}  # slot -> client; slot 0 is the listener
        self._free_slots: list[int] = []
        self._next_slot = 1
        self._dirty: set[_Client] = set()
        self.clients_served = 0

    # ---- public, any thread --------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def lb_base(self) -> int:
        return self.table.bases["lb"]

    @property
    def thread_id(self) -> int | None:
        """The server thread's kernel id while it runs (its CPU is the emulated VPP's)."""
        t = self._thread
        return t.native_id if t is not None else None

    @property
    def write_count(self) -> int:
        return self.api.write_count

    @property
    def op_count(self) -> int:
        return self.api.op_count

    def operations(self) -> list[Operation]:
        """The mutating lb requests received so far (the last 100,000), oldest first."""
        with self.lock:
            return [Operation(*op) for op in self.api.operations]

    def locked(self, fn: Callable[[lb.LbState], T]) -> T:
        """Run fn on the lb state under the server's lock (from any thread)."""
        with self.lock:
            return fn(self.state)

    def bucket_table(
        self, prefix: str | IPNetwork, protocol: int = 255, port: int = 0
    ) -> list[IPAddress | None] | None:
        """The new-flow table of a live VIP: per bucket the AS address, or None for drop.

        None when no such VIP is live. The table is computed outside the lock from a snapshot
        of the VIP's live (address, weight) set."""
        net = ipaddress.ip_network(prefix, strict=False)
        if net.version == 4:
            key, plen = bytes(12) + net.network_address.packed, net.prefixlen + 96
        else:
            key, plen = net.network_address.packed, net.prefixlen
        if port == 0:
            protocol = lb.PORT_ALL_PROTOCOL
        with self.lock:
            vip = self.state.lookup(key, plen, protocol, port)
            if vip is None:
                return None
            live = list(zip(vip.order, vip.weights, strict=True))
            size = vip.new_length
        addresses: dict[bytes, IPAddress] = {
            a: ipaddress.ip_address(a[12:] if lb.is_ip4(a) else a) for a, _w in live
        }
        return [None if a is None else addresses[a] for a in maglev_table(live, size)]

    def start(self) -> None:
        """Bind the socket (replacing a stale one) and serve on the `maglev-vppsim` thread."""
        if self.running:
            raise RuntimeError("the emulator is already running")
        self._stopping.clear()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.socket_path)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(self.socket_path)
        self._bound = os.stat(self.socket_path)
        listener.listen(64)
        listener.setblocking(False)
        self._listener = listener
        self._sel = selectors.DefaultSelector()
        self._sel.register(listener, selectors.EVENT_READ, None)
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._sel.register(self._wake_r, selectors.EVENT_READ, "wake")
        self._thread = threading.Thread(target=self._run, name="maglev-vppsim", daemon=True)
        self._thread.start()
        if self.stats is not None:
            self.stats.start()
        log.info(
            "VPP lb emulator listening on %s (lb messages from ID %d)",
            self.socket_path,
            self.lb_base,
        )

    def stop(self, timeout: float = 5.0) -> None:
        """Close every client and the socket; the lb state is kept (start() serves it again)."""
        self._stopping.set()
        if self.stats is not None:
            self.stats.stop(timeout)
        if self._wake_w is not None:
            with contextlib.suppress(OSError):
                self._wake_w.send(b"x")
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def __enter__(self) -> Emulator:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- server thread -------------------------------------------------------------------------

    def _run(self) -> None:
        sel = self._sel
        assert sel is not None
        try:
            while not self._stopping.is_set():
                for key, events in sel.select(timeout=1.0):
                    if key.data is None:
                        self._accept()
                    elif key.data == "wake":
                        assert self._wake_r is not None
                        with contextlib.suppress(OSError):
                            self._wake_r.recv(64)
                    else:
                        client: _Client = key.data
                        if events & selectors.EVENT_READ:
                            self._on_readable(client)
                        if (
                            events & selectors.EVENT_WRITE
                            and self._clients.get(client.slot) is client
                        ):
                            self._flush(client)
                self._flush_dirty()
        except Exception:
            # Not a client's fault (those are caught per message): the emulator is broken, and
            # `running` turns false so an embedding daemon can stop.
            log.exception("VPP lb emulator failed")
            raise
        finally:
            for client in list(self._clients.values()):
                self._drop(client, "emulator stopping")
            sel.close()
            if self._listener is not None:
                self._listener.close()
            self._unlink_own_socket()
            for s in (self._wake_r, self._wake_w):
                if s is not None:
                    s.close()
            self._wake_r = self._wake_w = None
            log.info("VPP lb emulator on %s stopped", self.socket_path)

    def _unlink_own_socket(self) -> None:
        """Remove the socket file unless another server has bound the path since."""
        try:
            st = os.stat(self.socket_path)
        except FileNotFoundError:
            return
        if self._bound is not None and (st.st_dev, st.st_ino) == (
            self._bound.st_dev,
            self._bound.st_ino,
        ):
            os.unlink(self.socket_path)

    def _accept(self) -> None:
        assert self._listener is not None and self._sel is not None
        while True:
            try:
                sock, _ = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                log.warning("accept failed: %s", e)
                return
            sock.setblocking(False)
            if self._free_slots:
                slot = self._free_slots.pop()
            else:
                slot = self._next_slot
                self._next_slot += 1
            client = _Client(sock, slot)
            with self.lock:  # clients() reads the table from other threads
                self._clients[slot] = client
            self._sel.register(sock, selectors.EVENT_READ, client)
            self.clients_served += 1
            log.debug("client %#x connected", client.index)

    def _drop(self, client: _Client, why: str) -> None:
        if self._clients.get(client.slot) is not client:
            return
        log.debug("client %#x dropped: %s", client.index, why)
        with self.lock:
            del self._clients[client.slot]
        self._free_slots.append(client.slot)
        self._dirty.discard(client)
        assert self._sel is not None
        with contextlib.suppress(KeyError, ValueError):
            self._sel.unregister(client.sock)
        client.sock.close()

    def _on_readable(self, client: _Client) -> None:
        try:
            data = client.sock.recv(READ_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as e:
            self._drop(client, f"read error: {e}")
            return
        if not data:
            self._drop(client, "closed by peer")
            return
        buf = client.inbuf
        buf += data
        pos = 0
        end = len(buf)
        unpack_len = _LENGTH.unpack_from
        # One lock hold and one GC check per chunk read, not per message: a chunk carries up to
        # thousands of pipelined requests, and VPP's own time barely moves across them.
        with self.lock:
            self.state.gc_process()
            while end - pos >= 16:
                (length,) = unpack_len(buf, pos + 8)
                if length > MAX_FRAME:
                    self._drop(client, f"frame length {length} exceeds {MAX_FRAME}")
                    return
                if end - pos - 16 < length:
                    break
                body = bytes(buf[pos + 16 : pos + 16 + length])
                pos += 16 + length
                try:
                    self._dispatch(client, body)
                except Exception:
                    # A handler bug must not take the emulator down for every client.
                    log.exception("message from client %#x failed; dropping it", client.index)
                    self._drop(client, "internal error")
                    return
                if client.closing or self._clients.get(client.slot) is not client:
                    return
        del buf[:pos]

    def _dispatch(self, client: _Client, body: bytes) -> None:
        """Handle one message; called with the lock held."""
        if len(body) < 2:
            return
        msg_id = (body[0] << 8) | body[1]
        if msg_id == SOCKCLNT_CREATE:
            self._handshake(client, body)
            return
        if msg_id == SOCKCLNT_DELETE:
            self._sockclnt_delete(body)
            return
        replies = self.api.handle(msg_id, body)
        if not replies or len(body) < 6:
            return
        # Replies go to the registration named by client_index, not to the sending socket.
        target = self._clients.get(
            ((body[2] << 24) | (body[3] << 16) | (body[4] << 8) | body[5]) ^ CLIENT_BIT
        )
        if target is None or target.closing:
            return
        out = target.out
        for r in replies:
            out += _HEADER_PACK(0, len(r), 0)
            out += r
        self._dirty.add(target)

    def _message_table_bytes(self) -> bytes:
        entries = self.table.name_crcs()
        parts = [struct.pack(">H", len(entries))]
        parts.extend(struct.pack(">H64s", i, name.encode()) for i, name in entries)
        return b"".join(parts)

    def _handshake(self, client: _Client, body: bytes) -> None:
        layout = LAYOUTS["sockclnt_create"]
        if len(body) < layout.size:
            return
        _, context, name = layout.struct.unpack_from(body)
        log.debug("sockclnt_create %r -> %#x", name.split(b"\0", 1)[0], client.index)
        reply = struct.pack(">HIIiI", 16, 0, context, 0, client.index) + self._handshake_reply_tail
        client.out += HEADER.pack(0, len(reply), 0) + reply
        self._dirty.add(client)

    def _sockclnt_delete(self, body: bytes) -> None:
        """As VPP: answer the registration named by client_index (1, or -1 when `index` names
        no registration), then close that connection and free the one `index` names (the same
        one when a client deletes itself, as vpp-papi's disconnect does)."""
        layout = LAYOUTS["sockclnt_delete"]
        if len(body) < layout.size:
            return
        _, client_index, context, index = layout.struct.unpack_from(body)
        target = self._clients.get(client_index ^ CLIENT_BIT) if client_index & CLIENT_BIT else None
        if target is None or target.closing:
            return
        victim = self._clients.get(index & ~CLIENT_BIT)
        r = struct.pack(
            ">HIi", self.table.ids["sockclnt_delete_reply"], context, 1 if victim else -1
        )
        target.out += _HEADER_PACK(0, len(r), 0) + r
        self._dirty.add(target)
        if victim is not None:
            target.closing = True
            if victim is not target:
                self._drop(victim, f"sockclnt_delete from {target.index:#x}")

    def _flush_dirty(self) -> None:
        while self._dirty:
            self._flush(self._dirty.pop())

    def _flush(self, client: _Client) -> None:
        self._dirty.discard(client)
        out = client.out
        while out:
            try:
                n = client.sock.send(out)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as e:
                if e.errno not in (errno.EAGAIN, errno.EWOULDBLOCK):
                    self._drop(client, f"write error: {e}")
                    return
                break
            del out[:n]
        assert self._sel is not None
        if out:
            if len(out) > MAX_PENDING_OUTPUT:
                self._drop(client, "client is not reading its replies")
                return
            if not client.writing:
                client.writing = True
                self._sel.modify(client.sock, selectors.EVENT_READ | selectors.EVENT_WRITE, client)
        else:
            if client.writing:
                client.writing = False
                self._sel.modify(client.sock, selectors.EVENT_READ, client)
            if client.closing:
                self._drop(client, "sockclnt_delete")

    def clients(self) -> list[int]:
        """Client indices currently connected (a snapshot; for tests and diagnostics)."""
        with self.lock:
            return sorted(c.index for c in self._clients.values())
