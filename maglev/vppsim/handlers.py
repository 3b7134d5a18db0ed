"""Message handlers of the emulator: decode a request, apply it to `LbState`, encode the replies.

`Api` owns the message table (name_crc -> ID, memclnt's fixed IDs 1..28, then vlib, lb and vpe
ranges) and one handler per request ID. Each handler gets the raw body and returns the reply
bodies, already encoded, for the registration named by the request's client_index; the server
routes them. Mutating lb requests are counted and recorded. Called on the emulator's server thread
with the state lock held.
"""

from __future__ import annotations

import json
import logging
import os
import struct
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from maglev.vpp.apidefs import MESSAGES, MODULES, definitions
from maglev.vppsim import cli, lb
from maglev.vppsim.codec import LAYOUTS, Layout

log = logging.getLogger(__name__)

MEMCLNT_LAST: Final = 28
VERSION: Final = "26.10-rc0~vppsim"
# Order of the dynamically allocated module ranges after memclnt's fixed IDs.
DYNAMIC_ORDER: Final = ("vlib", "lb", "vpe")
MUTATING: Final = frozenset(
    (
        "lb_conf",
        "lb_add_del_vip",
        "lb_add_del_vip_v2",
        "lb_add_del_as",
        "lb_add_del_as_v2",
        "lb_as_set_weight",
        "lb_flush_vip",
        "lb_add_del_intf_nat4",
        "lb_add_del_intf_nat6",
    )
)
_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_ZERO16 = bytes(16)

Reply = list[bytes]


@dataclass(frozen=True, slots=True)
class Operation:
    """One mutating request as received: its message name, raw body and the retval sent back."""

    seq: int
    name: str
    body: bytes
    retval: int

    def fields(self) -> dict[str, Any]:
        layout = LAYOUTS[self.name]
        values = layout.struct.unpack_from(self.body)
        return {n: v for n, v in zip(layout.names, values, strict=True) if n != "_vl_msg_id"}


class MessageTable:
    """name_crc <-> ID, as VPP allocates them: memclnt fixed, then one range per module."""

    def __init__(self) -> None:
        self.ids: dict[str, int] = {}
        self.names: dict[int, str] = {}
        self.bases: dict[str, int] = {"memclnt": 1}
        mods = {m.name: m for m in MODULES}
        base = MEMCLNT_LAST + 1
        for name in DYNAMIC_ORDER:
            self.bases[name] = base
            base += mods[name].msg_count
        for mod in MODULES:
            for msg in mod.messages:
                msg_id = self.bases[mod.name] + msg.offset
                self.ids[msg.name] = msg_id
                self.names[msg_id] = msg.name

    def name_crcs(self) -> list[tuple[int, str]]:
        return [(i, MESSAGES[n].name_crc) for n, i in self.ids.items()]


def _fixed(text: str, size: int) -> bytes:
    return text.encode()[: size - 1].ljust(size, b"\0")


def vip_prefix_fields(vip: lb.Vip) -> tuple[int, bytes, int]:
    """(af, un, len) of a VIP as the dumps encode it: the family from the address alone
    (ip_address_encode with IP46_TYPE_ANY), the length from the prefix test (plen >= 96)."""
    af, un = address_fields(vip.prefix)
    return af, un, vip.plen - 96 if vip.plen >= 96 and af == 0 else vip.plen


def address_fields(addr16: bytes) -> tuple[int, bytes]:
    if lb.is_ip4(addr16):
        return 0, addr16[12:] + bytes(12)
    return 1, addr16


def decode_prefix(af: int, un: bytes, length: int) -> tuple[bytes, int]:
    """ip_address_decode + the handlers' u8 plen: IPv4 goes to bytes 12..15 and len + 96.

    An unknown family leaves the address unset in VPP; the emulator makes it all zeros."""
    if af == 0:
        return _ZERO16[:12] + un[:4], (length + 96) & 0xFF
    return (un if af == 1 else _ZERO16), length


