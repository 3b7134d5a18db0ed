"""Holding a reload back: the reconciler's side of the reload interlocks.

`ReloadHolds` is a part of `maglev.reconcile.reconciler.Reconciler` (a base class, as `Answers`
and `Writes` are): it gathers the interlocks' inputs from the reconciler's state (health as the
vantage guard presents it, overrides, flap damping, the view of VPP, the last two counter reads),
asks `maglev.reconcile.interlock.judge`, and keeps the held candidate. A hold is loud: an ERROR
line with every reason, a `reload-hold` event, the `held` reload count (a metric), and the hold
in the snapshot (`maglevc show status`, `GET /v1/status`).

`--force` applies the held candidate: the daemon re-reads the file, and when it is still the
held candidate it is installed past the interlocks. When the file changed since the hold, the
operator never saw what it would do, so `--force` does not apply to it: the newer file is judged
as any reload is (held again, or applied), and the reply says so. Without a hold, `--force`
applies the file past the interlocks. Reconciler thread only.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from maglev.config import diff_configs
from maglev.config.changes import ConfigDiff
from maglev.health.state import BackendHealth
from maglev.model import Config
from maglev.reconcile import events
from maglev.reconcile.damping import Damping
from maglev.reconcile.desired import StateView
from maglev.reconcile.interlock import (
    ReloadHold,
    Verdict,
    busy_vips,
    capacities,
    judge,
    touched_frontends,
)
from maglev.reconcile.plan import CandidateStates
from maglev.reconcile.vantage import VantageGuard
from maglev.vpp.lb import Actual, VipCounters

log = logging.getLogger(__name__)


class ReloadHolds:
    """The reload interlocks' state on the reconciler (see the module docstring)."""

    # Owned and set by the reconciler (declared for the type checker).
    config: Config
    health: dict[str, BackendHealth]
    overrides: dict[tuple[str, str], int]
    guard: VantageGuard
    damping: Damping
    actual: Actual | None
    vip_counters: tuple[VipCounters, ...]
    vip_counters_prev: tuple[VipCounters, ...] | None
    vip_counters_at: float | None
    publish: Callable[[dict[str, Any]], None]
    reloads: dict[str, int]
    reload_hold: ReloadHold | None
    _fe_of: dict[str, tuple[str, ...]]  # the running config's backend -> its frontends

    def verdict(self, candidate: Config, diff: ConfigDiff | None = None) -> Verdict:
        """What the reload interlocks say about `candidate` now (nothing changes)."""
        # Read through, per backend: only the touched frontends' backends are asked.
        states = self.guard.view(StateView(self.health))
        suppressed = self.damping.suppressed
        starts = CandidateStates(self.config, candidate, states)
        # Only frontends the reload touches can change capacity: the work follows the change.
        d = diff if diff is not None else diff_configs(self.config, candidate)
        names = touched_frontends(d, candidate, states, starts, self._fe_of)
        before = capacities(self.config, states, self.overrides, self.actual, suppressed, names)
        after = capacities(candidate, starts, self.overrides, self.actual, suppressed, names)
        latest = self.vip_counters if self.vip_counters_at is not None else None
        busy = busy_vips(self.vip_counters_prev, latest)
        return judge(self.config, candidate, before, after, busy)

    def _interlocked(
        self, msg: events.ApplyConfig, changes: str, diff: ConfigDiff | None = None
    ) -> tuple[events.ReloadStatus | None, tuple[str, ...], bool]:
        """Judge a reload that changes something: (the held status, or None to install it; the
        notes for its status; whether it goes in past the interlocks by --force)."""
        notes: list[str] = []
        force = msg.force
        held = self.reload_hold
        if force and held is not None and not diff_configs(held.config, msg.config).empty:
            force = False
            notes.append(
                "--force not applied: the file changed since the reload was held, so the newer "
                "file was judged as a plain reload"
            )
            log.warning("config reload (%s): %s", msg.source, notes[-1])
        if force:
            log.warning(
                "config reload (%s): forced past the reload interlocks%s",
                msg.source,
                " (the held candidate)" if held is not None else "",
            )
            return None, tuple(notes), True
        verdict = self.verdict(msg.config, diff)
        notes.extend(verdict.notes)
        for note in verdict.notes:
            log.warning("config reload (%s): %s", msg.source, note)
        if not verdict.held:
            return None, tuple(notes), False
        return self._hold(msg, verdict, changes, tuple(notes)), tuple(notes), False

    def _hold(
        self, msg: events.ApplyConfig, verdict: Verdict, changes: str, notes: tuple[str, ...]
    ) -> events.ReloadStatus:
        old = self.reload_hold
        same = old is not None and diff_configs(old.config, msg.config).empty
        since = old.since if same and old is not None else msg.at
        self.reload_hold = ReloadHold(
            msg.config, msg.source, since, msg.at, verdict.reasons, changes, notes
        )
        for reason in verdict.reasons:
            log.error("config reload (%s) HELD: %s", msg.source, reason)
        log.error(
            "config reload (%s) held by the reload interlocks (%s); the running config stays. "
            "`maglevc config reload --force` applies it",
            msg.source, changes,
        )  # fmt: skip
        self.publish(
            {
                "type": "reload-hold",
                "held": True,
                "source": msg.source,
                "reasons": list(verdict.reasons),
                "changes": changes,
            }
        )
        self.reloads["held"] += 1
        return events.ReloadStatus(
            ok=False,
            at=msg.at,
            why=msg.source,
            problems=verdict.reasons,
            changes=changes,
            load_seconds=msg.load_seconds,
            held=True,
            notes=notes,
        )

    def _clear_hold(self, why: str) -> None:
        """A reload passed (or was forced): whatever was held is no longer pending."""
        old, self.reload_hold = self.reload_hold, None
        if old is None:
            return
        log.warning("reload hold (held since a %s reload) cleared: %s", old.source, why)
        self.publish({"type": "reload-hold", "held": False, "source": old.source, "why": why})
