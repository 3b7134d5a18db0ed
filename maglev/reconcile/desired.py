"""The config side of the engine's input: a config compiled once, states and overrides encoded.

Owns the ranks: `build_layout` turns a `Config` (once per load) into the engine's flat
`Topology` plus the tables mapping ranks back to frontends, backends and addresses; `Ranking`
gives frontend keys and addresses order-preserving int ranks with room for keys the config does
not know; `encode_states`, `EncodedStates` and `encode_overrides` put backend states and
operator overrides in the engine's per-index arrays. VPP's side of the input is ranked in
`maglev.reconcile.actual`; the engine's output is read in `maglev.reconcile.plan`.
Pure; called by the reconciler thread (a layout is immutable once built, so any thread may read
one).
"""

from __future__ import annotations

import bisect
from array import array
from collections.abc import Callable, Container, Hashable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from itertools import compress, repeat
from operator import attrgetter, is_, itemgetter, not_
from typing import Any, Generic, TypeVar

from maglev import diff
from maglev.health.state import BackendHealth
from maglev.model import Backend, BackendState, Config, Frontend, IPAddress, MassFailure
from maglev.vpp.lb import VipKey, frontend_attrs, frontend_key

STATE_CODE: dict[BackendState, int] = {
    BackendState.UNKNOWN: diff.ST_UNKNOWN,
    BackendState.UP: diff.ST_UP,
    BackendState.DOWN: diff.ST_DOWN,
    BackendState.PAUSED: diff.ST_PAUSED,
    BackendState.DISABLED: diff.ST_DISABLED,
    BackendState.REMOVED: diff.ST_DISABLED,  # on its way out: no traffic, flows flushed
}

GUARD_MODE: dict[MassFailure, int] = {
    MassFailure.DRAIN: diff.MODE_DRAIN,
    MassFailure.FAIL_STATIC: diff.MODE_FAIL_STATIC,
    MassFailure.PANIC: diff.MODE_PANIC,
}

_STATE_OF = attrgetter("state")
_ENABLED = attrgetter("enabled")

# Ranks are spaced so addresses the config does not know (ASes still in VPP, VIPs maglev did not
# make) can be ranked in between without renumbering the config's.
_GAP = 1 << 24

K = TypeVar("K", bound=Hashable)


def vip_order(v: VipKey) -> int:
    """Sort key: IPv4 before IPv6, numeric address, prefix length, protocol, port."""
    net, proto, port = v
    addr = int(net.network_address) | ((net.version == 6) << 128)
    return (((addr << 8 | net.prefixlen) << 8) | proto) << 16 | port


def address_order(a: IPAddress) -> int:
    """Sort key: IPv4 before IPv6, then numeric address (one int: cheaper than a tuple)."""
    return int(a) | ((a.version == 6) << 128)


