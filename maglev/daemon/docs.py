"""How the control API shows the reconciler's values: the JSON documents of reloads, holds,
guards, damping, ramps, operator actions and dry runs. Pure functions, called on the
control server's threads by `maglev.daemon.api` over a published snapshot or a reply.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, Protocol

from maglev.model import Frontend
from maglev.reconcile import events
from maglev.reconcile.interlock import ReloadHold
from maglev.reconcile.plan import GuardView
from maglev.reconcile.snapshot import Snapshot
from maglev.reconcile.vantage import VantageStatus
from maglev.vpp.lb import ENCAP_OF_CODE


def _ts(t: float | None) -> str | None:
    return None if t is None else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def _encap_name(code: int) -> str:
    """VPP's encap code as the config names it (`gre4`); only `maglev.vpp` knows the codes."""
    encap = ENCAP_OF_CODE.get(code)
    return encap.value if encap is not None else f"unknown ({code})"


def reload_doc(r: events.ReloadStatus) -> dict[str, Any]:
    """A reload status as the API shows it (fields that do not apply are left out)."""
    doc: dict[str, Any] = {"ok": r.ok, "at": r.at, "problems": list(r.problems)}
    if r.why is not None:
        doc["why"] = r.why
    if r.changes is not None:
        doc["changes"] = r.changes
    if r.load_seconds is not None:
        doc["load_seconds"] = r.load_seconds
    if r.applied_seconds is not None:
        doc["applied_seconds"] = r.applied_seconds
        doc["restart_needed"] = list(r.restart_needed)
    if r.held:
        doc["held"] = True
    if r.forced:
        doc["forced"] = True
    if r.notes:
        doc["notes"] = list(r.notes)
    return doc


def reload_hold_doc(h: ReloadHold | None, file: str) -> dict[str, Any] | None:
    """The reload the interlocks hold, as the status shows it (None: nothing held)."""
    if h is None:
        return None
    return {
        "since": _ts(h.since),
        "last_held_at": _ts(h.at),
        "source": h.source,
        "file": file,
        "reasons": list(h.reasons),
        "changes": h.changes,
        "notes": list(h.notes),
    }


class Reload(Protocol):
    """Asks the main thread for a reload (`force`: past the reload interlocks)."""

    def __call__(self, why: str, force: bool = False) -> events.ReloadStatus: ...


def vantage_doc(v: VantageStatus) -> dict[str, Any]:
    """The vantage guard as the status shows it."""
    return {
        "state": v.state.value,
        "since": _ts(v.since),
        "why": v.why,
        "held_backends": len(v.held),
        "canaries": {name: state.value for name, state in v.canaries},
        "trips": v.trips,
    }


HELD = "vantage guard"


def damping_doc(s: Snapshot, name: str) -> dict[str, Any] | None:
    """A backend's flap damping (None: its healthcheck has none); `until`: when it returns."""
    b = s.config.backends[name]
    hc = s.config.healthchecks.get(b.healthcheck) if b.healthcheck else None
    if hc is None or hc.flap_damping is None:
        return None
    d = s.damping.get(name)
    if d is None:
        return {"penalty": 0.0, "suppressed": False, "until": None}
    return {"penalty": d.penalty, "suppressed": d.suppressed, "until": _ts(d.until)}


"""What a backend doc names as holding its drain (`drain_held_by`)."""


def _ramp_doc(doc: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """A backend's slow-start ramp in a frontend: {step, steps, weight, until} (None: none)."""
    if doc is None:
        return None
    return {**doc, "until": round(doc["until"], 3)}


def guard_doc(fe: Frontend, g: GuardView | None) -> dict[str, Any]:
    """A frontend's mass-failure guard as the API shows it (`g` None: not evaluated yet)."""
    return {
        "active": g.active if g else False,
        "mode": fe.on_mass_failure.value,
        "min_healthy": str(fe.min_healthy),
        "pool": g.pool if g else None,
        "healthy": g.healthy if g else None,
        "members": g.members if g else None,
        "threshold": g.threshold if g else None,
    }


def _action_doc(r: events.ActionResult) -> dict[str, Any]:
    doc: dict[str, Any] = {"backend": r.backend, "state": r.state, "changed": r.changed}
    if r.expires is not None:  # a time-boxed state: when it ends by itself
        doc["expires_at"] = _ts(r.expires)
    return doc


def _override_doc(r: events.OverrideResult) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "frontend": r.frontend, "pool": r.pool, "backend": r.backend, "override": r.override
    }  # fmt: skip
    if r.expires is not None:
        doc["expires_at"] = _ts(r.expires)
    return doc


def dry_run_doc(p: events.PreviewResult) -> dict[str, Any]:
    """What a dry run adds to an action's answer: the plan it would cause and its churn."""
    return {
        "dry_run": True,
        "summary": p.summary,
        "plan": list(p.lines),
        "churn_summary": p.churn.summary(),
        "churn": p.churn.docs(),
    }


def budget_doc(fe: Frontend, doc: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """A frontend's disruption budget: its keys, and the change it holds (None: no budget)."""
    if fe.max_churn is None:
        return None
    out: dict[str, Any] = {"max_churn": fe.max_churn, "churn_interval": fe.churn_interval}
    out["held"] = doc is not None
    if doc is not None:
        out.update({**doc, "share": round(doc["share"], 4), "next_step": _ts(doc["next_step"])})
    return out
