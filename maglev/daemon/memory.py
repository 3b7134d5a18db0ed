"""The daemon's garbage-collector policy.

maglevd holds a large, long-lived heap: the config (tens of thousands of frozen backends,
members and addresses), the health state machines and the reconciler's view of VPP. CPython's
full collections walk every tracked object; with 32,000 backends one takes 100-300 ms, started
whenever the allocation counters say — often in the middle of a burst of health events, delaying
the weight changes the burst causes. Almost nothing maglev keeps forms reference cycles
(reference counting frees it), so full collections find little.

The policy:
- `settle()`, after each config is installed and its writes are done: the first time (start),
  one full collection of everything, then `gc.freeze()` — what is alive now is never walked
  again. After a reload, only what is not frozen yet is collected (the new config's objects:
  with the loader's memo, those of the changed entries) and frozen: the replaced config holds no
  cycles (reference counting frees it), so walking the whole heap again would cost 100-300 ms
  of GIL for nothing.
- Full collections are made rare (`THRESHOLDS`: one per 1,000 middle-generation collections
  instead of 10); young collections run as usual and stay cheap.
- `tidy()`, when the reconciler is idle (its queue empty after a turn), at most every
  `TIDY_INTERVAL` seconds: a collection of what is not frozen, then a freeze again — so cycles
  that did form are still found, at a moment when nothing waits; and every `FULL_INTERVAL`, a
  full one (frozen objects unfrozen first), so a cycle that was frozen and then dropped is
  freed too.

The reconciler thread calls both (it installs configs and knows when it is idle); the effect
is process-wide.
"""

from __future__ import annotations

import gc
import logging
import time

log = logging.getLogger(__name__)

THRESHOLDS = (700, 10, 1000)
TIDY_INTERVAL = 60.0
FULL_INTERVAL = 3600.0

_last_tidy = 0.0
_last_full: float | None = None  # None: no full collection yet (the first settle makes one)


def settle(full: bool | None = None) -> None:
    """Collect (everything the first time or with `full`, else what is not frozen), then
    exempt what is alive from future collections."""
    global _last_tidy, _last_full
    t0 = time.perf_counter()
    now = time.monotonic()
    gc.set_threshold(*THRESHOLDS)
    if full or (full is None and _last_full is None):
        gc.unfreeze()
        _last_full = now
    found = gc.collect()
    gc.freeze()
    _last_tidy = now
    log.debug(
        "garbage collector settled: %d unreachable, %d objects frozen, %.0f ms",
        found, gc.get_freeze_count(), (time.perf_counter() - t0) * 1e3,
    )  # fmt: skip


def tidy(now: float | None = None) -> bool:
    """When idle: collect what is not frozen (if `TIDY_INTERVAL` has passed; everything if
    `FULL_INTERVAL` has), then freeze the survivors. True if it ran."""
    global _last_tidy, _last_full
    now = time.monotonic() if now is None else now
    if now - _last_tidy < TIDY_INTERVAL:
        return False
    _last_tidy = now
    t0 = time.perf_counter()
    full = _last_full is not None and now - _last_full >= FULL_INTERVAL
    if full:
        gc.unfreeze()
        _last_full = now
    found = gc.collect()
    gc.freeze()
    log.debug(
        "garbage collector tidied%s: %d unreachable, %.0f ms",
        " (full)" if full else "", found, (time.perf_counter() - t0) * 1e3,
    )  # fmt: skip
    return True
