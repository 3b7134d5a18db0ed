"""One vpp-papi connection to VPP's API socket, with checked calls and pipelined batches.

vpp-papi's client is not safe to share between threads, so a `VppConnection` belongs to exactly
one thread (the reconciler). Every reply's `retval` is checked and named in the error; every call
is logged at DEBUG. `pipeline()` writes a whole batch back-to-back without waiting for replies
and then matches the replies by context (VPP answers one connection's requests in order).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from maglev.errors import VppApiError, VppError, retval_name
from maglev.vpp import codec

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

    def call(self, message: str, **args: Any) -> Any:
        """Send one request and return its reply; raises VppApiError on a non-zero retval."""
        vpp = self._api()
        log.debug("VPP call %s", LbCall(message, args).describe())
        try:
            reply = getattr(vpp.api, message)(**args)
        except AttributeError as e:
            raise VppError(f"VPP does not offer {message}") from e
        except (OSError, Exception) as e:
            self._drop_if_dead()
            raise VppError(f"{message} failed: {e}") from e
        finally:
            self.calls += 1
        retval = getattr(reply, "retval", 0)
        self._count(message, retval)
        if retval != 0:
            raise VppApiError(message, retval, args)
        return reply

    def _count(self, message: str, retval: int | None) -> None:
        key = (
            message,
            "error" if retval is None else ("ok" if retval == 0 else retval_name(retval)),
        )
        self.results[key] = self.results.get(key, 0) + 1

    def dump(self, message: str, **args: Any) -> list[Any]:
        vpp = self._api()
        log.debug("VPP dump %s", LbCall(message, args).describe())
        try:
            rows = getattr(vpp.api, message)(**args)
        except AttributeError as e:
            raise VppError(f"VPP does not offer {message}") from e
        except (OSError, Exception) as e:
            self._drop_if_dead()
            raise VppError(f"{message} failed: {e}") from e
        finally:
            self.calls += 2  # the dump and its control_ping
        self._count(message, 0)
        return list(rows)

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
        vpp = self._api()
        kw = dict(a)
        kw.update(_vl_msg_id=mid, client_index=client_index, context=context)
        return bytes(vpp.messages[call.message].pack(kw))

    def pipeline(self, calls: Sequence[LbCall]) -> list[CallResult]:
        """Send every call without waiting, then collect the replies in order.

        Returns one result per call, in order. A transport failure marks the unanswered calls
        with an error (they are retried by the next sync) and drops the connection.
        """
        if not calls:
            return []
        vpp = self._api()
        transport = vpp.transport
        client_index = int(transport.socket_index)
        results: list[CallResult] = []
        t0 = time.perf_counter()
        for start in range(0, len(calls), WINDOW):
            chunk = calls[start : start + WINDOW]
            contexts: list[int] = []
            frames: list[bytes] = []
            for c in chunk:
                ctx = int(vpp.get_context())  # process-wide, shared with vpp-papi's own calls
                contexts.append(ctx)
                if log.isEnabledFor(logging.DEBUG):
                    log.debug("VPP call %s [ctx %d]", c.describe(), ctx)
                frames.append(codec.frame(self._encode(c, client_index, ctx)))
            try:
                transport.socket.sendall(b"".join(frames))
            except (OSError, AttributeError) as e:
                self.disconnect()
                return results + [CallResult(c, -1, f"send failed: {e}") for c in calls[start:]]
            self.calls += len(chunk)
            for i, (c, ctx) in enumerate(zip(chunk, contexts, strict=True)):
                r = self._read_reply(transport, ctx)
                if r is None:
                    self.disconnect()
                    lost = [CallResult(x, -1, "no reply from VPP") for x in chunk[i:]]
                    rest = [CallResult(x, -1, "not sent") for x in calls[start + len(chunk) :]]
                    return results + lost + rest
                results.append(CallResult(c, r))
                self._count(c.message, r)
        log.debug("pipelined %d calls in %.1f ms", len(calls), (time.perf_counter() - t0) * 1e3)
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


def check_results(results: Sequence[CallResult]) -> list[CallResult]:
    """The failed results of a batch, each logged with its message and arguments."""
    failed = [r for r in results if not r.ok]
    for r in failed:
        log.warning("VPP call failed: %s", r.describe())
    return failed


__all__ = ["CallResult", "LbCall", "VersionInfo", "VppConnection", "check_results"]
