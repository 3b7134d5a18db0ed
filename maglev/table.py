"""The lb plugin's weighted Maglev new-flow table, computed exactly as VPP 26.10 computes it.

`maglev_table` fills the whole bucket->AS table (the plugin's `lb_vip_update_new_flow_table`);
`bucket_counts` gives each AS's number of buckets in closed form without filling it, cheap enough
to run on every API operation. Both depend only on the live (address, weight) set and the table
size M, never on insertion order. Pure functions, on any thread: the emulator's, and the
planner's (churn preview).

Addresses are the plugin's 16-byte ip46 form (IPv4 a.b.c.d is twelve zero bytes then a.b.c.d);
`ip46()` converts from `ipaddress` objects.
"""

from __future__ import annotations

import ipaddress
from bisect import bisect_left
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import accumulate
from typing import Any, Generic, TypeVar

Address = bytes | ipaddress.IPv4Address | ipaddress.IPv6Address
A = TypeVar("A", bytes, ipaddress.IPv4Address, ipaddress.IPv6Address)

_M64 = 0xFFFFFFFFFFFFFFFF
_P1 = 11400714785074694791
_P2 = 14029467366897019727
_P3 = 1609587929392839161
_P4 = 9650029242287828579
_P5 = 2870177450012600261
_XXH_SEED = (0x9E3779B97F4A7C13 + _P5 + 8) & _M64


def ip46(address: ipaddress.IPv4Address | ipaddress.IPv6Address | str) -> bytes:
    """The plugin's 16-byte form of an address (IPv4 in the last four bytes)."""
    addr = ipaddress.ip_address(address)
    if addr.version == 4:
        return bytes(12) + addr.packed
    return addr.packed


def _rotl(x: int, r: int) -> int:
    return ((x << r) | (x >> (64 - r))) & _M64


def xxhash_u64(key: int) -> int:
    """VPP's `clib_xxhash`: xxHash64 of a single u64 with the plugin's fixed seed."""
    k = (_rotl((key * _P2) & _M64, 31) * _P1) & _M64
    h = _XXH_SEED ^ k
    h = (_rotl(h, 27) * _P1 + _P4) & _M64
    h ^= h >> 33
    h = (h * _P2) & _M64
    h ^= h >> 29
    h = (h * _P3) & _M64
    h ^= h >> 32
    return h


def _key(address: Address) -> bytes:
    return address if isinstance(address, bytes) else ip46(address)


def maglev_table(addresses_weights: Iterable[tuple[A, int]], m: int) -> list[A | None]:
    """The full new-flow table of size m: the AS address owning each bucket, None for drop.

    `addresses_weights` are the VIP's live ASes as (address, weight), addresses as 16-byte ip46
    `bytes` or `ipaddress` objects (returned as given); m is a power of two. Entries
    (as, replica) sorted by (replica, address) each get a permutation seeded by
    xxhash(A0 ^ A1 ^ replica) and claim, round-robin, the next free bucket along it.
    """
    given: dict[bytes, A] = {}
    weights: dict[bytes, int] = {}
    for address, weight in addresses_weights:
        if weight > 0:
            k = _key(address)
            given[k] = address
            weights[k] = weight
    live = sorted(weights.items())
    if not live or m <= 0:
        return [None] * max(m, 0)
    table: list[bytes | None] = [None] * m
    mask = m - 1
    entries: list[tuple[int, bytes]] = []  # (replica, address) in sorted order
    max_w = max(w for _, w in live)
    for r in range(max_w):
        entries.extend((r, a) for a, w in live if w > r)
    skips: list[int] = []
    cursors: list[int] = []
    for r, a in entries:
        a0 = int.from_bytes(a[:8], "little")
        a1 = int.from_bytes(a[8:], "little")
        seed = xxhash_u64(a0 ^ a1 ^ r)
        skips.append(((seed & 0xFFFFFFFF) | 1) & mask)
        cursors.append((seed >> 32) & mask)
    done = 0
    while True:
        for i, (_r, a) in enumerate(entries):
            pos = cursors[i]
            skip = skips[i]
            while table[pos] is not None:
                pos = (pos + skip) & mask
            table[pos] = a
            cursors[i] = (pos + skip) & mask
            done += 1
            if done == m:
                return [None if b is None else given[b] for b in table]


