"""The lb plugin's weighted Maglev new-flow table, computed exactly as VPP 26.10 computes it.

`maglev_table` fills the whole bucket->AS table (the plugin's `lb_vip_update_new_flow_table`);
`bucket_counts` gives each AS's number of buckets in closed form without filling it, cheap enough
to run on every API operation; `churn` compares the full tables before and after a weight change
(how many buckets change owner: the flows a change would move). All depend only on the live
(address, weight) set and the table size M, never on insertion order. Pure functions, on any
thread: the emulator's, and the planner's (churn preview).

Addresses are the plugin's 16-byte ip46 form (IPv4 a.b.c.d is twelve zero bytes then a.b.c.d);
`ip46()` converts from `ipaddress` objects.

The hot loops live in an engine selected here as `maglev.diff` selects its own: the compiled
`_table` unless MAGLEV_NO_EXTENSIONS=1, its pure-Python twin `_table_py` otherwise (or when the
compiled module is missing, unless MAGLEV_REQUIRE_EXTENSIONS=1 makes that an ImportError);
`IMPLEMENTATION` says which. Both take and return the same plain data: the lower-level form is an
owner table, an `array('i')` of m indices into a strictly ascending list of 16-byte keys (-1:
the bucket drops), built by `owner_table` and compared by `compare_owners`. Every function that
runs engine code takes `engine=` to pick a twin explicitly (tests run both).
"""

from __future__ import annotations

import ipaddress
import os
from array import array
from bisect import bisect_left
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import accumulate
from types import ModuleType
from typing import Generic, TypeVar

if os.environ.get("MAGLEV_NO_EXTENSIONS", "") in ("1", "true", "yes"):
    from maglev import _table_py as _engine

    IMPLEMENTATION = "python"
else:
    try:
        from maglev import _table as _engine  # type: ignore[attr-defined,no-redef,unused-ignore]

        IMPLEMENTATION = "cython"
    except ImportError:
        if os.environ.get("MAGLEV_REQUIRE_EXTENSIONS", "") in ("1", "true", "yes"):
            raise
        from maglev import _table_py as _engine

        IMPLEMENTATION = "python"

engine_name = _engine.engine_name

Address = bytes | ipaddress.IPv4Address | ipaddress.IPv6Address
A = TypeVar("A", bytes, ipaddress.IPv4Address, ipaddress.IPv6Address)


def ip46(address: ipaddress.IPv4Address | ipaddress.IPv6Address | str) -> bytes:
    """The plugin's 16-byte form of an address (IPv4 in the last four bytes)."""
    addr = ipaddress.ip_address(address)
    if addr.version == 4:
        return bytes(12) + addr.packed
    return addr.packed


def xxhash_u64(key: int, engine: ModuleType | None = None) -> int:
    """VPP's `clib_xxhash`: xxHash64 of a single u64 (0 <= key < 2**64) with the plugin's fixed
    seed."""
    e = _engine if engine is None else engine
    h: int = e.xxhash_u64(key)
    return h


def _key(address: Address) -> bytes:
    return address if isinstance(address, bytes) else ip46(address)


def _check_size(m: int) -> None:
    # VPP only builds power-of-two tables: with any other m the probe walk (steps masked by m-1)
    # misses buckets and the fill would never end.
    if m > 0 and m & (m - 1):
        raise ValueError(f"table size {m} is not a power of two")


def owner_table(
    keys: Sequence[bytes], weights: Sequence[int], m: int, engine: ModuleType | None = None
) -> array[int]:
    """The new-flow table of size m as owner indices: 'i' [m], the index in `keys` of the AS
    owning each bucket, -1 for drop (no weight > 0); empty for m <= 0.

    `keys` are distinct 16-byte ip46 addresses in ascending order, `weights` their weights
    (0: not in the table, so two tables over one key list compare index by index); m is a
    power of two. Entries (as, replica) for replica < weight, sorted by (replica, address), each
    get a permutation seeded by xxhash(A0 ^ A1 ^ replica), A0 and A1 the address's little-endian
    u64 halves: skip = (low 32 bits | 1) mod m, first bucket = high 32 bits mod m. Round-robin in
    entry order, each entry claims the next free bucket along its permutation until all m are
    taken. Each claims one bucket per pass, so only the first m entries matter.
    """
    _check_size(m)
    if len(keys) != len(weights):
        raise ValueError("keys and weights differ in length")
    for i in range(1, len(keys)):
        if not keys[i - 1] < keys[i]:
            raise ValueError("keys must be strictly ascending")
    e = _engine if engine is None else engine
    table: array[int] = e.owner_table(keys, weights, m)
    return table


