# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False, cdivision=True
"""Compiled diff engine: the two hot loops of a full sync as typed C loops.

Owns per-frontend desired weights from backend states (and VPP's current weights, which the
mass-failure guard may keep), and the ordered operations that turn VPP's lb tables into the
desired ones. Inputs and outputs are flat arrays of small ints (ranks instead of addresses;
shapes documented in `maglev.diff`), read through typed memoryviews, so the loops touch no
Python objects except to emit operation tuples. Pure and deterministic;
called by the reconciler thread. `_diff_py.py` is its line-for-line twin (a hypothesis test
asserts they agree).
"""

from cpython cimport array
import array as _array

# The codes are defined once, in `maglev._diff_codes`: exported as they are, and copied into
# C-level constants for the typed loops.
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
    OP_ADD_AS,
    OP_CREATE_VIP,
    OP_DELETE_AS,
    OP_DELETE_VIP,
    OP_SET_WEIGHT,
    PERCENT,
    PERMILLE,
    NO_BUDGET,
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
from maglev import _diff_codes as _codes

cdef int C_ST_UP = _codes.ST_UP
cdef int C_ST_DOWN = _codes.ST_DOWN
cdef int C_ST_PAUSED = _codes.ST_PAUSED
cdef int C_ST_DISABLED = _codes.ST_DISABLED
cdef int C_ST_SUPPRESSED = _codes.ST_SUPPRESSED
cdef int C_R_ACTIVE = _codes.R_ACTIVE
cdef int C_R_OVERRIDE = _codes.R_OVERRIDE
cdef int C_R_STANDBY = _codes.R_STANDBY
cdef int C_R_ZERO = _codes.R_ZERO
cdef int C_R_DOWN = _codes.R_DOWN
cdef int C_R_PAUSED = _codes.R_PAUSED
cdef int C_R_DISABLED = _codes.R_DISABLED
cdef int C_R_UNKNOWN = _codes.R_UNKNOWN
cdef int C_R_HELD = _codes.R_HELD
cdef int C_R_PANIC = _codes.R_PANIC
cdef int C_R_SUPPRESSED = _codes.R_SUPPRESSED
cdef int C_R_SLOW_START = _codes.R_SLOW_START
cdef int C_R_BUDGET = _codes.R_BUDGET
cdef long long C_PERMILLE = _codes.PERMILLE
cdef int C_MODE_DRAIN = _codes.MODE_DRAIN
cdef int C_MODE_PANIC = _codes.MODE_PANIC
cdef int C_GUARD_NONE = _codes.GUARD_NONE
cdef int C_GUARD_HOLD = _codes.GUARD_HOLD
cdef int C_GUARD_PANIC = _codes.GUARD_PANIC
cdef long long C_PERCENT = _codes.PERCENT
cdef int C_FE_UNKNOWN = _codes.FE_UNKNOWN
cdef int C_FE_UP = _codes.FE_UP
cdef int C_FE_DOWN = _codes.FE_DOWN
cdef int C_OP_CREATE_VIP = _codes.OP_CREATE_VIP
cdef int C_OP_ADD_AS = _codes.OP_ADD_AS
cdef int C_OP_SET_WEIGHT = _codes.OP_SET_WEIGHT
cdef int C_OP_DELETE_AS = _codes.OP_DELETE_AS
cdef int C_OP_DELETE_VIP = _codes.OP_DELETE_VIP
cdef int _TABLE_MAX = _codes.TABLE_MAX

cdef array.array _INT = _array.array("i")
cdef array.array _BYTE = _array.array("b")


def engine_name():
    return "cython"


def current_weights(topology, actual):
    """slot_current 'i': each slot's weight in VPP's table, -1 where VPP has no such AS."""
    cdef const long long[:] fe_vip = topology[0]
    cdef const int[:] fe_slot_start = topology[3]
    cdef const long long[:] slot_as = topology[4]
    cdef const long long[:] act_vip = actual[0]
    cdef const int[:] act_as_start = actual[2]
    cdef const long long[:] act_as = actual[3]
    cdef const int[:] act_weight = actual[4]
    cdef Py_ssize_t nfe = fe_vip.shape[0]
    cdef Py_ssize_t nact = act_vip.shape[0]
    cdef Py_ssize_t nslots = slot_as.shape[0]
    cdef array.array current_a = array.clone(_INT, nslots, zero=False)
    cdef int* current = current_a.data.as_ints
    cdef Py_ssize_t i = 0, j = 0, s, s1, b, b1
    for s in range(nslots):
        current[s] = -1
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
    return current_a


