"""Churn preview: what a plan does to each frontend's Maglev new-flow table.

For every frontend whose live weights a plan changes: the share of its `flow-table-length`
buckets that change owner (= the share of new flows that land on another backend), the buckets
each backend gains and loses, and the serving capacity the frontend keeps. "Before" is the
reconciler's view of VPP (`Actual`); "after" is that view with the plan's ops recorded, i.e. the
effective weights VPP would have. Only frontends whose weights change pay for tables
(`maglev.table.churn`, two full tables each): everything else here is bookkeeping linear in
the plan's ops.

Capacity is the sum of the effective weights of the serving backends (weight > 0 in VPP),
as a percentage of the frontend's full weight in the running config: the configured weights of
its first pool, every member up and serving (the candidate's, for a frontend a candidate adds).
"capacity 100% -> 75%" means a quarter of what the frontend was built to serve is lost (a
failover to a smaller backup pool shows the same way; overrides can take it above 100%).

Pure values and functions; called on the reconciler thread (previews, dry runs, every applied
plan); the reports are immutable and safe to hand to any thread.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from maglev.model import Config, Frontend, IPAddress
from maglev.table import churn, maglev_table
from maglev.vpp.lb import Actual, ActualVip, VipKey, frontend_key, vip_text
from maglev.vpp.ops import CreateVip, DeleteVip, Op, Plan, record

log = logging.getLogger(__name__)

CREATE, DELETE, RECREATE, UPDATE = "create", "delete", "re-create", "update"
_TAG = {CREATE: " (new)", DELETE: " (deleted)", RECREATE: " (re-created)", UPDATE: ""}
BRIEF_MOVERS = 3  # backends named on an applied plan's log line (the biggest changes)
# Table work an applied plan's report may spend on the reconciler's turn. A mass failure can
# touch a thousand frontends; with the pure-Python table (about 18 ms a frontend of 32
# backends) the report alone would stall health handling for many seconds, so beyond this the
# remaining frontends are counted, not computed. The compiled table fits thousands in it.
APPLIED_BUDGET = 0.05


@dataclass(frozen=True, slots=True)
class BackendMoves:
    name: str  # the backend's name in the frontend (an address when the config has none)
    gained: int
    lost: int

    def text(self) -> str:
        if self.gained and self.lost:
            return f"{self.name} +{self.gained}/-{self.lost}"
        return f"{self.name} +{self.gained}" if self.gained else f"{self.name} -{self.lost}"


@dataclass(frozen=True, slots=True)
class FrontendChurn:
    frontend: str  # the frontend's name (a VIP's text when the config does not name it)
    change: str  # CREATE, DELETE, RECREATE or UPDATE (of the VIP)
    size: int  # buckets in the table
    moved: int
    backends: tuple[BackendMoves, ...]  # biggest net gain first, then by name
    capacity_before: float | None  # percent of the full weight (None: not known)
    capacity_after: float | None

    @property
    def share(self) -> float:
        return self.moved / self.size if self.size else 0.0

    def _head(self) -> str:
        return f"{self.frontend}{_TAG[self.change]}: {_share(self.share)} of buckets move"

    def line(self) -> str:
        """'www: 12.5% of buckets move (128/1024); web3 +128, web1 -64; capacity 100% -> 75%'."""
        parts = [f"{self._head()} ({self.moved}/{self.size})"]
        if self.backends:
            parts.append(", ".join(b.text() for b in self.backends))
        if self.capacity_before is not None and self.capacity_after is not None:
            parts.append(f"capacity {_pct(self.capacity_before)} -> {_pct(self.capacity_after)}")
        return "; ".join(parts)

    def brief(self) -> str:
        """The log line of an applied plan: 'www: 12.5% of buckets move; web3 +128'."""
        movers = ", ".join(b.text() for b in self.backends[:BRIEF_MOVERS])
        more = len(self.backends) - BRIEF_MOVERS
        tail = f" (+{more} more)" if more > 0 else ""
        return f"{self._head()}; {movers}{tail}" if movers else self._head()

    def doc(self) -> dict[str, Any]:
        return {
            "frontend": self.frontend,
            "text": self.line(),
            "change": self.change,
            "buckets": self.size,
            "moved": self.moved,
            "share": round(self.share, 6),
            "backends": [
                {"name": b.name, "gained": b.gained, "lost": b.lost} for b in self.backends
            ],
            "capacity": {
                "before": _round(self.capacity_before),
                "after": _round(self.capacity_after),
            },
        }


@dataclass(frozen=True, slots=True)
class ChurnReport:
    """The churn of one plan, per frontend whose weights change, by frontend name."""

    frontends: tuple[FrontendChurn, ...] = ()
    skipped: int = 0  # frontends whose weights change but whose tables were not computed

    @property
    def moved(self) -> int:
        return sum(f.moved for f in self.frontends)

    def summary(self) -> str:
        """'churn: 2 frontends, 192 of 2048 buckets move (9.4%)'."""
        tail = f"; {self.skipped} more not computed (over the time budget)" if self.skipped else ""
        if not self.frontends:
            return "churn: no frontend's buckets move" + tail
        size = sum(f.size for f in self.frontends)
        n = len(self.frontends)
        return (
            f"churn: {n} frontend{'s' if n != 1 else ''}, {self.moved} of {size} buckets move"
            f" ({_share(self.moved / size if size else 0.0)})" + tail
        )

    def lines(self) -> list[str]:
        return [f.line() for f in self.frontends]

    def docs(self) -> list[dict[str, Any]]:
        return [f.doc() for f in self.frontends]


def _share(share: float) -> str:
    if 0 < share < 0.0005:
        return "<0.1%"
    return f"{share * 100:.1f}%"


def _pct(value: float) -> str:
    return f"{round(value, 1):g}%"


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def _full_weight(fe: Frontend) -> int:
    """The configured weights of a frontend's first pool: every member up and serving."""
    return sum(m.weight for m in fe.pools[0].members) if fe.pools else 0


