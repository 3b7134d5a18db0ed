"""Pure-Python twin of the compiled diff engine `maglev._diff` (same inputs, same outputs).

Owns the two hot loops of a full sync: per-frontend desired weights from backend states (and
VPP's current weights, which the mass-failure guard may keep), and the ordered operations that
turn VPP's lb tables into the desired ones. Everything is flat arrays of
small ints (ranks instead of addresses) so the compiled twin can run typed C loops; the shapes
are documented in `maglev.diff`, and `maglev.reconcile` (`desired`, `actual`, `plan`) converts
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
    GUARD_HOLD,
    GUARD_NONE,
    GUARD_PANIC,
    MODE_DRAIN,
    MODE_FAIL_STATIC,
    MODE_PANIC,
    NO_BUDGET,
    OP_ADD_AS,
    OP_CREATE_VIP,
    OP_DELETE_AS,
    OP_DELETE_VIP,
    OP_SET_WEIGHT,
    PERCENT,
    PERMILLE,
    R_ACTIVE,
    R_BUDGET,
    R_DISABLED,
    R_DOWN,
    R_HELD,
    R_OVERRIDE,
    R_PANIC,
    R_PAUSED,
    R_SLOW_START,
    R_STANDBY,
    R_SUPPRESSED,
    R_UNKNOWN,
    R_ZERO,
    ST_DISABLED,
    ST_DOWN,
    ST_PAUSED,
    ST_SUPPRESSED,
    ST_UNKNOWN,
    ST_UP,
)
from maglev._diff_codes import TABLE_MAX as _TABLE_MAX

__all__ = [
    "FE_DOWN",
    "FE_UNKNOWN",
    "FE_UP",
    "GUARD_HOLD",
    "GUARD_NONE",
    "GUARD_PANIC",
    "MODE_DRAIN",
    "MODE_FAIL_STATIC",
    "MODE_PANIC",
    "NO_BUDGET",
    "OP_ADD_AS",
    "OP_CREATE_VIP",
    "OP_DELETE_AS",
    "OP_DELETE_VIP",
    "OP_SET_WEIGHT",
    "PERCENT",
    "PERMILLE",
    "R_ACTIVE",
    "R_BUDGET",
    "R_DISABLED",
    "R_DOWN",
    "R_HELD",
    "R_OVERRIDE",
    "R_PANIC",
    "R_PAUSED",
    "R_SLOW_START",
    "R_STANDBY",
    "R_SUPPRESSED",
    "R_UNKNOWN",
    "R_ZERO",
    "ST_DISABLED",
    "ST_DOWN",
    "ST_PAUSED",
    "ST_SUPPRESSED",
    "ST_UNKNOWN",
    "ST_UP",
    "compute_desired",
    "current_weights",
    "diff_tables",
    "engine_name",
]


def engine_name() -> str:
    return "python"


def current_weights(topology: Any, actual: Any) -> Any:
    """slot_current 'i': each slot's weight in VPP's table, -1 where VPP has no such AS."""
    fe_vip, _, _, fe_slot_start, slot_as = topology[:5]
    act_vip, _, act_as_start, act_as, act_weight = actual
    nfe = len(fe_vip)
    nact = len(act_vip)
    current = array("i", [-1]) * len(slot_as)
    i = 0
    j = 0
    while i < nfe and j < nact:
        if fe_vip[i] < act_vip[j]:
            i += 1
        elif act_vip[j] < fe_vip[i]:
            j += 1
        else:
            s = fe_slot_start[i]
            s1 = fe_slot_start[i + 1]
            b = act_as_start[j]
            b1 = act_as_start[j + 1]
            while s < s1 and b < b1:
                if slot_as[s] < act_as[b]:
                    s += 1
                elif act_as[b] < slot_as[s]:
                    b += 1
                else:
                    current[s] = act_weight[b]
                    s += 1
                    b += 1
            i += 1
            j += 1
    return current


def _mass_failure_guard(
    f: int,
    active: int,
    fe_slot_start: Any,
    fe_pool_start: Any,
    pool_member_start: Any,
    member_slot: Any,
    member_weight: Any,
    member_counted: Any,
    fe_guard_conf: Any,
    slot_backend: Any,
    states: Any,
    overrides: Any,
    current: Any,
    weight: Any,
    flush: Any,
    reason: Any,
    counts: Any,
    mark: Any,
) -> int:
    """The mass-failure guard of frontend `f` over its weights so far; its GUARD_* code."""
    # When maglev's own probing breaks (its network, a firewall, a namespace), every backend
    # looks down at once, and deciding each one on its own takes every weight to 0: the
    # frontend blackholes although its backends are fine. Many members of one pool failing at
    # once is more likely maglev's failure than theirs, so, as PyBal's depool threshold and
    # Envoy's panic mode do, health alone may not take the serving pool below `min-healthy`:
    # - the serving pool is the active one (failing over to a healthy backup pool is not a mass
    #   failure); when no pool can serve, the one VPP still serves from (the first with a
    #   member of weight > 0 in VPP), else the first pool;
    # - its members are its entries of configured weight > 0 (a backend's first entry);
    #   paused and disabled ones count as members but never as healthy, and are never brought
    #   back (the operator's action is honoured);
    # - below the threshold, fail-static keeps the first missing members in slot order (address
    #   order: ECMP peers with one config and one view keep the same ones) that VPP still
    #   gives a weight at that weight, unflushed, and drains the rest; panic serves every
    #   missing member at its weight; drain decides each backend on its own.
    # A backend flap damping suppresses (passing its checks, held out) is missing like a down
    # one here: never healthy, and kept or served like one (its slot is never flushed).
    p0 = fe_pool_start[f]
    p1 = fe_pool_start[f + 1]
    sp = active
    if sp < 0:
        for p in range(p0, p1):
            for m in range(pool_member_start[p], pool_member_start[p + 1]):
                if current[member_slot[m]] > 0:
                    sp = p
                    break
            if sp >= 0:
                break
        if sp < 0 and p0 < p1:
            sp = p0
    members = 0
    healthy = 0
    if sp >= 0:
        for m in range(pool_member_start[sp], pool_member_start[sp + 1]):
            if member_counted[m]:
                members += 1
                if states[slot_backend[member_slot[m]]] == ST_UP:
                    healthy += 1
    value = fe_guard_conf[3 * f + 1]
    if fe_guard_conf[3 * f + 2]:
        threshold = (value * members + PERCENT - 1) // PERCENT
    else:
        threshold = value if value < members else members
    counts[4 * f] = sp - p0 if sp >= 0 else -1
    counts[4 * f + 1] = healthy
    counts[4 * f + 2] = members
    counts[4 * f + 3] = threshold
    mode = fe_guard_conf[3 * f]
    if healthy >= threshold or mode == MODE_DRAIN:
        return GUARD_NONE
    if mode == MODE_PANIC:
        for m in range(pool_member_start[sp], pool_member_start[sp + 1]):
            s = member_slot[m]
            missing = reason[s] == R_DOWN or reason[s] == R_UNKNOWN or reason[s] == R_SUPPRESSED
            if member_counted[m] and missing:
                w = overrides[s]
                if w < 0:
                    w = member_weight[m]
                weight[s] = w
                flush[s] = 0
                reason[s] = R_PANIC
        return GUARD_PANIC
    # Mark the members' slots with the pool's index (unique: no frontend's marks are reset),
    # then keep the first missing ones in slot order.
    for m in range(pool_member_start[sp], pool_member_start[sp + 1]):
        if member_counted[m]:
            mark[member_slot[m]] = sp
    need = threshold - healthy
    for s in range(fe_slot_start[f], fe_slot_start[f + 1]):
        if need == 0:
            break
        missing = reason[s] == R_DOWN or reason[s] == R_UNKNOWN or reason[s] == R_SUPPRESSED
        if mark[s] == sp and current[s] > 0 and missing:
            weight[s] = current[s]
            flush[s] = 0
            reason[s] = R_HELD
            need -= 1
    return GUARD_HOLD


def _slow_start(w: int, permille: int) -> int:
    """The weight a slot of weight `w` > 0 may have `permille`/1000 into its slow-start ramp."""
    # A backend that comes back (or is added to a serving frontend) at once at full weight gets
    # its whole share of new flows at once, cold caches and all: as HAProxy's slowstart and
    # Envoy's slow start mode do, it enters at a share of its weight, raised step by step (the
    # reconciler owns the clock and the steps; this is the cap). Never below 1: a ramping
    # backend serves; monotone in `permille`, and PERMILLE is the full weight.
    c = w * permille // PERMILLE
    return c if c > 1 else 1


def _disruption_budget(w: int, cur: int, step: int) -> int:
    """The weight an up slot heading for weight `w` has in the current step of its frontend's
    disruption budget (`step`, >= 0); `cur` is its weight in VPP (-1: VPP lacks the AS)."""
    # Each weight change moves some of the VIP's Maglev buckets, and every moved bucket breaks
    # the flows VPP has not pinned. So, as a PodDisruptionBudget does, a change that would move
    # more than `max-churn` of them (a reweight, a new backend, an override) is taken in steps
    # within it; the reconciler measures the table and picks each step (the engine has no
    # table and no clock), this applies it. It only holds a change back, never makes one: the
    # step is clamped between VPP's weight and `w`. Only up slots get steps: a drain (down,
    # paused, disabled, suppressed) goes through at once, whatever the budget.
    lo = cur if cur > 0 else 0
    hi = w
    if lo > hi:
        lo, hi = hi, lo
    if step < lo:
        return lo
    return hi if step > hi else step


def compute_desired(
    topology: Any, states: Any, overrides: Any, current: Any, ramp: Any, budget: Any = None
) -> Any:
    """(slot_weight 'i', slot_flush 'b', slot_reason 'b', fe_state 'b', fe_active 'i',
    fe_guard 'b', fe_guard_counts 'i'). `budget` (per slot, NO_BUDGET or a step): None, none."""
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
        member_counted,
        fe_guard_conf,
    ) = topology
    nfe = len(fe_vip)
    nslots = len(slot_as)
    weight = array("i", bytes(4 * nslots))
    flush = array("b", bytes(nslots))
    reason = array("b", bytes(nslots))
    fe_state = array("b", bytes(nfe))
    fe_active = array("i", bytes(4 * nfe))
    fe_guard = array("b", bytes(nfe))
    counts = array("i", bytes(16 * nfe))
    mark = array("i", [-1]) * nslots
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
            elif st == ST_SUPPRESSED:
                reason[s] = R_SUPPRESSED
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
                    if w > 0 and ramp[s] < PERMILLE:
                        w = _slow_start(w, ramp[s])
                        reason[s] = R_SLOW_START
                    weight[s] = w
        else:
            fe_state[f] = FE_DOWN if known else FE_UNKNOWN
            fe_active[f] = -1
        if budget is not None:
            for s in range(fe_slot_start[f], fe_slot_start[f + 1]):
                if budget[s] >= 0 and states[slot_backend[s]] == ST_UP:
                    w = _disruption_budget(weight[s], current[s], budget[s])
                    if w != weight[s]:
                        weight[s] = w
                        reason[s] = R_BUDGET
        fe_guard[f] = _mass_failure_guard(
            f, active, fe_slot_start, fe_pool_start, pool_member_start, member_slot,
            member_weight, member_counted, fe_guard_conf, slot_backend, states, overrides,
            current, weight, flush, reason, counts, mark,
        )  # fmt: skip
    return (weight, flush, reason, fe_state, fe_active, fe_guard, counts)


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
