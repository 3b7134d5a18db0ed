"""Churn benchmark: the preview of a big candidate config, plan and bucket churn.

Setup (in this process, no daemon): the reload suite's configs, 2,000 frontends x 20 backends
(40,000 backends without a healthcheck, so all up), and VPP's view as maglev would have
programmed the running one. The candidate is the reload suite's changing file: 10% of the
frontends reweighted (100 -> 60) and 1% more frontends. Measured, as `config check` runs it on
the reconciler thread:
- *plan*: `plan.preview` (engine + diff of the whole candidate against the view);
- *churn*: `churn.plan_churn` of that plan, and of it the time inside `maglev.table.churn` (two
  full tables per frontend whose weights change: the only per-frontend table work);
- *preview*: plan + churn, what `config check` adds up to (target < 1 s).

`python -m benchmarks.churn [--smoke]`, or through `maglev-bench churn`.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from benchmarks.common import ratio, stat, suite_result
from benchmarks.reload import config_text
from maglev import table
from maglev.config import load_text
from maglev.model import BackendState
from maglev.reconcile import churn
from maglev.reconcile.plan import preview
from maglev.vpp.lb import Actual
from maglev.vpp.ops import record


def run(smoke: bool = False) -> dict[str, Any]:
    frontends = 40 if smoke else 2000
    reps = 1 if smoke else 3
    running = load_text(config_text("/nonexistent", "/nonexistent.ctl", frontends))
    candidate = load_text(
        config_text(
            "/nonexistent", "/nonexistent.ctl", frontends, frontends // 10, frontends // 100
        )
    )
    states = dict.fromkeys(running.backends, BackendState.UP)
    actual: Actual = {}
    record(actual, preview(running, running, states, {}, {}, set()).ops)

    spent = [0.0]
    real_churn = churn.churn

    def timed_churn(*args: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return real_churn(*args)
        finally:
            spent[0] += time.perf_counter() - t0

    plans, churns, tables, totals = [], [], [], []
    report = churn.ChurnReport()
    n_ops = 0
    churn.churn = timed_churn  # type: ignore[assignment]
    try:
        for _ in range(reps):
            spent[0] = 0.0
            t0 = time.perf_counter()
            plan = preview(running, candidate, states, {}, actual, set())
            t1 = time.perf_counter()
            report = churn.plan_churn(plan, actual, churn.FrontendIndex(candidate, running))
            t2 = time.perf_counter()
            plans.append(t1 - t0)
            churns.append(t2 - t1)
            tables.append(spent[0])
            totals.append(t2 - t0)
            n_ops = len(plan.ops)
    finally:
        churn.churn = real_churn  # type: ignore[assignment]
    computed = len(report.frontends)
    rest = [c - t for c, t in zip(churns, tables, strict=True)]
    figures = {
        "preview (plan + churn)": stat(totals, "s"),
        "plan (engine + diff)": stat(plans, "s"),
        "churn": stat(churns, "s"),
        "churn: table work (maglev.table.churn)": stat(tables, "s"),
        "churn: everything but the tables": stat(rest, "s"),
        "table work per frontend whose weights change": stat(
            [t / max(computed, 1) for t in tables], "s"
        ),
    }
    notes = [
        f"{frontends} frontends x 20 backends; candidate: {frontends // 10} reweighted, "
        f"{frontends // 100} added; plan of {n_ops} ops; {computed} frontends' tables computed; "
        f"{report.summary()}; table engine: {getattr(table, 'IMPLEMENTATION', 'python')}",
    ]
    return suite_result(
        "churn",
        f"{frontends} frontends x 20 backends, candidate config preview",
        figures,
        {"churn_preview_under_1s": ratio(min(totals), 1.0, higher_is_better=False)},
        {"preview": totals},
        notes,
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--smoke", action="store_true")
    args = ap.parse_args()
    print(json.dumps(run(smoke=args.smoke), indent=2, default=str))


if __name__ == "__main__":
    main()