class Ranking(Generic[K]):
    """Order-preserving int ranks for a fixed set of keys, extendable per call.

    Indexed by each key's int sort key (`order(key)`) rather than the key itself: hashing an
    `ipaddress` object costs several times more than computing its sort key.
    """

    __slots__ = ("_keys", "_sort", "by_order", "order")

    def __init__(
        self,
        keys: Iterable[K],
        order: Callable[[K], int],
        orders: Iterable[tuple[int, K]] | None = None,
    ) -> None:
        """Ranks for `keys` by `order`; or, with `orders`, for its (order(key), key) pairs
        already worked out (`keys` is then not read)."""
        if orders is None:
            listed = list(keys)
            self._fill(order, list(map(order, listed)), listed)
        else:
            pairs = list(orders)
            self._fill(order, [o for o, _ in pairs], [k for _, k in pairs])

    @classmethod
    def columns(cls, order: Callable[[K], int], orders: list[int], keys: list[K]) -> Ranking[K]:
        """Ranks for `keys`, whose `order(key)` are `orders` (worked out already): the same as
        `Ranking((), order, zip(orders, keys))`, without a tuple per key."""
        r = cls.__new__(cls)
        r._fill(order, orders, keys)
        return r

    def _fill(self, order: Callable[[K], int], orders: list[int], keys: list[K]) -> None:
        by: dict[int, K] = dict(zip(reversed(orders), reversed(keys), strict=True))  # first stays
        self._sort = sorted(by)
        self._keys = list(map(by.__getitem__, self._sort))
        self.order = order
        self.by_order = dict(zip(self._sort, range(_GAP, (len(by) + 1) * _GAP, _GAP), strict=True))

    def __len__(self) -> int:
        return len(self._sort)

    def rank(self, key: K) -> int | None:
        return self.by_order.get(self.order(key))

    def key(self, rank: int) -> K | None:
        i, rest = divmod(rank, _GAP)
        return self._keys[i - 1] if rest == 0 and 0 < i <= len(self._keys) else None

    def extend(self, extras: Mapping[int, K]) -> tuple[dict[int, int], dict[int, K]]:
        """Ranks for keys outside the fixed set, given as {order: key}, between their known
        neighbours: ({order: rank}, {rank: key})."""
        gaps: dict[int, list[int]] = {}
        for o in extras:
            if o not in self.by_order:
                gaps.setdefault(bisect.bisect_left(self._sort, o), []).append(o)
        ranks: dict[int, int] = {}
        keys: dict[int, K] = {}
        for pos, orders in gaps.items():
            if len(orders) >= _GAP:
                raise ValueError("too many unknown keys between two known ones")
            orders.sort()
            for n, o in enumerate(orders, start=1):
                ranks[o] = pos * _GAP + n
                keys[pos * _GAP + n] = extras[o]
        return ranks, keys


@dataclass(frozen=True, slots=True)
class Layout:
    """A config compiled for the engine. Slot = one backend of one frontend (one AS)."""

    config: Config
    frontends: tuple[Frontend, ...]  # in VIP order (= engine frontend index)
    topology: diff.Topology
    backend_names: tuple[str, ...]  # engine backend index -> name
    slot_backend_name: tuple[str, ...]
    slot_address: tuple[IPAddress, ...]
    slot_first_pool: tuple[str, ...]  # first pool (config order) listing the backend
    slot_index: Mapping[tuple[str, str], int]  # (frontend, backend) -> slot
    vip_ranks: Ranking[VipKey]
    as_ranks: Ranking[IPAddress]
    no_overrides: array[int]
    no_ramp: array[int]  # PERMILLE per slot: no slot slow-starts
    frontend_index: Mapping[str, int]  # frontend name -> engine index
    keys: Mapping[str, VipKey]  # frontend name -> the key of its VIP

    @property
    def vip_ids(self) -> tuple[VipKey, ...]:
        """The key of each frontend's VIP, in engine order."""
        return tuple(self.keys[fe.name] for fe in self.frontends)


@dataclass(frozen=True, slots=True)
class _Shape:
    """A frontend's part of a layout that the rest of the config does not change: its slots
    (backends in address order, with the backend objects they were built from), and its pools'
    members as slot offsets. Kept per frontend object, so a reload that keeps a frontend (and
    its backends) keeps its shape."""

    frontend: Frontend
    key: VipKey
    backends: tuple[Backend, ...]  # per slot
    names: tuple[str, ...]  # per slot
    addresses: tuple[IPAddress, ...]  # per slot
    orders: tuple[int, ...]  # per slot: `address_order` of its address (ascending)
    first_pool: tuple[str, ...]  # per slot
    offset: Mapping[str, int]  # backend name -> slot offset
    attrs: tuple[int, ...]
    guard: tuple[int, int, int]
    pool_sizes: tuple[int, ...]
    member_offset: tuple[int, ...]
    member_weight: tuple[int, ...]
    member_counted: tuple[int, ...]