class FrontendIndex:
    """Which frontend (of one or two configs) a VIP carries, and its backends by address.

    Built once per config (O(frontends)); a pass then looks up only the VIPs it touched.
    """

    def __init__(self, config: Config, old: Config | None = None) -> None:
        self.config = config
        self.old = old
        self._by_key: dict[VipKey, Frontend] = {}
        self._full: dict[VipKey, int] = {}
        for cfg in (old, config) if old is not None else (config,):
            self._by_key.update((frontend_key(fe), fe) for fe in cfg.frontends.values())
        for cfg in (config, old) if old is not None else (config,):
            self._full.update((frontend_key(fe), _full_weight(fe)) for fe in cfg.frontends.values())
        self._backends: dict[str, dict[IPAddress, str]] = {}
        self._configs = (config,) if old is None else (config, old)

    def frontend(self, key: VipKey) -> Frontend | None:
        return self._by_key.get(key)

    def full_weight(self, key: VipKey) -> int:
        """The weight the frontend on VIP `key` serves with at full health, as the running
        config has it (the candidate's for a frontend it adds): both sides of a preview are
        measured against what the frontend serves today, so a candidate that halves a pool's
        weights shows as a capacity loss, not as an overfull frontend."""
        return self._full.get(key, 0)

    def backend_name(self, fe: Frontend, address: IPAddress) -> str:
        """The name of the backend at `address` in frontend `fe`: one of its members in the
        new config, else in the old (a backend a reload takes out), else any backend with that
        address, else the address itself (an AS maglev does not know)."""
        names = self._backends.get(fe.name)
        if names is None:
            names = {}
            for cfg in self._configs:
                f = cfg.frontends.get(fe.name)
                for n in f.backend_names() if f is not None else ():
                    names.setdefault(cfg.backends[n].address, n)
            self._backends[fe.name] = names
        name = names.get(address)
        if name is None:
            for cfg in self._configs:
                name = next((n for n, b in cfg.backends.items() if b.address == address), None)
                if name is not None:
                    break
        return str(address) if name is None else name


Sides = Mapping[VipKey, ActualVip]
"""One side (before or after) of the VIPs a plan touches; a VIP absent here is absent in VPP."""


def touched(ops: Iterable[Op]) -> tuple[dict[VipKey, None], set[VipKey]]:
    """The VIPs the ops touch (in order) and those they delete and create again."""
    vips: dict[VipKey, None] = {}
    deleted: set[VipKey] = set()
    recreated: set[VipKey] = set()
    for op in ops:
        k = op.vip
        vips[k] = None
        if isinstance(op, DeleteVip):
            deleted.add(k)
        elif isinstance(op, CreateVip) and k in deleted:
            recreated.add(k)
    return vips, recreated


def side(actual: Actual, vips: Iterable[VipKey]) -> dict[VipKey, ActualVip]:
    """A copy of the named VIPs of `actual` (so that recording ops into it leaves `actual`)."""
    return {k: ActualVip(v.attrs, dict(v.weights)) for k in vips if (v := actual.get(k))}


def plan_churn(plan: Plan, actual: Actual, index: FrontendIndex) -> ChurnReport:
    """The churn `plan` would cause, applied to VPP as `actual` has it (nothing is changed)."""
    vips, recreated = touched(plan.ops)
    before = side(actual, vips)
    after = side(before, vips)
    record(after, plan.ops)
    return between(vips, before, after, index, recreated)


