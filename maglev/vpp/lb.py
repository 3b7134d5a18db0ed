"""VPP's lb vocabulary, defined once: how a frontend becomes a VIP, and what VPP has.

Owns the VIP key (`VipKey`, `vip_key`, `frontend_key`), the wire codes of the encapsulations
(`ENCAP_CODE`), the attributes VPP cannot change in place (`VipAttrs`, with the one place the
"dscp only for L3DSR" rule is written), the rows read from VPP (`VipInfo`, `AsInfo`, `LbConf`,
`LbState`), and the record of what VPP has (`ActualVip`, kept up to date by `record`). Nothing
outside `maglev.vpp` needs to know any of VPP's codes: the reconciler asks for keys and
attributes of its frontends here. Pure values and functions; the reconciler thread calls them.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field

from maglev.model import Encap, Frontend, IPAddress, IPNetwork

VipKey = tuple[IPNetwork, int, int]
"""How VPP keys a VIP: (prefix, IP protocol number (255 = any), port)."""

PROTO_ANY = 255

ENCAP_CODE: dict[Encap, int] = {
    Encap.GRE4: 0,
    Encap.GRE6: 1,
    Encap.L3DSR: 2,
    Encap.NAT4: 3,
    Encap.NAT6: 4,
}
"""`Encap` -> VPP's `lb_encap_type` value (as `lb_add_del_vip_v2` and `lb_vip_details` carry it)."""

ENCAP_OF_CODE: dict[int, Encap] = {v: k for k, v in ENCAP_CODE.items()}
_L3DSR = ENCAP_CODE[Encap.L3DSR]
_PROTO_NAME = {6: "tcp", 17: "udp", PROTO_ANY: "any"}


def vip_key(prefix: IPNetwork, protocol: int, port: int) -> VipKey:
    """The key of a VIP as VPP reports it (VPP turns port 0 into protocol 255: all ports)."""
    return (prefix, PROTO_ANY if port == 0 else protocol, port)


def frontend_key(fe: Frontend) -> VipKey:
    """The key of the VIP that carries frontend `fe`."""
    return vip_key(fe.address, fe.protocol.number, fe.port)


def vip_text(prefix: IPNetwork, protocol: int, port: int) -> str:
    """'192.0.2.1/32 tcp:80' (an all-port VIP prints as 'any')."""
    if protocol == PROTO_ANY:
        return f"{prefix} any"
    return f"{prefix} {_PROTO_NAME.get(protocol, str(protocol))}:{port}"


def nat_target_port(fe: Frontend) -> int:
    """The backends' port of a NAT frontend (its own port unless `target-port` says otherwise);
    0 for the other encapsulations, as VPP expects."""
    if fe.encap not in (Encap.NAT4, Encap.NAT6):
        return 0
    return fe.target_port or fe.port


@dataclass(frozen=True, slots=True)
class VipAttrs:
    """The attributes of a VIP that VPP cannot change in place (a change means re-creating).

    Build them with `of` (or `frontend_attrs`): VPP reports dscp only for L3DSR VIPs (elsewhere
    the byte means nothing), so it is 0 there and two VIPs compare equal when VPP would agree.
    """

    encap: int
    dscp: int
    src_ip_sticky: bool
    flow_table_length: int

    @classmethod
    def of(cls, encap: int, dscp: int, src_ip_sticky: bool, flow_table_length: int) -> VipAttrs:
        return cls(encap, dscp if encap == _L3DSR else 0, src_ip_sticky, flow_table_length)

    def codes(self) -> tuple[int, int, int, int]:
        """(encap, dscp, src_ip_sticky 0/1, flow table length): what the diff engine compares."""
        return (self.encap, self.dscp, int(self.src_ip_sticky), self.flow_table_length)


def frontend_attrs(fe: Frontend) -> VipAttrs:
    """The VIP attributes frontend `fe` asks for."""
    return VipAttrs.of(ENCAP_CODE[fe.encap], fe.dscp, fe.src_ip_sticky, fe.flow_table_length)


# --- what VPP reports --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class VipInfo:
    prefix: IPNetwork
    protocol: int  # 255 for an all-port VIP
    port: int
    encap: int  # lb_encap_type
    dscp: int
    flow_table_length: int
    src_ip_sticky: bool

    @property
    def key(self) -> VipKey:
        return (self.prefix, self.protocol, self.port)

    @property
    def attrs(self) -> VipAttrs:
        return VipAttrs.of(self.encap, self.dscp, self.src_ip_sticky, self.flow_table_length)


@dataclass(frozen=True, slots=True)
class AsInfo:
    vip: VipKey
    address: IPAddress
    weight: int
    num_buckets: int
    flags: int
    in_use_since: int

    @property
    def live(self) -> bool:
        return bool(self.flags & 1)


@dataclass(frozen=True, slots=True)
class LbConf:
    ip4_src_address: ipaddress.IPv4Address
    ip6_src_address: ipaddress.IPv6Address
    sticky_buckets_per_core: int
    flow_timeout: int


@dataclass(frozen=True, slots=True)
class LbState:
    conf: LbConf | None
    vips: tuple[VipInfo, ...]
    ases: tuple[AsInfo, ...]  # live ASes only, of live VIPs only

    def ases_of(self, key: VipKey) -> tuple[AsInfo, ...]:
        return tuple(a for a in self.ases if a.vip == key)


@dataclass(frozen=True, slots=True)
class VipCounters:
    """One live VIP's packet counters (`show lb vips verbose`); a counter VPP did not print is
    absent rather than 0."""

    key: VipKey
    kind: str  # VPP's VIP type ("ip4-gre4", ...)
    counters: tuple[tuple[str, int], ...]


# --- the record of what VPP has ----------------------------------------------------------


@dataclass(slots=True)
class ActualVip:
    """What VPP has for one VIP: its attributes and the weight of each live AS."""

    attrs: VipAttrs
    weights: dict[IPAddress, int] = field(default_factory=dict)


Actual = dict[VipKey, ActualVip]
"""The reconciler's record of VPP's lb tables (owned by the reconciler thread)."""


def actual_from_state(state: LbState) -> Actual:
    """The record of what a dump found."""
    out: Actual = {v.key: ActualVip(v.attrs) for v in state.vips}
    for a in state.ases:
        vip = out.get(a.vip)
        if vip is not None:
            vip.weights[a.address] = a.weight
    return out


def actual_from_rows(vips: Iterable[VipInfo], ases: Iterable[AsInfo]) -> Actual:
    """The record of VIP and AS rows (ASes of VIPs not among `vips` are ignored)."""
    out: Actual = {}
    for v in vips:
        out.setdefault(v.key, ActualVip(v.attrs))
    last_key: VipKey | None = None
    last: dict[IPAddress, int] | None = None
    for a in ases:
        # Rows of one VIP usually come together and often share the key object: hashing the
        # key's network once per VIP instead of once per row saves much of the time here.
        if a.vip is not last_key:
            last_key = a.vip
            rec = out.get(a.vip)
            last = None if rec is None else rec.weights
        if last is not None:
            last[a.address] = a.weight
    return out
