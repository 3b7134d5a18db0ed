"""Why each backend of a frontend has its weight: the chain of rules, read from a snapshot.

`explain` walks the rules in the engine's order for each (frontend, backend): configured weight
-> pool selection -> health (last probe, last transitions) -> vantage guard -> operator state and
overrides -> flap damping -> slow start -> mass-failure guard, each step giving the weight after
it and why, and ends at the effective weight the engine computed (its reason code says which rule
made it). The steps are rebuilt from the snapshot's inputs; the last one is the engine's answer,
and a step that disagrees with it would be a bug (the tests assert they never do).
Pure; any thread may call it on a published (immutable) `Snapshot`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from maglev import diff
from maglev.model import BackendState, Frontend, Reason
from maglev.reconcile.plan import BackendView, FrontendView
from maglev.reconcile.slowstart import permille, ramp_weight
from maglev.reconcile.snapshot import Snapshot

# The rule that gave a backend its weight, by the engine's reason code.
RULE_OF_REASON = {
    diff.R_ACTIVE: "pool",
    diff.R_STANDBY: "pool",
    diff.R_ZERO: "pool",
    diff.R_OVERRIDE: "override",
    diff.R_DOWN: "health",
    diff.R_UNKNOWN: "health",
    diff.R_PAUSED: "operator",
    diff.R_DISABLED: "operator",
    diff.R_HELD: "mass-failure",
    diff.R_PANIC: "mass-failure",
    diff.R_SUPPRESSED: "damping",
    diff.R_SLOW_START: "slow-start",
    diff.R_BUDGET: "budget",
}
HISTORY = 3  # transitions shown in the health step


def rule_of(code: int, vantage_held: bool = False) -> str:
    """The rule a weight's reason code names (`vantage_held`: its drain is held)."""
    if vantage_held and code in (diff.R_ACTIVE, diff.R_OVERRIDE, diff.R_SLOW_START):
        return "vantage"
    return RULE_OF_REASON.get(code, "unknown")


@dataclass(frozen=True, slots=True)
class Step:
    rule: str  # configured, pool, health, vantage, operator, damping, slow-start, ...
    weight: int | None  # the weight after this rule (None: not decided, VPP is left as is)
    detail: str


@dataclass(frozen=True, slots=True)
class Explanation:
    backend: str
    weight: int | None  # the effective weight (the engine's)
    rule: str  # the rule that made it
    steps: tuple[Step, ...]
    consistent: bool  # the steps end at the engine's weight


def explain(snap: Snapshot, frontend: str, backend: str | None = None) -> tuple[Explanation, ...]:
    """Each backend's explanation in `frontend` (one only with `backend`), in config order.

    KeyError when the snapshot's config has no such frontend, or the frontend no such backend.
    """
    fe = snap.config.frontends[frontend]
    names = fe.backend_names()
    if backend is not None:
        if backend not in names:
            raise KeyError(backend)
        names = (backend,)
    view = snap.frontends.get(frontend)
    return tuple(_one(snap, fe, view, n) for n in names)


def _weight_in(fe: Frontend, pool: str | None, backend: str) -> tuple[str, int]:
    """(pool, configured weight) of `backend`: its entry in `pool`, else its first entry."""
    first: tuple[str, int] | None = None
    for p in fe.pools:
        for m in p.members:
            if m.backend == backend:
                if p.name == pool:
                    return p.name, m.weight
                if first is None:
                    first = (p.name, m.weight)
    assert first is not None
    return first


def _probe_text(snap: Snapshot, backend: str) -> str:
    st = snap.backends.get(backend)
    if st is None:
        return "no status yet"
    parts = []
    probes = st.recent or ((st.last_probe,) if st.last_probe is not None else ())
    if probes:
        p = probes[-1]
        parts.append(
            f"last probe {'ok' if p.ok else 'failed'} ({p.reason.value}: {p.detail or '-'}, "
            f"{p.duration * 1e3:.1f} ms)"
        )
        if len(probes) > 1:
            parts.append("recent " + " ".join(q.reason.value for q in probes))
    for t in st.history[-HISTORY:]:
        why = t.reason.value if isinstance(t.reason, Reason) else "-"
        parts.append(f"{t.old.value}->{t.new.value} ({why}: {t.detail or '-'})")
    return "; ".join(parts) or "no probe yet"


