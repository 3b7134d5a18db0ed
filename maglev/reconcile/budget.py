"""The disruption budget: a large weight change is taken in steps that each move few buckets.

A frontend with `max-churn` (a share of its flow table) and `churn-interval`: when the weights
the engine decides (from config, overrides and health) would move more than `max-churn` of the
VIP's Maglev buckets away from what VPP has, the change is planned as a deterministic sequence
of steps (`plan_steps`: pure, measured on the Maglev table with `maglev.table.churn`, planned a
few at a time), each within the budget, the last exactly the target; step 1 goes out at once,
each further one `churn-interval` after the previous. The engine applies a step per slot (`maglev.diff`,
`_disruption_budget`), and only to up backends: a drain (health going down, a pause, a disable,
flap damping) goes through at once, mid-sequence too, and the next step is re-planned from
there. The same config and the same view of VPP give the same steps on every node.

A newer change (a reload, an override, a health change, another budgeted change) re-plans from
where VPP is now, keeping the pace: its first step comes when the next one was due. A reload
that leaves a frontend's target unchanged keeps the sequence going.

`Budgets` is owned and called by the reconciler thread, on its injected clock; it tells it when
the next step is due so it sleeps until then.
"""

from __future__ import annotations

import logging
from array import array
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any

from maglev import diff
from maglev.model import Config, Frontend, IPAddress
from maglev.reconcile.desired import Layout
from maglev.table import churn, ip46

__all__ = ["Budgets", "Progress", "Steps", "plan_steps"]

log = logging.getLogger(__name__)

# Reasons of up slots (the engine gives steps to these only); other slots change at once.
_STEPPED = frozenset(
    (diff.R_ACTIVE, diff.R_OVERRIDE, diff.R_STANDBY, diff.R_ZERO, diff.R_SLOW_START)
)
# Steps planned at once: planning measures the table several times per step, and a re-plan
# during a drain must not hold up the drain's write.
PLAN_AHEAD = 8