def decode_address(af: int, un: bytes) -> bytes:
    if af == 0:
        return _ZERO16[:12] + un[:4]
    return un if af == 1 else _ZERO16


class Api:
    def __init__(self, state: lb.LbState, table: MessageTable, op_log_size: int = 100_000) -> None:
        self.state = state
        self.table = table
        self.pid = os.getpid()
        self.build_date = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
        self.write_count = 0
        self.op_count = 0
        # (seq, name, body, retval); Operation values are built when asked for.
        self.operations: deque[tuple[int, str, bytes, int]] = deque(maxlen=op_log_size)
        self._seq = 0
        self.handlers: dict[int, tuple[Layout, Callable[[tuple[Any, ...], bytes], Reply]]] = {}
        for name in MESSAGES:
            fn = getattr(self, "h_" + name, None)
            if fn is not None and name in LAYOUTS:
                self.handlers[table.ids[name]] = (LAYOUTS[name], fn)
        self._reply_ids = {n: table.ids[n] for n in MESSAGES}
        self._rep = struct.Struct(">HIi")

    # ---- helpers -------------------------------------------------------------------------------

    def retval_reply(self, name: str, context: int, rv: int) -> bytes:
        return self._rep.pack(self._reply_ids[name], context, rv)

    def record(self, name: str, body: bytes, rv: int) -> None:
        self.write_count += 1
        self._seq += 1
        self.operations.append((self._seq, name, body, rv))
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%s %s -> %d", name, Operation(self._seq, name, body, rv).fields(), rv)

    def handle(self, msg_id: int, body: bytes) -> Reply | None:
        """Run the handler of msg_id; None when VPP would not even look at the message."""
        entry = self.handlers.get(msg_id)
        if entry is None:
            log.debug("no handler for message ID %d", msg_id)
            return None
        layout, fn = entry
        if len(body) < layout.size:
            log.debug("truncated %s (%d < %d bytes) dropped", layout.name, len(body), layout.size)
            return None
        self.op_count += 1
        if log.isEnabledFor(logging.DEBUG) and layout.name not in MUTATING:
            log.debug("%s (%d bytes)", layout.name, len(body))
        return fn(layout.struct.unpack_from(body), body)

    # ---- memclnt / vpe / vlib ------------------------------------------------------------------

    def h_control_ping(self, v: tuple[Any, ...], body: bytes) -> Reply:
        return [
            LAYOUTS["control_ping_reply"].struct.pack(
                self._reply_ids["control_ping_reply"], v[2], 0, v[1], self.pid
            )
        ]

    def h_memclnt_keepalive(self, v: tuple[Any, ...], body: bytes) -> Reply:
        # VPP answers socket clients' keepalives into its own queue: they see nothing.
        return []

    def h_get_first_msg_id(self, v: tuple[Any, ...], body: bytes) -> Reply:
        name = v[3].split(b"\0", 1)[0].decode(errors="replace")
        rv, first = -7, 0xFFFF
        if name == definitions.LB_RANGE_NAME:
            rv, first = 0, self.table.bases["lb"]
        return [
            LAYOUTS["get_first_msg_id_reply"].struct.pack(
                self._reply_ids["get_first_msg_id_reply"], v[2], rv, first
            )
        ]

    def h_show_version(self, v: tuple[Any, ...], body: bytes) -> Reply:
        return [
            LAYOUTS["show_version_reply"].struct.pack(
                self._reply_ids["show_version_reply"],
                v[2],
                0,
                _fixed("vpe", 32),
                _fixed(VERSION, 32),
                _fixed(self.build_date, 32),
                _fixed("/maglev/vppsim", 256),
            )
        ]

    def _string_reply(self, name: str, context: int, rv: int, text: str) -> bytes:
        data = text.encode()
        return self._rep.pack(self._reply_ids[name], context, rv) + _U32.pack(len(data)) + data

    def h_get_api_json(self, v: tuple[Any, ...], body: bytes) -> Reply:
        text = json.dumps([m.to_json() for m in MODULES])
        return [self._string_reply("get_api_json_reply", v[2], 0, text)]

    def h_cli_inband(self, v: tuple[Any, ...], body: bytes) -> Reply | None:
        size = LAYOUTS["cli_inband"].size
        if len(body) < size + 4:
            return None
        (n,) = _U32.unpack_from(body, size)
        if len(body) < size + 4 + n:
            return None
        cmd = bytes(body[size + 4 : size + 4 + n]).decode(errors="replace")
        log.debug("cli_inband %r", cmd)
        rv, text = cli.run(self.state, cmd)
        return [self._string_reply("cli_inband_reply", v[2], rv, text)]

    # ---- lb ------------------------------------------------------------------------------------

    def h_lb_conf(self, v: tuple[Any, ...], body: bytes) -> Reply:
        rv = self.state.conf(v[3], v[4], v[5], v[6])
        self.record("lb_conf", body, rv)
        return [self.retval_reply("lb_conf_reply", v[2], rv)]

    def h_lb_conf_get(self, v: tuple[Any, ...], body: bytes) -> Reply:
        s = self.state
        return [
            LAYOUTS["lb_conf_get_reply"].struct.pack(
                self._reply_ids["lb_conf_get_reply"],
                v[2],
                0,
                s.ip4_src,
                s.ip6_src,
                s.sticky_buckets,
                s.flow_timeout,
            )
        ]

    def _vip(self, name: str, v: tuple[Any, ...], body: bytes, sticky: bool) -> Reply:
        _, _, ctx, af, un, plen, proto, port, encap, dscp, stype, tport, _np, length = v[:14]
        prefix, plen = decode_prefix(af, un, plen)
        if port == 0:
            proto = lb.PORT_ALL_PROTOCOL
        if v[-1]:  # is_del
            rv = self.state.del_vip(prefix, plen, proto, port)
        else:
            rv = self.state.add_vip(
                prefix, plen, proto, port, encap, dscp, stype >> 24, tport, length, sticky
            )
        self.record(name, body, rv)
        return [self.retval_reply(name + "_reply", ctx, rv)]

    def h_lb_add_del_vip(self, v: tuple[Any, ...], body: bytes) -> Reply:
        return self._vip("lb_add_del_vip", v, body, False)

    def h_lb_add_del_vip_v2(self, v: tuple[Any, ...], body: bytes) -> Reply:
        return self._vip("lb_add_del_vip_v2", v, body, bool(v[14]))

    def _as(self, name: str, v: tuple[Any, ...], body: bytes, weight: int, is_del: int) -> Reply:
        _, _, ctx, af, un, plen, proto, port, aaf, aun = v[:10]
        prefix, plen = decode_prefix(af, un, plen)
        if port == 0:
            proto = lb.PORT_ALL_PROTOCOL
        vip = self.state.lookup(prefix, plen, proto, port)
        if vip is None:
            rv = lb.NO_SUCH_ENTRY
        elif is_del:
            rv = self.state.del_as(vip, decode_address(aaf, aun))
        else:
            rv = self.state.add_as(vip, decode_address(aaf, aun), weight)
        self.record(name, body, rv)
        return [self.retval_reply(name + "_reply", ctx, rv)]

    def h_lb_add_del_as(self, v: tuple[Any, ...], body: bytes) -> Reply:
        return self._as("lb_add_del_as", v, body, 100, v[10])

    def h_lb_add_del_as_v2(self, v: tuple[Any, ...], body: bytes) -> Reply:
        return self._as("lb_add_del_as_v2", v, body, v[10], v[11])

    def h_lb_as_set_weight(self, v: tuple[Any, ...], body: bytes) -> Reply:
        _, _, ctx, af, un, plen, proto, port, aaf, aun, weight, _flush = v
        prefix, plen = decode_prefix(af, un, plen)
        if port == 0:
            proto = lb.PORT_ALL_PROTOCOL
        vip = self.state.lookup(prefix, plen, proto, port)
        if vip is None:
            rv = lb.NO_SUCH_ENTRY
        else:
            rv = self.state.set_weight(vip, decode_address(aaf, aun), weight)
        self.record("lb_as_set_weight", body, rv)
        return [self.retval_reply("lb_as_set_weight_reply", ctx, rv)]

    def h_lb_flush_vip(self, v: tuple[Any, ...], body: bytes) -> Reply:
        # The plugin overwrites the lookup's result and always answers 0; no sticky table here.
        self.record("lb_flush_vip", body, 0)
        return [self.retval_reply("lb_flush_vip_reply", v[2], 0)]

    def h_lb_add_del_intf_nat4(self, v: tuple[Any, ...], body: bytes) -> Reply:
        self.record("lb_add_del_intf_nat4", body, lb.INVALID_SW_IF_INDEX)
        return [self.retval_reply("lb_add_del_intf_nat4_reply", v[2], lb.INVALID_SW_IF_INDEX)]

    def h_lb_add_del_intf_nat6(self, v: tuple[Any, ...], body: bytes) -> Reply:
        self.record("lb_add_del_intf_nat6", body, lb.INVALID_SW_IF_INDEX)
        return [self.retval_reply("lb_add_del_intf_nat6_reply", v[2], lb.INVALID_SW_IF_INDEX)]

    def h_lb_vip_dump(self, v: tuple[Any, ...], body: bytes) -> Reply:
        # Every request field is ignored; deleted VIPs are skipped.
        pack = LAYOUTS["lb_vip_details"].struct.pack
        msg_id = self._reply_ids["lb_vip_details"]
        out = []
        for _i, vip in self.state.live_vips():
            af, un, plen = vip_prefix_fields(vip)
            # target_port was stored in network order and is swapped once more on the way out.
            tport = (vip.target_port & 0xFF) << 8 | vip.target_port >> 8
            out.append(
                pack(
                    msg_id,
                    v[2],
                    af,
                    un,
                    plen,
                    vip.protocol,
                    vip.port,
                    lb.TYPE_TO_ENCAP[vip.type],
                    vip.union_byte,
                    vip.union_byte << 24,
                    tport,
                    vip.new_length & 0xFFFF,
                )
            )
        return out

    def _as_rows(self, v: tuple[Any, ...], details: str) -> Reply:
        _, _, ctx, _af, un, _plen, proto, port = v
        state = self.state
        lay = LAYOUTS[details]
        pack = lay.struct.pack
        msg_id = self._reply_ids[details]
        v2 = details == "lb_as_v2_details"
        out = []
        for _i, vip in state.all_vips():
            # The plugin compares the raw 16 request bytes with the ip46 prefix: an IPv4 filter
            # (bytes at offset 0) never matches; all-zero means every VIP.
            if un != _ZERO16 and (un != vip.prefix or proto != vip.protocol or port != vip.port):
                continue
            vaf, vun, vlen = vip_prefix_fields(vip)
            for ai in vip.as_slots():
                if ai == 0:
                    continue
                a = state.as_(ai)
                aaf, aun = address_fields(a.address)
                head = (msg_id, ctx, vaf, vun, vlen, vip.protocol, vip.port, aaf, aun)
                if v2:
                    out.append(
                        pack(*head, int(a.used), a.last_used, a.weight, state.num_buckets(vip, a))
                    )
                else:
                    out.append(pack(*head, int(a.used), a.last_used))
        return out

    def h_lb_as_dump(self, v: tuple[Any, ...], body: bytes) -> Reply:
        return self._as_rows(v, "lb_as_details")

    def h_lb_as_v2_dump(self, v: tuple[Any, ...], body: bytes) -> Reply:
        return self._as_rows(v, "lb_as_v2_details")
