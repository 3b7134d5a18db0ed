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

# Why a backend has its weight (output, per slot).
R_ACTIVE = 0  # up, member of the active pool, configured weight
R_OVERRIDE = 1  # up, member of the active pool, operator override (may be 0)
R_STANDBY = 2  # up, but its pools are not the active one
R_ZERO = 3  # up, effective weight 0 (no pool can serve)
R_DOWN = 4
R_PAUSED = 5
R_DISABLED = 6
R_UNKNOWN = 7

# Frontend aggregate state codes (output).
FE_UNKNOWN = 0
FE_UP = 1
FE_DOWN = 2

# Operation codes (output): (op, vip_rank, as_rank, weight, flush).
OP_CREATE_VIP = 1
OP_ADD_AS = 2
OP_SET_WEIGHT = 3
OP_DELETE_AS = 4
OP_DELETE_VIP = 5

TABLE_MAX = 65536  # VPP dumps the flow table length as u16: 0 means 65536