cdef inline int _mass_failure_guard(
    Py_ssize_t f,
    Py_ssize_t active,
    const int[:] fe_slot_start,
    const int[:] fe_pool_start,
    const int[:] pool_member_start,
    const int[:] member_slot,
    const int[:] member_weight,
    const signed char[:] member_counted,
    const int[:] fe_guard_conf,
    const int[:] slot_backend,
    const signed char[:] states,
    const int[:] overrides,
    const int[:] current,
    int* weight,
    signed char* flush,
    signed char* reason,
    int* counts,
    int* mark,
) noexcept:
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
    cdef Py_ssize_t p0 = fe_pool_start[f]
    cdef Py_ssize_t p1 = fe_pool_start[f + 1]
    cdef Py_ssize_t sp = active
    cdef Py_ssize_t p, m, s
    cdef long long members, healthy, value, threshold, need
    cdef int w, mode
    cdef bint missing
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
                if states[slot_backend[member_slot[m]]] == C_ST_UP:
                    healthy += 1
    value = fe_guard_conf[3 * f + 1]
    if fe_guard_conf[3 * f + 2]:
        threshold = (value * members + C_PERCENT - 1) // C_PERCENT
    else:
        threshold = value if value < members else members
    counts[4 * f] = <int>(sp - p0) if sp >= 0 else -1
    counts[4 * f + 1] = <int>healthy
    counts[4 * f + 2] = <int>members
    counts[4 * f + 3] = <int>threshold
    mode = fe_guard_conf[3 * f]
    if healthy >= threshold or mode == C_MODE_DRAIN:
        return C_GUARD_NONE
    if mode == C_MODE_PANIC:
        for m in range(pool_member_start[sp], pool_member_start[sp + 1]):
            s = member_slot[m]
            missing = reason[s] == C_R_DOWN or reason[s] == C_R_UNKNOWN or reason[s] == C_R_SUPPRESSED
            if member_counted[m] and missing:
                w = overrides[s]
                if w < 0:
                    w = member_weight[m]
                weight[s] = w
                flush[s] = 0
                reason[s] = C_R_PANIC
        return C_GUARD_PANIC
    # Mark the members' slots with the pool's index (unique: no frontend's marks are reset),
    # then keep the first missing ones in slot order.
    for m in range(pool_member_start[sp], pool_member_start[sp + 1]):
        if member_counted[m]:
            mark[member_slot[m]] = <int>sp
    need = threshold - healthy
    for s in range(fe_slot_start[f], fe_slot_start[f + 1]):
        if need == 0:
            break
        missing = reason[s] == C_R_DOWN or reason[s] == C_R_UNKNOWN or reason[s] == C_R_SUPPRESSED
        if mark[s] == sp and current[s] > 0 and missing:
            weight[s] = current[s]
            flush[s] = 0
            reason[s] = C_R_HELD
            need -= 1
    return C_GUARD_HOLD


cdef inline int _slow_start(long long w, long long permille) noexcept:
    """The weight a slot of weight `w` > 0 may have `permille`/1000 into its slow-start ramp."""
    # A backend that comes back (or is added to a serving frontend) at once at full weight gets
    # its whole share of new flows at once, cold caches and all: as HAProxy's slowstart and
    # Envoy's slow start mode do, it enters at a share of its weight, raised step by step (the
    # reconciler owns the clock and the steps; this is the cap). Never below 1: a ramping
    # backend serves; monotone in `permille`, and PERMILLE is the full weight.
    cdef long long c = w * permille // C_PERMILLE
    return <int>c if c > 1 else 1


cdef inline int _disruption_budget(int w, int cur, int step) noexcept:
    """The weight an up slot heading for weight `w` has in the current step of its frontend's
    disruption budget (`step`, >= 0); `cur` is its weight in VPP (-1: VPP lacks the AS)."""
    # Each weight change moves some of the VIP's Maglev buckets, and every moved bucket breaks
    # the flows VPP has not pinned. So, as a PodDisruptionBudget does, a change that would move
    # more than `max-churn` of them (a reweight, a new backend, an override) is taken in steps
    # within it; the reconciler measures the table and picks each step (the engine has no
    # table and no clock), this applies it. It only holds a change back, never makes one: the
    # step is clamped between VPP's weight and `w`. Only up slots get steps: a drain (down,
    # paused, disabled, suppressed) goes through at once, whatever the budget.
    cdef int lo = cur if cur > 0 else 0
    cdef int hi = w
    if lo > hi:
        lo, hi = hi, lo
    if step < lo:
        return lo
    return hi if step > hi else step


