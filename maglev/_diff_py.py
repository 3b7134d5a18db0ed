"""Pure-Python twin of the compiled diff engine `maglev._diff` (same inputs, same outputs).

Owns the two hot loops of a full sync: per-frontend desired weights from backend states, and the
ordered operations that turn VPP's lb tables into the desired ones. Everything is flat arrays of
small ints (ranks instead of addresses) so the compiled twin can run typed C loops; the shapes
are documented in `maglev.diff`, and `maglev.reconcile` (`layout`, `actual`, `decide`) converts
to and from them; the codes come from `maglev._diff_codes`, as the compiled engine's do.
Pure and deterministic; called by the reconciler thread. Keep this file line-for-line with
`_diff.pyx`: a hypothesis test asserts they agree.
"""

from __future__ import annotations

from array import array
from typing import Any

from maglev._diff_codes import (
    FE_DOWN,
    FE_UNKNOWN,
    FE_UP,
    OP_ADD_AS,
    OP_CREATE_VIP,
    OP_DELETE_AS,
    OP_DELETE_VIP,
    OP_SET_WEIGHT,
    R_ACTIVE,
    R_DISABLED,
    R_DOWN,
    R_OVERRIDE,
    R_PAUSED,
    R_STANDBY,
    R_UNKNOWN,
    R_ZERO,
    ST_DISABLED,
    ST_DOWN,
    ST_PAUSED,
    ST_UNKNOWN,
    ST_UP,
)
from maglev._diff_codes import TABLE_MAX as _TABLE_MAX

__all__ = [
    "FE_DOWN",
    "FE_UNKNOWN",
    "FE_UP",
    "OP_ADD_AS",
    "OP_CREATE_VIP",
    "OP_DELETE_AS",
    "OP_DELETE_VIP",
    "OP_SET_WEIGHT",
    "R_ACTIVE",
    "R_DISABLED",
    "R_DOWN",
    "R_OVERRIDE",
    "R_PAUSED",
    "R_STANDBY",
    "R_UNKNOWN",
    "R_ZERO",
    "ST_DISABLED",
    "ST_DOWN",
    "ST_PAUSED",
    "ST_UNKNOWN",
    "ST_UP",
    "compute_desired",
    "diff_tables",
    "engine_name",
]


def engine_name() -> str:
    return "python"


def compute_desired(topology: Any, states: Any, overrides: Any) -> Any:
    """(slot_weight 'i', slot_flush 'b', slot_reason 'b', fe_state 'b', fe_active 'i')."""
    (
        fe_vip,
        _fe_attrs,
        fe_flush,
        fe_slot_start,
        slot_as,
        slot_backend,
        fe_pool_start,
        pool_member_start,
        member_slot,
        member_weight,
    ) = topology
    nfe = len(fe_vip)
    nslots = len(slot_as)
    weight = array("i", bytes(4 * nslots))
    flush = array("b", bytes(nslots))
    reason = array("b", bytes(nslots))
    fe_state = array("b", bytes(nfe))
    fe_active = array("i", bytes(4 * nfe))
    for f in range(nfe):
        # The active pool: the first, in config order, with an up member of non-zero weight.
        active = -1
        for p in range(fe_pool_start[f], fe_pool_start[f + 1]):
            for m in range(pool_member_start[p], pool_member_start[p + 1]):
                s = member_slot[m]
                if states[slot_backend[s]] == ST_UP:
                    w = overrides[s]
                    if w < 0:
                        w = member_weight[m]
                    if w > 0:
                        active = p
                        break
            if active >= 0:
                break
        # Every slot starts at weight 0 with the reason its state gives.
        known = 1
        for s in range(fe_slot_start[f], fe_slot_start[f + 1]):
            st = states[slot_backend[s]]
            if st == ST_UP:
                reason[s] = R_STANDBY if active >= 0 else R_ZERO
            elif st == ST_DOWN:
                reason[s] = R_DOWN
                flush[s] = fe_flush[f]
            elif st == ST_PAUSED:
                reason[s] = R_PAUSED
            elif st == ST_DISABLED:
                reason[s] = R_DISABLED
                flush[s] = 1
            else:
                reason[s] = R_UNKNOWN
                known = 0
        if active >= 0:
            fe_state[f] = FE_UP
            fe_active[f] = active - fe_pool_start[f]
            for m in range(pool_member_start[active], pool_member_start[active + 1]):
                s = member_slot[m]
                # R_STANDBY marks an up slot not yet given its active-pool weight (a backend
                # listed twice in one pool keeps its first entry).
                if reason[s] == R_STANDBY:
                    w = overrides[s]
                    if w >= 0:
                        reason[s] = R_OVERRIDE
                    else:
                        w = member_weight[m]
                        reason[s] = R_ACTIVE if w > 0 else R_ZERO
                    weight[s] = w
        else:
            fe_state[f] = FE_DOWN if known else FE_UNKNOWN
            fe_active[f] = -1
    return (weight, flush, reason, fe_state, fe_active)