def plan_ahead(m: int) -> int:
    """Steps planned at once for a table of m buckets: fewer for large tables."""
    return max(1, min(PLAN_AHEAD, PLAN_AHEAD * 4096 // max(m, 1)))


_EPS = 1e-9  # a share given as 10% is 0.1 in float: 102.4 buckets of 1024 allow 102


@dataclass(frozen=True, slots=True)
class Steps:
    """A planned sequence: weights[0] is where it starts, weights[-1] the target."""

    weights: tuple[tuple[int, ...], ...]  # per step, per backend (in address order)
    moved: tuple[int, ...]  # buckets moved by each step (moved[0] = 0)
    indivisible: tuple[bool, ...]  # a single-unit step over the budget, taken alone
    complete: bool = True  # weights[-1] is the target (else: planned so far)

    @property
    def count(self) -> int:
        return len(self.weights) - 1

    def then(self, more: Steps) -> Steps:
        """These steps followed by `more` (planned from this one's last)."""
        return Steps(
            self.weights + more.weights[1:],
            self.moved + more.moved[1:],
            self.indivisible + more.indivisible[1:],
            more.complete,
        )


def limit_of(max_churn: float, m: int) -> int:
    """The most buckets one step may move (at least 0)."""
    return max(0, int(max_churn * m + _EPS))


def plan_steps(
    addresses: Sequence[IPAddress],
    start: Sequence[int],
    target: Sequence[int],
    m: int,
    max_churn: float,
    most: int | None = None,
) -> Steps:
    """The steps from weights `start` to `target` (per address) in a table of size m, each
    moving at most `max_churn` of the buckets, except an indivisible one (below); with `most`,
    only the first `most` of them (`complete` says whether they reach the target).

    Each step goes as far along the straight line from the current weights to the target as the
    budget allows (the largest k of D, D the largest remaining difference, with every weight
    moved by floor(its difference * k / D), found by bisection and then measured). When even
    k = 1 moves too much, the step moves one weight unit on the one backend that moves the
    fewest buckets (the first in address order on a tie). Weights are integers, so a step cannot
    be smaller than that: when it still moves more than the budget (e.g. a backend joining two
    others of weight 1 takes a third of the table), it is the *indivisible* case and that step is
    taken alone, over the budget, and flagged. Pure and deterministic; every step moves at least
    one weight unit, so there are at most sum(|target - start|) steps. Each step depends only on
    the weights before it and the target, so planning in pieces gives the same steps.
    """
    limit = limit_of(max_churn, m)
    keys = [ip46(a) for a in addresses]  # the table's own form: IPv4 and IPv6 alike
    cur = tuple(start)
    goal = tuple(target)
    weights = [cur]
    moved = [0]
    indivisible = [False]

    def cost(new: tuple[int, ...]) -> int:
        return churn(zip(keys, cur, strict=True), zip(keys, new, strict=True), m).moved

    while cur != goal and (most is None or len(weights) <= most):
        diffs = [t - c for c, t in zip(cur, goal, strict=True)]
        span = max(abs(d) for d in diffs)

        def along(
            k: int, at: tuple[int, ...] = cur, diffs: list[int] = diffs, span: int = span
        ) -> tuple[int, ...]:
            return tuple(
                c + (d * k // span if d >= 0 else -(-d * k // span))
                for c, d in zip(at, diffs, strict=True)
            )

        step: tuple[int, ...] | None = None
        n = cost(goal)
        if n <= limit:
            step = goal
        else:
            lo, hi = 0, span  # along(lo) fits (nothing moves), along(hi) = goal does not
            fit = 0
            while hi - lo > 1:
                mid = (lo + hi) // 2
                c = cost(along(mid))
                if c <= limit:
                    lo, fit = mid, c
                else:
                    hi = mid
            if lo > 0:
                step, n = along(lo), fit
        over = False
        if step is None:
            best: tuple[int, tuple[int, ...]] | None = None
            for i, d in enumerate(diffs):
                if d == 0:
                    continue
                cand = (*cur[:i], cur[i] + (1 if d > 0 else -1), *cur[i + 1 :])
                c = cost(cand)
                if best is None or c < best[0]:
                    best = (c, cand)
            assert best is not None  # cur != goal: some weight differs
            n, step = best
            over = n > limit
        weights.append(step)
        moved.append(n)
        indivisible.append(over)
        cur = step
    return Steps(tuple(weights), tuple(moved), tuple(indivisible), cur == goal)


@dataclass(slots=True)
class Progress:
    """A frontend's sequence in progress (mutable: the reconciler thread's)."""

    names: tuple[str, ...]  # its backends in address order
    addresses: tuple[IPAddress, ...]
    m: int
    max_churn: float
    interval: float
    target: tuple[int, ...]
    steps: Steps  # planned so far (PLAN_AHEAD at a time)
    index: int  # the step VPP is given now (0: held where it started, until `due`)
    due: float  # when the next step goes out

    @property
    def done(self) -> bool:
        return self.steps.complete and self.index >= self.steps.count

    @property
    def progress(self) -> str:
        """`2/5`, or `2/8+` while the steps beyond the eighth are not planned yet."""
        return f"{self.index}/{self.steps.count}{'' if self.steps.complete else '+'}"

    def advance(self) -> None:
        """To the next step, planning more first when the plan ends here."""
        if self.index >= self.steps.count and not self.steps.complete:
            more = plan_steps(
                self.addresses, self.steps.weights[-1], self.target, self.m, self.max_churn,
                plan_ahead(self.m),
            )  # fmt: skip
            self.steps = self.steps.then(more)
        if self.index < self.steps.count:
            self.index += 1

    def doc(self, wall_offset: float) -> dict[str, Any]:
        """The API's `budget` of a frontend (`next_step`: wall clock)."""
        k = self.index
        return {
            "step": k,
            "steps": self.steps.count if self.steps.complete else None,  # None: not known yet
            "progress": self.progress,
            "max_churn": self.max_churn,
            "share": self.steps.moved[k] / self.m if self.m else 0.0,
            "indivisible": self.steps.indivisible[k],
            "weights": dict(zip(self.names, self.steps.weights[k], strict=True)),
            "target": dict(zip(self.names, self.target, strict=True)),
            "next_step": self.due + wall_offset,
        }


class Budgets:
    """The sequences in progress per frontend. Owned by the reconciler thread."""

    def __init__(self, publish: Callable[[dict[str, Any]], None]) -> None:
        self.publish = publish
        self.active: dict[str, Progress] = {}
        # When a frontend's last sequence would have taken its next step: a new held change
        # starts no earlier, so the interval paces held changes back to back too.
        self.paced: dict[str, float] = {}

    # --- deciding a pass's steps ------------------------------------------------------------

    def configured(self, config: Config) -> bool:
        """Whether a pass needs `decide` (a budget configured, or a sequence to end)."""
        return bool(self.active) or any(
            fe.max_churn is not None for fe in config.frontends.values()
        )

    def decide(
        self,
        layout: Layout,
        desired: diff.Desired,
        current: array[int],
        names: Collection[str],
        now: float,
    ) -> array[int] | None:
        """The engine's per-slot budget input for a pass over `names` (None: no step held),
        given the engine's desired weights without the budget and VPP's current weights."""
        out: array[int] | None = None
        for name in sorted(names):
            fe = layout.config.frontends.get(name)
            if fe is None or fe.max_churn is None:
                self._end(name, "removed")
                continue
            f = layout.frontend_index[name]
            s0 = layout.topology.fe_slot_start[f]
            s1 = layout.topology.fe_slot_start[f + 1]
            step = self._frontend(fe, layout, desired, current, s0, s1, now)
            if step is None:
                continue
            if out is None:
                out = array("i", [diff.NO_BUDGET]) * len(layout.topology.slot_as)
            out[s0:s1] = array("i", step)
        for name in [n for n in self.active if n not in layout.config.frontends]:
            self._end(name, "removed")
        self.paced = {n: t for n, t in self.paced.items() if t > now}
        return out

    def _frontend(
        self,
        fe: Frontend,
        layout: Layout,
        desired: diff.Desired,
        current: array[int],
        s0: int,
        s1: int,
        now: float,
    ) -> tuple[int, ...] | None:
        assert fe.max_churn is not None
        names = layout.slot_backend_name[s0:s1]
        target = tuple(desired.slot_weight[s0:s1])
        # Where VPP will be once what is never held has gone through: drains (and the guard's
        # holds) at their desired weight, up backends at their weight in VPP.
        base = tuple(
            max(current[s], 0) if desired.slot_reason[s] in _STEPPED else desired.slot_weight[s]
            for s in range(s0, s1)
        )
        m = fe.flow_table_length
        p = self.active.get(fe.name)
        if (
            p is not None
            and p.names == names
            and p.target == target
            and (p.m, p.max_churn, p.interval) == (m, fe.max_churn, fe.churn_interval)
            and base in p.steps.weights[max(0, p.index - 1) : p.index + 1]
        ):
            return p.steps.weights[p.index]  # on course: VPP is at this step or the one before
        if base == target or not any(base):
            # Nothing to hold back, or nothing serves: no flow to protect (a first programming,
            # or every backend drained), and holding the change would only prolong the outage.
            self._end(fe.name, "done")
            return None
        addresses = layout.slot_address[s0:s1]
        if p is not None and p.due > now:
            # A newer change mid-sequence keeps the pace: VPP stays where it is until the next
            # step was due (two steps never go out within one interval), and the new steps are
            # planned then, so a drain's pass does no planning.
            steps = Steps((base,), (0,), (False,), complete=False)
            index, due, what = 0, p.due, "replanned"
        else:
            steps = plan_steps(addresses, base, target, m, fe.max_churn, plan_ahead(m))
            if steps.complete and steps.count <= 1 and not steps.indivisible[-1]:
                self._end(fe.name, "done")
                return None  # within the budget: at once
            # (A single indivisible step still goes through the log and the events below.)
            index, due = 1, now + fe.churn_interval
            what = "start" if p is None else "replanned"
            if p is None and self.paced.get(fe.name, now) > now:
                index, due = 0, self.paced[fe.name]  # right after a sequence: its pace
        p = Progress(
            names, addresses, m, fe.max_churn, fe.churn_interval, target, steps, index, due
        )
        self.active[fe.name] = p
        self._said(fe.name, p, what)
        return steps.weights[index]

    # --- the clock --------------------------------------------------------------------------

    def tick(self, now: float) -> set[str]:
        """Advance every sequence whose next step is due; the frontends that need a pass."""
        changed: set[str] = set()
        for name, p in list(self.active.items()):
            if not p.done and now >= p.due:
                p.advance()
                p.due = now + p.interval
                changed.add(name)
                self._said(name, p, "step")
        return changed

    def next_at(self) -> float | None:
        """When the next step of any sequence is due (None: none in progress)."""
        times = [p.due for p in self.active.values() if not p.done]
        return min(times) if times else None

    # --- telling ----------------------------------------------------------------------------

    def _said(self, name: str, p: Progress, what: str) -> None:
        k = p.index
        share = 100.0 * p.steps.moved[k] / p.m if p.m else 0.0
        if k == 0:
            log.warning(
                "%s: change held by max-churn %g%%: planned from where VPP is, its next step "
                "once the last step's interval is over", name, 100 * p.max_churn,
            )  # fmt: skip
        elif not p.done:
            log.warning(
                "%s: change held by max-churn %g%%: step %s, %.1f%% of buckets",
                name, 100 * p.max_churn, p.progress, share,
            )  # fmt: skip
        else:
            log.info(
                "%s: budgeted change done: step %s, %.1f%% of buckets", name, p.progress, share
            )
        if p.steps.indivisible[k]:
            log.warning(
                "%s: step %s moves %.1f%% of buckets, over max-churn %g%%: one weight unit on "
                "one backend is the smallest step there is, so it is taken alone",
                name, p.progress, share, 100 * p.max_churn,
            )  # fmt: skip
        done = p.done
        self._event(name, p, "done" if done else what)
        if done:
            del self.active[name]
            self.paced[name] = p.due

    def _end(self, name: str, why: str) -> None:
        p = self.active.pop(name, None)
        if p is None:
            return
        self.paced[name] = p.due
        log.info("%s: budgeted change %s at step %s", name, why, p.progress)
        self._event(name, p, why)

    def _event(self, name: str, p: Progress, what: str) -> None:
        k = p.index
        self.publish(
            {
                "type": "budget",
                "event": what,  # start, step, replanned, done, removed
                "frontend": name,
                "step": k,
                "steps": p.steps.count if p.steps.complete else None,  # None: not known yet
                "progress": p.progress,
                "max_churn": p.max_churn,
                "moved": p.steps.moved[k],
                "share": p.steps.moved[k] / p.m if p.m else 0.0,
                "indivisible": p.steps.indivisible[k],
            }
        )

    def docs(self, wall_offset: float) -> dict[str, dict[str, Any]]:
        return {name: p.doc(wall_offset) for name, p in self.active.items()}