def _shape(fe: Frontend, backends: Mapping[str, Backend]) -> _Shape:
    pool_of: dict[str, str] = {}
    for pool in fe.pools:
        for m in pool.members:
            if m.backend not in backends:
                raise ValueError(f"frontends.{fe.name}: unknown backend {m.backend!r}")
            pool_of.setdefault(m.backend, pool.name)
    named = list(pool_of)
    keys = [address_order(backends[n].address) for n in named]
    ranked = sorted(range(len(named)), key=keys.__getitem__)  # stable: ties in listed order
    order = [named[i] for i in ranked]
    orders = [keys[i] for i in ranked]
    for i in range(1, len(orders)):
        if orders[i] == orders[i - 1]:
            raise ValueError(f"frontends.{fe.name}: two backends share address of {order[i]!r}")
    offset = dict(zip(order, range(len(order)), strict=True))
    sizes: list[int] = []
    moff: list[int] = []
    mweight: list[int] = []
    mcounted: list[int] = []
    for pool in fe.pools:
        sizes.append(len(pool.members))
        listed: set[str] = set()
        for m in pool.members:
            moff.append(offset[m.backend])
            mweight.append(m.weight)
            # The guard's members: a backend's first entry in the pool, if it has weight.
            mcounted.append(int(m.backend not in listed and m.weight > 0))
            listed.add(m.backend)
    kept = tuple(map(backends.__getitem__, order))
    return _Shape(
        frontend=fe,
        key=frontend_key(fe),
        backends=kept,
        names=tuple(order),
        addresses=tuple(b.address for b in kept),
        orders=tuple(orders),
        first_pool=tuple(pool_of[n] for n in order),
        offset=offset,
        attrs=tuple(frontend_attrs(fe).codes()),
        guard=(GUARD_MODE[fe.on_mass_failure], fe.min_healthy.value, int(fe.min_healthy.percent)),
        pool_sizes=tuple(sizes),
        member_offset=tuple(moff),
        member_weight=tuple(mweight),
        member_counted=tuple(mcounted),
    )


class _ShapeCache:
    """id(frontend) -> its shape (which keeps the frontend object, so an id is never reused
    while cached): the shapes of the last two whole configs built (a reload's before and after,
    a candidate checked beside the running config), and of the partial ones since."""

    def __init__(self) -> None:
        self.current: dict[int, _Shape] = {}
        self.previous: dict[int, _Shape] = {}
        self.partial: dict[int, _Shape] = {}
        self.largest = 0

    def get(self, key: int) -> _Shape | None:
        return self.current.get(key) or self.previous.get(key) or self.partial.get(key)

    def keep(self, fresh: dict[int, _Shape]) -> None:
        self.largest = max(self.largest, len(fresh))
        if 2 * len(fresh) >= self.largest:  # a whole config: a generation
            self.previous, self.current, self.partial = self.current, fresh, {}
        elif len(self.partial) < self.largest:
            self.partial.update(fresh)


_shapes = _ShapeCache()


def _shape_of(fe: Frontend, backends: Mapping[str, Backend], fresh: dict[int, _Shape]) -> _Shape:
    """The frontend's shape: the cached one while the frontend and its backends are the very
    objects it was made from, else made anew."""
    got = _shapes.get(id(fe))
    if (
        got is None
        or got.frontend is not fe
        or not all(map(is_, map(backends.get, got.names), got.backends))
    ):
        got = _shape(fe, backends)
    fresh[id(fe)] = got
    return got


class _SlotIndex(Mapping[tuple[str, str], int]):
    """(frontend, backend) -> slot, read through the frontends' shapes (no dict of every slot)."""

    __slots__ = ("_index", "_shapes", "_starts")

    def __init__(self, index: Mapping[str, int], shapes: list[_Shape], starts: array[int]) -> None:
        self._index, self._shapes, self._starts = index, shapes, starts

    def __getitem__(self, key: tuple[str, str]) -> int:
        fe, backend = key
        i = self._index[fe]
        return self._starts[i] + self._shapes[i].offset[backend]

    def get(self, key: tuple[str, str], default: Any = None) -> Any:
        try:
            return self[key]
        except (KeyError, TypeError, ValueError):
            return default

    def __iter__(self) -> Iterator[tuple[str, str]]:
        for sh in self._shapes:
            for n in sh.names:
                yield (sh.frontend.name, n)

    def __len__(self) -> int:
        return sum(len(sh.names) for sh in self._shapes)