def bucket_counts(addresses_weights: Iterable[tuple[A, int]], m: int) -> dict[A, int]:
    """Buckets per AS address in closed form (only ASes with weight > 0 appear); addresses as
    in `maglev_table`."""
    items = sorted((_key(a), w, a) for a, w in addresses_weights if w > 0)
    counts = counts_in_order([w for _k, w, _a in items], m)
    return {a: n for (_k, _w, a), n in zip(items, counts, strict=True)}


def counts_in_order(weights: Sequence[int], m: int) -> list[int]:
    """Buckets of each AS given the weights of the live ASes in address order (0s allowed).

    Every sorted entry (replica r, address) claims exactly one bucket per pass, so with
    q, R = divmod(m, W) the first R entries get q+1 buckets and the rest q. The first R entries
    are all replica levels below some level L (an AS of weight w owns min(w, L) of them) plus, at
    level L, the first R' ASes in address order among those with weight > L. L is found by
    walking the distinct weights in ascending order: O(n log n), independent of m and of the
    weights. It runs on every emulated operation, hence the plain, C-heavy loops.
    """
    n = len(weights)
    total = sum(weights)
    if total <= 0 or m <= 0:
        return [0] * n
    q, rem = divmod(m, total)
    if not rem:
        return [q * w for w in weights]
    # entries(L) = entries on replica levels 0..L-1 = sum(min(w, L)); find the largest L with
    # entries(L) <= rem by bisection over L (prefix sums of the sorted weights make each probe
    # O(log n)); entries(max weight) = total > rem bounds it.
    by_weight = sorted(weights)
    prefix = list(accumulate(by_weight, initial=0))
    lo, hi = 0, by_weight[-1]
    while hi - lo > 1:
        mid = (lo + hi) >> 1
        i = bisect_left(by_weight, mid)
        if prefix[i] + mid * (n - i) <= rem:
            lo = mid
        else:
            hi = mid
    level = lo
    i = bisect_left(by_weight, level)
    rem -= prefix[i] + level * (n - i)
    if q:
        out = [q * w + (w if w < level else level) for w in weights]
    else:
        out = [w if w < level else level for w in weights]
    if rem:
        # A partial level: the first `rem` ASes in address order with weight > level.
        for i, w in enumerate(weights):
            if w > level:
                out[i] += 1
                rem -= 1
                if not rem:
                    break
    return out


# Provisional: the compiled table module brings the same `Churn` and `churn`; until then they are
# computed bucket by bucket from two full tables.


@dataclass(frozen=True, slots=True)
class Churn(Generic[A]):
    """How many of a table's `size` buckets change owner between two weight sets."""

    size: int
    moved: int
    gained: Mapping[A, int]  # buckets each AS owns afterwards that it did not own before
    lost: Mapping[A, int]  # buckets each AS owned before and no longer owns

    @property
    def share(self) -> float:
        return self.moved / self.size if self.size else 0.0


_last_old: list[tuple[tuple[tuple[object, int], ...], int, list[object]]] = []


def churn(old: Iterable[tuple[A, int]], new: Iterable[tuple[A, int]], m: int) -> Churn[A]:
    """The buckets (of a table of size m) whose AS differs between `old` and `new` weights; a
    bucket going to or from drop counts as moved (its flows are disturbed all the same)."""
    olds = tuple(old)
    # A planner measures many candidates against one `old`: its table is kept for the next call.
    if _last_old and _last_old[0][0] == olds and _last_old[0][1] == m:
        before: list[Any] = _last_old[0][2]
    else:
        before = maglev_table(olds, m)
        _last_old[:] = [(olds, m, before)]
    after = maglev_table(new, m)
    gained: dict[A, int] = {}
    lost: dict[A, int] = {}
    moved = 0
    for a, b in zip(before, after, strict=True):
        if a == b:
            continue
        moved += 1
        if a is not None:
            lost[a] = lost.get(a, 0) + 1
        if b is not None:
            gained[b] = gained.get(b, 0) + 1
    return Churn(max(m, 0), moved, gained, lost)
