"""Reload interlocks: whether a reload's candidate config is applied or held back.

A config whose `frontends:` is empty is valid, and applying it deletes every VIP maglev made; so
does a half-rendered file from a config-management run. A reload is therefore judged before it
is installed, by three rules (each a named function below, its reasoning in its comment), with
the limits of the *running* config's `reload-guard` (a candidate cannot loosen the guard that
judges it). `judge` returns a `Verdict`; the reconciler (`maglev.reconcile.requests`) holds the
candidate when it has reasons, and `maglevc config reload --force` applies it anyway.

Only reloads are judged, never the first start: a start deletes nothing (a frontend missing from
the file at start is reported as an unmanaged VIP, not deleted) and has no running state to
compare with.

Why not in the engine twins (`maglev.diff`) like the weight rules: a reload is rare and judged
once over the whole config; nothing here is a hot loop, and the weights it compares come from the
engine itself (`capacities` runs it).

Pure: plain values in, a frozen verdict out. Called by the reconciler thread.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Container, Mapping
from dataclasses import dataclass
from itertools import compress
from operator import attrgetter, not_

from maglev.config.changes import ConfigDiff
from maglev.model import BackendState, Config, ReloadGuardSettings
from maglev.reconcile.actual import prepare_actual_map
from maglev.reconcile.desired import build_layout
from maglev.reconcile.plan import CandidateStates, evaluate
from maglev.vpp.lb import ActualVip, VipCounters, VipKey, frontend_key

_ENABLED = attrgetter("enabled")
EPSILON = 1e-9  # a loss exactly at the limit passes, whatever the float rounding of the limit


@dataclass(frozen=True, slots=True)
class CapacityLoss:
    """A remaining frontend whose capacity the candidate cuts by more than the limit."""

    frontend: str
    before: int
    after: int

    @property
    def fraction(self) -> float:
        return (self.before - self.after) / self.before

    def text(self) -> str:
        return (
            f"frontend {self.frontend}: capacity {self.before} -> {self.after} "
            f"(-{self.fraction:.0%})"
        )


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the interlocks say about one candidate; held when `reasons` is not empty."""

    reasons: tuple[str, ...] = ()  # one line per broken rule, naming frontends and figures
    deleted: tuple[str, ...] = ()  # frontends the candidate deletes (by name)
    losses: tuple[CapacityLoss, ...] = ()  # remaining frontends losing more than the limit
    busy: tuple[str, ...] = ()  # deleted frontends whose VIP carries traffic
    notes: tuple[str, ...] = ()  # what a rule could not judge (e.g. no counters yet)

    @property
    def held(self) -> bool:
        return bool(self.reasons)


def deleted_frontends(current: Config, candidate: Config) -> tuple[str, ...]:
    """Frontends of the running config the candidate no longer names. By name: a renamed
    frontend is one delete (and one add), since its state, overrides and events go with the
    name."""
    return tuple(sorted(n for n in current.frontends if n not in candidate.frontends))


def deleted_vips(current: Config, candidate: Config) -> dict[str, VipKey]:
    """Frontend name -> its VIP, for the running frontends whose VIP the candidate does not
    name: those are deleted from VPP. A frontend renamed with the same address, protocol and
    port keeps its VIP (nothing is deleted in VPP); one that keeps its name but moves to
    another address loses its old VIP."""
    kept = {frontend_key(fe) for fe in candidate.frontends.values()}
    return {n: key for n, fe in current.frontends.items() if (key := frontend_key(fe)) not in kept}


def too_many_deletions(deleted: tuple[str, ...], settings: ReloadGuardSettings) -> str | None:
    """Rule 1. A file that lost most of its frontends is far likelier a rendering accident
    (an empty template variable, a truncated write) than an intent; deleting a frontend
    blackholes its VIP at once. So more than `max-deleted-frontends` deletions in one reload
    wait for an operator's `--force`; a planned removal of many frontends says so."""
    if len(deleted) <= settings.max_deleted_frontends:
        return None
    return (
        f"deletes {len(deleted)} frontend(s), more than max-deleted-frontends "
        f"{settings.max_deleted_frontends}: {', '.join(deleted)}"
    )


