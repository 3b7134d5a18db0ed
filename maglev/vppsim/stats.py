"""The emulator's stats segment: VPP's version-2 shared-memory counters, served over a Unix socket.

`StatsSegment` owns a memfd laid out the way vpp-papi's `VPPStats` reads VPP's stats segment: a
shared header (version 2, the segment's base address, epoch, in_progress, the directory vector),
vectors whose u32 length sits 8 bytes before their first element, and a directory of 144-byte
entries (type, value, 128-byte name). It exports the lb plugin's node error counters: one simple
counter vector `/node/errors` (one thread row, one column per error) and a symlink
`/err/<node>/<error>` per column, which is how VPP publishes node errors.

A `maglev-vppsim-stats` thread accepts SOCK_SEQPACKET connections and hands each client the
memfd with SCM_RIGHTS, as VPP's stats socket does. `set_error()` may be called from any thread;
writers raise in_progress around each change so a client's optimistic read retries.
"""

from __future__ import annotations

import contextlib
import logging
import mmap
import os
import socket
import struct
import threading

log = logging.getLogger(__name__)

SEGMENT_VERSION = 2
SEGMENT_SIZE = 1 << 16
# A made-up mapping address: clients only ever use pointer - base.
SEGMENT_BASE = 0x7F5500000000

TYPE_SCALAR_INDEX = 1
TYPE_COUNTER_VECTOR_SIMPLE = 2
TYPE_SYMLINK = 6

LB_NODES = (
    "lb4-gre4",
    "lb4-gre6",
    "lb6-gre4",
    "lb6-gre6",
    "lb4-gre4-port",
    "lb4-gre6-port",
    "lb6-gre4-port",
    "lb6-gre6-port",
    "lb4-l3dsr-port",
    "lb4-l3dsr",
    "lb4-nat4-port",
    "lb6-nat6-port",
    "lb4-nodeport",
    "lb6-nodeport",
    "lb-nat4-in2out",
    "lb-nat6-in2out",
)
# Every lb node registers the same legacy error strings (src/plugins/lb/node.c); VPP names each
# counter /err/<node>/<string>, spaces kept.
LB_ERRORS = (
    "no error",
    "protocol not supported",
)

_HEADER = struct.Struct("QPQQPP")
_DIRENTRY = struct.Struct("IQ128s")
_VEC_HEADER = 8
_ALIGN = 16


class StatsSegment:
    """A VPP-compatible stats segment with the lb node error counters, served on a socket path."""

    def __init__(self, socket_path: str) -> None:
        self.socket_path = socket_path
        self._lock = threading.Lock()
        self._fd = os.memfd_create("maglev-vppsim-stats", os.MFD_CLOEXEC)
        os.ftruncate(self._fd, SEGMENT_SIZE)
        self._mem = mmap.mmap(self._fd, SEGMENT_SIZE, mmap.MAP_SHARED)
        self._next = _HEADER.size
        self._columns: dict[tuple[str, str], int] = {}
        self._errors_offset = 0
        self._heartbeat_offset = 0
        self._listener: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._build()

    # -- layout ---------------------------------------------------------------------------

    def _vector(self, n: int, element_size: int) -> int:
        """Allocate a vector of `n` elements; returns its data offset."""
        start = (self._next + _ALIGN - 1) // _ALIGN * _ALIGN
        data = start + _ALIGN
        end = data + n * element_size
        if end + 1 >= SEGMENT_SIZE:
            raise MemoryError("stats segment full")
        struct.pack_into("I", self._mem, data - _VEC_HEADER, n)
        self._next = end
        return data

    def _build(self) -> None:
        names = [(node, err) for node in LB_NODES for err in LB_ERRORS]
        self._columns = {name: i for i, name in enumerate(names)}
        counters = self._vector(len(names), 8)
        self._errors_offset = counters
        threads = self._vector(1, 8)
        struct.pack_into("P", self._mem, threads, SEGMENT_BASE + counters)
        entries: list[tuple[int, int, str]] = [
            (TYPE_SCALAR_INDEX, 0, "/sys/heartbeat"),
            (TYPE_COUNTER_VECTOR_SIMPLE, SEGMENT_BASE + threads, "/node/errors"),
        ]
        errors_index = 1
        for (node, err), column in self._columns.items():
            link = struct.unpack("Q", struct.pack("II", errors_index, column))[0]
            entries.append((TYPE_SYMLINK, link, f"/err/{node}/{err}"))
        directory = self._vector(len(entries), _DIRENTRY.size)
        for i, (kind, value, name) in enumerate(entries):
            _DIRENTRY.pack_into(
                self._mem, directory + i * _DIRENTRY.size, kind, value, name.encode("ascii")
            )
        self._heartbeat_offset = directory + 8  # entry 0's value
        _HEADER.pack_into(
            self._mem, 0, SEGMENT_VERSION, SEGMENT_BASE, 1, 0, SEGMENT_BASE + directory, 0
        )

    # -- counters -------------------------------------------------------------------------

    @property
    def names(self) -> list[str]:
        """Every `/err/...` name this segment exports."""
        return [f"/err/{node}/{err}" for node, err in self._columns]

    def _write(self, offset: int, value: int) -> None:
        with self._lock:
            struct.pack_into("Q", self._mem, 24, 1)  # in_progress
            struct.pack_into("Q", self._mem, offset, value)
            struct.pack_into("Q", self._mem, 24, 0)

    def set_error(self, node: str, error: str, value: int) -> None:
        """Set one node error counter (KeyError for a node/error VPP's lb plugin lacks)."""
        column = self._columns[(node, error)]
        self._write(self._errors_offset + 8 * column, value)

    def get_error(self, node: str, error: str) -> int:
        """The current value of one node error counter."""
        column = self._columns[(node, error)]
        value: int = struct.unpack_from("Q", self._mem, self._errors_offset + 8 * column)[0]
        return value

    def beat(self, value: int) -> None:
        """Set `/sys/heartbeat`."""
        self._write(self._heartbeat_offset, value)

    # -- socket ---------------------------------------------------------------------------

    def start(self) -> None:
        """Bind the socket (replacing a stale one) and serve on the `maglev-vppsim-stats` thread."""
        if os.path.exists(self.socket_path):
            os.unlink(self.socket_path)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        listener.bind(self.socket_path)
        listener.listen(16)
        self._listener = listener
        self._thread = threading.Thread(
            target=self._serve, args=(listener,), name="maglev-vppsim-stats", daemon=True
        )
        self._thread.start()
        log.info("VPP stats segment served on %s", self.socket_path)

    def _serve(self, listener: socket.socket) -> None:
        fds = struct.pack("i", self._fd)
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                try:
                    conn.sendmsg([b"\0"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fds)])
                except OSError as exc:
                    log.debug("stats client went away: %s", exc)

    def stop(self, timeout: float = 5.0) -> None:
        """Close the socket and remove its path; the segment and its counters are kept."""
        listener, self._listener = self._listener, None
        if listener is None:
            return
        with contextlib.suppress(OSError):
            listener.shutdown(socket.SHUT_RDWR)
        listener.close()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.socket_path)

    def close(self) -> None:
        """Stop serving and release the segment."""
        self.stop()
        self._mem.close()
        os.close(self._fd)
