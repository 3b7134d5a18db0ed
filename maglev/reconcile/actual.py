"""VPP's side of the engine's input: the record of what VPP has, ranked against a layout.

`prepare_actual_map` ranks a record ({VIP key: ActualVip}) for the engine, placing VIPs and
addresses the config does not know between the known ones; `prepare_actual` does the same for
dumped rows. The reconciler's view only changes through its own successful operations and
full-sync dumps, so `RankedActual` keeps each VIP's ranked rows for one layout and updates them
op by op (`record_all`) instead of ranking tens of thousands of rows on every pass; a VIP object
the view replaced (a dump, a re-created VIP) is ranked afresh, and a VIP or address the layout
does not know falls back to the general path, so its table is always the one
`prepare_actual_map` would build. Reconciler thread only.
"""

from __future__ import annotations

import bisect
from array import array
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from operator import attrgetter, itemgetter

from maglev import diff
from maglev.model import IPAddress
from maglev.reconcile.desired import Layout
from maglev.vpp.lb import ActualVip, AsInfo, VipAttrs, VipInfo, VipKey, actual_from_rows
from maglev.vpp.ops import CreateVip, DeleteAs, DeleteVip, Op


@dataclass(frozen=True, slots=True)
class ActualTable:
    """VPP's tables ranked for the engine, with the keys the config does not know."""

    actual: diff.Actual
    vip_ids: tuple[VipKey, ...]  # per engine actual-VIP index
    extra_vips: Mapping[int, VipKey]
    extra_addresses: Mapping[int, IPAddress]


def prepare_actual(layout: Layout, vips: Iterable[VipInfo], ases: Iterable[AsInfo]) -> ActualTable:
    """Rank VPP's VIP and live AS rows (ASes of VIPs not in `vips` are ignored)."""
    return prepare_actual_map(layout, actual_from_rows(vips, ases))


def prepare_actual_map(layout: Layout, actual: Mapping[VipKey, ActualVip]) -> ActualTable:
    """Rank a record of VPP ({VIP key: ActualVip}) for the engine."""
    return _rank_table(
        layout,
        {k: v.attrs for k, v in actual.items()},
        {k: v.weights.items() for k, v in actual.items()},
    )


def _rank_table(
    layout: Layout,
    attrs: Mapping[VipKey, VipAttrs],
    weights: Mapping[VipKey, Iterable[tuple[IPAddress, int]]],  # one entry per address
) -> ActualTable:
    vips = {layout.vip_ranks.order(k): k for k in attrs}
    extra_vrank, extra_vips = layout.vip_ranks.extend(vips)
    vby, aby, aorder = layout.vip_ranks.by_order, layout.as_ranks.by_order, layout.as_ranks.order
    rows: list[tuple[int, VipKey, list[tuple[int, int]]]] = []
    missing: dict[int, IPAddress] = {}
    for vo, k in vips.items():
        members = []
        for a, w in weights[k]:
            o = aorder(a)
            if o not in aby:
                missing[o] = a
            members.append((o, w))
        members.sort()  # sort keys order exactly as ranks do
        rows.append((vby.get(vo) or extra_vrank[vo], k, members))
    rows.sort(key=itemgetter(0))
    extra_arank, extra_addresses = layout.as_ranks.extend(missing)
    act_vip, act_attrs, act_as_start = array("q"), array("i"), array("i", [0])
    act_as, act_weight = array("q"), array("i")
    for vrank, k, members in rows:
        act_vip.append(vrank)
        act_attrs.extend(attrs[k].codes())
        for o, w in members:
            act_as.append(aby.get(o) or extra_arank[o])
            act_weight.append(w)
        act_as_start.append(len(act_as))
    return ActualTable(
        actual=diff.Actual(act_vip, act_attrs, act_as_start, act_as, act_weight),
        vip_ids=tuple(k for _, k, _ in rows),
        extra_vips=extra_vips,
        extra_addresses=extra_addresses,
    )