def capacity_losses(
    before: Mapping[str, int], after: Mapping[str, int], settings: ReloadGuardSettings
) -> tuple[CapacityLoss, ...]:
    """Rule 2. A frontend that stays but loses most of its serving weight (a pool emptied,
    backends removed, weights rewritten to 0) overloads what is left as surely as a deletion
    drops traffic. A frontend's *capacity* is the sum of the weights the engine gives its
    serving backends (weight > 0), with the same backend health, overrides and flap damping,
    under the running config (`before`) and under the candidate (`after`); see `capacities`.
    Frontends in both (by name) are judged; a frontend whose capacity is 0 before cannot lose
    any. A backend whose address or healthcheck the candidate changes starts unknown, as after
    any reload (`plan.candidate_states`), so it serves only if the mass-failure guard keeps it:
    re-pointing every backend of a frontend at once is a loss until the probes come back. Weights are read as capacity as the operator sized them: scaling every weight of a
    frontend down by the same factor counts as a loss although VPP's split stays the same (such
    a rescale needs `--force`). A loss exactly at `max-capacity-loss` passes."""
    out: list[CapacityLoss] = []
    limit = settings.max_capacity_loss
    for name in sorted(before):
        was = before[name]
        if name not in after or was <= 0:
            continue
        now = after[name]
        if (was - now) - limit * was > EPSILON * was:
            out.append(CapacityLoss(name, was, now))
    return tuple(out)


def busy_deletions(
    vips: Mapping[str, VipKey], busy: Container[VipKey] | None, settings: ReloadGuardSettings
) -> tuple[str, ...]:
    """Rule 3. A VIP whose packet counters moved between the last two reads is carrying
    traffic now; deleting it drops every flow it carries, whatever the file says. With
    `busy` None the counters cannot tell (not read twice yet since maglevd started or
    reconnected), and the rule holds nothing: the two rules above still apply, and the
    verdict notes it (`judge`)."""
    if not settings.protect_busy_frontends or busy is None:
        return ()
    return tuple(sorted(n for n, key in vips.items() if key in busy))


def busy_vips(
    previous: tuple[VipCounters, ...] | None, latest: tuple[VipCounters, ...] | None
) -> frozenset[VipKey] | None:
    """The VIPs whose counters moved between two reads (None: fewer than two reads). A VIP
    missing from the previous read counts from zero; a counter that went down (VPP restarted,
    counters cleared) moved too."""
    if previous is None or latest is None:
        return None
    was = {c.key: dict(c.counters) for c in previous}
    moved = set()
    for c in latest:
        old = was.get(c.key, {})
        if any(old.get(name, 0) != value for name, value in c.counters):
            moved.add(c.key)
    return frozenset(moved)


def capacities(
    config: Config,
    states: Mapping[str, BackendState],
    overrides: Mapping[tuple[str, str], int],
    actual: Mapping[VipKey, ActualVip] | None,
    suppressed: Container[str] = (),
    only: Collection[str] | None = None,
) -> dict[str, int]:
    """Each frontend's capacity under `config` (or of the frontends in `only`): the sum of the
    weights the engine gives its serving backends, against VPP as the reconciler last saw it
    (the mass-failure guard's fail-static keeps what VPP has; None: VPP's tables unknown, taken
    as empty for both sides alike). Slow-start caps are left out: a ramp is a moment, not the
    capacity."""
    if only is not None:  # those frontends and their backends only: the work follows `only`
        fes = {n: fe for n in only if (fe := config.frontends.get(n)) is not None}
        backends = config.backends
        named = {b: backends[b] for fe in fes.values() for b in fe.backend_names() if b in backends}
        config = dataclasses.replace(config, frontends=fes, backends=named)
        if actual is not None:  # their VIPs only: ranking all of VPP's tables costs the most
            keys = (frontend_key(fe) for fe in config.frontends.values())
            actual = {k: actual[k] for k in keys if k in actual}
    layout = build_layout(config)
    ev = evaluate(
        layout,
        states,
        overrides,
        table=prepare_actual_map(layout, actual or {}),
        suppressed=suppressed,
    )
    weight = ev.desired.slot_weight
    start = layout.topology.fe_slot_start
    out: dict[str, int] = {}
    for i, fe in enumerate(layout.frontends):
        out[fe.name] = sum(w for s in range(start[i], start[i + 1]) if (w := weight[s]) > 0)
    return out


