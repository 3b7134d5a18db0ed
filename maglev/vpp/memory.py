"""An in-memory `LbClient`: VPP's lb tables as plain dicts, for pure planning tests.

It keeps the tables the lb plugin would keep and answers each op as the plugin does (adding an
existing VIP or AS: VALUE_EXIST; anything on a missing VIP or AS: NO_SUCH_ENTRY; an AS of the
wrong family for the VIP's encap: INVALID_ADDRESS_FAMILY; a deleted AS lingers, so deleting it
again or adding it back succeeds, setting its weight does not), so the reconciler can be driven
turn by turn without a socket. It computes no Maglev buckets and never garbage-collects
lingering ASes; the emulator (`maglev.vppsim`) is the faithful stand-in for VPP, spoken to over
vpp-papi (a test gives both the same ops and compares).
Single-threaded, like the reconciler that owns it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence

from maglev.errors import VppError
from maglev.model import Encap, IPAddress, LbSettings
from maglev.vpp.client import Applied, LbRead, wanted_conf
from maglev.vpp.lb import (
    ENCAP_CODE,
    Actual,
    ActualVip,
    AsInfo,
    LbConf,
    LbState,
    VipCounters,
    VipInfo,
    VipKey,
    actual_from_state,
)
from maglev.vpp.ops import AddAs, CreateVip, DeleteAs, DeleteVip, Op, record
from maglev.vpp.papi import VersionInfo

VALUE_EXIST, NO_SUCH_ENTRY, INVALID_ADDRESS_FAMILY = -81, -6, -97
_IP6_ENCAPS = (ENCAP_CODE[Encap.GRE6], ENCAP_CODE[Encap.NAT6])


class MemoryLb:
    def __init__(self) -> None:
        self.tables: dict[VipKey, ActualVip] = {}
        self.lingering: dict[VipKey, set[IPAddress]] = {}  # deleted ASes, not yet collected
        self.conf = LbConf(
            ipaddress.IPv4Address("255.255.255.255"), ipaddress.IPv6Address("::"), 1024, 40
        )
        self.connected = False
        self.reachable = True  # False: connect() fails as with VPP down
        self.version: VersionInfo | None = None
        self.applied: list[Op] = []  # every op carried out, in order
        self.refused: list[tuple[Op, int]] = []  # (op, retval) of every op refused
        self.counters: tuple[VipCounters, ...] = ()  # what read_counters returns
        self.counter_reads = 0
        self._calls: dict[tuple[str, str], int] = {}

    def connect(self) -> VersionInfo:
        if not self.reachable:
            raise VppError("cannot connect to VPP: unreachable (in-memory)")
        self.connected = True
        self.version = VersionInfo("vpp", "memory", "")
        return self.version

    def disconnect(self) -> None:
        self.connected = False

    def _need(self) -> None:
        if not self.connected:
            raise VppError("not connected to VPP")

    def read(self) -> LbRead:
        self._need()
        vips = tuple(
            VipInfo(k[0], k[1], k[2], v.attrs.encap, v.attrs.dscp, v.attrs.flow_table_length,
                    v.attrs.src_ip_sticky)
            for k, v in self.tables.items()
        )  # fmt: skip
        ases = tuple(
            AsInfo(k, a, w, 0, 1, 0) for k, v in self.tables.items() for a, w in v.weights.items()
        )
        state = LbState(self.conf, vips, ases)
        return LbRead(state, actual_from_state(state), self.counters)

    def read_counters(self) -> tuple[VipCounters, ...]:
        self._need()
        self.counter_reads += 1
        return self.counters

    def ensure_conf(self, conf: LbConf | None, lb: LbSettings) -> bool:
        self._need()
        if conf is None or wanted_conf(conf, lb) == conf:
            return False
        self.conf = wanted_conf(conf, lb)
        return True

    def _retval(self, op: Op) -> int:
        vip = self.tables.get(op.vip)
        if isinstance(op, CreateVip):
            return VALUE_EXIST if vip is not None else 0
        if vip is None:
            return NO_SUCH_ENTRY
        if isinstance(op, DeleteVip):
            self.lingering.pop(op.vip, None)
            return 0
        known = op.address in vip.weights
        gone = self.lingering.setdefault(op.vip, set())
        if isinstance(op, AddAs):
            if known:
                return VALUE_EXIST
            if op.address not in gone and (op.address.version == 6) != (
                vip.attrs.encap in _IP6_ENCAPS
            ):
                return INVALID_ADDRESS_FAMILY
            gone.discard(op.address)
            return 0
        if isinstance(op, DeleteAs):
            if known:
                gone.add(op.address)
                return 0
            return 0 if op.address in gone else NO_SUCH_ENTRY
        return 0 if known else NO_SUCH_ENTRY

    def apply(self, ops: Sequence[Op], actual: Actual) -> Applied:
        self._need()
        done: list[Op] = []
        for op in ops:
            rv = self._retval(op)
            name = type(op).__name__
            key = (name, "ok" if rv == 0 else str(rv))
            self._calls[key] = self._calls.get(key, 0) + 1
            if rv:
                self.refused.append((op, rv))
                continue
            record(self.tables, (op,))
            done.append(op)
        self.applied.extend(done)
        record(actual, done)
        return Applied(done, len(ops) - len(done))

    def call_counts(self) -> Mapping[tuple[str, str], int]:
        return dict(self._calls)
