"""Planning helpers of the reconciler: the plan for a set of frontends, and a candidate's preview.

Pure functions over the reconciler's state (config, engine layout, backend states, overrides, its
view of VPP); they send nothing. Called on the reconciler thread.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from maglev import diff
from maglev.health.state import BackendHealth
from maglev.model import BackendState, Config, FrontendState, UnmanagedPolicy
from maglev.reconcile.dataplane import ActualVip, frontend_vip_key
from maglev.reconcile.desired import (
    STATE_CODE,
    Evaluation,
    Layout,
    build_layout,
    encode_overrides,
    encode_states,
    evaluate,
    make_plan,
    prepare_actual,
    prepare_actual_map,
    select,
)
from maglev.reconcile.plan import Plan
from maglev.reconcile.ranked import RankedActual
from maglev.reconcile.snapshot import ViewRef
from maglev.vpp.dumper import AsInfo, VipInfo, VipKey


class StateView(Mapping[str, BackendState]):
    """Backend name -> state, read through from the health machines (no copy per pass)."""

    __slots__ = ("_health",)

    def __init__(self, health: Mapping[str, BackendHealth]) -> None:
        self._health = health

    def __getitem__(self, name: str) -> BackendState:
        return self._health[name].state

    def get(self, name: str, default: Any = None) -> Any:  # hot: once per backend per pass
        h = self._health.get(name)
        return default if h is None else h.state

    def __iter__(self) -> Iterator[str]:
        return iter(self._health)

    def __len__(self) -> int:
        return len(self._health)


class EncodedStates:
    """The engine's state code per backend of one layout, kept up to date per transition.

    Encoding all states for every pass costs O(backends) of Python; a transition changes one.
    """

    def __init__(self, layout: Layout, states: Mapping[str, BackendState]) -> None:
        self.layout = layout
        self.codes = encode_states(layout, states)
        self._index = {n: i for i, n in enumerate(layout.backend_names)}
        self._enabled = {n: layout.config.backends[n].enabled for n in layout.backend_names}

    def update(self, name: str, state: BackendState) -> None:
        i = self._index.get(name)
        if i is not None:
            self.codes[i] = STATE_CODE[state] if self._enabled[name] else diff.ST_DISABLED

    def evaluate(self, overrides: Mapping[tuple[str, str], int]) -> Evaluation:
        lay = self.layout
        desired = diff.compute_desired(lay.topology, self.codes, encode_overrides(lay, overrides))
        return Evaluation(lay, desired)


_NAMED: list[tuple[Config, frozenset[VipKey]]] = []
_KEYS: list[tuple[Config, dict[str, VipKey]]] = []


def vip_keys(config: Config) -> dict[str, VipKey]:
    """Frontend name -> its VIP key, for a config (cached by identity: configs are immutable)."""
    for c, keys in _KEYS:
        if c is config:
            return keys
    keys = {n: frontend_vip_key(fe) for n, fe in config.frontends.items()}
    _KEYS[:] = [*_KEYS[-3:], (config, keys)]
    return keys


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
    states: EncodedStates,
    names: set[str],
    overrides: Mapping[tuple[str, str], int],
    actual: Mapping[VipKey, ActualVip],
    owned: set[VipKey],
    full: bool,
    ranked: RankedActual | None = None,
) -> tuple[Plan, dict[str, ViewRef]]:
    """The plan for the named frontends, with the whole config's layout, and their views.

    Frontends not named (held at startup, or untouched by a targeted pass) are left as VPP has
    them. `ranked` (of the same layout) ranks the view incrementally. A full plan also covers the VIPs the config does not name (deleted when in `owned`,
    else reported unmanaged); a targeted one reads only the named frontends' VIPs.
    """
    layout = states.layout
    ev = states.evaluate(overrides)
    everyone = len(names) == len(config.frontends)
    if not full:
        key_of = vip_keys(config)
        actual = {k: v for n in names if (v := actual.get(k := key_of[n])) is not None}
    if ranked is not None and ranked.layout is layout:
        table = ranked.table(actual)
    else:
        table = prepare_actual_map(layout, actual)
    selected = None if everyone else select(layout, names)
    plan = make_plan(ev, table, owned if full else (), selected)
    index = frontend_index(layout)
    return plan, {n: ViewRef(ev, index[n]) for n in names}


_FE_STATE = {
    diff.FE_UNKNOWN: FrontendState.UNKNOWN,
    diff.FE_UP: FrontendState.UP,
    diff.FE_DOWN: FrontendState.DOWN,
}


def brief(ref: ViewRef) -> tuple[FrontendState, str | None]:
    """A frontend's state and active pool, without building its whole view."""
    d = ref.evaluation.desired
    fe = ref.evaluation.layout.frontends[ref.index]
    active = d.fe_active[ref.index]
    return _FE_STATE[d.fe_state[ref.index]], fe.pools[active].name if active >= 0 else None


_INDEX: list[tuple[Layout, dict[str, int]]] = []


def frontend_index(layout: Layout) -> dict[str, int]:
    """Frontend name -> engine index of a layout (cached by identity)."""
    for lay, idx in _INDEX:
        if lay is layout:
            return idx
    idx = {fe.name: i for i, fe in enumerate(layout.frontends)}
    _INDEX[:] = [*_INDEX[-3:], (layout, idx)]
    return idx


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
