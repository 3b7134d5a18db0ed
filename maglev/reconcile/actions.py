"""Operator actions: pause, resume, enable or disable a backend; set or clear a weight override.

Plain functions over state the reconciler owns and passes in (its health machines, its override
table). Each checks the request, changes that state and returns the answer for the caller; a
request naming nothing known raises `NotFound`, an out-of-range value `InvalidRequest`, which
the reconciler hands back to the caller. Called on the reconciler thread only,
from its message handling.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from maglev.errors import InvalidRequest, NotFound
from maglev.health.state import BackendHealth, Transition
from maglev.model import Config
from maglev.reconcile import events

log = logging.getLogger(__name__)


def backend_action(
    health: Mapping[str, BackendHealth], name: str, action: str, now: float
) -> tuple[Transition | None, events.ActionResult]:
    """Apply `action` to backend `name`: (its transition if the state changed, the answer)."""
    h = health.get(name)
    if h is None:
        raise NotFound(f"no backend named {name!r}")
    fn = {"pause": h.pause, "resume": h.resume, "enable": h.enable, "disable": h.disable}.get(
        action
    )
    if fn is None:
        raise InvalidRequest(f"action: {action!r} is not one of pause, resume, enable, disable")
    t = fn(now)
    return t, events.ActionResult(name, h.state.value, t is not None)


def set_override(
    config: Config,
    overrides: dict[tuple[str, str], int],
    msg: events.WeightOverride | events.DryRunOverride,
    quiet: bool = False,
) -> events.OverrideResult:
    """Set or clear (weight None) the override `msg` names in `overrides`; the answer.

    The caller marks the frontend dirty: the new weight reaches VPP on the next pass. `quiet`:
    not logged (a dry run sets it in a copy of the overrides).
    """
    check_override(config, msg)
    key = (msg.frontend, msg.backend)
    if msg.weight is None:
        overrides.pop(key, None)
    else:
        overrides[key] = msg.weight
    if quiet:
        return events.OverrideResult(msg.frontend, msg.pool, msg.backend, msg.weight)
    log.info(
        "weight override %s/%s/%s: %s",
        msg.frontend, msg.pool, msg.backend, "cleared" if msg.weight is None else msg.weight,
    )  # fmt: skip
    return events.OverrideResult(msg.frontend, msg.pool, msg.backend, msg.weight)


def check_override(config: Config, msg: events.WeightOverride | events.DryRunOverride) -> None:
    """NotFound / InvalidRequest when `msg` names nothing known or an out-of-range weight."""
    fe = config.frontends.get(msg.frontend)
    if fe is None:
        raise NotFound(f"no frontend named {msg.frontend!r}")
    pool = next((p for p in fe.pools if p.name == msg.pool), None)
    if pool is None:
        raise NotFound(f"frontend {msg.frontend!r} has no pool named {msg.pool!r}")
    if not any(m.backend == msg.backend for m in pool.members):
        raise NotFound(
            f"pool {msg.pool!r} of frontend {msg.frontend!r} has no backend {msg.backend!r}"
        )
    if msg.weight is not None and not 0 <= msg.weight <= 100:
        raise InvalidRequest(f"weight: {msg.weight} is not in 0..100")


def kept_overrides(
    overrides: Mapping[tuple[str, str], int], config: Config
) -> dict[tuple[str, str], int]:
    """The overrides still naming a backend of a frontend in `config` (the rest go with them)."""
    return {
        (f, b): w
        for (f, b), w in overrides.items()
        if f in config.frontends and b in config.frontends[f].backend_names()
    }
