"""The daemon's garbage-collector policy.

maglevd holds a large, long-lived heap: the config (tens of thousands of frozen backends,
members and addresses), the health state machines and the reconciler's view of VPP. CPython's
full collections walk every tracked object; with 32,000 backends one takes 100-300 ms, started
whenever the allocation counters say — often in the middle of a burst of health events, delaying
the weight changes the burst causes. Almost nothing maglev keeps forms reference cycles
(reference counting frees it), so full collections find little.

The policy:
- `settle()`, after each config is installed (start and every reload): one full collection of
  everything (the replaced config is examined once more and freed, cycles included), then
  `gc.freeze()` — what is alive now is never walked again.
- Full collections are made rare (`THRESHOLDS`: one per 1,000 middle-generation collections
  instead of 10); young collections run as usual and stay cheap.
- `tidy()`, when the reconciler is idle (its queue empty after a turn), at most every
  `TIDY_INTERVAL` seconds: a collection of what is not frozen, then a freeze again — so cycles
  that did form are still found, at a moment when nothing waits.

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

_last_tidy = 0.0


def settle() -> None:
    """Collect everything once, then exempt what is alive from future collections."""
    global _last_tidy
    t0 = time.perf_counter()
    gc.set_threshold(*THRESHOLDS)
    gc.unfreeze()
    found = gc.collect()
    gc.freeze()
    _last_tidy = time.monotonic()
    log.debug(
        "garbage collector settled: %d unreachable, %d objects frozen, %.0f ms",
        found, gc.get_freeze_count(), (time.perf_counter() - t0) * 1e3,
    )  # fmt: skip


def tidy(now: float | None = None) -> bool:
    """When idle: collect what is not frozen (if `TIDY_INTERVAL` has passed), then freeze the
    survivors. True if it ran."""
    global _last_tidy
    now = time.monotonic() if now is None else now
    if now - _last_tidy < TIDY_INTERVAL:
        return False
    _last_tidy = now
    t0 = time.perf_counter()
    found = gc.collect()
    gc.freeze()
    log.debug(
        "garbage collector tidied: %d unreachable, %.0f ms",
        found, (time.perf_counter() - t0) * 1e3,
    )  # fmt: skip
    return True
