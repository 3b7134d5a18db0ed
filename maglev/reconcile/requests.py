"""The reconciler's answers to typed requests: operator actions, syncs, reads, reloads.

`Answers` is a part of `maglev.reconcile.reconciler.Reconciler` (its base class), kept in its own
module: how a request message becomes a change of the reconciler's state and a frozen reply.
The rule for failures: an operator's mistake (`RequestError`) or VPP trouble (`VppError`) is the
caller's answer; a bug while answering a read-only request (`events.READ_ONLY`) becomes an error
reply; a bug while answering any other is re-raised, which ends the reconciler thread and stops
the daemon (its state may be half changed). Reconciler thread only.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from maglev.config import diff_configs
from maglev.config.changes import ConfigDiff, reload_touched, restart_only_changes
from maglev.errors import MaglevError, VppError
from maglev.health.state import BackendHealth, Transition
from maglev.model import BackendState, Config
from maglev.reconcile import actions, dryrun, events
from maglev.reconcile.churn import FrontendIndex, plan_churn
from maglev.reconcile.damping import Damping
from maglev.reconcile.desired import EncodedStates
from maglev.reconcile.interlock import Verdict
from maglev.reconcile.plan import plan_for, preview
from maglev.reconcile.slowstart import Ramps
from maglev.reconcile.snapshot import Snapshot
from maglev.reconcile.startup import StartupGate
from maglev.reconcile.vantage import GuardChange, VantageGuard
from maglev.vpp.client import LbClient
from maglev.vpp.lb import Actual, LbState, VipKey, frontend_key

log = logging.getLogger(__name__)


class Answers:
    """The request handling of the reconciler (see the module docstring)."""

    # Owned and set by the reconciler (declared for the type checker).
    config: Config
    health: dict[str, BackendHealth]
    overrides: dict[tuple[str, str], int]
    dirty: set[str]
    full_due: bool
    lb: LbClient
    last_sync_ok: bool
    removed_vips: set[VipKey]
    removals_due: bool
    gate: StartupGate
    guard: VantageGuard
    damping: Damping
    actual: Actual | None
    config_loaded_at: float | None
    publish: Callable[[dict[str, Any]], None]
    reloads: dict[str, int]
    last_reload: events.ReloadStatus
    _stopped: bool
    snapshot: Snapshot
    ramps: Ramps
    _fe_of: dict[str, tuple[str, ...]]

    def _make_snapshot(self) -> Snapshot:
        raise NotImplementedError

    def _transition(self, t: Transition) -> None:
        raise NotImplementedError

    def _sync_streams(self) -> None:
        raise NotImplementedError

    def _guarded(self, change: GuardChange | None) -> None:
        raise NotImplementedError

    def _install_config(self, config: Config, now: float) -> None:
        raise NotImplementedError

    def _held_backend_action(self, msg: events.BackendAction, now: float) -> events.ActionResult:
        raise NotImplementedError

    def _held_weight(self, msg: events.WeightOverride, now: float) -> events.OverrideResult:
        raise NotImplementedError

    def _write(self, now: float) -> None:
        raise NotImplementedError

    def _release(self, now: float) -> None:
        raise NotImplementedError

    def _interlocked(
        self, msg: events.ApplyConfig, changes: str, diff: ConfigDiff | None = None
    ) -> tuple[events.ReloadStatus | None, tuple[str, ...], bool]:
        raise NotImplementedError

    def _clear_hold(self, why: str) -> None:
        raise NotImplementedError

    def verdict(self, candidate: Config, diff: ConfigDiff | None = None) -> Verdict:
        raise NotImplementedError

    def _encoded(self) -> EncodedStates:
        raise NotImplementedError

    def _frontend_index(self) -> FrontendIndex:
        raise NotImplementedError

    def preview(self, config: Config) -> events.PreviewResult:
        """The plan a candidate config would cause now (for `config check`), and what the
        reload interlocks would say of it; applies and holds nothing."""
        v = self.verdict(config)
        if self.actual is None:
            no_plan = "VPP state unknown (not connected); no plan"
            return events.PreviewResult(no_plan, (), v.reasons, v.notes)
        states = {n: self.guard.present(n, h.state) for n, h in self.health.items()}
        plan = preview(
            self.config, config, states, self.overrides, self.actual, self.removed_vips,
            self.damping.suppressed,
        )  # fmt: skip
        report = plan_churn(plan, self.actual, FrontendIndex(config, self.config))
        return events.PreviewResult(plan.summary(), tuple(plan.lines()), v.reasons, v.notes, report)

    def _what_if(
        self,
        names: set[str],
        states: Mapping[str, BackendState],
        overrides: Mapping[tuple[str, str], int],
    ) -> events.PreviewResult:
        """The plan (and churn) of the pass for `names` with some backends' states or the
        overrides changed; our own state stays as it is. Frontends not yet released by the
        startup gate are not programmed, so they plan nothing."""
        if self.actual is None:
            return events.PreviewResult("VPP state unknown (not connected); no plan", ())
        base = self._encoded()
        encoded = dryrun.with_states(
            base, {n: self.guard.present(n, st) for n, st in states.items()}
        )
        plan, _views = plan_for(
            self.config, encoded, names & self.gate.released, overrides, self.actual, set(),
            False, None, self.ramps.encode(encoded.layout),
        )  # fmt: skip
        report = plan_churn(plan, self.actual, self._frontend_index())
        return events.PreviewResult(plan.summary(), tuple(plan.lines()), churn=report)

    def _handle(self, msg: Any, now: float) -> None:
        if isinstance(msg, events.Stop):
            self._stopped = True
            return
        if isinstance(msg, events.NoteReload):
            self._note_reload(msg.status)
            return
        answer = self._answers.get(type(msg))
        if answer is None:
            log.error("reconciler got an unknown message %r; dropped", msg)
            return
        reply = msg.reply
        try:
            value = answer(msg, now)
        except MaglevError as e:  # an operator's mistake or VPP trouble: the caller's answer
            reply.set_exception(e)
            return
        except Exception as e:
            if isinstance(msg, events.READ_ONLY):  # nothing of ours changed: an error reply
                log.exception("reconciler: answering %s failed", type(msg).__name__)
                reply.set_exception(MaglevError(f"internal error: {e!r}"))
                return
            reply.set_exception(e)
            raise  # a bug while changing our state: stop rather than run half-changed
        reply.set_result(value)

    @property
    def _answers(self) -> dict[type, Any]:
        return {
            events.ApplyConfig: self._apply_config,
            events.BackendAction: self._held_backend_action,  # holds.py: kept and persisted
            events.WeightOverride: self._held_weight,
            events.SyncRequest: self._sync_request,
            events.ReadLbState: self._read_lb_state,
            events.Preview: self._preview,
            events.DryRunAction: self._dry_run_action,
            events.DryRunOverride: self._dry_run_override,
            events.ReleaseGuard: self._release_guard,
        }

    def _dry_run_action(self, msg: events.DryRunAction, now: float) -> events.DryRunResult:
        state, answer = dryrun.backend_action(self.health, msg.backend, msg.action, now)
        names = set(self._fe_of.get(msg.backend, ()))
        return events.DryRunResult(
            answer, self._what_if(names, {msg.backend: state}, self.overrides)
        )

    def _dry_run_override(self, msg: events.DryRunOverride, now: float) -> events.DryRunResult:
        overrides = dict(self.overrides)
        answer = actions.set_override(self.config, overrides, msg, quiet=True)
        return events.DryRunResult(answer, self._what_if({msg.frontend}, {}, overrides))

    def _release_guard(self, msg: events.ReleaseGuard, now: float) -> events.GuardReleaseResult:
        change = self.guard.release(msg.by, now)
        self._guarded(change)  # the held drains go out with this turn's pass
        state = self.guard.state.value
        return events.GuardReleaseResult(
            change is not None, state, len(change.backends) if change else 0
        )

    def _sync_request(self, msg: events.SyncRequest, now: float) -> events.SyncResult:
        self._release(now)  # what the startup gate lets through now is part of the sync
        self.full_due = True
        self._write(now)
        self.snapshot = self._make_snapshot()  # the reply means: what you read now is synced
        connected = self.lb.connected
        return events.SyncResult(self.last_sync_ok and connected, connected)

    def _read_lb_state(self, msg: events.ReadLbState, now: float) -> LbState:
        if not self.lb.connected:
            raise VppError("not connected to VPP")
        return self.lb.read().state

    def _preview(self, msg: events.Preview, now: float) -> events.PreviewResult:
        return self.preview(msg.config)

    def _apply_config(self, msg: events.ApplyConfig, now: float) -> events.ReloadStatus:
        """A reload: compare with the live config (once), install it if anything changed."""
        config, source = msg.config, msg.source
        d = diff_configs(self.config, config, msg.delta)
        if d.empty:
            self._clear_hold("the file is the running config again")
            log.info(
                "config reload (%s): nothing changed (read in %.2fs)", source, msg.load_seconds
            )
            status = events.ReloadStatus(
                ok=True, at=msg.at, why=source, changes="none", load_seconds=msg.load_seconds
            )
            self.last_reload = status
            return status
        summary = d.summary()
        held, notes, forced = self._interlocked(msg, summary, d)  # the reload interlocks
        if held is not None:
            self.last_reload = held
            self.snapshot = self._make_snapshot()  # the reply means: status shows the hold
            return held
        self._clear_hold("applied with --force" if forced else "a reload passed the interlocks")
        pending = restart_only_changes(self.config, config)
        old_keys = {frontend_key(fe) for fe in self.config.frontends.values()}
        new_keys = {frontend_key(fe) for fe in config.frontends.values()}
        self.removed_vips |= old_keys - new_keys
        self.removals_due = self.removals_due or bool(old_keys - new_keys)  # the next pass
        self.removed_vips -= new_keys
        self._install_config(config, now)
        self.gate.reloaded(config, now)
        if "vpp" in d.settings:  # VPP's lb conf, the sync schedule or the unmanaged policy
            self.full_due = True
        else:  # work in proportion to the change: a pass for the frontends it touches
            self.dirty.update(reload_touched(config, d))
        self.config_loaded_at = msg.at
        log.info("config reloaded from %s: %s", source, summary)
        if pending:
            log.warning(
                "config reload (%s): %s changed; applied when maglevd restarts (the running "
                "value stays until then)",
                source, ", ".join(pending),
            )  # fmt: skip
        self.publish({"type": "reload", "ok": True, "source": source, "summary": summary})
        self.reloads["ok"] += 1
        status = events.ReloadStatus(
            ok=True,
            at=msg.at,
            why=source,
            changes=summary,
            load_seconds=msg.load_seconds,
            applied_seconds=round(time.perf_counter() - msg.started, 3),
            restart_needed=pending,
            forced=forced,
            notes=notes,
        )
        self.last_reload = status
        return status

    def _note_reload(self, status: events.ReloadStatus) -> None:
        self.last_reload = status
        if not status.ok:
            self.reloads["rejected"] += 1
