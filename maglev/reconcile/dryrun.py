"""Dry runs of operator actions: the state an action would leave, without changing any.

A dry run answers "what would `set backend B pause` (or a weight override) do now?" with the
plan, and its churn, of the pass the action would cause. The reconciler's own health machines,
overrides and engine input stay as they are: the action runs on a copy of the one machine it
concerns, and the engine input is copied before that backend's state is changed in it.
Reconciler thread only (called from its request handling).
"""

from __future__ import annotations

import copy
from array import array
from collections.abc import Mapping

from maglev.errors import NotFound
from maglev.health.state import BackendHealth
from maglev.model import BackendState
from maglev.reconcile import actions, events
from maglev.reconcile.desired import EncodedStates


def backend_action(
    health: Mapping[str, BackendHealth], name: str, action: str, now: float
) -> tuple[BackendState, events.ActionResult]:
    """The state backend `name` would be in after `action`, and the answer it would get.

    The machine is deep-copied: an action appends to its history, which is shared otherwise.
    """
    h = health.get(name)
    if h is None:
        raise NotFound(f"no backend named {name!r}")
    twin = copy.deepcopy(h)
    _t, answer = actions.backend_action({name: twin}, name, action, now)
    return twin.state, answer


def with_states(base: EncodedStates, states: Mapping[str, BackendState]) -> EncodedStates:
    """`base` with some backends' states replaced, leaving `base` itself untouched."""
    out = copy.copy(base)
    out.codes = array(base.codes.typecode, base.codes)
    for name, state in states.items():
        out.update(name, state)
    return out
