"""The diff engine's codes, defined once: read by `_diff.pyx`, its twin `_diff_py` and `diff`.

The compiled engine copies each into a C-level constant when it is imported, so its typed loops
compare plain ints; the twin and every other reader use these names directly.
"""

from __future__ import annotations

# Backend state codes (input).
ST_UNKNOWN = 0
ST_UP = 1
ST_DOWN = 2
ST_PAUSED = 3
ST_DISABLED = 4
ST_SUPPRESSED = 5  # passing its checks, held out by flap damping (not flushed)

# Why a backend has its weight (output, per slot).
R_ACTIVE = 0  # up, member of the active pool, configured weight
R_OVERRIDE = 1  # up, member of the active pool, operator override (may be 0)
R_STANDBY = 2  # up, but its pools are not the active one
R_ZERO = 3  # up, effective weight 0 (no pool can serve)
R_DOWN = 4
R_PAUSED = 5
R_DISABLED = 6
R_UNKNOWN = 7
R_HELD = 8  # not up, kept at its weight in VPP by the mass-failure guard (fail-static)
R_PANIC = 9  # not up, served at its weight by the mass-failure guard (panic)
R_SUPPRESSED = 10  # passing, held out by flap damping: weight 0, never flushed
R_SLOW_START = 11  # up, active pool, weight capped by its slow-start ramp
R_BUDGET = 12  # up, weight held at a step of its frontend's disruption budget

# Frontend aggregate state codes (output).
FE_UNKNOWN = 0
FE_UP = 1
FE_DOWN = 2

# What a frontend does when too few of its serving pool's members are healthy (input).
MODE_DRAIN = 0  # nothing: each backend is decided on its own
MODE_FAIL_STATIC = 1  # keep enough missing members at their weight in VPP
MODE_PANIC = 2  # serve every member at its weight, whatever its health

# The mass-failure guard of a frontend (output).
GUARD_NONE = 0
GUARD_HOLD = 1  # fail-static: health may not take the pool below its threshold
GUARD_PANIC = 2
PERCENT = 10000  # a min-healthy percentage is given in hundredths of a percent: 100% = PERCENT

# A slot's slow-start ramp (input, per slot): the share of its weight it may have, per mille.
PERMILLE = 1000  # no ramp: the full weight

# A slot's disruption-budget step (input, per slot): the weight it may have in this step.
NO_BUDGET = -1  # no step: the slot goes to its weight at once

# Operation codes (output): (op, vip_rank, as_rank, weight, flush).
OP_CREATE_VIP = 1
OP_ADD_AS = 2
OP_SET_WEIGHT = 3
OP_DELETE_AS = 4
OP_DELETE_VIP = 5

TABLE_MAX = 65536  # VPP dumps the flow table length as u16: 0 means 65536