def between(
    vips: Iterable[VipKey],
    before: Sides,
    after: Sides,
    index: FrontendIndex,
    recreated: set[VipKey] | frozenset[VipKey] = frozenset(),
    budget: float | None = None,
) -> ChurnReport:
    """The churn from `before` to `after` of the named VIPs, one entry per frontend whose live
    weights (or whose table's existence or size) change.

    `budget` (seconds; None: none) bounds the table work: once spent, the remaining frontends
    are only counted (`skipped`). Previews have none (an operator asked and waits for the
    answer); an applied plan's report has one, because it runs on the reconciler's turn.
    """
    out = []
    skipped = 0
    deadline = None if budget is None else time.perf_counter() + budget
    for k in vips:
        b, a = before.get(k), after.get(k)
        bw = {x: w for x, w in b.weights.items() if w > 0} if b is not None else {}
        aw = {x: w for x, w in a.weights.items() if w > 0} if a is not None else {}
        b_size = b.attrs.flow_table_length if b is not None else 0
        a_size = a.attrs.flow_table_length if a is not None else 0
        if bw == aw and (b_size == a_size or not bw):
            continue  # no owner changes: no tables to compute
        if b is None:
            change = CREATE
        elif a is None:
            change = DELETE
        else:
            change = RECREATE if k in recreated or b.attrs != a.attrs else UPDATE
        if deadline is not None and time.perf_counter() >= deadline:
            skipped += 1
            continue
        out.append(_frontend_churn(k, change, bw, aw, b_size, a_size, index))
    out.sort(key=lambda f: f.frontend)
    return ChurnReport(tuple(out), skipped)


def _frontend_churn(
    key: VipKey,
    change: str,
    bw: dict[IPAddress, int],
    aw: dict[IPAddress, int],
    b_size: int,
    a_size: int,
    index: FrontendIndex,
) -> FrontendChurn:
    if b_size and a_size and b_size != a_size:
        size, moved, gained, lost = _resized(bw, aw, b_size, a_size)
    else:
        size = a_size or b_size
        c = churn(_items(bw), _items(aw), size)
        moved, gained, lost = c.moved, dict(c.gained), dict(c.lost)
    fe = index.frontend(key)
    if fe is None:
        name = vip_text(*key)
        rows = [BackendMoves(str(x), gained.get(x, 0), lost.get(x, 0)) for x in {*gained, *lost}]
        full = 0
    else:
        name = fe.name
        rows = [
            BackendMoves(index.backend_name(fe, x), gained.get(x, 0), lost.get(x, 0))
            for x in {*gained, *lost}
        ]
        full = index.full_weight(key)
    rows.sort(key=lambda r: (r.lost - r.gained, r.name))
    cap_b = 100.0 * sum(bw.values()) / full if full else None
    cap_a = 100.0 * sum(aw.values()) / full if full else None
    return FrontendChurn(name, change, size, moved, tuple(rows), cap_b, cap_a)


def _items(weights: dict[IPAddress, int]) -> Any:
    """(address, weight) pairs for `maglev.table`, whose address type variable is constrained
    to one kind per call while a VIP may mix IPv4 and IPv6 ASes (the table accepts both)."""
    return weights.items()


def _resized(
    bw: dict[IPAddress, int], aw: dict[IPAddress, int], b_size: int, a_size: int
) -> tuple[int, int, dict[IPAddress, int], dict[IPAddress, int]]:
    """Moves between tables of different sizes (a VIP re-created with another
    `flow-table-length`). VPP picks a flow's bucket as hash & (size - 1), so a flow in bucket i
    of the larger table was in bucket i mod size of the smaller one: compare on the larger."""
    old, new = maglev_table(_items(bw), b_size), maglev_table(_items(aw), a_size)
    size = max(b_size, a_size)
    gained: dict[IPAddress, int] = {}
    lost: dict[IPAddress, int] = {}
    moved = 0
    for i in range(size):
        x, y = old[i % b_size], new[i % a_size]
        if x != y:
            moved += 1
            if x is not None:
                lost[x] = lost.get(x, 0) + 1
            if y is not None:
                gained[y] = gained.get(y, 0) + 1
    return size, moved, gained, lost


def log_report(report: ChurnReport, dry_run: bool = False) -> None:
    """One INFO line per frontend whose buckets move (an applied plan, or a dry run's)."""
    prefix = "dry run: " if dry_run else ""
    for f in report.frontends:
        log.info("%s%s", prefix, f.brief())
    if report.skipped:
        log.info(
            "%schurn of %d more frontend(s) not computed: over the %.0f ms table budget of a pass",
            prefix, report.skipped, APPLIED_BUDGET * 1e3,
        )  # fmt: skip
