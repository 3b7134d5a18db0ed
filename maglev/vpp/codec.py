"""Fast encoders for the few lb requests maglev writes in bulk, and the autoreply decoder.

vpp-papi's generic packer walks its type tree for every message; the reconciler writes thousands
of `lb_as_set_weight` / `lb_add_del_as_v2` at once, so these three layouts are packed with one
precompiled `struct` each. The bytes are identical to vpp-papi's (a test compares them), so VPP
cannot tell the difference. Pure functions; called by the reconciler thread.
"""

from __future__ import annotations

import ipaddress
import struct

from maglev.model import IPAddress, IPNetwork

# Wire layouts (big-endian, packed). address = u8 af + 16-byte union; prefix = address + u8 len.
_HDR = ">HII"  # _vl_msg_id, client_index, context
_ADDR = "B16s"
_PFX = _ADDR + "B"
AS_SET_WEIGHT = struct.Struct(_HDR + _PFX + "BH" + _ADDR + "BB")  # weight, is_flush
ADD_DEL_AS_V2 = struct.Struct(_HDR + _PFX + "BH" + _ADDR + "BBB")  # weight, is_del, is_flush
ADD_DEL_VIP_V2 = struct.Struct(_HDR + _PFX + "BHIBIHHIBB")
FRAME = struct.Struct(">QII")  # socket transport header: pointer (0), length, timestamp (0)
REPLY = struct.Struct(">HIi")  # autoreply: _vl_msg_id, context, retval
MSG_ID = struct.Struct(">H")  # the first field of every message


def _addr(a: IPAddress | str) -> tuple[int, bytes]:
    # IPv4 sits in the first 4 bytes of the 16-byte union, the rest zero.
    if isinstance(a, str):
        a = ipaddress.ip_address(a)
    if a.version == 4:
        return 0, a.packed + b"\x00" * 12
    return 1, a.packed


_VIPS: dict[IPNetwork, tuple[int, bytes, int]] = {}  # a burst writes each VIP many times


def pack_vip(net: IPNetwork) -> tuple[int, bytes, int]:
    got = _VIPS.get(net)
    if got is None:
        af, raw = _addr(net.network_address)
        got = (af, raw, net.prefixlen)
        if len(_VIPS) >= 65536:
            _VIPS.clear()
        _VIPS[net] = got
    return got


def pack_as_set_weight(
    msg_id: int,
    client_index: int,
    context: int,
    vip: IPNetwork,
    protocol: int,
    port: int,
    address: IPAddress | str,
    weight: int,
    is_flush: bool,
) -> bytes:
    vaf, vraw, vlen = pack_vip(vip)
    aaf, araw = _addr(address)
    return AS_SET_WEIGHT.pack(
        msg_id, client_index, context, vaf, vraw, vlen, protocol, port, aaf, araw, weight,
        int(is_flush),
    )  # fmt: skip


def pack_add_del_as_v2(
    msg_id: int,
    client_index: int,
    context: int,
    vip: IPNetwork,
    protocol: int,
    port: int,
    address: IPAddress | str,
    weight: int,
    is_del: bool,
    is_flush: bool,
) -> bytes:
    vaf, vraw, vlen = pack_vip(vip)
    aaf, araw = _addr(address)
    return ADD_DEL_AS_V2.pack(
        msg_id, client_index, context, vaf, vraw, vlen, protocol, port, aaf, araw, weight,
        int(is_del), int(is_flush),
    )  # fmt: skip


def pack_add_del_vip_v2(
    msg_id: int,
    client_index: int,
    context: int,
    vip: IPNetwork,
    protocol: int,
    port: int,
    encap: int,
    dscp: int,
    new_flows_table_length: int,
    src_ip_sticky: bool,
    is_del: bool,
    srv_type: int = 0,
    target_port: int = 0,
    node_port: int = 0,
) -> bytes:
    vaf, vraw, vlen = pack_vip(vip)
    return ADD_DEL_VIP_V2.pack(
        msg_id, client_index, context, vaf, vraw, vlen, protocol, port, encap, dscp, srv_type,
        target_port, node_port, new_flows_table_length, int(src_ip_sticky), int(is_del),
    )  # fmt: skip


_PEEK = struct.Struct(">HI")


def peek(body: bytes) -> tuple[int, int]:
    """(msg_id, context) of a reply or details message (0, 0 when too short)."""
    if len(body) < 6:
        return 0, 0
    mid, ctx = _PEEK.unpack_from(body, 0)
    return int(mid), int(ctx)


# Details rows the dumper decodes itself (see maglev.vpp.dumper).
VIP_DETAILS = struct.Struct(
    ">HI" + _PFX + "BH" + "IBIHH"
)  # ... encap, dscp, srv_type, target_port, flow_table_length
AS_V2_DETAILS = struct.Struct(
    ">HI" + _PFX + "BH" + _ADDR + "BIBI"
)  # ... app_srv, flags, in_use_since, weight, num_buckets


def frame(body: bytes) -> bytes:
    return FRAME.pack(0, len(body), 0) + body


def unpack_reply(body: bytes) -> tuple[int, int, int]:
    """(msg_id, context, retval) of an autoreply message; raises struct.error if too short."""
    return REPLY.unpack_from(body, 0)


def parse_network(value: str | IPNetwork) -> IPNetwork:
    return value if not isinstance(value, str) else ipaddress.ip_network(value, strict=False)