def _one(snap: Snapshot, fe: Frontend, view: FrontendView | None, name: str) -> Explanation:
    bv: BackendView | None = None
    if view is not None:
        bv = next((b for b in view.backends if b.name == name), None)
    active = view.active_pool if view is not None else None
    pool, configured = _weight_in(fe, active, name)
    steps = [Step("configured", configured, f"pool {pool}, weight {configured}")]
    if view is None or bv is None:
        steps.append(Step("startup", None, "frontend not yet released: VPP is left as it is"))
        return Explanation(name, None, "startup", tuple(steps), True)
    w = configured
    st = snap.backends.get(name)
    state = st.state if st is not None else BackendState.UNKNOWN
    held = name in snap.vantage.held
    damp = snap.damping.get(name)
    suppressed = damp is not None and damp.suppressed
    # Pool selection: the first pool in config order with an up member of non-zero weight.
    pools = [p.name for p in fe.pools if any(m.backend == name for m in p.members)]
    if active is None:
        w = 0
        steps.append(Step("pool", 0, "no pool can serve: none has an up member of weight > 0"))
    elif active in pools:
        steps.append(Step("pool", w, f"member of the active pool {active} (first in config "
                                     "order with an up member of weight > 0)"))  # fmt: skip
    else:
        w = 0
        steps.append(
            Step("pool", 0, f"standby: in pool {', '.join(pools)}, active pool is {active}")
        )
    # Health, as the backend's state machine has it (the operator's states are not health).
    probes = _probe_text(snap, name)
    up = state is BackendState.UP
    if state in (BackendState.PAUSED, BackendState.DISABLED):
        steps.append(Step("health", w, f"not judged: {state.value} ({probes})"))
    elif up:
        steps.append(Step("health", w, f"up ({probes})"))
    else:
        w = 0
        steps.append(Step("health", 0, f"{state.value} ({probes})"))
    if held:
        # The vantage guard rewinds a held drain: the engine sees the backend up.
        up = True
        w = configured if active in pools else 0
        steps.append(Step("vantage", w, f"drain held by the vantage guard ({snap.vantage.why})"))
    # Operator: pause/disable, then a weight override (applied to an up active-pool member).
    override = snap.overrides.get((fe.name, name))
    if state is BackendState.PAUSED:
        w = 0
        steps.append(Step("operator", 0, "paused by the operator"))
    elif state is BackendState.DISABLED:
        w = 0
        steps.append(Step("operator", 0, "disabled (flushed)"))
    elif override is not None:
        applies = up and not suppressed and active in pools
        if applies:
            w = override
        steps.append(
            Step("operator", w, f"override {override}" + ("" if applies else " (not applied)"))
        )
    # Flap damping: passing its checks but held out (weight 0, never flushed).
    if damp is not None:
        if suppressed:
            w = 0
            steps.append(Step("damping", 0, f"suppressed: penalty {damp.penalty:.0f}"))
        else:
            steps.append(Step("damping", w, f"not suppressed: penalty {damp.penalty:.0f}"))
    # Slow start: an up active-pool member's weight capped by its ramp.
    ramp = snap.slow_start.get((fe.name, name))
    if ramp is not None and w > 0:
        w = ramp_weight(w, permille(ramp["step"], ramp["steps"]))
        steps.append(Step("slow-start", w, f"step {ramp['step']} of {ramp['steps']}"))
    # The disruption budget: an up backend held at a step of a budgeted change.
    bud = snap.budget.get(fe.name)
    if bud is not None and name in bud["weights"] and (up or bv.code == diff.R_BUDGET):
        target, progress = bud["target"][name], f"step {bud['progress']}"
        if bv.code == diff.R_BUDGET:
            w = bv.weight
            steps.append(Step("budget", w, f"weight {w} of target {target}, {progress}"))
        else:
            steps.append(Step("budget", w, f"at its target {target}, {progress}"))
    # The mass-failure guard: too few healthy members of the serving pool.
    g = view.guard
    if g is not None and (g.active or bv.code in (diff.R_HELD, diff.R_PANIC)):
        counts = f"{g.healthy} of {g.members} healthy in pool {g.pool}, threshold {g.threshold}"
        if bv.code == diff.R_HELD:
            w = bv.weight
            steps.append(Step("mass-failure", w, f"held at its weight in VPP ({counts})"))
        elif bv.code == diff.R_PANIC:
            w = bv.weight
            steps.append(Step("mass-failure", w, f"panic: served at its weight ({counts})"))
        else:
            steps.append(Step("mass-failure", w, f"{g.mode.value}, not kept ({counts})"))
    consistent = w == bv.weight
    rule = rule_of(bv.code, held)
    detail = bv.reason + (", flushed" if bv.flush and bv.weight == 0 else "")
    if not consistent:
        detail += f" (the steps above give {w}: explanation incomplete)"
    steps.append(Step("effective", bv.weight, f"{detail} [rule: {rule}]"))
    return Explanation(name, bv.weight, rule, tuple(steps), consistent)


def doc(e: Explanation) -> dict[str, Any]:
    """An explanation as the API shows it."""
    return {
        "backend": e.backend,
        "weight": e.weight,
        "rule": e.rule,
        "consistent": e.consistent,
        "steps": [{"rule": s.rule, "weight": s.weight, "detail": s.detail} for s in e.steps],
    }
