"""Apply: plan ops to lb API requests, sent as one pipelined batch; record what succeeded.

The *apply* step of dump / plan / apply. Called on the reconciler thread (through
`PapiLb.apply`), which owns the connection.
"""

from __future__ import annotations

from collections.abc import Sequence

from maglev.vpp.lb import ENCAP_CODE, Actual
from maglev.vpp.ops import AddAs, CreateVip, DeleteAs, Op, SetWeight, record
from maglev.vpp.papi import LbCall, VppConnection, check_results


def apply_ops(conn: VppConnection, ops: Sequence[Op], actual: Actual) -> Sequence[Op]:
    """Send `ops` as one pipelined batch; record in `actual` and return the ones that succeeded.

    Every failure is logged with its message and arguments. Raises VppError when the batch
    could not be sent at all (the connection is then dropped).
    """
    results = conn.pipeline([op_call(op) for op in ops])
    if check_results(results):
        done: Sequence[Op] = [op for op, r in zip(ops, results, strict=False) if r.ok]
    else:
        done = ops[: len(results)]
    record(actual, done)
    return done


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
