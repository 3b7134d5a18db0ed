"""The reconciler's view of VPP, ranked for the engine and kept up to date op by op.

`desired.prepare_actual_map` ranks every AS of every VIP it is given (tens of thousands of rows)
on each pass, although the view only changes through the reconciler's own successful operations
and full-sync dumps. `RankedActual` keeps each VIP's ranked rows for one layout: an operation
that succeeded updates its VIP's rows in place (`record`), a VIP object the view replaced (a
dump, a re-created VIP) is ranked afresh on the next `table`. A VIP or address the layout does
not know falls back to the general path, so the table is always the one
`prepare_actual_map` would build. Reconciler thread only.
"""

from __future__ import annotations

import bisect
from array import array
from collections.abc import Iterable, Mapping
from operator import attrgetter

from maglev import diff
from maglev.model import Encap
from maglev.reconcile.desired import ActualTable, ActualVipLike, Layout, prepare_actual_map
from maglev.reconcile.plan import ENCAP_CODE, CreateVip, DeleteAs, DeleteVip, Op, VipId

_L3DSR = ENCAP_CODE[Encap.L3DSR]


class _Rows:
    """One VIP's ranked rows: its engine rank, attributes, AS ranks (sorted) and weights."""

    __slots__ = ("as_rank", "attrs", "key", "source", "vrank", "weight")

    def __init__(
        self,
        source: ActualVipLike,
        key: VipId,
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
        self._rows: dict[VipId, _Rows] = {}

    def _rank(self, key: VipId, v: ActualVipLike) -> _Rows | None:
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
        at = v.attrs
        dscp = at.dscp if at.encap == _L3DSR else 0
        attrs = (at.encap, dscp, int(at.src_ip_sticky), at.flow_table_length)
        return _Rows(
            v,
            key,
            vrank,
            attrs,
            array("q", [r for r, _ in members]),
            array("i", [w for _, w in members]),
        )

    def table(self, actual: Mapping[VipId, ActualVipLike]) -> ActualTable:
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

    def record(self, op: Op) -> None:
        """Mirror a successful operation (already applied to the view with `apply_to_actual`)."""
        self.record_all((op,))

    def record_all(self, ops: Iterable[Op]) -> None:
        """`record` for each of `ops`, in order (a VIP's ops usually come together)."""
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
