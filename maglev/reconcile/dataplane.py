"""The reconciler's side of VPP: connect, read the lb tables, write a plan (backoff: `link`).

Wraps one `VppConnection` (owned by the reconciler thread). Reading turns the dumped rows into
`ActualVip`s keyed like desired state; writing turns plan operations into lb API calls, sends
them as one pipelined batch and reports which succeeded, so the caller updates its view of VPP
only with what really happened.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from maglev.errors import VppError
from maglev.model import Encap, Frontend, IPAddress, LbSettings
from maglev.reconcile.plan import ENCAP_CODE, AddAs, CreateVip, DeleteAs, DeleteVip, Op, SetWeight
from maglev.vpp.dumper import LbState, VipKey, read_lb_state, vip_key
from maglev.vpp.papi import CallResult, LbCall, VersionInfo, VppConnection

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class VipAttrs:
    """The attributes of a VIP that VPP cannot change in place (a change means re-creating)."""

    encap: int
    dscp: int
    src_ip_sticky: bool
    flow_table_length: int


@dataclass(slots=True)
class ActualVip:
    """What VPP has for one VIP: its attributes and the weight of each live AS."""

    attrs: VipAttrs
    weights: dict[IPAddress, int] = field(default_factory=dict)


def frontend_vip_key(fe: Frontend) -> VipKey:
    return vip_key(fe.address, fe.protocol.number, fe.port)


def frontend_attrs(fe: Frontend) -> VipAttrs:
    dscp = fe.dscp if fe.encap is Encap.L3DSR else 0
    return VipAttrs(ENCAP_CODE[fe.encap], dscp, fe.src_ip_sticky, fe.flow_table_length)


def actual_from_state(state: LbState) -> dict[VipKey, ActualVip]:
    out: dict[VipKey, ActualVip] = {}
    for v in state.vips:
        # VPP reports dscp only for L3DSR VIPs; elsewhere the byte is meaningless.
        dscp = v.dscp if v.encap == ENCAP_CODE[Encap.L3DSR] else 0
        out[v.key] = ActualVip(VipAttrs(v.encap, dscp, v.src_ip_sticky, v.flow_table_length))
    for a in state.ases:
        vip = out.get(a.vip)
        if vip is not None:
            vip.weights[a.address] = a.weight
    return out


class Dataplane:
    """VPP as the reconciler sees it. Reconciler thread only."""

    def __init__(self, conn: VppConnection) -> None:
        self.conn = conn
        self.version: VersionInfo | None = None

    @property
    def connected(self) -> bool:
        return self.conn.connected

    def connect(self) -> VersionInfo:
        self.conn.connect()
        try:
            self.version = self.conn.show_version()
        except VppError as e:
            log.warning("VPP connected but show_version failed: %s", e)
            self.version = VersionInfo("vpp", "unknown", "")
        return self.version

    def disconnect(self) -> None:
        self.conn.disconnect()

    def read(self) -> tuple[LbState, dict[VipKey, ActualVip]]:
        state = read_lb_state(self.conn)
        return state, actual_from_state(state)

    def ensure_conf(self, state: LbState, lb: LbSettings) -> bool:
        """Send lb_conf when VPP's global lb settings differ from the config; True if sent."""
        conf = state.conf
        if conf is None:
            return False
        # lb_conf always overwrites both source addresses: keep VPP's for an unset one.
        ip4 = lb.ip4_src_address or conf.ip4_src_address
        ip6 = lb.ip6_src_address or conf.ip6_src_address
        want = (ip4, ip6, lb.sticky_buckets_per_core, int(lb.flow_timeout))
        have = (
            conf.ip4_src_address,
            conf.ip6_src_address,
            conf.sticky_buckets_per_core,
            conf.flow_timeout,
        )
        if want == have:
            return False
        log.info(
            "setting VPP lb conf: ip4-src %s, ip6-src %s, sticky-buckets-per-core %d, "
            "flow-timeout %ds",
            *want,
        )
        self.conn.call(
            "lb_conf",
            ip4_src_address=ipaddress.IPv4Address(ip4),
            ip6_src_address=ipaddress.IPv6Address(ip6),
            sticky_buckets_per_core=want[2],
            flow_timeout=want[3],
        )
        return True

    def send(self, calls: Sequence[LbCall]) -> list[CallResult]:
        return self.conn.pipeline(calls)


def op_call(op: Op) -> LbCall:
    """The lb API request that carries out one plan operation."""
    pfx, proto, port = op.prefix, op.protocol, op.port
    if isinstance(op, SetWeight):  # thousands per burst: one dict each
        return LbCall(
            "lb_as_set_weight",
            {"pfx": pfx, "protocol": proto, "port": port, "as_address": op.address,
             "weight": op.weight, "is_flush": op.flush},
        )  # fmt: skip
    if isinstance(op, AddAs):
        return LbCall(
            "lb_add_del_as_v2",
            {"pfx": pfx, "protocol": proto, "port": port, "as_address": op.address,
             "weight": op.weight, "is_del": False},
        )  # fmt: skip
    vip = {"pfx": pfx, "protocol": proto, "port": port}
    if isinstance(op, DeleteAs):
        return LbCall(
            "lb_add_del_as_v2",
            {**vip, "as_address": op.address, "is_del": True, "is_flush": op.flush},
        )
    if isinstance(op, CreateVip):
        return LbCall(
            "lb_add_del_vip_v2",
            {
                **vip,
                "encap": ENCAP_CODE[op.encap],
                "dscp": op.dscp,
                "type": 0,
                "target_port": op.target_port,
                "node_port": 0,
                "new_flows_table_length": op.flow_table_length,
                "src_ip_sticky": op.src_ip_sticky,
                "is_del": False,
            },
        )
    return LbCall("lb_add_del_vip_v2", {**vip, "is_del": True})


def apply_to_actual(actual: dict[VipKey, ActualVip], op: Op) -> None:
    """Record a successful operation in the reconciler's view of VPP."""
    apply_all_to_actual(actual, (op,))


def apply_all_to_actual(actual: dict[VipKey, ActualVip], ops: Iterable[Op]) -> None:
    """`apply_to_actual` for each of `ops`, in order (a VIP's ops usually come together)."""
    pfx: object = None
    proto = port = -1
    vip: ActualVip | None = None
    for op in ops:
        if isinstance(op, CreateVip | DeleteVip):
            _apply_vip_op(actual, op)
            pfx = None
            continue
        if op.prefix is not pfx or op.protocol != proto or op.port != port:
            pfx, proto, port = op.prefix, op.protocol, op.port
            vip = actual.get((op.prefix, proto, port))
        if vip is None:
            continue
        if isinstance(op, DeleteAs):
            vip.weights.pop(op.address, None)
        else:
            vip.weights[op.address] = op.weight


def _apply_vip_op(actual: dict[VipKey, ActualVip], op: CreateVip | DeleteVip) -> None:
    if isinstance(op, CreateVip):
        dscp = op.dscp if op.encap is Encap.L3DSR else 0
        attrs = VipAttrs(ENCAP_CODE[op.encap], dscp, op.src_ip_sticky, op.flow_table_length)
        actual[op.vip] = ActualVip(attrs)
    else:
        actual.pop(op.vip, None)
