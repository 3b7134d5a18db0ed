"""Selects the diff engine: the compiled `_diff` unless MAGLEV_NO_EXTENSIONS=1.

MAGLEV_REQUIRE_EXTENSIONS=1 turns a missing compiled engine into an ImportError (CI uses it to
prove the Cython build really loaded). Both engines take and return the same plain data; most
code should go through `maglev.reconcile` (`desired` and `actual` build these shapes from the
config and from VPP's tables, `plan` turns the results into plan ops). The codes are defined
once, in `maglev._diff_codes`. Pure functions, called by the reconciler thread.

Shapes. Addresses never enter the engine: `desired` ranks every VIP and every AS address so that
rank order is the plan order (VIPs: IPv4 before IPv6, numeric address, prefix length, protocol,
port; ASes: IPv4 before IPv6, numeric address). Arrays are `array.array` with the typecode given.

`Topology` (from the config, built once per config; frontends sorted by VIP rank):
    fe_vip 'q' [F]            VIP rank of each frontend, strictly increasing
    fe_attrs 'i' [4F]         (encap code, dscp, src_ip_sticky 0/1, flow table length) per frontend
    fe_flush 'b' [F]          flush_on_down
    fe_slot_start 'i' [F+1]   frontend f owns slots fe_slot_start[f]:fe_slot_start[f+1] (its ASes)
    slot_as 'q' [S]           AS rank of the slot, strictly increasing within a frontend
    slot_backend 'i' [S]      backend index of the slot (into the states array)
    fe_pool_start 'i' [F+1]   frontend f owns pools fe_pool_start[f]:fe_pool_start[f+1], in order
    pool_member_start 'i' [P+1]
    member_slot 'i' [M]       slot of each pool member
    member_weight 'i' [M]     configured weight of each pool member
    member_counted 'b' [M]    1 when the entry counts for the mass-failure guard (its pool's first
                              entry of the backend, configured weight > 0)
    fe_guard_conf 'i' [3F]    (MODE_*, min-healthy, 1 when min-healthy is in hundredths of a
                              percent (PERCENT = 100%) rather than a count) per frontend
`states` 'b' [B]: state code per backend index (ST_*). `overrides` 'i' [S]: weight or -1.
`current` 'i' [S] (current_weights): each slot's weight in VPP now, -1 where VPP lacks the AS.
`ramp` 'i' [S]: each slot's slow-start ramp, the per mille of its weight it may have (PERMILLE:
    no ramp); an up slot of the active pool with weight w > 0 gets max(1, w * ramp // PERMILLE)
    and R_SLOW_START when ramp < PERMILLE.
`budget` 'i' [S] (optional): each slot's disruption-budget step, NO_BUDGET (-1) where none; an
    up slot with a step gets it, clamped between its weight in VPP (`current`, 0 when absent)
    and its desired weight, and R_BUDGET when that differs from the desired weight.
`Desired` (compute_desired): slot_weight 'i' [S], slot_flush 'b' [S] (flush when taken to 0),
    slot_reason 'b' [S] (R_*), fe_state 'b' [F] (FE_*), fe_active 'i' [F] (pool index or -1),
    fe_guard 'b' [F] (GUARD_*), fe_guard_counts 'i' [4F] (the pool the guard judged (index in
    the frontend, or -1), its healthy members, its members, the threshold) per frontend.
`Actual` (from VPP dumps, live ASes only; VIPs sorted by rank):
    act_vip 'q' [V], act_attrs 'i' [4V], act_as_start 'i' [V+1], act_as 'q' [A] (increasing
    within a VIP), act_weight 'i' [A].
`owned` 'b' [V]: 1 when an actual VIP that the config does not name may be deleted.
`selected` 'b' [F]: 1 for the frontends this pass handles; the VIPs of the others are left
    alone (not created, not compared, not reported unmanaged).
`diff_tables` returns (ops, unmanaged): ops is a list of (OP_*, vip_rank, as_rank (-1 for VIP
ops), weight, flush 0/1) in apply order; unmanaged lists the VIP ranks left alone.
"""