def _attrs_differ(fe_attrs: Any, f: int, act_attrs: Any, j: int) -> bool:
    for k in range(3):
        if fe_attrs[4 * f + k] != act_attrs[4 * j + k]:
            return True
    a = fe_attrs[4 * f + 3]
    b = act_attrs[4 * j + 3]
    if a == 0:
        a = _TABLE_MAX
    if b == 0:
        b = _TABLE_MAX
    return bool(a != b)


def _add_all(ops: list[Any], vr: int, s0: int, s1: int, slot_as: Any, weight: Any) -> None:
    for s in range(s0, s1):
        ops.append((OP_ADD_AS, vr, slot_as[s], weight[s], 0))


def _delete_all(ops: list[Any], vr: int, b0: int, b1: int, act_as: Any) -> None:
    for b in range(b0, b1):
        ops.append((OP_DELETE_AS, vr, act_as[b], 0, 1))


def diff_tables(topology: Any, desired: Any, actual: Any, owned: Any, selected: Any) -> Any:
    """(ops, unmanaged): ordered op tuples, and the ranks of actual VIPs left alone."""
    fe_vip, fe_attrs, _, fe_slot_start, slot_as = topology[:5]
    weight = desired[0]
    flush = desired[1]
    act_vip, act_attrs, act_as_start, act_as, act_weight = actual
    ops: list[Any] = []
    dec: list[Any] = []
    unmanaged: list[int] = []
    nfe = len(fe_vip)
    nact = len(act_vip)
    i = 0
    j = 0
    while i < nfe or j < nact:
        if j >= nact or (i < nfe and fe_vip[i] < act_vip[j]):
            if selected[i]:
                vr = fe_vip[i]
                ops.append((OP_CREATE_VIP, vr, -1, 0, 0))
                _add_all(ops, vr, fe_slot_start[i], fe_slot_start[i + 1], slot_as, weight)
            i += 1
        elif i >= nfe or act_vip[j] < fe_vip[i]:
            vr = act_vip[j]
            if owned[j]:
                _delete_all(ops, vr, act_as_start[j], act_as_start[j + 1], act_as)
                ops.append((OP_DELETE_VIP, vr, -1, 0, 0))
            else:
                unmanaged.append(vr)
            j += 1
        elif not selected[i]:
            # A frontend left out of this pass: its VIP is neither touched nor unmanaged.
            i += 1
            j += 1
        else:
            vr = fe_vip[i]
            s0 = fe_slot_start[i]
            s1 = fe_slot_start[i + 1]
            b0 = act_as_start[j]
            b1 = act_as_start[j + 1]
            if _attrs_differ(fe_attrs, i, act_attrs, j):
                _delete_all(ops, vr, b0, b1, act_as)
                ops.append((OP_DELETE_VIP, vr, -1, 0, 0))
                ops.append((OP_CREATE_VIP, vr, -1, 0, 0))
                _add_all(ops, vr, s0, s1, slot_as, weight)
            else:
                # Merge-join of the two sorted AS lists. Adds and increases go out at once,
                # decreases and deletes after them, so a failover never empties the table.
                s = s0
                b = b0
                while s < s1 or b < b1:
                    if b >= b1 or (s < s1 and slot_as[s] < act_as[b]):
                        ops.append((OP_ADD_AS, vr, slot_as[s], weight[s], 0))
                        s += 1
                    elif s >= s1 or act_as[b] < slot_as[s]:
                        dec.append((OP_DELETE_AS, vr, act_as[b], 0, 1))
                        b += 1
                    else:
                        w = weight[s]
                        old = act_weight[b]
                        if w > old:
                            ops.append((OP_SET_WEIGHT, vr, slot_as[s], w, 0))
                        elif w < old:
                            dec.append(
                                (OP_SET_WEIGHT, vr, slot_as[s], w, flush[s] if w == 0 else 0)
                            )
                        s += 1
                        b += 1
                if dec:
                    ops.extend(dec)
                    dec = []
            i += 1
            j += 1
    return (ops, unmanaged)
