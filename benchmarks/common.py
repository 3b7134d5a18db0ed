"""Shared pieces of the benchmark suites: timing with warm-up and repetitions, result records.

A suite module exposes `run(smoke: bool = False) -> dict` returning a result built with
`suite_result()`; the runner (`benchmarks.runner`) prints, saves and plots it. Comparisons are
ratios measured side by side in the same run: these machines are noisy, absolute times drift.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from typing import Any, TypeVar

T = TypeVar("T")


def progress(items: Iterable[T], label: str) -> AbstractContextManager[Iterable[T]]:
    """A progress bar on stderr for long work (click's; plain label when not a terminal)."""
    import click

    seq = list(items)
    return click.progressbar(seq, label=label, file=sys.stderr, show_pos=True)  # type: ignore[return-value]


def stat(samples: list[float], unit: str) -> dict[str, Any]:
    return {
        "median": statistics.median(samples),
        "min": min(samples),
        "max": max(samples),
        "n": len(samples),
        "unit": unit,
    }


def timeit(fn: Callable[[], object], warmup: int = 1, reps: int = 5) -> list[float]:
    """Wall seconds of `reps` calls of fn after `warmup` unmeasured calls."""
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def percentile(samples: list[float], p: float) -> float:
    if not samples:
        return float("nan")
    s = sorted(samples)
    k = min(len(s) - 1, max(0, round(p / 100.0 * (len(s) - 1))))
    return s[k]


def ratio(
    value: float, target: float | None = None, higher_is_better: bool = True
) -> dict[str, Any]:
    met = None
    if target is not None:
        met = value >= target if higher_is_better else value <= target
    return {"value": value, "target": target, "higher_is_better": higher_is_better, "met": met}


def suite_result(
    suite: str,
    setup: str,
    figures: dict[str, dict[str, Any]],
    ratios: dict[str, dict[str, Any]] | None = None,
    samples: dict[str, list[float]] | None = None,
    notes: list[str] | None = None,
) -> dict[str, Any]:
    return {
        "suite": suite,
        "setup": setup,
        "figures": figures,
        "ratios": ratios or {},
        "samples": samples or {},
        "notes": notes or [],
    }


def frontend_yaml(index: int, members: str) -> list[str]:
    """Config lines of benchmark frontend f<index>: a gre4 TCP VIP in 198.18.0.0/15 (the
    benchmarking range), one pool `p` with the given backends mapping (YAML flow text)."""
    vip = ".".join(str(b) for b in (0xC6120000 + index).to_bytes(4, "big"))
    return [
        f"  f{index}:",
        f"    address: {vip}",
        "    protocol: tcp",
        "    port: 80",
        "    encap: gre4",
        f"    pools: [{{name: p, backends: {{{members}}}}}]",
    ]


def suite_main(run: Callable[..., dict[str, Any]], doc: str | None) -> None:
    """A suite module run on its own: `--smoke`, `--json`, else the runner's table."""
    parser = argparse.ArgumentParser(description=(doc or "").splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes (CI keeps it running)")
    parser.add_argument("--json", action="store_true", help="print the raw result as JSON")
    args = parser.parse_args()
    res = run(smoke=args.smoke)
    if args.json:
        print(json.dumps(res, indent=2))
        return
    from benchmarks.runner import print_result

    print_result(res)