class _Rows:
    """One VIP's ranked rows: its engine rank, attributes, AS ranks (sorted) and weights."""

    __slots__ = ("as_rank", "attrs", "key", "source", "vrank", "weight")

    def __init__(
        self,
        source: ActualVip,
        key: VipKey,
        vrank: int,
        attrs: tuple[int, int, int, int],
        as_rank: array[int],
        weight: array[int],
    ) -> None:
        self.source = source
        self.key = key
        self.vrank = vrank
        self.attrs = attrs
        self.as_rank = as_rank
        self.weight = weight


_BY_RANK = attrgetter("vrank")


class RankedActual:
    """Ranked rows per VIP of the view of VPP, for one layout (see the module docstring)."""

    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        self._rows: dict[VipKey, _Rows] = {}

    def _rank(self, key: VipKey, v: ActualVip) -> _Rows | None:
        lay = self.layout
        vrank = lay.vip_ranks.by_order.get(lay.vip_ranks.order(key))
        if vrank is None:
            return None
        aby, aorder = lay.as_ranks.by_order, lay.as_ranks.order
        members: list[tuple[int, int]] = []
        for a, w in v.weights.items():
            r = aby.get(aorder(a))
            if r is None:
                return None
            members.append((r, w))
        members.sort()
        return _Rows(
            v,
            key,
            vrank,
            v.attrs.codes(),
            array("q", [r for r, _ in members]),
            array("i", [w for _, w in members]),
        )

    def table(self, actual: Mapping[VipKey, ActualVip]) -> ActualTable:
        """The engine's table for `actual` (equal to `prepare_actual_map(layout, actual)`)."""
        cache = self._rows
        rows: list[_Rows] = []
        for k, v in actual.items():
            r = cache.get(k)
            if r is None or r.source is not v:
                r = self._rank(k, v)
                if r is None:  # a VIP or AS the config does not know: the general path
                    cache.pop(k, None)
                    return prepare_actual_map(self.layout, actual)
                cache[k] = r
            rows.append(r)
        rows.sort(key=_BY_RANK)
        act_vip, act_attrs, act_as_start = array("q"), array("i"), array("i", [0])
        act_as, act_weight = array("q"), array("i")
        for r in rows:
            act_vip.append(r.vrank)
            act_attrs.extend(r.attrs)
            act_as.extend(r.as_rank)
            act_weight.extend(r.weight)
            act_as_start.append(len(act_as))
        return ActualTable(
            actual=diff.Actual(act_vip, act_attrs, act_as_start, act_as, act_weight),
            vip_ids=tuple(r.key for r in rows),
            extra_vips={},
            extra_addresses={},
        )

    def record_all(self, ops: Iterable[Op]) -> None:
        """Mirror operations that succeeded (already recorded in the view of VPP with
        `maglev.vpp.ops.record`), in order (a VIP's ops usually come together)."""
        rows, rank_of = self._rows, self.layout.as_ranks.rank
        pfx: object = None
        proto = port = -1
        r: _Rows | None = None
        for op in ops:
            if isinstance(op, CreateVip | DeleteVip):
                rows.pop(op.vip, None)  # a new object in the view, or none: ranked afresh
                pfx = None
                continue
            if op.prefix is not pfx or op.protocol != proto or op.port != port:
                pfx, proto, port = op.prefix, op.protocol, op.port
                r = rows.get((op.prefix, proto, port))
            if r is None:
                continue
            rank = rank_of(op.address)
            if rank is None:
                rows.pop(op.vip, None)
                r = None
                continue
            i = bisect.bisect_left(r.as_rank, rank)
            found = i < len(r.as_rank) and r.as_rank[i] == rank
            if isinstance(op, DeleteAs):
                if found:
                    del r.as_rank[i]
                    del r.weight[i]
            elif found:
                r.weight[i] = op.weight
            else:
                r.as_rank.insert(i, rank)
                r.weight.insert(i, op.weight)

    def clear(self) -> None:
        self._rows.clear()
