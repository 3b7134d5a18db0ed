"""Maglev table benchmark: the compiled table engine and its pure-Python twin, side by side.

Three workloads, each timed on both twins in interleaved repetitions on identical inputs:
- a full table (`maglev_table`: the owner fill and the bucket -> address list) of 65,536 buckets
  over 256 ASes with random weights 1..100 (the planner's large case), and of VPP's default
  1,024 buckets over 32 ASes (what the emulator computes per VIP);
- the owner fill alone (`owner_table`) at the large size, for scale;
- churn (`churn`: both full tables and the bucket-by-bucket comparison) at the large size, for a
  typical change: a tenth of the ASes reweighted and one removed.
Reported per workload: ms per table (or per churn) and tables/s for each twin, and the
compiled/twin ratio of the medians; plus the compiled large table against its 10 ms target.

`python -m benchmarks.table [--smoke]`, or through `maglev-bench table`.
"""

from __future__ import annotations

import gc
import importlib
import ipaddress
import random
import time
from collections.abc import Callable
from types import ModuleType
from typing import Any

from benchmarks.common import ratio, stat, suite_main, suite_result
from maglev import _table_py
from maglev.table import Churn, churn, ip46, maglev_table, owner_table

TARGET_MS = 10.0  # the compiled large table, README's claim
LARGE = (65536, 256)
SMALL = (1024, 32)

Pairs = list[tuple[bytes, int]]


def build_case(n_as: int, seed: int = 1) -> tuple[Pairs, Pairs]:
    """`n_as` distinct IPv4 ASes with weights 1..100, and the same pool after a typical change
    (a tenth of them reweighted, one removed)."""
    rnd = random.Random(seed)
    hosts = rnd.sample(range(1, 1 << 20), n_as)
    old = [(ip46(ipaddress.IPv4Address((10 << 24) + h)), rnd.randint(1, 100)) for h in hosts]
    new = [(a, rnd.randint(1, 100) if rnd.random() < 0.1 else w) for a, w in old]
    gone = rnd.randrange(n_as)
    new[gone] = (new[gone][0], 0)
    return old, new


def _interleaved(
    fns: dict[str, Callable[[], object]], warmup: int, reps: int
) -> dict[str, list[float]]:
    """Wall seconds per call of each fn, the fns taking turns so that all see the same machine
    load (the collector paused, as `benchmarks.common.timeit` does)."""
    samples: dict[str, list[float]] = {name: [] for name in fns}
    gc_was_on = gc.isenabled()
    gc.disable()
    try:
        for rep in range(warmup + reps):
            for name, fn in fns.items():
                t0 = time.perf_counter()
                fn()
                if rep >= warmup:
                    samples[name].append(time.perf_counter() - t0)
    finally:
        if gc_was_on:
            gc.enable()
    return samples


def run(smoke: bool = False) -> dict[str, Any]:
    large, small = ((1024, 16), (256, 8)) if smoke else (LARGE, SMALL)
    warmup, reps = (1, 3) if smoke else (2, 9)
    engines: dict[str, ModuleType] = {"python": _table_py}
    notes: list[str] = []
    try:
        engines["cython"] = importlib.import_module("maglev._table")
    except ImportError:
        notes.append("compiled engine maglev._table is absent: no ratio")

    big_old, big_new = build_case(large[1])
    small_old, _ = build_case(small[1], seed=2)
    keys = sorted(a for a, _ in big_old)
    weights = [dict(big_old)[k] for k in keys]
    workloads: dict[str, tuple[str, Callable[[ModuleType], object]]] = {
        "table": (
            f"table {large[0]:,} x {large[1]}",
            lambda e: maglev_table(big_old, large[0], e),
        ),
        "small": (
            f"table {small[0]:,} x {small[1]}",
            lambda e: maglev_table(small_old, small[0], e),
        ),
        "owners": (
            f"owner fill {large[0]:,} x {large[1]}",
            lambda e: owner_table(keys, weights, large[0], e),
        ),
        "churn": (
            f"churn {large[0]:,} x {large[1]}",
            lambda e: churn(big_old, big_new, large[0], e),
        ),
    }
    # The twins must agree on what is timed, or the ratio compares different work.
    for label, fn in workloads.values():
        results = [fn(e) for e in engines.values()]
        if any(r != results[0] for r in results):
            raise AssertionError(f"the twins disagree on {label}")
        c = results[0]
        if isinstance(c, Churn):
            notes.append(f"{label}: the change moves {c.moved:,} buckets ({c.share:.1%})")

    figures: dict[str, dict[str, Any]] = {}
    ratios: dict[str, dict[str, Any]] = {}
    all_samples: dict[str, list[float]] = {}
    for key, (label, fn) in workloads.items():
        fns = {name: (lambda e=e, fn=fn: fn(e)) for name, e in engines.items()}
        samples = _interleaved(fns, warmup, reps)
        for name, s in samples.items():
            figures[f"{label}, {name}"] = stat(s, "s")
            unit = "churns/s" if key == "churn" else "tables/s"
            figures[f"{label}, {name}, rate"] = stat([1 / max(x, 1e-12) for x in s], unit)
            all_samples[f"{key}_{name}"] = s
        if "cython" in engines:
            py = figures[f"{label}, python"]["median"]
            cy = figures[f"{label}, cython"]["median"]
            ratios[f"cython/python {label}"] = ratio(py / max(cy, 1e-12))
    if "cython" in engines:
        ms = figures[f"{workloads['table'][0]}, cython"]["median"] * 1e3
        ratios[f"cython {workloads['table'][0]} ms"] = ratio(
            ms, None if smoke else TARGET_MS, higher_is_better=False
        )
    notes.append(
        f"ASes with random weights 1..100; churn: a tenth reweighted and one removed; "
        f"{reps} interleaved repetitions after {warmup} warm-up"
    )
    return suite_result(
        "table",
        f"Maglev table {large[0]:,} x {large[1]} and {small[0]:,} x {small[1]}, and churn",
        figures,
        ratios,
        all_samples,
        notes,
    )


def main() -> None:
    suite_main(run, __doc__)


if __name__ == "__main__":
    main()