from __future__ import annotations

import os
from array import array
from types import ModuleType
from typing import NamedTuple

if os.environ.get("MAGLEV_NO_EXTENSIONS", "") in ("1", "true", "yes"):
    from maglev import _diff_py as _engine

    IMPLEMENTATION = "python"
else:
    try:
        from maglev import _diff as _engine  # type: ignore[attr-defined,no-redef,unused-ignore]

        IMPLEMENTATION = "cython"
    except ImportError:
        if os.environ.get("MAGLEV_REQUIRE_EXTENSIONS", "") in ("1", "true", "yes"):
            raise
        from maglev import _diff_py as _engine

        IMPLEMENTATION = "python"

engine_name = _engine.engine_name

# The codes are defined once, in `maglev._diff_codes`, and read by both engines.
from maglev._diff_codes import (  # noqa: E402
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

OpTuple = tuple[int, int, int, int, int]


class Topology(NamedTuple):
    fe_vip: array[int]
    fe_attrs: array[int]
    fe_flush: array[int]
    fe_slot_start: array[int]
    slot_as: array[int]
    slot_backend: array[int]
    fe_pool_start: array[int]
    pool_member_start: array[int]
    member_slot: array[int]
    member_weight: array[int]
    member_counted: array[int]
    fe_guard_conf: array[int]


class Desired(NamedTuple):
    slot_weight: array[int]
    slot_flush: array[int]
    slot_reason: array[int]
    fe_state: array[int]
    fe_active: array[int]
    fe_guard: array[int]
    fe_guard_counts: array[int]


class Actual(NamedTuple):
    act_vip: array[int]
    act_attrs: array[int]
    act_as_start: array[int]
    act_as: array[int]
    act_weight: array[int]


def current_weights(
    topology: Topology, actual: Actual, engine: ModuleType | None = None
) -> array[int]:
    """Each slot's weight in `actual` (VPP's tables), -1 where VPP has no such AS."""
    e = _engine if engine is None else engine
    current: array[int] = e.current_weights(topology, actual)
    return current


def compute_desired(
    topology: Topology,
    states: array[int],
    overrides: array[int],
    current: array[int],
    engine: ModuleType | None = None,
    ramp: array[int] | None = None,
    budget: array[int] | None = None,
) -> Desired:
    """Per-slot weights, flush flags and reasons; per-frontend state, active pool and guard.

    `current` (from `current_weights`) is what VPP has now: the mass-failure guard may keep a
    weight VPP has. `engine` picks a twin explicitly (tests run both); default: the selected one.
    `ramp` (per slot, per mille; None: no slot ramps) caps the weights of slow-starting slots.
    `budget` (per slot, a disruption-budget step or NO_BUDGET; None: no step) holds up slots
    between their weight in VPP and their desired weight.
    """
    e = _engine if engine is None else engine
    if ramp is None:
        ramp = array("i", [PERMILLE]) * len(topology.slot_as)
    return Desired._make(e.compute_desired(topology, states, overrides, current, ramp, budget))


def diff_tables(
    topology: Topology,
    desired: Desired,
    actual: Actual,
    owned: array[int],
    selected: array[int],
    engine: ModuleType | None = None,
) -> tuple[list[OpTuple], list[int]]:
    """(ops, unmanaged VIP ranks) turning `actual` into `desired`, in apply order."""
    e = _engine if engine is None else engine
    ops, unmanaged = e.diff_tables(topology, desired, actual, owned, selected)
    return ops, unmanaged


__all__ = [
    "FE_DOWN",
    "FE_UNKNOWN",
    "FE_UP",
    "GUARD_HOLD",
    "GUARD_NONE",
    "GUARD_PANIC",
    "IMPLEMENTATION",
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
    "Actual",
    "Desired",
    "Topology",
    "compute_desired",
    "current_weights",
    "diff_tables",
    "engine_name",
]
