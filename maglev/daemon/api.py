"""The daemon's control-API handler: reads the reconciler's published snapshot, sends it requests.

Runs on the control server's request threads, over a narrow port: the reconciler's
`ReconcilerPort` (its latest immutable `Snapshot` and a typed request sender), the event bus, the
daemon's fixed `DaemonInfo`, and a function that asks the main thread for a reload (the main
thread owns reloads). Reads never lock anything and never reach VPP: they format the snapshot.
Writes become request messages on the reconciler's queue and wait (bounded) for its frozen
answer, so every state change still happens on the reconciler thread.
"""

from __future__ import annotations

import queue
import time
from collections.abc import Callable
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from maglev import __version__, diff
from maglev.config import load_text
from maglev.daemon.bus import EventBus
from maglev.daemon.control import ApiError
from maglev.daemon.convergence import convergence_doc
from maglev.daemon.docs import (
    HELD,
    Reload,
    _action_doc,
    _encap_name,
    _override_doc,
    _ramp_doc,
    _ts,
    budget_doc,
    damping_doc,
    dry_run_doc,
    guard_doc,
    reload_doc,
    reload_hold_doc,
    vantage_doc,
)
from maglev.daemon.info import DaemonInfo
from maglev.errors import ConfigError, ConfigInvalid, NotFound, RequestError, VppError
from maglev.reconcile import events, explain
from maglev.reconcile.opstate import TimeBox, hold_doc
from maglev.reconcile.port import Asks, NoAnswer, Overloaded, ReconcilerPort, T
from maglev.reconcile.snapshot import Snapshot
from maglev.reconcile.statefile import StateFileError


