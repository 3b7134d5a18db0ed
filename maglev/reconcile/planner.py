"""Planning helpers of the reconciler: the plan for a set of frontends, and a candidate's preview.

Pure functions over the reconciler's state (config, engine layout, backend states, overrides, its
view of VPP); they send nothing. Called on the reconciler thread.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import replace
from types import MappingProxyType

from maglev.health.state import BackendHealth
from maglev.model import BackendState, Config, UnmanagedPolicy
from maglev.reconcile.dataplane import ActualVip, frontend_vip_key
from maglev.reconcile.desired import (
    FrontendView,
    Layout,
    build_layout,
    evaluate,
    make_plan,
    prepare_actual,
)
from maglev.reconcile.plan import Plan
from maglev.vpp.dumper import AsInfo, VipInfo, VipKey


class StateView(Mapping[str, BackendState]):
    """Backend name -> state, read through from the health machines (no copy per pass)."""

    __slots__ = ("_health",)

    def __init__(self, health: Mapping[str, BackendHealth]) -> None:
        self._health = health

    def __getitem__(self, name: str) -> BackendState:
        return self._health[name].state

    def __iter__(self) -> Iterator[str]:
        return iter(self._health)

    def __len__(self) -> int:
        return len(self._health)


_NAMED: list[tuple[Config, frozenset[VipKey]]] = []


def named_vips(config: Config) -> frozenset[VipKey]:
    """The VIP keys of every frontend of a config (cached by identity: configs are immutable)."""
    for c, keys in _NAMED:
        if c is config:
            return keys
    keys = frozenset(frontend_vip_key(fe) for fe in config.frontends.values())
    _NAMED[:] = [*_NAMED[-3:], (config, keys)]
    return keys


def rows(
    actual: Mapping[VipKey, ActualVip], keys: Iterable[VipKey]
) -> tuple[list[VipInfo], list[AsInfo]]:
    """The view of VPP for the given VIP keys, as the rows the diff reads."""
    vips: list[VipInfo] = []
    ases: list[AsInfo] = []
    for k in keys:
        v = actual.get(k)
        if v is None:
            continue
        a = v.attrs
        vips.append(
            VipInfo(k[0], k[1], k[2], a.encap, a.dscp, a.flow_table_length, a.src_ip_sticky)
        )
        ases.extend(AsInfo(k, addr, w, 0, 1, 0) for addr, w in v.weights.items())
    return vips, ases


def plan_for(
    config: Config,
    layout: Layout,
    names: set[str],
    states: Mapping[str, BackendState],
    overrides: Mapping[tuple[str, str], int],
    actual: Mapping[VipKey, ActualVip],
    owned: set[VipKey],
    full: bool,
) -> tuple[Plan, dict[str, FrontendView]]:
    """The plan for the named frontends; `layout` is the whole config's (reused when all named).

    A full plan also covers the VIPs the config does not name (deleted when in `owned`, else
    reported unmanaged); the VIPs of frontends not named (held at startup) are left out entirely.
    """
    if len(names) != len(config.frontends):
        fes = MappingProxyType({n: config.frontends[n] for n in sorted(names)})
        layout = build_layout(replace(config, frontends=fes))
    ev = evaluate(layout, states, overrides)
    named = named_vips(config)
    keys = {frontend_vip_key(config.frontends[n]) for n in names}
    if full:
        keys |= {k for k in actual if k not in named}
    vips, ases = rows(actual, keys)
    plan = make_plan(ev, prepare_actual(layout, vips, ases), owned if full else ())
    return plan, ev.views()


def preview(
    current: Config,
    candidate: Config,
    states: Mapping[str, BackendState],
    overrides: Mapping[tuple[str, str], int],
    actual: Mapping[VipKey, ActualVip],
    removed_vips: set[VipKey],
) -> Plan:
    """The full plan `candidate` would cause now.

    Backends that keep their address and healthcheck keep their current state; others start as
    they would after a reload (unknown; disabled when not enabled; up without a healthcheck).
    """
    cand_states: dict[str, BackendState] = {}
    for name, b in candidate.backends.items():
        old = current.backends.get(name)
        same = old is not None and old.address == b.address and old.healthcheck == b.healthcheck
        if not b.enabled:
            cand_states[name] = BackendState.DISABLED
        elif same and name in states:
            cand_states[name] = states[name]
        else:
            cand_states[name] = BackendState.UP if b.healthcheck is None else BackendState.UNKNOWN
    layout = build_layout(candidate)
    ev = evaluate(layout, cand_states, overrides)
    named = {frontend_vip_key(fe) for fe in candidate.frontends.values()}
    removed = {frontend_vip_key(fe) for fe in current.frontends.values()} - named
    owned = removed | removed_vips
    if candidate.vpp.unmanaged_vips is UnmanagedPolicy.DELETE:
        owned |= set(actual) - named
    vips, ases = rows(actual, set(actual))
    return make_plan(ev, prepare_actual(layout, vips, ases), owned)