def build_layout(config: Config) -> Layout:
    """Compile `config`; ValueError on what validation should have refused (clashing VIPs,
    unknown backends, two backends of one frontend on the same address).

    Per frontend the work is its shape's (kept across reloads, `_shape_of`); what is left runs
    once per slot or backend in C-level builtins (map, zip, filter, array extends), no Python
    bytecode per slot: at 40,000 backends a Python loop per slot costs tens of milliseconds."""
    backends = config.backends
    fresh: dict[int, _Shape] = {}
    shapes = [_shape_of(fe, backends, fresh) for fe in config.frontends.values()]
    keys = {sh.frontend.name: sh.key for sh in shapes}  # in config order
    vip_keys = [sh.key for sh in shapes]
    vip_ranks = Ranking.columns(vip_order, list(map(vip_order, vip_keys)), vip_keys)
    if len(vip_ranks) != len(shapes):
        raise ValueError("two frontends share one VIP (address, protocol, port)")
    ranked = sorted(
        ((vip_ranks.by_order[vip_order(sh.key)], sh) for sh in shapes), key=itemgetter(0)
    )
    shapes = [sh for _, sh in ranked]
    fes = [sh.frontend for sh in shapes]
    border: dict[str, int] = {}  # backend name -> address_order, for every backend in use
    for sh in shapes:
        border.update(zip(sh.names, sh.orders, strict=True))
    backend_names = tuple(filter(border.__contains__, backends))  # in config order
    bindex = dict(zip(backend_names, range(len(backend_names)), strict=True))
    orders = list(map(border.__getitem__, backend_names))
    as_ranks = Ranking.columns(address_order, orders, [backends[n].address for n in backend_names])
    brank = dict(zip(backend_names, map(as_ranks.by_order.__getitem__, orders), strict=True))
    fe_vip = array("q", [vrank for vrank, _ in ranked])
    fe_attrs, fe_flush = array("i"), array("b", [int(fe.flush_on_down) for fe in fes])
    fe_slot_start, fe_pool_start, pool_member_start = array("i", [0]), array("i", [0]), array("i")
    member_slot, member_weight, member_counted = array("i"), array("i"), array("b")
    fe_guard_conf = array("i")
    names: list[str] = []
    addresses: list[IPAddress] = []
    first_pool: list[str] = []
    for sh in shapes:
        fe_attrs.extend(sh.attrs)
        fe_guard_conf.extend(sh.guard)
        base = len(names)
        names.extend(sh.names)
        addresses.extend(sh.addresses)
        first_pool.extend(sh.first_pool)
        fe_slot_start.append(len(names))
        m = len(member_slot)
        for size in sh.pool_sizes:
            pool_member_start.append(m)
            m += size
        member_slot.extend(map(base.__add__, sh.member_offset))
        member_weight.extend(sh.member_weight)
        member_counted.extend(sh.member_counted)
        fe_pool_start.append(len(pool_member_start))
    pool_member_start.append(len(member_slot))
    slot_as = array("q", map(brank.__getitem__, names))
    slot_backend = array("i", map(bindex.__getitem__, names))
    _shapes.keep(fresh)
    topology = diff.Topology(
        fe_vip, fe_attrs, fe_flush, fe_slot_start, slot_as, slot_backend, fe_pool_start,
        pool_member_start, member_slot, member_weight, member_counted, fe_guard_conf,
    )  # fmt: skip
    index = dict(zip((fe.name for fe in fes), range(len(fes)), strict=True))
    return Layout(
        config=config,
        frontends=tuple(fes),
        topology=topology,
        backend_names=backend_names,
        slot_backend_name=tuple(names),
        slot_address=tuple(addresses),
        slot_first_pool=tuple(first_pool),
        slot_index=_SlotIndex(index, shapes, fe_slot_start),
        vip_ranks=vip_ranks,
        as_ranks=as_ranks,
        no_overrides=array("i", [-1]) * len(names),
        no_ramp=array("i", [diff.PERMILLE]) * len(names),
        frontend_index=index,
        keys=keys,
    )


