"""The dataplane plan: ordered operations on VPP's lb tables, as plain printable values.

A `Plan` is what the diff decided and what the client will do, in order; it can be printed
(`Plan.lines()`) or logged (`Plan.summary()`) before anything touches VPP. Each op maps onto
exactly one lb API call (`maglev.vpp.client` sends them); `record` mirrors the ops that
succeeded in the record of what VPP has. Built by `maglev.reconcile.plan.make_plan` on the
reconciler thread; immutable, safe to hand on.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from maglev.model import Encap, IPAddress, IPNetwork
from maglev.vpp.lb import ENCAP_CODE, Actual, ActualVip, VipAttrs, VipKey, vip_text


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


@dataclass(frozen=True, slots=True)
class CreateVip:
    prefix: IPNetwork
    protocol: int
    port: int
    encap: Encap
    dscp: int
    src_ip_sticky: bool
    flow_table_length: int
    target_port: int = 0  # nat4/nat6: the backends' port

    @property
    def vip(self) -> VipKey:
        return (self.prefix, self.protocol, self.port)

    @property
    def attrs(self) -> VipAttrs:
        return VipAttrs.of(
            ENCAP_CODE[self.encap], self.dscp, self.src_ip_sticky, self.flow_table_length
        )

    def __str__(self) -> str:
        nat = f" target-port {self.target_port}" if self.target_port else ""
        return (
            f"create vip {vip_text(*self.vip)} encap {self.encap.value} dscp {self.dscp}"
            f" src-ip-sticky {_yes(self.src_ip_sticky)} flow-table {self.flow_table_length}{nat}"
        )


@dataclass(frozen=True, slots=True)
class AddAs:
    prefix: IPNetwork
    protocol: int
    port: int
    address: IPAddress
    weight: int

    @property
    def vip(self) -> VipKey:
        return (self.prefix, self.protocol, self.port)

    def __str__(self) -> str:
        return f"add as {vip_text(*self.vip)} {self.address} weight {self.weight}"


@dataclass(frozen=True, slots=True)
class SetWeight:
    """`lb_as_set_weight`; `flush` only when the weight drops to 0 (drops existing flows)."""

    prefix: IPNetwork
    protocol: int
    port: int
    address: IPAddress
    weight: int
    flush: bool = False

    @property
    def vip(self) -> VipKey:
        return (self.prefix, self.protocol, self.port)

    def __str__(self) -> str:
        return (
            f"set weight {vip_text(*self.vip)} {self.address} weight {self.weight}"
            f"{' flush' if self.flush else ''}"
        )


@dataclass(frozen=True, slots=True)
class DeleteAs:
    prefix: IPNetwork
    protocol: int
    port: int
    address: IPAddress
    flush: bool = True

    @property
    def vip(self) -> VipKey:
        return (self.prefix, self.protocol, self.port)

    def __str__(self) -> str:
        return f"delete as {vip_text(*self.vip)} {self.address}{' flush' if self.flush else ''}"


@dataclass(frozen=True, slots=True)
class DeleteVip:
    prefix: IPNetwork
    protocol: int
    port: int

    @property
    def vip(self) -> VipKey:
        return (self.prefix, self.protocol, self.port)

    def __str__(self) -> str:
        return f"delete vip {vip_text(*self.vip)}"


Op = CreateVip | AddAs | SetWeight | DeleteAs | DeleteVip

OP_NAMES: dict[type[Op], str] = {
    CreateVip: "create_vip",
    AddAs: "add_as",
    SetWeight: "set_weight",
    DeleteAs: "delete_as",
    DeleteVip: "delete_vip",
}


@dataclass(frozen=True, slots=True)
class Plan:
    """Ordered ops to apply, plus the VIPs in VPP that maglev leaves alone (to log them)."""

    ops: tuple[Op, ...] = ()
    unmanaged: tuple[VipKey, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.ops)

    def __len__(self) -> int:
        return len(self.ops)

    @property
    def counts(self) -> dict[str, int]:
        """Ops per kind (every kind present, 0 when absent), plus 'unmanaged'."""
        out = dict.fromkeys(OP_NAMES.values(), 0)
        for op in self.ops:
            out[OP_NAMES[type(op)]] += 1
        out["unmanaged"] = len(self.unmanaged)
        return out

    def summary(self) -> str:
        """One line for the log: 'plan: 3 ops (add_as 2, set_weight 1); 1 unmanaged'."""
        c = self.counts
        kinds = ", ".join(f"{k} {n}" for k, n in c.items() if n and k != "unmanaged")
        text = f"plan: {len(self.ops)} ops" + (f" ({kinds})" if kinds else "")
        if c["unmanaged"]:
            text += f"; {c['unmanaged']} unmanaged"
        return text

    def lines(self) -> list[str]:
        """The plan as text, one op per line, then the unmanaged VIPs."""
        out = [str(op) for op in self.ops]
        out.extend(f"unmanaged vip {vip_text(*v)} (left alone)" for v in self.unmanaged)
        return out


def record(actual: Actual, ops: Iterable[Op]) -> None:
    """Mirror operations that succeeded in `actual`, in order (a VIP's ops usually come
    together, so its record is looked up once per run)."""
    pfx: object = None
    proto = port = -1
    vip: ActualVip | None = None
    for op in ops:
        if isinstance(op, CreateVip):
            actual[op.vip] = ActualVip(op.attrs)
            pfx = None
            continue
        if isinstance(op, DeleteVip):
            actual.pop(op.vip, None)
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
