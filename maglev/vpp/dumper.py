"""Reads VPP's lb state (VIPs, live ASes, global conf) into frozen values.

Quirks of the lb plugin handled here, so nothing above has to know them:
- `lb_as_v2_dump` filtered by an IPv4 VIP returns nothing: dump everything, filter here.
- deleted ASes (and the ASes of deleted VIPs) linger with flags bit 0 clear: only live rows count.
- `lb_vip_details` reports the table length as u16 (65536 reads 0) and has no `src_ip_sticky`:
  that comes from `show lb vips verbose`.
The row types live in `maglev.vpp.lb`. Called by the reconciler thread (it owns the connection).
"""

from __future__ import annotations

import ipaddress
from typing import Any

from maglev.errors import VppError
from maglev.model import IPAddress, IPNetwork
from maglev.vpp import codec, showlb
from maglev.vpp.lb import AsInfo, LbConf, LbState, VipInfo, VipKey, vip_key
from maglev.vpp.papi import VppConnection


def _network(pfx: Any) -> IPNetwork:
    if isinstance(pfx, ipaddress.IPv4Interface | ipaddress.IPv6Interface):
        return pfx.network
    return ipaddress.ip_network(pfx, strict=False)


def _addr(af: int, raw: bytes) -> IPAddress:
    return ipaddress.IPv4Address(raw[:4]) if af == 0 else ipaddress.IPv6Address(raw)


def _net(af: int, raw: bytes, plen: int) -> IPNetwork:
    return ipaddress.ip_network((_addr(af, raw), plen), strict=False)


def _raw_vips(conn: VppConnection) -> list[tuple[IPNetwork, int, int, int, int, int]] | None:
    """(prefix, protocol, port, encap, dscp, flow_table_length) rows, decoded here."""
    bodies = conn.dump_raw("lb_vip_dump", "lb_vip_details")
    if bodies is None:
        return None
    out = []
    for b in bodies:
        if len(b) < codec.VIP_DETAILS.size:
            raise VppError(f"lb_vip_details of {len(b)} bytes is too short")
        _, _, af, raw, plen, proto, port, encap, dscp, _, _, length = codec.VIP_DETAILS.unpack_from(
            b
        )
        out.append((_net(af, raw, plen), proto, port, encap, dscp, length))
    return out


def _raw_ases(conn: VppConnection) -> list[tuple[VipKey, IPAddress, int, int, int, int]] | None:
    """(vip key, address, flags, in_use_since, weight, num_buckets) rows, decoded here."""
    bodies = conn.dump_raw("lb_as_v2_dump", "lb_as_v2_details")
    if bodies is None:
        return None
    out = []
    nets: dict[tuple[int, bytes, int], IPNetwork] = {}
    for b in bodies:
        if len(b) < codec.AS_V2_DETAILS.size:
            raise VppError(f"lb_as_v2_details of {len(b)} bytes is too short")
        (_, _, af, raw, plen, proto, port, aaf, araw, flags, since, weight, buckets) = (
            codec.AS_V2_DETAILS.unpack_from(b)
        )
        net = nets.get((af, raw, plen))
        if net is None:
            net = nets[(af, raw, plen)] = _net(af, raw, plen)
        out.append((vip_key(net, proto, port), _addr(aaf, araw), flags, since, weight, buckets))
    return out


def read_lb_state(conn: VppConnection, with_sticky: bool = True) -> LbState:
    """VPP's lb tables (`with_sticky=False` skips the CLI text, and so every VIP's flag)."""
    return read_lb(conn, with_sticky)[0]


def read_lb(conn: VppConnection, with_sticky: bool = True) -> tuple[LbState, list[showlb.ShownVip]]:
    """VPP's lb tables, and what `show lb vips verbose` printed (sticky flags and counters)."""
    c = conn.call("lb_conf_get")
    conf = LbConf(
        ipaddress.IPv4Address(c.ip4_src_address),
        ipaddress.IPv6Address(c.ip6_src_address),
        int(c.sticky_buckets_per_core),
        int(c.flow_timeout),
    )
    shown = showlb.parse(conn.cli(showlb.COMMAND)) if with_sticky else []
    sticky = showlb.sticky_keys(shown)
    vip_rows = _raw_vips(conn)
    if vip_rows is None:  # the socket could not be borrowed: let vpp-papi decode
        vip_rows = [
            (_network(r.vip.pfx), int(r.vip.protocol), int(r.vip.port), int(r.encap), int(r.dscp),
             int(r.flow_table_length))
            for r in conn.dump("lb_vip_dump")
        ]  # fmt: skip
    vips: list[VipInfo] = []
    for prefix, proto, port, encap, dscp, length in vip_rows:
        key = vip_key(prefix, proto, port)
        vips.append(
            VipInfo(
                prefix=prefix,
                protocol=key[1],
                port=key[2],
                encap=encap,
                dscp=dscp,
                flow_table_length=length or 65536,  # u16 on the wire: 65536 reads as 0
                src_ip_sticky=key in sticky,
            )
        )
    live_vips = {v.key for v in vips}
    as_rows = _raw_ases(conn)
    if as_rows is None:
        as_rows = [
            (vip_key(_network(r.vip.pfx), int(r.vip.protocol), int(r.vip.port)),
             ipaddress.ip_address(r.app_srv), int(r.flags), int(r.in_use_since), int(r.weight),
             int(r.num_buckets))
            for r in conn.dump("lb_as_v2_dump")
        ]  # fmt: skip
    ases = [
        AsInfo(vip=key, address=addr, weight=weight, num_buckets=buckets, flags=flags,
               in_use_since=since)
        for key, addr, flags, since, weight, buckets in as_rows
        if flags & 1 and key in live_vips
    ]  # fmt: skip
    return LbState(conf=conf, vips=tuple(vips), ases=tuple(ases)), shown