class DaemonApi:
    def __init__(
        self,
        port: ReconcilerPort,
        bus: EventBus,
        info: DaemonInfo,
        reload: Reload,
    ) -> None:
        self.port = port
        self.bus = bus
        self.info = info
        self._reload = reload

    @property
    def snap(self) -> Snapshot:
        return self.port.snapshot

    def _ask(self, msg: Asks[T]) -> T:
        try:
            return self.port.ask(msg)
        except Overloaded as e:
            raise ApiError(503, str(e)) from e
        except NoAnswer as e:
            raise ApiError(504, str(e)) from e
        except NotFound as e:
            raise ApiError(404, str(e)) from e
        except RequestError as e:  # InvalidRequest, and any other mistake of the caller's
            raise ApiError(400, str(e)) from e
        except VppError as e:
            raise ApiError(502, f"VPP: {e}") from e
        except StateFileError as e:  # written before applied: the request changed nothing
            raise ApiError(503, f"{e}; nothing was changed") from e

    # --- reads ------------------------------------------------------------------------------

    def version(self) -> dict[str, Any]:
        s = self.snap
        return {"version": __version__, "engine": diff.IMPLEMENTATION, "vpp_version": s.vpp_version}

    def status(self) -> dict[str, Any]:
        s = self.snap
        info = self.info
        states: dict[str, int] = {}
        for b in s.backends.values():
            states[b.state.value] = states.get(b.state.value, 0) + 1
        fstates: dict[str, int] = {}
        for f in s.frontends.values():
            fstates[f.state.value] = fstates.get(f.state.value, 0) + 1
        return {
            "version": __version__,
            "pid": info.pid,
            "uptime": round(time.time() - info.started, 3),
            "engine": diff.IMPLEMENTATION,
            "dry_run": info.dry_run,
            "vpp": {
                "connected": s.vpp_connected,
                "socket": info.vpp_socket,
                "embedded": info.embedded,
                "version": s.vpp_version,
                "connected_since": _ts(s.vpp_since),
                "last_sync": _ts(s.last_sync),
                "last_sync_ok": s.last_sync_ok,
                "unmanaged_vips": [f"{p} {proto}:{port}" for p, proto, port in s.unmanaged],
            },
            "config": {
                "file": info.config_path,
                "loaded_at": _ts(s.config_loaded_at),
                "last_reload": reload_doc(s.last_reload),
                "reload_hold": reload_hold_doc(s.reload_hold, info.config_path),
            },
            "frontends": {"total": len(s.config.frontends), "released": len(s.released), **fstates},
            "backends": {"total": len(s.backends), **states},
            "reconciler": {
                "passes": s.counters.passes,
                "full_syncs": s.counters.full_syncs,
                "ops_ok": s.counters.ops_ok,
                "ops_failed": s.counters.ops_failed,
                "last_pass_ms": round(s.counters.last_pass_seconds * 1e3, 3),
            },
            "vantage": vantage_doc(s.vantage),
            "mass_failure_guard": [
                {"frontend": n, **guard_doc(s.config.frontends[n], g)}
                for n, g in sorted(s.mass_failure.items())
                if n in s.config.frontends
            ],
            "operator_state": len(s.opstate.holds),
            "budgets": [
                {"frontend": n, **(budget_doc(s.config.frontends[n], d) or {})}
                for n, d in sorted(s.budget.items())
                if n in s.config.frontends
            ],
            "suppressed_backends": [
                {"backend": n, "penalty": d.penalty, "until": _ts(d.until)}
                for n, d in sorted(s.damping.items())
                if d.suppressed and n in s.config.backends
            ],
            "convergence": convergence_doc(s.convergence),
        }

    def _frontend_doc(self, s: Snapshot, name: str) -> dict[str, Any]:
        fe = s.config.frontends[name]
        view = s.frontends.get(name)
        held = s.vantage.held
        by_name = {b.name: b for b in view.backends} if view else {}
        rows = []
        for pool in fe.pools:
            for m in pool.members:
                b = s.config.backends[m.backend]
                bv = by_name.get(m.backend)
                st = s.backends.get(m.backend)
                rows.append(
                    {
                        "pool": pool.name,
                        "name": m.backend,
                        "address": str(b.address),
                        "state": st.state.value if st else "unknown",
                        "configured_weight": m.weight,
                        "override": s.overrides.get((name, m.backend)),
                        "effective_weight": bv.weight if bv else None,
                        "slow_start": _ramp_doc(s.slow_start.get((name, m.backend))),
                        "reason": (bv.reason if bv else "held: startup (not yet released)")
                        + (f" (down: drain held by the {HELD})" if m.backend in held else ""),
                    }
                )
        return {
            "name": name,
            "address": str(fe.address),
            "protocol": fe.protocol.value,
            "port": fe.port,
            "encap": fe.encap.value,
            "src_ip_sticky": fe.src_ip_sticky,
            "flow_table_length": fe.flow_table_length,
            "flush_on_down": fe.flush_on_down,
            "state": view.state.value if view else "unknown",
            "active_pool": view.active_pool if view else None,
            "released": name in s.released,
            "guard": guard_doc(fe, view.guard if view else None),
            "budget": budget_doc(fe, s.budget.get(name)),
            "backends": rows,
            "operator_state": [
                hold_doc(h, time.time()) for h in s.opstate.holds if h.frontend == name
            ],
        }

    def frontends(self) -> list[dict[str, Any]]:
        s = self.snap
        return [self._frontend_doc(s, n) for n in sorted(s.config.frontends)]

    def frontend(self, name: str) -> dict[str, Any]:
        s = self.snap
        if name not in s.config.frontends:
            raise ApiError(404, f"no frontend named {name!r}")
        return self._frontend_doc(s, name)

    def explain(self, name: str, backend: str | None = None) -> dict[str, Any]:
        """Why each backend of frontend `name` (or only `backend`) has its weight."""
        s = self.snap
        if name not in s.config.frontends:
            raise ApiError(404, f"no frontend named {name!r}")
        try:
            out = explain.explain(s, name, backend)
        except KeyError:
            raise ApiError(404, f"frontend {name!r} has no backend named {backend!r}") from None
        return {"frontend": name, "backends": [explain.doc(e) for e in out]}

    def _backend_doc(self, s: Snapshot, name: str, full: bool) -> dict[str, Any]:
        b = s.config.backends[name]
        st = s.backends.get(name)
        p = st.last_probe if st else None
        doc: dict[str, Any] = {
            "name": name,
            "address": str(b.address),
            "healthcheck": b.healthcheck,
            "enabled": b.enabled,
            "state": st.state.value if st else "unknown",
            "counter": st.counter if st else 0,
            "frontends": [n for n, fe in s.config.frontends.items() if name in fe.backend_names()],
            "drain_held_by": HELD if name in s.vantage.held else None,
            "damping": damping_doc(s, name),
            "operator_state": [
                hold_doc(h, time.time()) for h in s.opstate.holds if h.backend == name
            ],
            "slow_start": {
                fe: _ramp_doc(doc) for (fe, be), doc in s.slow_start.items() if be == name
            },
            "last_probe": None
            if p is None
            else {
                "ok": p.ok,
                "reason": p.reason.value,
                "detail": p.detail,
                "duration_ms": round(p.duration * 1e3, 3),
            },
        }
        if full and st:
            doc["transitions"] = [
                {
                    "time": round(t.at, 3),
                    "from": t.old.value,
                    "to": t.new.value,
                    "reason": t.reason.value if t.reason else "-",
                    "detail": t.detail,
                }
                for t in st.history
            ]
            doc["recent_probes"] = [
                {"ok": q.ok, "reason": q.reason.value, "duration_ms": round(q.duration * 1e3, 3)}
                for q in st.recent
            ]
        return doc

    def backends(self) -> list[dict[str, Any]]:
        s = self.snap
        return [self._backend_doc(s, n, False) for n in sorted(s.config.backends)]

    def backend(self, name: str) -> dict[str, Any]:
        s = self.snap
        if name not in s.config.backends:
            raise ApiError(404, f"no backend named {name!r}")
        return self._backend_doc(s, name, True)

    def healthchecks(self) -> list[dict[str, Any]]:
        out = []
        for n, hc in sorted(self.snap.config.healthchecks.items()):
            out.append(
                {
                    "name": n,
                    "type": hc.type.value,
                    "port": hc.port,
                    "interval": hc.interval,
                    "fast_interval": hc.fast_interval,
                    "down_interval": hc.down_interval,
                    "timeout": hc.timeout,
                    "rise": hc.rise,
                    "fall": hc.fall,
                    "jitter": hc.jitter,
                    "netns": hc.netns,
                }
            )
        return out

    def vpp_lb_state(self) -> dict[str, Any]:
        """What VPP has now: a dump, made by the reconciler thread (it owns the connection)."""
        state = self._ask(events.ReadLbState())
        vips = []
        for v in state.vips:
            vips.append(
                {
                    "prefix": str(v.prefix),
                    "protocol": v.protocol,
                    "port": v.port,
                    "encap": _encap_name(v.encap),
                    "dscp": v.dscp,
                    "flow_table_length": v.flow_table_length,
                    "src_ip_sticky": v.src_ip_sticky,
                    "ases": [
                        {
                            "address": str(a.address),
                            "weight": a.weight,
                            "num_buckets": a.num_buckets,
                        }
                        for a in state.ases_of(v.key)
                    ],
                }
            )
        conf = state.conf
        return {
            "conf": None
            if conf is None
            else {
                "ip4_src_address": str(conf.ip4_src_address),
                "ip6_src_address": str(conf.ip6_src_address),
                "sticky_buckets_per_core": conf.sticky_buckets_per_core,
                "flow_timeout": conf.flow_timeout,
            },
            "vips": vips,
        }

    def vpp_lb_counters(self) -> dict[str, Any]:
        """VPP's per-VIP counters as the reconciler last read them (on its timer)."""
        s = self.snap
        if not s.vpp_connected:
            raise ApiError(502, "VPP: not connected to VPP")
        return {
            "read_at": _ts(s.vip_counters_at),
            "vips": [
                {
                    "prefix": str(c.key[0]),
                    "protocol": c.key[1],
                    "port": c.key[2],
                    "type": c.kind,
                    "removed": False,
                    "counters": dict(c.counters),
                }
                for c in s.vip_counters
            ],
        }

    # --- writes -----------------------------------------------------------------------------

    def overrides(self) -> dict[str, Any]:
        """Every operator state in force: what, value, set when and by whom, until when, why."""
        s, now = self.snap, time.time()
        return {"overrides": [hold_doc(h, now) for h in s.opstate.holds]}

    def backend_action(
        self, name: str, action: str, box: TimeBox | None = None, dry_run: bool = False
    ) -> dict[str, Any]:
        if dry_run:  # the time box does not change what the pass would do now
            d = self._ask(events.DryRunAction(name, action))
            assert isinstance(d.answer, events.ActionResult)
            return {**_action_doc(d.answer), **dry_run_doc(d.preview)}
        return _action_doc(self._ask(events.BackendAction(name, action, box=box or TimeBox())))

    def set_weight(
        self,
        frontend: str,
        pool: str,
        backend: str,
        weight: int | None,
        box: TimeBox | None = None,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        if dry_run:
            d = self._ask(events.DryRunOverride(frontend, pool, backend, weight))
            assert isinstance(d.answer, events.OverrideResult)
            return {**_override_doc(d.answer), **dry_run_doc(d.preview)}
        msg = events.WeightOverride(frontend, pool, backend, weight, box=box or TimeBox())
        return _override_doc(self._ask(msg))

    def guard_release(self, by: str) -> dict[str, Any]:
        r = self._ask(events.ReleaseGuard(by))
        return {"released": r.released, "state": r.state, "drains_applied": r.drains}

    def sync(self) -> dict[str, Any]:
        r = self._ask(events.SyncRequest())
        return {"ok": r.ok, "connected": r.connected}

    def reload(self, force: bool = False) -> dict[str, Any]:
        try:
            if force:
                return reload_doc(self._reload("control API", force=True))
            return reload_doc(self._reload("control API"))
        except FutureTimeout as e:  # the main thread is still at it; it will finish
            raise ApiError(504, "the reload did not finish in time; see the log") from e

    def check_config(self, text: str) -> dict[str, Any]:
        try:
            cfg = load_text(text, source="<candidate>")
        except ConfigError as e:
            return {"valid": False, "problems": [str(e)]}
        except ConfigInvalid as e:
            return {"valid": False, "problems": [str(p) for p in e.problems]}
        r = self._ask(events.Preview(cfg))
        interlocks = {"would_hold": bool(r.held_by), "reasons": list(r.held_by)}
        if r.notes:
            interlocks["notes"] = list(r.notes)
        return {
            "valid": True,
            "summary": r.summary,
            "plan": list(r.lines),
            "interlocks": interlocks,
            "churn_summary": r.churn.summary(),
            "churn": r.churn.docs(),
        }

    def subscribe(
        self, filters: dict[str, str]
    ) -> tuple[queue.Queue[dict[str, Any]], Callable[[], None]]:
        try:
            return self.bus.subscribe(filters)
        except ValueError as e:
            raise ApiError(400, str(e)) from e