def compare_owners(
    old: Sequence[int], new: Sequence[int], n: int, engine: ModuleType | None = None
) -> tuple[int, array[int], array[int]]:
    """Bucket by bucket between two owner tables over the same n keys: (moved, gained, lost).

    moved counts the buckets whose owner differs (drop -> key and key -> drop included);
    gained 'q' [n] and lost 'q' [n] count, per key, the buckets it owns in `new` and not in
    `old`, and those it owned in `old` and not in `new`.
    """
    e = _engine if engine is None else engine
    a = old if isinstance(old, array) and old.typecode == "i" else array("i", old)
    b = new if isinstance(new, array) and new.typecode == "i" else array("i", new)
    moved, gained, lost = e.compare_owners(a, b, n)
    return moved, gained, lost


def _live(addresses_weights: Iterable[tuple[A, int]], given: dict[bytes, A]) -> dict[bytes, int]:
    """16-byte key -> weight of the entries with weight > 0 (the last one wins); records in
    `given` the address each key was given as, so results come back in the caller's form."""
    weights: dict[bytes, int] = {}
    for address, weight in addresses_weights:
        if weight > 0:
            k = _key(address)
            given[k] = address
            weights[k] = weight
    return weights


def maglev_table(
    addresses_weights: Iterable[tuple[A, int]], m: int, engine: ModuleType | None = None
) -> list[A | None]:
    """The full new-flow table of size m: the AS address owning each bucket, None for drop.

    `addresses_weights` are the VIP's live ASes as (address, weight), addresses as 16-byte ip46
    `bytes` or `ipaddress` objects (returned as given); m is a power of two. Entries
    (as, replica) sorted by (replica, address) each get a permutation seeded by
    xxhash(A0 ^ A1 ^ replica) and claim, round-robin, the next free bucket along it (details
    at `owner_table`).
    """
    given: dict[bytes, A] = {}
    weights = _live(addresses_weights, given)
    if not weights or m <= 0:
        return [None] * max(m, 0)
    keys = sorted(weights)
    owners = owner_table(keys, [weights[k] for k in keys], m, engine)
    e = _engine if engine is None else engine
    table: list[A | None] = e.resolve(owners, [given[k] for k in keys])
    return table


@dataclass(frozen=True, slots=True)
class Churn(Generic[A]):
    """What a change of weights does to a table: the buckets (flows) that change owner."""

    size: int  # buckets in the table (m)
    moved: int  # buckets whose owner differs between the two tables (drop -> AS and back count)
    gained: Mapping[A, int]  # per address: buckets it owns after and not before (only > 0)
    lost: Mapping[A, int]  # per address: buckets it owned before and not after (only > 0)

    @property
    def share(self) -> float:
        """The moved fraction of the table (0.0 for an empty table)."""
        return self.moved / self.size if self.size else 0.0


def churn(
    old: Iterable[tuple[A, int]],
    new: Iterable[tuple[A, int]],
    m: int,
    engine: ModuleType | None = None,
) -> Churn[A]:
    """The churn from the table of `old` to the table of `new` (both (address, weight) as
    `maglev_table` takes them), computed bucket by bucket from the two full tables of size m.

    Both tables are built over one key list (the union of the live addresses, weight 0 where a
    side lacks one): entries are only made for weights > 0, so the extra keys change nothing
    and the owner tables compare index by index. Addresses come back as given (`new`'s form
    when both sides give one), in address order.
    """
    given: dict[bytes, A] = {}
    before = _live(old, given)
    after = _live(new, given)
    if not given or m <= 0:
        return Churn(max(m, 0), 0, {}, {})
    keys = sorted(before.keys() | after.keys())
    o = owner_table(keys, [before.get(k, 0) for k in keys], m, engine)
    n = owner_table(keys, [after.get(k, 0) for k in keys], m, engine)
    moved, gained, lost = compare_owners(o, n, len(keys), engine)
    return Churn(
        m,
        moved,
        {given[k]: g for k, g in zip(keys, gained, strict=True) if g},
        {given[k]: x for k, x in zip(keys, lost, strict=True) if x},
    )


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


__all__ = [
    "IMPLEMENTATION",
    "Address",
    "Churn",
    "bucket_counts",
    "churn",
    "compare_owners",
    "counts_in_order",
    "engine_name",
    "ip46",
    "maglev_table",
    "owner_table",
    "xxhash_u64",
]
