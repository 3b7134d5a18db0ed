"""Pure-Python twin of the compiled table engine `maglev._table` (same inputs, same outputs).

Owns the hot loops of the weighted Maglev new-flow table: xxHash64 of a u64, the fill of the
bucket -> owner table (as indices into a sorted key list, so the compiled twin can run typed C
loops), turning such a table back into addresses, and the bucket-by-bucket comparison of two
tables (churn). The algorithm and the shapes are documented in `maglev.table`, which selects
between the twins and validates inputs. Pure and deterministic; called on any thread (the
emulator's, the planner's). Keep this file line-for-line with `_table.pyx`: a hypothesis test
asserts they agree.
"""

from __future__ import annotations

from array import array
from collections.abc import Sequence
from typing import Any

_M64 = 0xFFFFFFFFFFFFFFFF
_M32 = 0xFFFFFFFF
_P1 = 11400714785074694791
_P2 = 14029467366897019727
_P3 = 1609587929392839161
_P4 = 9650029242287828579
_P5 = 2870177450012600261
# clib_xxhash's seed (the golden-ratio constant) with xxHash64's final-round terms for one
# 8-byte lane already folded in: h = seed + P5 + len.
_XXH_SEED = (0x9E3779B97F4A7C13 + _P5 + 8) & _M64


def engine_name() -> str:
    return "python"


def _rotl(x: int, r: int) -> int:
    return ((x << r) | (x >> (64 - r))) & _M64


def _xxh(key: int) -> int:
    k = (_rotl((key * _P2) & _M64, 31) * _P1) & _M64
    h = _XXH_SEED ^ k
    h = (_rotl(h, 27) * _P1 + _P4) & _M64
    h ^= h >> 33
    h = (h * _P2) & _M64
    h ^= h >> 29
    h = (h * _P3) & _M64
    h ^= h >> 32
    return h


def xxhash_u64(key: int) -> int:
    """VPP's `clib_xxhash`: xxHash64 of a single u64 with the plugin's fixed seed."""
    # The compiled twin takes a C uint64_t: out of range is an OverflowError in both.
    if not 0 <= key <= _M64:
        raise OverflowError("xxhash_u64 takes a u64")
    return _xxh(key)


def _fold(key: bytes) -> int:
    """A0 ^ A1: the address's two little-endian u64 halves, as the plugin seeds with them."""
    if not isinstance(key, bytes) or len(key) != 16:
        raise ValueError("an address key is 16 bytes (ip46)")
    return int.from_bytes(key[:8], "little") ^ int.from_bytes(key[8:], "little")


def owner_table(keys: Sequence[bytes], weights: Sequence[int], m: int) -> array[int]:
    """'i' [m]: the index in `keys` of each bucket's owner, -1 where the bucket drops."""
    n = len(keys)
    if len(weights) != n:
        raise ValueError("keys and weights differ in length")
    if m <= 0:
        return array("i")
    mask = m - 1
    folds = [0] * n
    w = [0] * n
    max_w = 0
    total = 0
    for k in range(n):
        folds[k] = _fold(keys[k])
        w[k] = weights[k]
        if w[k] > 0:
            max_w = max(max_w, w[k])
            total = min(total + w[k], m)
    # Every entry claims one bucket per pass, so entries past the first m never get one: the
    # first pass has filled the table. Building only `limit` of them bounds the work by m.
    limit = total
    owner = [0] * limit
    skips = [0] * limit
    cursors = [0] * limit
    count = 0
    r = 0
    while r < max_w and count < limit:
        for k in range(n):
            if w[k] > r:
                seed = _xxh(folds[k] ^ r)
                owner[count] = k
                skips[count] = ((seed & _M32) | 1) & mask
                cursors[count] = (seed >> 32) & mask
                count += 1
                if count == limit:
                    break
        r += 1
    table = [-1] * m
    if count:
        _fill(table, owner, skips, cursors, count, m, mask)
    return array("i", table)


def _fill(
    table: list[int],
    owner: list[int],
    skips: list[int],
    cursors: list[int],
    count: int,
    m: int,
    mask: int,
) -> None:
    # Round-robin over the entries, each taking the next free bucket along its permutation
    # (skip is odd and m a power of two, so the walk reaches every bucket) until all m are taken.
    done = 0
    while True:
        for i in range(count):
            pos = cursors[i]
            skip = skips[i]
            while table[pos] >= 0:
                pos = (pos + skip) & mask
            table[pos] = owner[i]
            cursors[i] = (pos + skip) & mask
            done += 1
            if done == m:
                return


def resolve(owners: Sequence[int], values: Sequence[Any]) -> list[Any]:
    """`values[i]` for each bucket's owner index i, None where it is negative (drop)."""
    n = len(values)
    out: list[Any] = [None] * len(owners)
    for b in range(len(owners)):
        i = owners[b]
        if i >= 0:
            if i >= n:
                raise IndexError("owner index out of range")
            out[b] = values[i]
    return out


def compare_owners(
    old: Sequence[int], new: Sequence[int], n: int
) -> tuple[int, array[int], array[int]]:
    """(moved, gained 'q' [n], lost 'q' [n]) between two owner tables over the same n keys."""
    if len(old) != len(new):
        raise ValueError("the two tables differ in size")
    gained = array("q", [0]) * n
    lost = array("q", [0]) * n
    moved = 0
    for b in range(len(old)):
        x = old[b]
        y = new[b]
        if x < -1 or x >= n or y < -1 or y >= n:
            raise ValueError("owner index out of range")
        if x != y:
            moved += 1
            if y >= 0:
                gained[y] += 1
            if x >= 0:
                lost[x] += 1
    return moved, gained, lost


__all__ = ["compare_owners", "engine_name", "owner_table", "resolve", "xxhash_u64"]
