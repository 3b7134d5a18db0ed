"""The reconciler's per-config view of its backends and their probe targets.

Owns the rules, not the state: the health state machines carried across a config change
(`carry_health`), the lookups that route a probe result to its backends and a backend to its
frontends (`index_config`), and the probe streams the check scheduler is told to run
(`probe_streams`, through `ProbeControl`), each with the most urgent phase of its backends
(`phase_rank`). The reconciler holds the results; these plain functions are called on the
reconciler thread when a config is installed and when an operator action changes what is probed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple, Protocol

from maglev.health.state import BackendHealth, Phase, Transition
from maglev.model import Config, HealthCheck, ProbeTarget


class ProbeControl(Protocol):
    """What the reconciler needs of the check scheduler."""

    def set_targets(
        self,
        targets: Mapping[ProbeTarget, HealthCheck],
        phases: Mapping[ProbeTarget, Phase] | None = None,
    ) -> tuple[int, int, int]: ...

    def set_phases(self, phases: Mapping[ProbeTarget, Phase]) -> None: ...


def phase_rank(p: Phase) -> int:
    return {Phase.CHANGING: 0, Phase.DOWN: 1, Phase.UP: 2}[p]


class Lookups(NamedTuple):
    """Per-config lookups of the reconciler's input side."""

    by_target: dict[ProbeTarget, tuple[str, ...]]  # probe target -> the backends it feeds
    target_of: dict[str, ProbeTarget]  # backend -> its probe target
    fe_of: dict[str, tuple[str, ...]]  # backend -> the frontends naming it
    check_kind: dict[str, str]  # healthcheck name -> its type's value


def index_config(config: Config, known: Mapping[ProbeTarget, object]) -> Lookups:
    """The lookups for `config`; `known` holds the probe targets of the config before."""
    # The same target objects as before a reload, and the ones the scheduler is given: a
    # result then finds its target by identity, without comparing addresses.
    same = {t: t for t in known}
    by_target: dict[ProbeTarget, list[str]] = {}
    for name, b in config.backends.items():
        if b.healthcheck is not None:
            t = ProbeTarget(b.address, b.healthcheck)
            by_target.setdefault(same.get(t, t), []).append(name)
    targets = {t: tuple(n) for t, n in by_target.items()}
    fe_of: dict[str, list[str]] = {}
    for fname, fe in config.frontends.items():
        for bname in fe.backend_names():
            fe_of.setdefault(bname, []).append(fname)
    return Lookups(
        by_target=targets,
        target_of={n: t for t, names in targets.items() for n in names},
        fe_of={b: tuple(f) for b, f in fe_of.items()},
        check_kind={n: hc.type.value for n, hc in config.healthchecks.items()},
    )


def carry_health(
    old: Mapping[str, BackendHealth], config: Config, now: float
) -> tuple[dict[str, BackendHealth], list[Transition]]:
    """The health machines for `config`'s backends, each carried over from `old` where it
    exists (history and state kept), and the transitions of the backends `config` removes."""
    new, removed, _fresh = carry_health_from(old, None, config, now)
    return new, removed


def carry_health_from(
    old: Mapping[str, BackendHealth], before: Config | None, config: Config, now: float
) -> tuple[dict[str, BackendHealth], list[Transition], set[str]]:
    """`carry_health`, and the names whose machine is not `old`'s. With `before` (the config
    `old` was made for), an enabled backend that is the very object it was there, checked by
    the very healthcheck object, keeps its machine as it is without asking (`reconfigure` would
    change nothing): a reload's memo keeps unchanged entries, so the work follows the change."""
    new: dict[str, BackendHealth] = {}
    fresh: set[str] = set()
    checks = config.healthchecks
    was = before.backends if before is not None else {}
    was_checks = before.healthchecks if before is not None else {}
    for name, b in config.backends.items():
        prev = old.get(name)
        hc = b.healthcheck
        if (
            prev is not None
            and was.get(name) is b
            and b.enabled
            and (hc is None or was_checks.get(hc) is checks.get(hc))
        ):
            new[name] = prev
            continue
        check = checks.get(hc) if hc else None
        if prev is None:
            new[name] = BackendHealth(name, b.address, check, b.enabled)
        else:
            new[name] = prev.reconfigure(b.address, check, b.enabled, now)
        if new[name] is not prev:
            fresh.add(name)
    removed: list[Transition] = []
    gone = old.keys() - new.keys()
    for name in [n for n in old if n in gone] if gone else ():  # in their order
        t = old[name].remove(now)
        if t is not None:
            removed.append(t)
    return new, removed, fresh


def probe_streams(
    health: Mapping[str, BackendHealth], target_of: Mapping[str, ProbeTarget]
) -> tuple[dict[ProbeTarget, HealthCheck], dict[ProbeTarget, Phase]]:
    """The targets to probe (of backends probing now) with their checks, and each one's phase:
    the most urgent of its backends' (changing before down before up)."""
    targets: dict[ProbeTarget, HealthCheck] = {}
    phases: dict[ProbeTarget, Phase] = {}
    for name, h in health.items():
        t = target_of.get(name)
        if not h.probing or h.check is None or t is None:
            continue
        targets[t] = h.check
        p = h.phase
        if p is not None and (t not in phases or phase_rank(p) < phase_rank(phases[t])):
            phases[t] = p
    return targets, phases