def state_code(state: BackendState, enabled: bool, suppressed: bool) -> int:
    """The engine's code for one backend: `enabled: false` -> disabled; up while flap damping
    suppresses it -> suppressed (held out, never flushed); else its state's."""
    if not enabled:
        return diff.ST_DISABLED
    if suppressed and state is BackendState.UP:
        return diff.ST_SUPPRESSED
    return STATE_CODE[state]


def encode_states(
    layout: Layout, states: Mapping[str, BackendState], suppressed: Container[str] = ()
) -> array[int]:
    """State code per engine backend index; missing -> unknown; `enabled: false` -> disabled;
    up and named in `suppressed` (by flap damping) -> suppressed.

    In C-level passes (map, compress): the states' codes, then the few disabled and suppressed
    backends set over them (`state_code` says the same for each)."""
    names = layout.backend_names
    backends = layout.config.backends
    if type(states) is StateView:  # the reconciler's: read the machines directly
        health = states.health
        found = list(map(health.get, names))
        try:
            listed = list(map(_STATE_OF, found))
        except AttributeError:  # a backend without a machine: unknown
            listed = [BackendState.UNKNOWN if h is None else h.state for h in found]
    else:
        listed = list(map(states.get, names, repeat(BackendState.UNKNOWN)))
    codes = array("b", map(STATE_CODE.__getitem__, listed))
    off = compress(range(len(names)), map(not_, map(_ENABLED, map(backends.__getitem__, names))))
    for i in off:
        codes[i] = diff.ST_DISABLED
    if suppressed:
        for i in compress(range(len(names)), map(suppressed.__contains__, names)):
            codes[i] = state_code(listed[i], backends[names[i]].enabled, True)
    return codes


def encode_ramps(layout: Layout, ramps: Mapping[tuple[str, str], int]) -> array[int]:
    """Slow-start per mille per slot, PERMILLE where none; ramps naming no slot are ignored."""
    out = array("i", layout.no_ramp)
    for key, permille in ramps.items():
        slot = layout.slot_index.get(key)
        if slot is not None:
            out[slot] = permille
    return out


def encode_overrides(layout: Layout, overrides: Mapping[tuple[str, str], int]) -> array[int]:
    """Override weight per slot, -1 where none; overrides naming no slot are ignored."""
    out = array("i", layout.no_overrides)
    for key, weight in overrides.items():
        slot = layout.slot_index.get(key)
        if slot is not None:
            out[slot] = weight
    return out


class StateView(Mapping[str, BackendState]):
    """Backend name -> state, read through from the health machines (no copy per pass)."""

    __slots__ = ("_health",)

    def __init__(self, health: Mapping[str, BackendHealth]) -> None:
        self._health = health

    @property
    def health(self) -> Mapping[str, BackendHealth]:
        return self._health

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

    def __init__(
        self,
        layout: Layout,
        states: Mapping[str, BackendState],
        suppressed: Container[str] = (),
    ) -> None:
        self.layout = layout
        self.codes = encode_states(layout, states, suppressed)
        self.suppressed = suppressed  # read through: flap damping's live set
        names = layout.backend_names
        self._index = dict(zip(names, range(len(names)), strict=True))

    def update(self, name: str, state: BackendState) -> None:
        i = self._index.get(name)
        if i is not None:
            enabled = self.layout.config.backends[name].enabled
            self.codes[i] = state_code(state, enabled, name in self.suppressed)
