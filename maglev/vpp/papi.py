"""One vpp-papi connection to VPP's API socket, with checked calls and pipelined batches.

vpp-papi's client is not safe to share between threads, so a `VppConnection` belongs to exactly
one thread (the reconciler). Every reply's `retval` is checked and named in the error; every call
is logged at DEBUG. `pipeline()` writes a whole batch back-to-back without waiting for replies
and then matches the replies by context (VPP answers one connection's requests in order).
"""

from __future__ import annotations

import logging
import multiprocessing.queues
import queue
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from maglev.errors import VppApiError, VppError, retval_name
from maglev.vpp import codec
from maglev.vpp.lease import FrameReader, LeaseError, borrow_socket

log = logging.getLogger(__name__)

# Pipelined requests in flight at once: bounded so neither side buffers without limit.
WINDOW = 1024


@dataclass(frozen=True, slots=True)
class LbCall:
    """One API request: message name and its arguments (vpp-papi keyword arguments)."""

    message: str
    args: Mapping[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        args = ", ".join(f"{k}={v}" for k, v in self.args.items())
        return f"{self.message}({args})"


@dataclass(frozen=True, slots=True)
class CallResult:
    call: LbCall
    retval: int
    error: str | None = None  # transport problem or unexpected reply; None when a reply came

    @property
    def ok(self) -> bool:
        return self.error is None and self.retval == 0

    def describe(self) -> str:
        if self.error:
            return f"{self.call.describe()}: {self.error}"
        return f"{self.call.describe()}: retval {self.retval} ({retval_name(self.retval)})"


@dataclass(frozen=True, slots=True)
class VersionInfo:
    program: str
    version: str
    build_date: str


class VppConnection:
    """A vpp-papi client bound to one API socket. Owned by one thread."""

    def __init__(
        self,
        socket_path: str,
        api_files: Sequence[str],
        name: str = "maglevd",
        read_timeout: float = 5.0,
    ) -> None:
        self.socket_path = socket_path
        self.api_files = list(api_files)
        self.name = name
        self.read_timeout = read_timeout
        self._vpp: Any = None
        self._ids: dict[str, int] = {}
        self.calls = 0  # API requests sent
        self.last_reply_at = 0.0  # time.perf_counter() when a batch's last reply was read
        # (message, "ok" | "error" | retval name) -> count, for metrics; read by other threads
        # only as a copy (dict(...)), written by the owning thread.
        self.results: dict[tuple[str, str], int] = {}

    # --- connection -----------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        """Connected, and vpp-papi's reader still running (it ends when VPP closes the socket)."""
        if self._vpp is None or not self._vpp.transport.connected:
            return False
        reader = getattr(self._vpp.transport, "message_thread", None)
        return reader is not None and bool(reader.is_alive())

    def connect(self) -> None:
        from vpp_papi import VPPApiClient

        if self._vpp is not None:
            self.disconnect()
        try:
            vpp = VPPApiClient(
                apifiles=self.api_files,
                server_address=self.socket_path,
                read_timeout=self.read_timeout,
                async_thread=False,
            )
            vpp.connect(self.name)
        except (OSError, Exception) as e:  # vpp-papi raises assorted types; all mean "no VPP"
            raise VppError(f"cannot connect to VPP API socket {self.socket_path}: {e}") from e
        _in_process_queue(vpp.transport)
        self._vpp = vpp
        self._ids = {}
        for required in ("lb_add_del_vip_v2", "lb_add_del_as_v2", "lb_as_set_weight"):
            if not hasattr(vpp.api, required):
                self.disconnect()
                raise VppError(
                    f"VPP at {self.socket_path} does not offer {required} with the expected "
                    "definition (lb plugin not loaded, or an API version mismatch)"
                )
        log.debug("connected to VPP at %s as %s", self.socket_path, self.name)

    def disconnect(self) -> None:
        vpp, self._vpp = self._vpp, None
        if vpp is None:
            return
        try:
            vpp.disconnect()
        except Exception as e:  # a dead VPP: nothing left to release on its side
            log.debug("disconnect from VPP failed: %s", e)

    def _api(self) -> Any:
        if not self.connected:
            raise VppError("not connected to VPP")
        return self._vpp

    # --- synchronous calls ----------------------------------------------------------------

    def _invoke(self, kind: str, message: str, sent: int, args: dict[str, Any]) -> Any:
        """One vpp-papi request/reply (or dump); transport trouble becomes VppError."""
        vpp = self._api()
        log.debug("VPP %s %s", kind, LbCall(message, args).describe())
        try:
            return getattr(vpp.api, message)(**args)
        except AttributeError as e:
            raise VppError(f"VPP does not offer {message}") from e
        except Exception as e:  # vpp-papi raises OSError, VPPIOError, ValueError ...
            self._drop_if_dead()
            raise VppError(f"{message} failed: {e}") from e
        finally:
            self.calls += sent

    def call(self, message: str, **args: Any) -> Any:
        """Send one request and return its reply; raises VppApiError on a non-zero retval."""
        reply = self._invoke("call", message, 1, args)
        retval = getattr(reply, "retval", 0)
        self._count(message, retval)
        if retval != 0:
            raise VppApiError(message, retval, args)
        return reply

    def _count(self, message: str, retval: int | None, n: int = 1) -> None:
        key = (
            message,
            "error" if retval is None else ("ok" if retval == 0 else retval_name(retval)),
        )
        self.results[key] = self.results.get(key, 0) + n

    def dump(self, message: str, **args: Any) -> list[Any]:
        rows = self._invoke("dump", message, 2, args)  # the dump and its control_ping
        self._count(message, 0)
        return list(rows)

    def dump_raw(self, message: str, details: str, **args: Any) -> list[bytes] | None:
        """A dump's detail messages as raw bodies, read straight off the socket.

        vpp-papi hands every detail row across threads and decodes it generically (several
        hundred microseconds a row: 40,000 ASes would take seconds); the caller decodes the few
        fields it needs instead. Returns None when the socket cannot be borrowed (the caller
        then uses `dump`). Raises VppError when VPP does not answer.
        """
        vpp = self._api()
        transport = vpp.transport
        ci = int(transport.socket_index)
        ctx = int(vpp.get_context())
        req = dict(args, _vl_msg_id=self._msg_id(message), client_index=ci, context=ctx)
        ping = {"_vl_msg_id": self._msg_id("control_ping"), "client_index": ci, "context": ctx}
        wire = codec.frame(bytes(vpp.messages[message].pack(req)))
        wire += codec.frame(bytes(vpp.messages["control_ping"].pack(ping)))
        details_id = self._msg_id(details)
        ping_reply_id = self._msg_id("control_ping_reply")
        log.debug("VPP dump %s (raw)", LbCall(message, args).describe())
        try:
            with borrow_socket(transport, self.read_timeout) as sock:
                sock.sendall(wire)
                self.calls += 2
                reader = FrameReader(sock, self.read_timeout)
                rows: list[bytes] = []
                while True:
                    body = reader.read_body()
                    if body is None:
                        self.disconnect()
                        raise VppError(f"{message}: no reply from VPP")
                    mid, got = codec.peek(body)
                    if got != ctx:
                        continue
                    if mid == details_id:
                        rows.append(body)
                    elif mid == ping_reply_id:
                        break
        except LeaseError:
            return None
        except OSError as e:
            self.disconnect()
            raise VppError(f"{message} failed: {e}") from e
        self._count(message, 0)
        return rows

    def cli(self, command: str) -> str:
        return str(self.call("cli_inband", cmd=command).reply)

    def show_version(self) -> VersionInfo:
        r = self.call("show_version")
        return VersionInfo(str(r.program), str(r.version), str(r.build_date))

    def _drop_if_dead(self) -> None:
        if self._vpp is not None and not self._vpp.transport.connected:
            self.disconnect()

    # --- pipelined batches ----------------------------------------------------------------

    def _msg_id(self, name: str) -> int:
        mid = self._ids.get(name)
        if mid is None:
            vpp = self._api()
            msg = vpp.messages.get(name)
            mid = vpp.transport.get_msg_index(f"{name}_{msg.crc[2:]}") if msg else 0
            if not mid:
                raise VppError(f"VPP does not offer {name}")
            self._ids[name] = mid
        return mid

    def _encode(self, call: LbCall, client_index: int, context: int) -> bytes:
        a = call.args
        mid = self._msg_id(call.message)
        if call.message == "lb_as_set_weight":
            return codec.pack_as_set_weight(
                mid, client_index, context, codec.parse_network(a["pfx"]), a["protocol"],
                a["port"], a["as_address"], a["weight"], a.get("is_flush", False),
            )  # fmt: skip
        if call.message == "lb_add_del_as_v2":
            return codec.pack_add_del_as_v2(
                mid, client_index, context, codec.parse_network(a["pfx"]), a["protocol"],
                a["port"], a["as_address"], a.get("weight", 100), a.get("is_del", False),
                a.get("is_flush", False),
            )  # fmt: skip
        vpp = self._vpp  # not _api(): its reader is paused while a batch is being sent
        assert vpp is not None
        kw = dict(a)
        kw.update(_vl_msg_id=mid, client_index=client_index, context=context)
        return bytes(vpp.messages[call.message].pack(kw))

    def _contexts(self, vpp: Any, n: int) -> list[int]:
        """n fresh request contexts from vpp-papi's process-wide counter, taken in one step."""
        counter = vpp.get_context
        lock, value = getattr(counter, "lock", None), getattr(counter, "context", None)
        if lock is not None and value is not None:
            with lock:
                first = int(value.value) + 1
                if first + n < 0xFFFFFFFF:
                    value.value = first + n - 1
                    return list(range(first, first + n))
        return [int(vpp.get_context()) for _ in range(n)]

    def pipeline(self, calls: Sequence[LbCall]) -> list[CallResult]:
        """Send every call without waiting for replies, then match the replies by context.

        Returns one result per call, in order. Requests go out in windows, each encoded just
        before it is sent: while VPP works through one window the next is encoded and written,
        and the replies of the one before are read, so neither side waits and neither buffers
        without bound. A transport failure marks the unanswered calls with an error (the next
        sync retries them) and drops the connection.
        """
        if not calls:
            return []
        vpp = self._api()
        transport = vpp.transport
        client_index = int(transport.socket_index)
        t0 = time.perf_counter()
        contexts = self._contexts(vpp, len(calls))
        for c in calls:  # every message is known before anything is sent
            self._msg_id(c.message)
        if log.isEnabledFor(logging.DEBUG):
            for c, ctx in zip(calls, contexts, strict=True):
                log.debug("VPP call %s [ctx %d]", c.describe(), ctx)
        batch = _Batch(calls, contexts, client_index, self._encode)
        try:
            try:
                with borrow_socket(transport, self.read_timeout) as sock:
                    results = self._exchange(sock, batch)
            except LeaseError as e:
                log.debug("pipelining through vpp-papi's queue: %s", e)
                results = self._exchange_queued(transport, batch)
        except (VppError, LeaseError):
            raise
        except Exception as e:
            # A request that cannot be encoded, met after earlier windows went out: what VPP
            # has done and which replies are pending is unknown, so this connection is done;
            # the caller reconnects and a full sync finds out.
            self.disconnect()
            raise VppError(f"pipelined batch of {len(calls)} calls abandoned: {e!r}") from e
        self.last_reply_at = time.perf_counter()
        counts: dict[tuple[str, int | None], int] = {}
        for r in results:
            k = (r.call.message, None if r.error else r.retval)
            counts[k] = counts.get(k, 0) + 1
        for (message, retval), n in counts.items():
            self._count(message, retval, n)
        if any(r.error for r in results):  # the transport failed: this connection is done
            self.disconnect()
        log.debug("pipelined %d calls in %.1f ms", len(calls), (time.perf_counter() - t0) * 1e3)
        return results

    def _exchange(self, sock: Any, batch: _Batch) -> list[CallResult]:
        reader = FrameReader(sock, self.read_timeout)
        calls, contexts = batch.calls, batch.contexts
        results: list[CallResult] = []
        windows = batch.windows()
        if not batch.send(sock, 0):
            return batch.fail(results, "send failed")
        self.calls += windows[0][1] - windows[0][0]
        for i, (_lo, hi) in enumerate(windows):
            if i + 1 < len(windows):
                if not batch.send(sock, i + 1):
                    return batch.fail(results, "send failed")
                self.calls += windows[i + 1][1] - windows[i + 1][0]
            while len(results) < hi:
                got = reader.read_replies()
                if got is None:
                    return batch.fail(results, "no reply from VPP")
                for mid, ctx, rv in got:  # may run into the next window's replies
                    k = len(results)
                    if k < len(calls) and ctx == contexts[k]:
                        results.append(CallResult(calls[k], rv))
                    else:  # a late reply to an earlier, timed-out request, or an event
                        log.debug("skipping VPP message id %d context %d", mid, ctx)
        return results

    def _exchange_queued(self, transport: Any, batch: _Batch) -> list[CallResult]:
        """The same exchange through vpp-papi's reader thread (slower; the fallback)."""
        results: list[CallResult] = []
        for i, (lo, hi) in enumerate(batch.windows()):
            try:
                ok = batch.send(transport.socket, i)
            except AttributeError:
                ok = False
            if not ok:
                return batch.fail(results, "send failed")
            self.calls += hi - lo
            for k in range(lo, hi):
                r = self._read_reply(transport, batch.contexts[k])
                if r is None:
                    return batch.fail(results, "no reply from VPP")
                results.append(CallResult(batch.calls[k], r))
        return results

    def _read_reply(self, transport: Any, context: int) -> int | None:
        deadline = time.monotonic() + self.read_timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            try:
                msg = transport.read(timeout=left)
            except OSError:
                return None
            if not msg:
                return None
            try:
                _mid, ctx, retval = codec.unpack_reply(bytes(msg[:10]))
            except Exception:
                continue
            if ctx == context:
                return int(retval)
            # A late reply to an earlier, timed-out request: not ours, skip it.
            log.debug("skipping stray VPP message with context %d (waiting for %d)", ctx, context)


def _in_process_queue(transport: Any) -> None:
    """Give vpp-papi's socket transport an in-process queue for received messages.

    vpp-papi 2.4.2's reader is a thread of this process, yet it hands every received message to
    the caller through a multiprocessing.Queue (pickling, a pipe and a feeder thread per
    message): most of the client's cost per reply. A queue.Queue has the same get/put interface
    for that use. The connection is made fresh for every VPPApiClient, so the transport never
    needs the multiprocessing queue's close/join_thread on reconnect. Left alone when the
    transport does not look as expected (another vpp-papi version).
    """
    old = getattr(transport, "q", None)
    if isinstance(old, multiprocessing.queues.Queue) and old.empty():
        transport.q = queue.Queue()
    else:
        log.debug("vpp-papi transport left with its own message queue")


class _Batch:
    """One pipelined batch: its calls, their contexts, and its windows encoded on demand."""

    def __init__(
        self,
        calls: Sequence[LbCall],
        contexts: list[int],
        client_index: int,
        encode: Callable[[LbCall, int, int], bytes],
    ) -> None:
        self.calls = calls
        self.contexts = contexts
        self.client_index = client_index
        self.encode = encode

    def windows(self) -> list[tuple[int, int]]:
        n = len(self.calls)
        return [(lo, min(lo + WINDOW, n)) for lo in range(0, n, WINDOW)]

    def send(self, sock: Any, i: int) -> bool:
        """Encode window i and write it; False if the socket failed."""
        lo = i * WINDOW
        hi = min(lo + WINDOW, len(self.calls))
        frame, encode, ci, calls, ctxs = (
            codec.frame,
            self.encode,
            self.client_index,
            self.calls,
            self.contexts,
        )
        data = b"".join([frame(encode(calls[k], ci, ctxs[k])) for k in range(lo, hi)])
        try:
            sock.sendall(data)
        except OSError:
            return False
        return True

    def fail(self, done: list[CallResult], why: str) -> list[CallResult]:
        """`done` plus an error result for every call after them."""
        return done + [CallResult(c, -1, why) for c in self.calls[len(done) :]]


def check_results(results: Sequence[CallResult]) -> list[CallResult]:
    """The failed results of a batch, each logged with its message and arguments."""
    failed = [r for r in results if not r.ok]
    for r in failed:
        log.warning("VPP call failed: %s", r.describe())
    return failed


__all__ = ["CallResult", "LbCall", "VersionInfo", "VppConnection", "check_results"]