def compute_desired(topology, states, overrides, current, ramp, budget=None):
    """(slot_weight 'i', slot_flush 'b', slot_reason 'b', fe_state 'b', fe_active 'i',
    fe_guard 'b', fe_guard_counts 'i'). `budget` (per slot, NO_BUDGET or a step): None, none."""
    cdef const long long[:] fe_vip = topology[0]
    cdef const signed char[:] fe_flush = topology[2]
    cdef const int[:] fe_slot_start = topology[3]
    cdef const long long[:] slot_as = topology[4]
    cdef const int[:] slot_backend = topology[5]
    cdef const int[:] fe_pool_start = topology[6]
    cdef const int[:] pool_member_start = topology[7]
    cdef const int[:] member_slot = topology[8]
    cdef const int[:] member_weight = topology[9]
    cdef const signed char[:] member_counted = topology[10]
    cdef const int[:] fe_guard_conf = topology[11]
    cdef const signed char[:] st_of = states
    cdef const int[:] ovr = overrides
    cdef const int[:] cur = current
    cdef const int[:] rmp = ramp
    cdef bint has_budget = budget is not None
    cdef const int[:] bud = budget if has_budget else ramp
    cdef Py_ssize_t nfe = fe_vip.shape[0]
    cdef Py_ssize_t nslots = slot_as.shape[0]
    cdef array.array weight_a = array.clone(_INT, nslots, zero=True)
    cdef array.array flush_a = array.clone(_BYTE, nslots, zero=True)
    cdef array.array reason_a = array.clone(_BYTE, nslots, zero=True)
    cdef array.array fe_state_a = array.clone(_BYTE, nfe, zero=True)
    cdef array.array fe_active_a = array.clone(_INT, nfe, zero=True)
    cdef array.array fe_guard_a = array.clone(_BYTE, nfe, zero=True)
    cdef array.array counts_a = array.clone(_INT, 4 * nfe, zero=True)
    cdef array.array mark_a = array.clone(_INT, nslots, zero=False)
    cdef int* weight = weight_a.data.as_ints
    cdef signed char* flush = <signed char*> flush_a.data.as_schars
    cdef signed char* reason = <signed char*> reason_a.data.as_schars
    cdef signed char* fe_state = <signed char*> fe_state_a.data.as_schars
    cdef int* fe_active = fe_active_a.data.as_ints
    cdef signed char* fe_guard = <signed char*> fe_guard_a.data.as_schars
    cdef int* counts = counts_a.data.as_ints
    cdef int* mark = mark_a.data.as_ints
    cdef Py_ssize_t f, p, m, s, active
    cdef int w, st, known
    for s in range(nslots):
        mark[s] = -1
    for f in range(nfe):
        # The active pool: the first, in config order, with an up member of non-zero weight.
        active = -1
        for p in range(fe_pool_start[f], fe_pool_start[f + 1]):
            for m in range(pool_member_start[p], pool_member_start[p + 1]):
                s = member_slot[m]
                if st_of[slot_backend[s]] == C_ST_UP:
                    w = ovr[s]
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
            st = st_of[slot_backend[s]]
            if st == C_ST_UP:
                reason[s] = C_R_STANDBY if active >= 0 else C_R_ZERO
            elif st == C_ST_DOWN:
                reason[s] = C_R_DOWN
                flush[s] = fe_flush[f]
            elif st == C_ST_PAUSED:
                reason[s] = C_R_PAUSED
            elif st == C_ST_DISABLED:
                reason[s] = C_R_DISABLED
                flush[s] = 1
            elif st == C_ST_SUPPRESSED:
                reason[s] = C_R_SUPPRESSED
            else:
                reason[s] = C_R_UNKNOWN
                known = 0
        if active >= 0:
            fe_state[f] = C_FE_UP
            fe_active[f] = <int>(active - fe_pool_start[f])
            for m in range(pool_member_start[active], pool_member_start[active + 1]):
                s = member_slot[m]
                # C_R_STANDBY marks an up slot not yet given its active-pool weight (a backend
                # listed twice in one pool keeps its first entry).
                if reason[s] == C_R_STANDBY:
                    w = ovr[s]
                    if w >= 0:
                        reason[s] = C_R_OVERRIDE
                    else:
                        w = member_weight[m]
                        reason[s] = C_R_ACTIVE if w > 0 else C_R_ZERO
                    if w > 0 and rmp[s] < C_PERMILLE:
                        w = _slow_start(w, rmp[s])
                        reason[s] = C_R_SLOW_START
                    weight[s] = w
        else:
            fe_state[f] = C_FE_DOWN if known else C_FE_UNKNOWN
            fe_active[f] = -1
        if has_budget:
            for s in range(fe_slot_start[f], fe_slot_start[f + 1]):
                if bud[s] >= 0 and st_of[slot_backend[s]] == C_ST_UP:
                    w = _disruption_budget(weight[s], cur[s], bud[s])
                    if w != weight[s]:
                        weight[s] = w
                        reason[s] = C_R_BUDGET
        fe_guard[f] = _mass_failure_guard(
            f, active, fe_slot_start, fe_pool_start, pool_member_start, member_slot,
            member_weight, member_counted, fe_guard_conf, slot_backend, st_of, ovr,
            cur, weight, flush, reason, counts, mark,
        )
    return (weight_a, flush_a, reason_a, fe_state_a, fe_active_a, fe_guard_a, counts_a)


