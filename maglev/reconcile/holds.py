"""Operator state kept by the reconciler: set, enforced on every config, expired, persisted.

`Holds` is a part of `maglev.reconcile.reconciler.Reconciler` (a base class), over the state it
owns: `opstate` (every operator state, with its time box), the health machines and `overrides`
it drives from it. Reconciler thread only.

The state file is written here, on the reconciler thread, rather than by a writer thread of its
own: operator changes are rare and the file small (one fsync'd write costs milliseconds), and
writing where the state changes means the file can never lag behind it or reorder two changes.
An operator's request is written first and applied after: a failed write answers the caller
with an error and changes nothing. An expiry, or a state a reload drops, is applied even when
the write fails (the operator asked for it to end); the write is retried until it succeeds.

States that name what the config no longer has are dropped, with a WARNING naming each (value,
comment, who, when), rather than kept dormant: a backend that leaves the config is gone for the
reconciler too (its machine, its overrides), a drain reappearing months later on a re-added name
would surprise, and no command could show or clear a dormant state the config cannot name.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from maglev.clock import Clock
from maglev.errors import InvalidRequest, NotFound
from maglev.health.state import BackendHealth, Transition
from maglev.model import Config
from maglev.reconcile import actions, events, statefile
from maglev.reconcile.opstate import BACKEND, UNDO, WEIGHT, Hold, OpState, backend_after, iso

log = logging.getLogger(__name__)

RETRY_WRITE = 10.0  # seconds between attempts to write a state file that failed to write
ACTIONS = ("pause", "resume", "enable", "disable")
SETS = {"pause": "paused", "disable": "disabled"}  # the state an action sets


class Holds:
    """Operator state of the reconciler (see the module docstring)."""

    # Owned and set by the reconciler (declared for the type checker).
    config: Config
    clock: Clock
    health: dict[str, BackendHealth]
    overrides: dict[tuple[str, str], int]
    dirty: set[str]
    publish: Callable[[dict[str, Any]], None]
    opstate: OpState
    state_file: str | None
    _unsaved_at: float | None

    def _transition(self, t: Transition) -> None:
        raise NotImplementedError

    def _sync_streams(self) -> None:
        raise NotImplementedError

    def _start_holds(self, state: OpState | None, state_file: str | None) -> None:
        """Take the state loaded from the file (before the first config is installed, which
        enforces it); what expired while maglevd was down ends now, before any pass."""
        self.state_file = state_file
        self._unsaved_at = None
        self.opstate = state or OpState()
        wall = self.clock.wall()
        due = self.opstate.due(wall)
        for h in due:
            self.opstate = self.opstate.drop(h.key)
            log.info("operator state %s expired while maglevd was down (at %s)", h.what(),
                     iso(h.expires or wall))  # fmt: skip
        if self.opstate.holds:
            log.info("operator state from %s: %s", state_file,
                     "; ".join(h.what() for h in self.opstate.holds))  # fmt: skip
        if due:
            self._save_quietly()

    # --- enforcing ----------------------------------------------------------------------

    def _enforce_holds(self, now: float) -> None:
        """Make the operator state true of the live config (at start and after each reload):
        backends paused or disabled again (a reload may have made them fresh machines), the
        overrides in force; what the config no longer names is dropped, loudly."""
        keep, gone = self.opstate.split(self.config)
        for h in gone:
            log.warning(
                "operator state dropped: %s (set %s by %s, comment %r, expiring %s): the config "
                "no longer has it",
                h.what(), iso(h.set_at), h.by or "unknown", h.comment,
                iso(h.expires) if h.expires is not None else "never",
            )  # fmt: skip
            self.publish({**_event(h), "type": "override_dropped", "level": "warning"})
        self.opstate = keep
        for name, value in keep.backend_states().items():
            m = self.health[name]
            t = m.pause(now) if value == "paused" else m.disable(now)
            if t is not None:
                self._transition(t)
        self.overrides.update(keep.overrides())
        if gone:
            self._save_quietly()

    # --- operator requests ----------------------------------------------------------------

    def _held_backend_action(self, msg: events.BackendAction, now: float) -> events.ActionResult:
        h = self.health.get(msg.backend)
        if h is None:
            raise NotFound(f"no backend named {msg.backend!r}")
        if msg.action not in ACTIONS:
            raise InvalidRequest(f"action: {msg.action!r} is not one of {', '.join(ACTIONS)}")
        box = msg.box
        if (box.boxed or box.comment) and msg.action in ("resume", "enable"):
            field = "for" if box.for_seconds is not None else "until" if box.boxed else "comment"
            raise InvalidRequest(f"{field}: only pause and disable take a time box or comment")
        wall = self.clock.wall()
        key = (BACKEND, msg.backend)
        old = self.opstate.get(key)
        after = backend_after(h.state, msg.action, old)
        if after is None:
            state = self.opstate.drop(key)
        elif after == SETS.get(msg.action):  # set (or set again: the latest box and comment win)
            hold = Hold(BACKEND, msg.backend, after, wall, expires=box.expires(wall),
                        comment=box.comment, by=box.by)  # fmt: skip
            state = self.opstate.put(hold)
        else:  # e.g. pause on a disabled backend, resume of an enabled one: nothing changes
            state = self.opstate
        self._commit(state)  # first: a failed write must change nothing
        t, answer = actions.backend_action(self.health, msg.backend, msg.action, now)
        if t is not None:
            self._transition(t)
            self._sync_streams()
        held = state.get(key)
        if held is not None and held.expires is not None:
            log.info("operator state %s until %s (%s)", held.what(), iso(held.expires),
                     held.comment or "no comment")  # fmt: skip
        return events.ActionResult(
            answer.backend, answer.state, answer.changed, held.expires if held else None
        )

    def _held_weight(self, msg: events.WeightOverride, now: float) -> events.OverrideResult:
        actions.check_override(self.config, msg)
        box = msg.box
        if msg.weight is None and (box.boxed or box.comment):
            field = "for" if box.for_seconds is not None else "until" if box.boxed else "comment"
            raise InvalidRequest(f"{field}: clearing an override ('default') takes no time box")
        wall = self.clock.wall()
        key = (WEIGHT, msg.frontend, msg.backend)
        if msg.weight is None:
            state = self.opstate.drop(key)
        else:
            hold = Hold(WEIGHT, msg.backend, msg.weight, wall, frontend=msg.frontend,
                        pool=msg.pool, expires=box.expires(wall), comment=box.comment,
                        by=box.by)  # fmt: skip
            state = self.opstate.put(hold)
        self._commit(state)
        answer = actions.set_override(self.config, self.overrides, msg)
        self.dirty.add(msg.frontend)
        held = state.get(key)
        return events.OverrideResult(
            answer.frontend, answer.pool, answer.backend, answer.override,
            held.expires if held else None,
        )  # fmt: skip

    # --- expiry -----------------------------------------------------------------------------

    def holds_deadline(self, now: float) -> float | None:
        """The monotonic time of the next expiry (or of a write retry), None: nothing due."""
        out = []
        if (end := self.opstate.next_expiry()) is not None:
            out.append(now + max(0.0, end - self.clock.wall()))
        if self._unsaved_at is not None:
            out.append(self._unsaved_at + RETRY_WRITE)
        return min(out) if out else None

    def _expire_holds(self, now: float) -> None:
        """End every operator state whose time is up: backends resume or are enabled, the
        overrides go; each gets an INFO line and an `override_expired` event."""
        if self._unsaved_at is not None and now >= self._unsaved_at + RETRY_WRITE:
            self._save_quietly()
        due = self.opstate.due(self.clock.wall())
        if not due:
            return
        for h in due:
            self.opstate = self.opstate.drop(h.key)
        self._save_quietly()
        resumed = False
        for h in due:
            if h.kind == BACKEND:
                t, _ = actions.backend_action(self.health, h.backend, UNDO[str(h.value)], now)
                if t is not None:
                    self._transition(t)
                    resumed = True
            else:
                self.overrides.pop((h.frontend or "", h.backend), None)
                self.dirty.add(h.frontend or "")
            log.info("operator state %s expired (set %s by %s, comment %r)", h.what(),
                     iso(h.set_at), h.by or "unknown", h.comment)  # fmt: skip
            self.publish({**_event(h), "type": "override_expired", "level": "info"})
        if resumed:
            self._sync_streams()

    # --- the file ---------------------------------------------------------------------------

    def _commit(self, state: OpState) -> None:
        """Write `state`, then make it live; StateFileError (the caller's answer) if the write
        fails, with nothing changed."""
        if state != self.opstate or self._unsaved_at is not None:
            self._write_state(state)
        self.opstate = state

    def _write_state(self, state: OpState) -> None:
        if self.state_file is not None:
            statefile.save(self.state_file, state, self.clock.wall())
        self._unsaved_at = None

    def _save_quietly(self) -> None:
        try:
            self._write_state(self.opstate)
        except statefile.StateFileError as e:
            log.error("%s; retrying in %.0fs (a restart now would bring back what ended)", e,
                      RETRY_WRITE)  # fmt: skip
            self._unsaved_at = self.clock.monotonic()


def _event(h: Hold) -> dict[str, Any]:
    ev: dict[str, Any] = {"backend": h.backend, "what": h.what(), "value": h.value}
    if h.frontend is not None:
        ev["frontend"], ev["pool"] = h.frontend, h.pool
    if h.comment is not None:
        ev["comment"] = h.comment
    return ev