def touched_frontends(
    diff: ConfigDiff,
    candidate: Config,
    states: Mapping[str, BackendState],
    starts: Mapping[str, BackendState],
    fe_of: Mapping[str, Collection[str]] | None = None,
) -> frozenset[str]:
    """The frontends of both configs whose capacity a reload can change: the frontend itself
    changed (`diff`), or one of its backends did (its definition, or the state it would start
    from, `plan.candidate_states`). Every other frontend has the same engine input on both
    sides, so the same capacity: judging only these keeps a reload's cost proportional to its
    change (`diff` is the reload's own comparison, not made again).

    With `starts` a `plan.CandidateStates`, a backend the reload leaves as it was (by value)
    starts from the state it has, or disabled: so only the changed, the added and the disabled
    backends are asked for their start (`states` names every backend of the running config, as
    the reconciler's health machines do). Any other `starts` is compared backend by backend.

    `fe_of` (the running config's backend -> the frontends naming it) spares the look at every
    frontend: a frontend the reload leaves as it was names the backends it named, all of them
    in the running config, so only the running config's users of a changed backend are
    looked up (an added backend is named only by frontends that changed or were added)."""
    changed = set(diff.backends.changed) | set(diff.backends.added)
    if isinstance(starts, CandidateStates):
        backends = candidate.backends
        names = list(backends)
        off = compress(names, map(not_, map(_ENABLED, map(backends.__getitem__, names))))
        changed.update(n for n in off if states.get(n) is not starts[n])
    else:
        changed.update(n for n, s in starts.items() if states.get(n) is not s)
    out = set(diff.frontends.changed)
    if changed and fe_of is not None:
        frontends = candidate.frontends
        for b in changed:
            out.update(f for f in fe_of.get(b, ()) if f in frontends)
    elif changed:
        for name, fe in candidate.frontends.items():
            if name not in out and any(b in changed for b in fe.backend_names()):
                out.add(name)
    out.difference_update(diff.frontends.added)  # added: no capacity before to lose
    return frozenset(out)


def judge(
    current: Config,
    candidate: Config,
    before: Mapping[str, int],
    after: Mapping[str, int],
    busy: Container[VipKey] | None,
) -> Verdict:
    """The interlocks' verdict on reloading `current` to `candidate`, with the running
    config's limits; `before`/`after` are `capacities` under each, `busy` from `busy_vips`."""
    settings = current.reload_guard
    deleted = deleted_frontends(current, candidate)
    vips = deleted_vips(current, candidate)
    reasons: list[str] = []
    if (too_many := too_many_deletions(deleted, settings)) is not None:
        reasons.append(too_many)
    losses = capacity_losses(before, after, settings)
    if losses:
        reasons.append(
            f"takes more than max-capacity-loss {settings.max_capacity_loss * 100:g}% of "
            f"{len(losses)} frontend(s)' capacity: {'; '.join(x.text() for x in losses)}"
        )
    carrying = busy_deletions(vips, busy, settings)
    if carrying:
        reasons.append(f"deletes frontend(s) carrying traffic: {', '.join(carrying)}")
    notes: list[str] = []
    if vips and settings.protect_busy_frontends and busy is None:
        notes.append(
            "protect-busy-frontends could not judge the deleted frontend(s) "
            f"{', '.join(sorted(vips))}: VPP's counters have not been read twice yet"
        )
    return Verdict(tuple(reasons), deleted, losses, carrying, tuple(notes))


@dataclass(frozen=True, slots=True)
class ReloadHold:
    """A reload the interlocks hold: the candidate, what asked for it, since when and why."""

    config: Config  # the held candidate (what `--force` applies)
    source: str  # what asked for the reload ("SIGHUP", "file change", "control API")
    since: float  # wall-clock time this candidate was first held
    at: float  # wall-clock time of the latest reload that held it
    reasons: tuple[str, ...]
    changes: str  # the candidate's change summary against the running config
    notes: tuple[str, ...] = ()