cdef inline bint _attrs_differ(const int[:] fe_attrs, Py_ssize_t f,
                               const int[:] act_attrs, Py_ssize_t j):
    cdef Py_ssize_t k
    cdef int a, b
    for k in range(3):
        if fe_attrs[4 * f + k] != act_attrs[4 * j + k]:
            return True
    a = fe_attrs[4 * f + 3]
    b = act_attrs[4 * j + 3]
    if a == 0:
        a = _TABLE_MAX
    if b == 0:
        b = _TABLE_MAX
    return a != b


cdef inline void _add_all(list ops, object vr, Py_ssize_t s0, Py_ssize_t s1,
                          const long long[:] slot_as, const int[:] weight):
    cdef Py_ssize_t s
    for s in range(s0, s1):
        ops.append((C_OP_ADD_AS, vr, slot_as[s], weight[s], 0))


cdef inline void _delete_all(list ops, object vr, Py_ssize_t b0, Py_ssize_t b1,
                             const long long[:] act_as):
    cdef Py_ssize_t b
    for b in range(b0, b1):
        ops.append((C_OP_DELETE_AS, vr, act_as[b], 0, 1))


def diff_tables(topology, desired, actual, owned, selected):
    """(ops, unmanaged): ordered op tuples, and the ranks of actual VIPs left alone."""
    cdef const long long[:] fe_vip = topology[0]
    cdef const int[:] fe_attrs = topology[1]
    cdef const int[:] fe_slot_start = topology[3]
    cdef const long long[:] slot_as = topology[4]
    cdef const int[:] weight = desired[0]
    cdef const signed char[:] flush = desired[1]
    cdef const long long[:] act_vip = actual[0]
    cdef const int[:] act_attrs = actual[1]
    cdef const int[:] act_as_start = actual[2]
    cdef const long long[:] act_as = actual[3]
    cdef const int[:] act_weight = actual[4]
    cdef const signed char[:] own = owned
    cdef const signed char[:] sel = selected
    cdef list ops = []
    cdef list dec = []
    cdef list unmanaged = []
    cdef Py_ssize_t nfe = fe_vip.shape[0]
    cdef Py_ssize_t nact = act_vip.shape[0]
    cdef Py_ssize_t i = 0, j = 0, s, s0, s1, b, b0, b1
    cdef object vr  # one int object per VIP, shared by all its op tuples
    cdef int w, old
    while i < nfe or j < nact:
        if j >= nact or (i < nfe and fe_vip[i] < act_vip[j]):
            if sel[i]:
                vr = fe_vip[i]
                ops.append((C_OP_CREATE_VIP, vr, -1, 0, 0))
                _add_all(ops, vr, fe_slot_start[i], fe_slot_start[i + 1], slot_as, weight)
            i += 1
        elif i >= nfe or act_vip[j] < fe_vip[i]:
            vr = act_vip[j]
            if own[j]:
                _delete_all(ops, vr, act_as_start[j], act_as_start[j + 1], act_as)
                ops.append((C_OP_DELETE_VIP, vr, -1, 0, 0))
            else:
                unmanaged.append(vr)
            j += 1
        elif not sel[i]:
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
                ops.append((C_OP_DELETE_VIP, vr, -1, 0, 0))
                ops.append((C_OP_CREATE_VIP, vr, -1, 0, 0))
                _add_all(ops, vr, s0, s1, slot_as, weight)
            else:
                # Merge-join of the two sorted AS lists. Adds and increases go out at once,
                # decreases and deletes after them, so a failover never empties the table.
                s = s0
                b = b0
                while s < s1 or b < b1:
                    if b >= b1 or (s < s1 and slot_as[s] < act_as[b]):
                        ops.append((C_OP_ADD_AS, vr, slot_as[s], weight[s], 0))
                        s += 1
                    elif s >= s1 or act_as[b] < slot_as[s]:
                        dec.append((C_OP_DELETE_AS, vr, act_as[b], 0, 1))
                        b += 1
                    else:
                        w = weight[s]
                        old = act_weight[b]
                        if w > old:
                            ops.append((C_OP_SET_WEIGHT, vr, slot_as[s], w, 0))
                        elif w < old:
                            dec.append((C_OP_SET_WEIGHT, vr, slot_as[s], w,
                                        flush[s] if w == 0 else 0))
                        s += 1
                        b += 1
                if dec:
                    ops.extend(dec)
                    dec = []
            i += 1
            j += 1
    return (ops, unmanaged)
